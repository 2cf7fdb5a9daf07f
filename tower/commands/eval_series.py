"""`beffroi eval-series DIR`: NAB-style scoring of `detect` on a labelled corpus in NAB's layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from analytics.detectors.series import score_many
    from analytics.scoring.baselines import rolling_zscore
    from analytics.scoring.corpus import CorpusError, load_corpus
    from analytics.scoring.series_eval import evaluate
    from analytics.scoring.series_report import summary_lines, write_series_report

    try:
        files = load_corpus(args.dir, args.split)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: {args.dir}: no series in split {args.split!r}", file=sys.stderr)
        return 2
    print(f"scoring {len(files)} series ({args.split})", file=sys.stderr, flush=True)
    scores = {
        "detect": score_many([f.values for f in files], [f.t for f in files]),
        "zscore": [rolling_zscore(f.values) for f in files],
    }
    results = evaluate(files, scores)
    report = write_series_report(
        args.out,
        str(args.dir),
        args.split,
        files,
        scores,
        results,
        config_summary="`detect` = the forecast-ensemble core with its one parameter set; "
        "`zscore` = rolling z-score over the previous 200 rows, score 1 - exp(-z/4).",
    )
    print(report)
    for line in summary_lines(results):
        print("  " + line)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval-series",
        help="score `detect` on a labelled corpus of series (NAB layout), beside a naive baseline",
        description="Runs `detect` (each file a fresh stream) and a rolling z-score baseline over "
        "DIR/data/<source>/<name>.csv with windows from DIR/labels/combined_windows.json, and writes a "
        "markdown report with PNG plots: NAB's three profiles with the threshold optimised per profile, "
        "scores per source and pooled, per file, false alarms per 1,000 rows.",
    )
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument(
        "--split",
        choices=("dev", "holdout", "all"),
        default="all",
        help="held-out part: per source, every third file by name (default: all)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/eval-series"), metavar="OUT")
    p.set_defaults(handler=_handle)
