"""Compare a scenario's crowd with and without a planner's changes: per site and zone, the peak
density, the minutes at Fruin level E or F, and the egress time; written as report.md, a CSV and
PNG plots of the most affected zones."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analytics.vision.los import DENSITY_BOUNDS, STANDING_KINDS
from simulators.whatif import CrowdRun

F64 = npt.NDArray[np.float64]

END_EVENTS = ("egress", "final_whistle", "show_end", "ceremony_end")
"""The timeline event egress is measured from, the first one the scenario has."""
EMPTY_SHARE = 0.02
"""A site or zone is ~empty once below this share of its peak occupancy."""
_E = 3  # index of level E's lower bound in DENSITY_BOUNDS (A..E upper bounds: bounds[3] ends D)


def level_e_bound(kind: str) -> float:
    """Persons/m² above which a zone of this kind is at level E or F."""
    return DENSITY_BOUNDS["queuing" if kind in STANDING_KINDS else "walkway"][_E]


def end_of_event(run: CrowdRun) -> tuple[str, float] | None:
    for key in END_EVENTS:
        if key in run.scenario.events:
            return key, run.scenario.events[key]
    return None


def egress_s(t: F64, occupancy: F64, t_end: float, share: float = EMPTY_SHARE) -> float:
    """Seconds from `t_end` until `occupancy` stays below `share` of its peak; inf if it never does
    before the end of the run, nan if there was nobody."""
    peak = float(occupancy.max()) if len(occupancy) else 0.0
    if peak < 1.0:
        return math.nan
    after = t >= t_end
    if not after.any():
        return math.inf
    above = np.flatnonzero(after & (occupancy > share * peak))
    if len(above) == 0:
        return 0.0
    last = int(above[-1])
    if last == len(t) - 1:
        return math.inf
    return float(t[last + 1] - t_end)


@dataclass(frozen=True)
class Row:
    site: str
    zone: str  # "" for the whole site
    kind: str
    peak_base: float
    peak_new: float
    ef_min_base: float
    ef_min_new: float
    egress_base: float
    egress_new: float

    @property
    def score(self) -> float:
        """How much the change moved this row: for ranking the plotted zones."""
        e = [d for d in (self.egress_new - self.egress_base,) if math.isfinite(d)]
        return (
            abs(self.peak_new - self.peak_base)
            + abs(self.ef_min_new - self.ef_min_base) / 10
            + (abs(e[0]) / 600 if e else 0.0)
        )


def _ef_minutes(t: F64, density: F64, bound: float) -> float:
    dt = np.diff(t, prepend=t[0])
    return float(dt[density > bound].sum() / 60.0)


def compare(base: CrowdRun, new: CrowdRun) -> list[Row]:
    """One row per site (its totals), then one per zone."""
    if base.zone_ids != new.zone_ids or base.zone_site != new.zone_site:
        raise ValueError("the two runs have different zones")
    end_b, end_n = end_of_event(base), end_of_event(new)
    tb = end_b[1] if end_b else math.nan
    tn = end_n[1] if end_n else math.nan
    db, dn = base.density, new.density
    rows: list[Row] = []
    for site in base.site_ids:
        cols = [i for i, s in enumerate(base.zone_site) if s == site]
        ob, on = base.occupancy[:, cols].sum(axis=1), new.occupancy[:, cols].sum(axis=1)
        area = float(base.zone_area[cols].sum())
        ef_b = sum(_ef_minutes(base.t, db[:, i], level_e_bound(base.zone_kinds[i])) for i in cols)
        ef_n = sum(_ef_minutes(new.t, dn[:, i], level_e_bound(new.zone_kinds[i])) for i in cols)
        rows.append(
            Row(
                site,
                "",
                "site",
                float(db[:, cols].max()) if area else 0.0,
                float(dn[:, cols].max()) if area else 0.0,
                ef_b,
                ef_n,
                egress_s(base.t, ob, tb) if end_b else math.nan,
                egress_s(new.t, on, tn) if end_n else math.nan,
            )
        )
        for i in cols:
            bound = level_e_bound(base.zone_kinds[i])
            rows.append(
                Row(
                    site,
                    base.zone_ids[i],
                    base.zone_kinds[i],
                    float(db[:, i].max()),
                    float(dn[:, i].max()),
                    _ef_minutes(base.t, db[:, i], bound),
                    _ef_minutes(new.t, dn[:, i], bound),
                    egress_s(base.t, base.occupancy[:, i], tb) if end_b else math.nan,
                    egress_s(new.t, new.occupancy[:, i], tn) if end_n else math.nan,
                )
            )
    return rows


def _minutes(s: float) -> str:
    if math.isnan(s):
        return "n/a"
    if math.isinf(s):
        return "not empty"
    return f"{s / 60:.1f}"


def _delta(a: float, b: float, fmt: str = "{:+.2f}") -> str:
    if not (math.isfinite(a) and math.isfinite(b)):
        return "" if math.isnan(a) and math.isnan(b) else "changed"
    return fmt.format(b - a)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "site",
                "zone",
                "kind",
                "peak_density_base",
                "peak_density_changed",
                "minutes_at_E_or_F_base",
                "minutes_at_E_or_F_changed",
                "egress_min_base",
                "egress_min_changed",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.site,
                    r.zone,
                    r.kind,
                    f"{r.peak_base:.3f}",
                    f"{r.peak_new:.3f}",
                    f"{r.ef_min_base:.1f}",
                    f"{r.ef_min_new:.1f}",
                    f"{r.egress_base / 60:.2f}",
                    f"{r.egress_new / 60:.2f}",
                ]
            )


def most_affected(rows: list[Row], n: int = 6) -> list[Row]:
    zones = [r for r in rows if r.zone and r.score > 1e-6]
    return sorted(zones, key=lambda r: (-r.score, r.site, r.zone))[:n]


def _clock(run: CrowdRun) -> F64:
    """Hours since midnight of the start's day (in its zone), for the x axes."""
    start = run.scenario.spec.start
    return np.asarray(start.hour + start.minute / 60 + start.second / 3600 + run.t / 3600.0)


