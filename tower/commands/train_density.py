"""`beffroi train-density --out density.pt (--frames DIR | --real DIR)...`: train the density-map model.

`--frames` are simulator datasets (images/, truth.jsonl); `--real` are annotated datasets in the
shared format (`../shared/data/<set>`), of which only the train split is read
(`analytics.vision.realdata`). With `--real`, the model learns heads on real and simulator frames
mixed (`analytics.vision.training.density_mix`); with `--frames` alone, the simulator-only trainer.

torch is imported when the command runs, not when the CLI starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _weights(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise SystemExit(
                f"beffroi train-density: --source-weight wants NAME=NUMBER, got {item!r}"
            ) from None
    return out


def _synthesize(args: argparse.Namespace) -> None:
    from simulators.camera.dataset import DatasetSpec, write_dataset

    frames = Path(args.frames[0])
    n = write_dataset(
        frames,
        DatasetSpec(
            clips=args.synthesize,
            seed=args.seed,
            min_density=0.5 if not args.real else 0.05,
            max_density=args.max_density,
            varied=bool(args.real),
        ),
    )
    print(f"{frames}: rendered {n} frames")


def _mix(args: argparse.Namespace) -> int:
    import numpy as np

    from analytics.vision.training.density_mix import (
        MixTraining,
        PointSample,
        real_samples,
        sample_counts,
        simulator_samples,
        train_mix,
    )

    samples: list[PointSample] = []
    holdout: list[PointSample] = []
    for root in args.real if args.epochs > 0 else []:
        samples += real_samples(Path(root), "train", hold_out_every=args.hold_out_every)
        if args.hold_out_every > 0 and args.select_on_hold_out > 0:
            kept = real_samples(Path(root), "train", hold_out_every=args.hold_out_every, held_out=True)
            pick = np.linspace(0, len(kept) - 1, min(args.select_on_hold_out, len(kept))).astype(int)
            holdout += [kept[int(i)] for i in sorted(set(pick.tolist()))]
    for root in args.frames if args.epochs > 0 else []:
        samples += simulator_samples(Path(root), anchor="head")
    spec = MixTraining(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        width=args.width,
        dilated=args.dilated,
        seed=args.seed,
        threads=args.threads,
        init=Path(args.init) if args.init else None,
        resume=args.resume,
        on_people=args.on_people,
        weights=_weights(args.source_weight),
        ema=args.ema,
        local=args.local_loss,
        balance=args.balance,
    )
    counts = sample_counts(samples)
    if args.epochs > 0:
        print(f"training on {counts} (train splits only)", flush=True)

    def progress(epoch: int, loss: float, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        print(f"epoch {epoch}/{spec.epochs} {shown}", flush=True)

    describe = {"trained_on": counts, "real": [str(r) for r in args.real], "frames": list(args.frames)}
    if args.epochs > 0:
        metrics = train_mix(
            samples,
            Path(args.out),
            spec,
            anchor="head",
            describe=describe,
            progress=progress,
            holdout=holdout,
        )
        print(f"weights written to {args.out} ({metrics})")
    if args.calibrate:
        from analytics.vision.training.calibrate import fit_calibration

        cal = fit_calibration(Path(args.out), [Path(r) for r in args.real])
        print(f"count calibration on the train splits: {cal}")
    return 0


def _simulator_only(args: argparse.Namespace) -> int:
    from analytics.vision.training.density import DensityTraining, train_density

    spec = DensityTraining(
        init=Path(args.init) if args.init else None,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        width=args.width,
        seed=args.seed,
        threads=args.threads,
    )

    def progress(epoch: int, loss: float, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        print(f"epoch {epoch}/{spec.epochs} loss={loss:.4f} {shown}", flush=True)

    metrics = train_density(Path(args.frames[0]), Path(args.out), spec, progress=progress)
    print(f"weights written to {args.out} ({metrics})")
    return 0


def _handle(args: argparse.Namespace) -> int:
    if not args.frames and not args.real:
        print(
            "beffroi train-density: give --frames DIR (simulator) and/or --real DIR (annotated)",
            file=sys.stderr,
        )
        return 2
    if not args.real and len(args.frames) > 1:
        print("beffroi train-density: without --real, one --frames directory", file=sys.stderr)
        return 2
    try:
        if args.synthesize:
            if not args.frames:
                print("beffroi train-density: --synthesize renders into --frames DIR", file=sys.stderr)
                return 2
            _synthesize(args)
        return _mix(args) if args.real else _simulator_only(args)
    except (OSError, ValueError) as exc:
        print(f"beffroi train-density: {exc}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train-density", help="train the crowd density-map model (simulator and real frames)")
    p.add_argument(
        "--frames", action="append", default=[], help="simulator dataset directory (images/, truth.jsonl)"
    )
    p.add_argument(
        "--real",
        action="append",
        default=[],
        help="annotated dataset in the shared format (counts.csv, heads.csv): its train split is used",
    )
    p.add_argument("--out", required=True, help="weights file to write")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--width", type=int, default=32, help="channels of the first stage")
    p.add_argument("--dilated", type=int, default=4, help="with --real: dilated layers in the back end")
    p.add_argument("--steps-per-epoch", type=int, default=100, help="with --real: batches per epoch")
    p.add_argument("--crop", type=int, default=256, help="with --real: training crop side (pixels)")
    p.add_argument(
        "--source-weight",
        action="append",
        default=[],
        metavar="NAME=W",
        help="with --real: sampling weight of a source (dataset directory name, or 'simulator')",
    )
    p.add_argument(
        "--hold-out-every",
        type=int,
        default=0,
        metavar="K",
        help="with --real: leave out the train items whose index %% K == 0 (to choose checkpoints on)",
    )
    p.add_argument(
        "--on-people",
        type=float,
        default=0.5,
        help="with --real: share of training crops centred on a head (the rest anywhere)",
    )
    p.add_argument(
        "--select-on-hold-out",
        type=int,
        default=0,
        metavar="N",
        help="with --hold-out-every: score each epoch on up to N held-out train frames per set and "
        "keep the best epoch in OUT (never the validation split)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="with --real: evaluate and write a moving average of the weights (e.g. 0.998 per batch)",
    )
    p.add_argument(
        "--local-loss",
        type=float,
        default=0.0,
        metavar="W",
        help="with --real: weight of the local-count loss (4x4-cell block sums, relative to the crop)",
    )
    p.add_argument(
        "--balance",
        action="store_true",
        help="with --real: weigh each crop's squared error by 1/sqrt(1 + its count)",
    )
    p.add_argument("--resume", action="store_true", help="with --real: continue from OUT.ckpt")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --real: then fit the count calibration on the train splits (--epochs 0: only that)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="weights to fine-tune instead of starting from scratch")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument(
        "--synthesize", type=int, metavar="CLIPS", help="first render this many clips into --frames"
    )
    p.add_argument("--max-density", type=float, default=4.0, help="with --synthesize: densest crowd (p/m²)")
    p.set_defaults(handler=_handle)
