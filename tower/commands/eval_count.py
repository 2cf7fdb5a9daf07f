"""`beffroi eval-count DATASET [--split val] [--backends auto,hog,yolo,...] [--out DIR]`.

Counts the frames (or the video) of an annotated dataset in the shared format (`counts.csv`,
`heads.csv`; see `analytics.vision.realdata`) with each backend in turn, on the same frames, and
reports MAE, RMSE, relative error and end-to-end frames/s, with a plot of true and predicted counts
(`analytics.vision.evaluation`). torch is imported when the command runs, not when the CLI starts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics.vision.framecount import FrameCounter


def _region(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"beffroi eval-count: --region wants X0,Y0,X1,Y1 pixels, got {text!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise SystemExit(f"beffroi eval-count: --region {text!r} is empty")
    return x0, y0, x1, y1


def _handle(args: argparse.Namespace) -> int:
    from analytics.vision.evaluation import evaluate, write_report
    from analytics.vision.framecount import BACKENDS, make_counter
    from analytics.vision.realdata import DatasetError, load_dataset

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        print(
            f"beffroi eval-count: unknown backend(s) {unknown} (choose from {', '.join(BACKENDS)})",
            file=sys.stderr,
        )
        return 2
    region = _region(args.region)
    try:
        ds = load_dataset(Path(args.dataset))
        weights = Path(args.density_weights) if args.density_weights else None

        def maker(name: str) -> Callable[[], FrameCounter]:
            return lambda: make_counter(
                name, device=args.device, sequence=ds.is_sequence, density_weights=weights
            )

        runs = evaluate(
            ds,
            args.split,
            [maker(b) for b in backends],
            region=region,
            limit=args.limit,
            log=lambda line: print(line, flush=True),
        )
        out = Path(args.out) if args.out else Path("var") / "eval-count" / f"{ds.name}-{args.split}"
        paths = write_report(out, ds, args.split, runs, region=region)
    except (DatasetError, OSError, ValueError) as exc:
        print(f"beffroi eval-count: {exc}", file=sys.stderr)
        return 1
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval-count", help="measure people counts against annotated frames (MAE, RMSE, frames/s)"
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        help="directory with counts.csv, heads.csv and frames/, images/ or a video",
    )
    p.add_argument(
        "--split", choices=["val", "train", "all"], default="val", help="which frames (default: val)"
    )
    p.add_argument(
        "--backends",
        default="auto",
        help="comma-separated: auto (default choice), density, density-sim, hog, yolo",
    )
    p.add_argument("--out", help="report directory (default var/eval-count/NAME-SPLIT)")
    p.add_argument("--region", help="count inside X0,Y0,X1,Y1 only (a sparse part of a scene)")
    p.add_argument("--limit", type=int, help="first N frames of the split only (quick checks)")
    p.add_argument("--density-weights", help="head density weights instead of the shipped ones")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.set_defaults(handler=_handle)
