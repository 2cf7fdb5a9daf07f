"""The `eval-series` report: markdown tables (pooled, per source, per file) and PNG plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analytics.scoring.corpus import SeriesFile
from analytics.scoring.series_eval import ProfileResult

NDArray = np.ndarray[Any, Any]
Results = Mapping[str, Mapping[str, ProfileResult]]


def summary_lines(results: Results) -> list[str]:
    """One line per detector and profile, for the terminal."""
    lines = []
    for profile in next(iter(results.values()), {}):
        for name, per in results.items():
            r = per[profile]
            sources = " ".join(f"{s}={v:.1f}" for s, v in r.per_source.items())
            lines.append(
                f"{profile:19s} {name:8s} {r.score:6.1f} (NAB pooled {r.nab_score:5.1f}; "
                f"{r.false_alarms_per_1000:.2f} false alarms/1000 rows) {sources}"
            )
    return lines


def write_series_report(
    out: Path,
    corpus: str,
    split: str,
    files: Sequence[SeriesFile],
    scores: Mapping[str, Sequence[NDArray]],
    results: Results,
    *,
    config_summary: str = "",
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = list(results)
    profiles = list(results[names[0]])
    sources = sorted({f.source for f in files})
    lines = [
        f"# eval-series: {corpus} (split `{split}`)",
        "",
        f"{len(files)} files from {len(sources)} sources, {sum(len(f.values) for f in files):,} rows, "
        f"{sum(len(f.windows) for f in files):,} windows. {config_summary}",
        "",
        "Score: NAB's sweeper and profiles (probation 15 % of a file, at most 750 rows, not scored; "
        "every row at or above the threshold is a detection). Headline = mean over sources of each "
        "source's normalised score (never = 0, perfect = 100), one threshold per profile maximising it; "
        "`NAB pooled` = NAB's own figure (all windows summed, its own optimal threshold). False alarms = "
        "rows above the threshold outside every window, per 1,000 scored rows.",
        "",
        "## Pooled",
        "",
        "| profile | detector | score (mean of sources) | threshold | NAB pooled | false alarms / 1000 |",
        "|---|---|---|---|---|---|",
    ]
    for p in profiles:
        for n in names:
            r = results[n][p]
            lines.append(
                f"| {p} | {n} | {r.score:.1f} | {r.threshold:.4f} | {r.nab_score:.1f} "
                f"| {r.false_alarms_per_1000:.2f} |"
            )
    lines += ["", "## Per source", ""]
    for p in profiles:
        lines += [f"### {p}", "", "| source | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for s in sources:
            cells = [
                f"{results[n][p].per_source[s]:.1f}" if s in results[n][p].per_source else "-" for n in names
            ]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    std = profiles[0]
    lines += [
        f"## Per file ({std} profile, at each detector's threshold)",
        "",
        "| file | rows | windows | " + " | ".join(f"{n}: found / false alarms / score" for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for k, f in enumerate(files):
        cells = []
        for n in names:
            fr = results[n][std].files[k]
            cells.append(f"{fr.detected} / {fr.false_alarms} / {fr.score:.1f}")
        lines.append(f"| {f.key} | {len(f.values)} | {len(f.windows)} | " + " | ".join(cells) + " |")
    plots = [_source_plot(results, out / "per_source.png")]
    plots += _file_plots(files, scores, results, out)
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _source_plot(results: Results, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    profiles = list(results[names[0]])
    fig, axes = plt.subplots(1, len(profiles), figsize=(5 * len(profiles), 4), squeeze=False)
    for ax, p in zip(axes[0], profiles, strict=True):
        sources = list(results[names[0]][p].per_source)
        width = 0.8 / len(names)
        x = np.arange(len(sources) + 1)
        for j, n in enumerate(names):
            r = results[n][p]
            ax.bar(x + j * width, [r.per_source[s] for s in sources] + [r.score], width, label=n)
        ax.set_xticks(x + 0.4 - width / 2, [*sources, "mean"], rotation=45, fontsize=8)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(p, fontsize=9)
    axes[0][0].set_ylabel("normalised NAB score")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _file_plots(
    files: Sequence[SeriesFile], scores: Mapping[str, Sequence[NDArray]], results: Results, out: Path
) -> list[Path]:
    """One plot per source (its first file): values, windows, each detector's score and threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    std = next(iter(results[names[0]]))
    paths = []
    seen: set[str] = set()
    for k, f in enumerate(files):
        if f.source in seen:
            continue
        seen.add(f.source)
        fig, axes = plt.subplots(1 + len(names), 1, figsize=(12, 2 + 1.4 * len(names)), sharex=True)
        rows = np.arange(len(f.values))
        axes[0].plot(rows, f.values, lw=0.5, color="black")
        axes[0].set_title(f.key, fontsize=9)
        for ax in axes:
            for lo, hi in f.windows:
                ax.axvspan(lo, hi + 1, color="tab:red", alpha=0.25, lw=0)
        for ax, n in zip(axes[1:], names, strict=True):
            ax.plot(rows, scores[n][k], lw=0.5)
            ax.axhline(results[n][std].threshold, color="tab:orange", lw=0.7)
            ax.set_ylabel(n, fontsize=8)
            ax.set_ylim(0, 1.05)
        fig.tight_layout()
        path = out / f"file_{f.source}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
