"""The replay report: DIR/alerts.csv (every alert of either side and its change) and DIR/report.md
with PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
from pathlib import Path

from analytics.replay import CHANGES, Change, Comparison, ReplayResult
from analytics.replay_truth import TruthScores, report_lines


def write_alerts_csv(cmp: Comparison, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["change", "rule", "site_id", "zone_id", "device_id", "severity", "recorded_id", "recorded_at",
             "replayed_id", "replayed_at", "shift_s", "settings_hash"]
        )  # fmt: skip
        for d in cmp.diffs:
            a, r, b = d.alert, d.recorded, d.replayed
            w.writerow(
                [d.change, a.rule, a.site_id, a.zone_id or "", a.device_id or "", a.severity.value,
                 r.alert_id if r else "", r.raised_at.isoformat() if r else "",
                 b.alert_id if b else "", b.raised_at.isoformat() if b else "",
                 "" if d.shift_s is None else f"{d.shift_s:g}", (b or a).settings_hash or ""]
            )  # fmt: skip
    return path


def _table(title: str, rows: dict[str, dict[Change, int]]) -> list[str]:
    lines = [f"| {title} | " + " | ".join(CHANGES) + " |", "|---" * (len(CHANGES) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(str(v[c]) for c in CHANGES) + " |" for k, v in rows.items()]
    return lines


def load_per_hour(result: ReplayResult, *, operators: int = 1) -> tuple[float, float]:
    """(recorded, replayed) alerts per operator-hour over the window."""
    hours = result.window.span_s / 3600 * max(operators, 1)
    return len(result.recorded) / hours, len(result.alerts) / hours


def write_report(
    result: ReplayResult,
    cmp: Comparison,
    out: Path,
    *,
    settings_label: str,
    truth: TruthScores | None = None,
) -> Path:
    """DIR/alerts.csv, DIR/report.md and its plots; with `truth`, a section scoring both sides."""
    out.mkdir(parents=True, exist_ok=True)
    write_alerts_csv(cmp, out / "alerts.csv")
    plots = [_changes_plot(cmp, out / "changes_per_rule.png"), _load_plot(result, out / "alert_load.png")]
    shifts = [d.shift_s for d in cmp.diffs if d.shift_s is not None and d.change != "same"]
    rec_load, rep_load = load_per_hour(result)
    w = result.window
    lines = [
        "# Replay report",
        "",
        f"Window {w.since.isoformat()} to {w.until.isoformat()} ({w.span_s / 3600:.2f} h), "
        f"sites: {', '.join(result.sites) or 'none'}; settings: {settings_label}.",
        f"Inputs: {result.readings} readings, {result.zone_states} zone states. Replayed in "
        f"{result.wall_s:.1f} s wall: **{result.speedup:,.0f}x real time**.",
        "",
        f"Recorded alerts: {len(result.recorded)}; replayed alerts: {len(result.alerts)}; "
        + ", ".join(f"{c} {cmp.count(c)}" for c in CHANGES)
        + (" (identical)." if cmp.identical else "."),
        "",
        "## Per rule",
        "",
        *_table("rule", cmp.by(lambda a: a.rule)),
        "",
        "## Per site",
        "",
        *_table("site", cmp.by(lambda a: a.site_id)),
        "",
        "## Time to detect",
        "",
        (
            f"{len(shifts)} alerts moved: median shift {sorted(shifts)[len(shifts) // 2]:+.0f} s "
            f"(negative: the candidate raises them earlier), "
            f"from {min(shifts):+.0f} s to {max(shifts):+.0f} s."
            if shifts
            else "No alert raised at another time."
        ),
        "",
        "## Alert load",
        "",
        f"Per operator-hour (one operator): recorded {rec_load:.1f}, replayed {rep_load:.1f}.",
        "",
        *(report_lines(truth) if truth is not None else []),
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _changes_plot(cmp: Comparison, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = cmp.by(lambda a: a.rule)
    rules = list(table) or ["(none)"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(rules)), 4))
    bottom = [0] * len(rules)
    for change in CHANGES:
        heights = [table.get(r, dict.fromkeys(CHANGES, 0))[change] for r in rules]
        ax.bar(rules, heights, bottom=bottom, label=change)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("alerts")
    ax.set_title("Alerts per rule: recorded vs replay")
    ax.legend()
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _load_plot(result: ReplayResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    since = result.window.since
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, alerts in (("recorded", result.recorded), ("replay", result.alerts)):
        minutes = sorted((a.raised_at - since).total_seconds() / 60 for a in alerts)
        ax.step([0.0, *minutes], list(range(len(minutes) + 1)), where="post", label=label)
    ax.set_xlabel(f"minutes after {since:%Y-%m-%d %H:%M} UTC")
    ax.set_ylabel("alerts raised (cumulative)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
