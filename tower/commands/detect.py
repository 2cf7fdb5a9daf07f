"""`beffroi detect --csv IN --out OUT`: score one `timestamp,value` series, streaming, no look-ahead."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from analytics.detectors.series import SeriesInputError, read_series_csv, score_rows, write_scores_csv

    try:
        rows = read_series_csv(args.csv)
    except SeriesInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scores = score_rows(rows)
    write_scores_csv(args.out, rows, scores)
    flagged = sum(s >= 0.5 for s in scores)
    print(f"{args.out}: {len(rows)} rows scored, {flagged} with anomaly_score >= 0.5")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "detect",
        help="score one series (CSV timestamp,value) for anomalies",
        description="Each row gets an anomaly_score in [0, 1] computed from that row and the rows before "
        "it only. One parameter set for every file; each file is a fresh stream.",
    )
    p.add_argument(
        "--csv", required=True, type=Path, metavar="IN", help="input CSV with columns timestamp,value"
    )
    p.add_argument(
        "--out", required=True, type=Path, metavar="OUT", help="output CSV: timestamp,value,anomaly_score"
    )
    p.set_defaults(handler=_handle)
