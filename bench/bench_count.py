"""Benchmark of people counts on real annotated footage: the default choice beside the old backends.

    python -m bench.bench_count [--data ../shared/data] [--sets mall,mall-sparse,shtech-b,shtech-a]
                                [--backends auto,density,density-sim,hog,yolo] [--limit N] [--out DIR]
                                [--density-weights PATH] [--baseline-weights PATH]

Runs `eval-count` (`analytics.vision.evaluation`) on the validation split of each set (never
trained or tuned on: `analytics.vision.realdata`), all backends in the same run on the same frames,
and prints MAE, RMSE, frames/s end to end, and each backend's MAE as a multiple of the default's.
`mall-sparse` is the bottom quarter of the Mall view (rows 360-480), where 3-8 people stand (10th to
90th percentile of the validation frames; 5.6 on average): the sparse-scene target. Reports go to
`--out` (default var/bench-count/). Bench-only backends: `auto-nosmooth` (the default without its
causal smoothing: what the smoothing brings on a video) and `auto-base` (the default with
`--baseline-weights`: the previous weights in the same run).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from pathlib import Path

from analytics.vision.evaluation import BackendRun, Region, evaluate, write_report
from analytics.vision.framecount import BACKENDS, FrameCounter, make_counter
from analytics.vision.realdata import load_dataset, shared_data_root

#: set name -> (dataset directory, region counted)
SETS: dict[str, tuple[str, Region | None]] = {
    "mall": ("mall", None),
    "mall-sparse": ("mall", (0, 360, 640, 480)),
    "shtech-b": ("shtech-b", None),
    "shtech-a": ("shtech-a", None),
}
#: the targets of issue 9 (MAE per frame) on each set
TARGETS = {"mall": 2.0, "mall-sparse": 0.5, "shtech-b": 10.0, "shtech-a": 68.0}


#: bench-only variants of the default: without its causal smoothing, and with other head weights
EXTRA_BACKENDS = ("auto-nosmooth", "auto-base")


def _maker(name: str, sequence: bool, weights: Path | None, base: Path | None) -> FrameCounter:
    if name == "auto-nosmooth":
        counter = make_counter("auto", device="cpu", sequence=False, density_weights=weights)
    elif name == "auto-base":
        if base is None:
            raise SystemExit("bench_count: auto-base needs --baseline-weights PATH")
        counter = make_counter("auto", device="cpu", sequence=sequence, density_weights=base)
    else:
        return make_counter(name, device="cpu", sequence=sequence, density_weights=weights)
    counter.name = name
    return counter


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_count")
    ap.add_argument("--data", type=Path, default=shared_data_root())
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument(
        "--split", choices=["val", "train"], default="val", help="train: for choices, never figures"
    )
    ap.add_argument("--limit", type=int, help="first N validation frames per set (quick runs)")
    ap.add_argument("--out", type=Path, default=Path("var/bench-count"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--density-weights", type=Path, help="head density weights instead of the shipped ones")
    ap.add_argument(
        "--baseline-weights", type=Path, help="head density weights of the `auto-base` backend (same run)"
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    backends = [b for b in args.backends.split(",") if b]
    unknown = [b for b in backends if b not in BACKENDS + EXTRA_BACKENDS]
    if unknown:
        raise SystemExit(f"bench_count: unknown backend(s) {unknown}")
    if not args.data.is_dir():
        raise SystemExit(f"bench_count: no real data at {args.data} (../shared/data beside the repository)")
    print(
        f"{'set':<12} {'backend':<12} {'frames':>6} {'MAE':>8} {'RMSE':>8} {'MAE/mean':>9} {'fps':>6} "
        f"{'cpu fps':>7} {'xMAE':>6}"
    )
    for set_name in [s for s in args.sets.split(",") if s]:
        folder, region = SETS[set_name]
        ds = load_dataset(args.data / folder)
        runs: list[BackendRun] = evaluate(
            ds,
            args.split,
            [
                functools.partial(_maker, b, ds.is_sequence, args.density_weights, args.baseline_weights)
                for b in backends
            ],
            region=region,
            limit=args.limit,
        )
        write_report(args.out / set_name, ds, args.split, runs, region=region)
        ref = runs[0].metrics.mae
        for r in runs:
            m = r.metrics
            ratio = m.mae / ref if ref > 0 else math.nan
            print(
                f"{set_name:<12} {r.backend:<12} {m.frames:>6} {m.mae:>8.2f} {m.rmse:>8.2f} "
                f"{100 * m.rel_mae:>8.1f}% {r.fps:>6.1f} {r.cpu_fps:>7.1f} {ratio:>6.1f}",
                flush=True,
            )
        target = TARGETS.get(set_name)
        if target is not None:
            got = runs[0].metrics.mae
            verdict = "meets" if got <= target else "misses"
            print(f"{set_name:<12} {runs[0].backend} {verdict} the target MAE <= {target:g} ({got:.2f})")
    print("xMAE: the backend's MAE as a multiple of the first backend's (the default choice)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