def _hhmm(hours: float, _pos: int | None = None) -> str:
    m = round(hours * 60)
    return f"{(m // 60) % 24:02d}:{m % 60:02d}"


def plot(base: CrowdRun, new: CrowdRun, rows: list[Row], out: Path) -> list[str]:
    """density.png (most affected zones) and occupancy.png (site totals); returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    names: list[str] = []
    xb, xn = _clock(base), _clock(new)
    top = most_affected(rows)
    if top:
        ncol = 2 if len(top) > 1 else 1
        nrow = math.ceil(len(top) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(6.5 * ncol, 2.8 * nrow), squeeze=False, sharex=True)
        for ax, r in zip(axes.ravel(), top, strict=False):
            i = next(
                k
                for k, (s, z) in enumerate(zip(base.zone_site, base.zone_ids, strict=True))
                if (s, z) == (r.site, r.zone)
            )
            ax.plot(xb, base.density[:, i], label="baseline", color="#555555")
            ax.plot(xn, new.density[:, i], label="changed", color="#d62728")
            ax.axhline(level_e_bound(r.kind), color="#ff7f0e", linestyle="--", linewidth=1, label="level E")
            ax.set_title(f"{r.site} / {r.zone} ({r.kind})", fontsize=9)
            ax.set_ylabel("persons/m²")
            ax.xaxis.set_major_formatter(FuncFormatter(_hhmm))
        for ax in axes.ravel()[len(top) :]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "density.png", dpi=90)
        plt.close(fig)
        names.append("density.png")
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for k, site in enumerate(base.site_ids):
        cols = [i for i, s in enumerate(base.zone_site) if s == site]
        color = f"C{k % 10}"
        ax.plot(xb, base.occupancy[:, cols].sum(axis=1), color=color, linestyle=":", label=f"{site} baseline")
        ax.plot(xn, new.occupancy[:, cols].sum(axis=1), color=color, label=f"{site} changed")
    ax.set_ylabel("persons in the site")
    ax.xaxis.set_major_formatter(FuncFormatter(_hhmm))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "occupancy.png", dpi=90)
    plt.close(fig)
    names.append("occupancy.png")
    return names


def write_report(
    base: CrowdRun, new: CrowdRun, changes: list[str], out: Path, *, wall_s: float | None = None
) -> list[Row]:
    """DIR/report.md, DIR/comparison.csv and the plots; returns the rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = compare(base, new)
    write_csv(rows, out / "comparison.csv")
    images = plot(base, new, rows, out)
    sc = base.scenario
    end = end_of_event(base)
    lines = [
        f"# What if: {sc.name}",
        "",
        f"Scenario `{sc.path}`, crowd model only (core sites, tick {sc.spec.tick_s:g} s, sampled every "
        f"{float(base.t[1] - base.t[0]) if len(base.t) > 1 else 0:g} s).",
        "",
        "Changes:",
        "",
        *[f"- `--set {c}`" for c in changes],
        "",
        "Peak density in persons/m²; minutes at Fruin level E or F (queuing scale for standing zones, "
        "walkway scale elsewhere; a site's figure sums its zones); egress in minutes from "
        + (f"`{end[0]}` " if end else "the end of the event (none in this timeline: n/a) ")
        + f"until below {EMPTY_SHARE:.0%} of the peak occupancy (`not empty`: not before the run ends).",
        "",
        "| site | zone | peak base | peak changed | E/F min base | E/F min changed "
        "| egress base | egress changed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        zone = r.zone or "**(site)**"
        lines.append(
            f"| {r.site} | {zone} | {r.peak_base:.2f} | {r.peak_new:.2f} ({_delta(r.peak_base, r.peak_new)}) "
            f"| {r.ef_min_base:.1f} | {r.ef_min_new:.1f} ({_delta(r.ef_min_base, r.ef_min_new, '{:+.1f}')}) "
            f"| {_minutes(r.egress_base)} | {_minutes(r.egress_new)} |"
        )
    top = most_affected(rows)
    lines += ["", "Most affected zones: " + (", ".join(f"{r.site}/{r.zone}" for r in top) or "none"), ""]
    lines += [f"![{name}]({name})" for name in images]
    if wall_s is not None:
        lines += ["", f"Both runs took {wall_s:.1f} s."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows
