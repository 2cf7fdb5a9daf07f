"""The evaluation report: markdown tables plus PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from analytics.scoring.evaluate import EvalRun
from analytics.scoring.metrics import Evaluation


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _secs(x: float | None) -> str:
    if x is None:
        return "missed"
    return f"{x:.0f} s" if abs(x) < 120 else f"{x / 60:.1f} min"


def _hm(t: datetime) -> str:
    return t.strftime("%H:%M:%S")


def write_report(ev: Evaluation, out: Path, *, config_summary: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    run = ev.run
    plots = [_timeline_plot(ev, out / "timeline.png"), _ttd_plot(ev, out / "time_to_detect.png")]
    lines = [
        f"# Detector evaluation: {run.scenario}",
        "",
        f"Scale {run.scale:g}: {len(run.sites)} sites, {run.devices} devices, "
        f"{len(run.ticks)} ticks of {run.tick_s:g} s, {run.readings} readings, "
        f"{run.counters.get('streams', 0)} streams; simulated and scored in {run.wall_s:.0f} s.",
        f"Readings not scored: {run.counters.get('untrusted', 0)} with a skewed clock, "
        f"{run.counters.get('duplicates', 0)} duplicates, {run.counters.get('late', 0)} late.",
        "",
    ]
    if config_summary:
        lines += [config_summary, ""]
    lines += [
        "## NAB-style windowed score",
        "",
        "One NAB 'file' per site (its ticks as rows), the labelled incident windows as anomaly windows. "
        "*Alerts*: the incident alerts the engine raised, grouped per site as a control room groups them "
        "(an alert within 2 min of the previous one in the same zone is the same incident). "
        "*Best threshold*: NAB's optimiser over the threshold on the site's largest incident score per "
        "tick, each upward crossing being a detection. "
        "Normalised: never detecting = 0, perfect = 100.",
        "",
        "| profile | score (alerts) | windows found | false positives | score (best threshold) | threshold |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, res in ev.nab.items():
        threshold, best = ev.nab_best[name]
        lines.append(
            f"| {name} | {res.score:.1f} | {res.detected}/{res.windows} | {res.false_positives} "
            f"| {best.score:.1f} | {threshold:g} |"
        )
    lines += [
        "",
        "## Incidents",
        "",
        f"{ev.incident_alerts} incident alerts, {ev.false_incident_alerts} outside every incident window.",
        "",
        "| incident | type | site / zone | window (UTC) | detected | time to detect | first alert on "
        "| alerts |",
        "|---|---|---|---|---|---:|---|---:|",
    ]
    for o in ev.incidents:
        lb = o.label
        lines.append(
            f"| {lb.id} | {lb.type} | {lb.site} / {lb.zone} | {_hm(lb.start)}-{_hm(lb.end)} | "
            f"{'yes' if o.detected else '**no**'} | {_secs(o.time_to_detect_s)} | {o.first_device or '-'} | "
            f"{o.alerts} |"
        )
    lines += [
        "",
        "### Per incident type",
        "",
        "| type | windows | recall | alerts claiming it | precision | median time to detect |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in ev.types.values():
        if t.windows or t.claimed:
            lines.append(
                f"| {t.type} | {t.windows} | {_pct(t.recall)} | {t.claimed} | {_pct(t.precision)} "
                f"| {_secs(t.median_ttd_s) if t.ttd else '-'} |"
            )
    lines += [
        "",
        "## Sensor faults (kept apart from incidents)",
        "",
        f"{ev.fault_alerts} fault alerts, {ev.unexplained_fault_alerts} not explained by a labelled fault.",
        "",
        "| fault | type | device | window (UTC) | detected as fault | time to detect "
        "| incident alerts on it |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for o in ev.faults:
        lb = o.label
        lines.append(
            f"| {lb.id} | {lb.type} | {lb.devices[0]} | {_hm(lb.start)}-{_hm(lb.end)} | "
            f"{'yes' if o.detected else '**no**'} | {_secs(o.time_to_detect_s)} | {o.as_incident} |"
        )
    lines += ["", "| fault type | windows | detected | median time to detect |", "|---|---:|---:|---:|"]
    for t in ev.fault_types.values():
        lines.append(f"| {t.type} | {t.windows} | {t.detected} | {_secs(t.median_ttd_s) if t.ttd else '-'} |")
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _timeline_plot(ev: Evaluation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run: EvalRun = ev.run
    sites = run.sites
    fig, axes = plt.subplots(len(sites), 1, figsize=(12, 2.2 * len(sites)), sharex=True, squeeze=False)
    hours = (run.ticks - run.ticks[0]) / 3600.0 if len(run.ticks) else np.zeros(0)
    t0 = run.ticks[0] if len(run.ticks) else 0.0
    for k, site in enumerate(sites):
        ax = axes[k][0]
        if len(hours):
            ax.plot(hours, run.site_score[:, k], lw=0.6, color="tab:blue", label="largest incident score")
        for o in ev.incidents:
            if o.label.site == site:
                a, b = ((o.label.start.timestamp() - t0) / 3600, (o.label.end.timestamp() - t0) / 3600)
                ax.axvspan(a, b, color="tab:red", alpha=0.2)
                ax.text(a, 1.02, o.label.type, fontsize=7, color="tab:red")
        for o in ev.faults:
            if o.label.site == site:
                a, b = ((o.label.start.timestamp() - t0) / 3600, (o.label.end.timestamp() - t0) / 3600)
                ax.axvspan(a, b, color="grey", alpha=0.12)
        inc = [
            (a.raised_at.timestamp() - t0) / 3600
            for a in run.alerts
            if a.site_id == site and a.category == "incident"
        ]
        flt = [
            (a.raised_at.timestamp() - t0) / 3600
            for a in run.alerts
            if a.site_id == site and a.category == "fault"
        ]
        ax.plot(inc, [0.95] * len(inc), "v", color="tab:red", ms=4, label="incident alert")
        ax.plot(flt, [0.05] * len(flt), "^", color="tab:grey", ms=4, label="fault alert")
        ax.set_ylim(0, 1.1)
        ax.set_ylabel(site, fontsize=8)
    axes[-1][0].set_xlabel("hours since start (red: incident windows, grey: sensor-fault windows)")
    axes[0][0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ttd_plot(ev: Evaluation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(o.label.id, o.time_to_detect_s, "incident") for o in ev.incidents]
    items += [(o.label.id, o.time_to_detect_s, "fault") for o in ev.faults]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(items), 3) + 1))
    for i, (_, ttd, cat) in enumerate(items):
        color = "tab:red" if cat == "incident" else "tab:grey"
        if ttd is None:
            ax.text(0, i, "missed", va="center", fontsize=8, color=color)
        else:
            ax.barh(i, max(ttd, 0.0) / 60.0, color=color)
    ax.set_yticks(range(len(items)), [n for n, _, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time to detect (minutes after the window starts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
