"""`beffroi train-density --frames DIR --out density.pt`: train the crowd density-map model.

torch is imported when the command runs, not when the CLI starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from analytics.vision.training.density import DensityTraining, train_density

    frames = Path(args.frames)
    if args.synthesize:
        from simulators.camera.dataset import DatasetSpec, write_dataset

        n = write_dataset(
            frames,
            DatasetSpec(clips=args.synthesize, seed=args.seed, min_density=0.5, max_density=args.max_density),
        )
        print(f"{frames}: rendered {n} frames")
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

    try:
        metrics = train_density(frames, Path(args.out), spec, progress=progress)
    except (OSError, ValueError) as exc:
        print(f"beffroi train-density: {exc}", file=sys.stderr)
        return 1
    print(f"weights written to {args.out} ({metrics})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train-density", help="train the crowd density-map model on simulator frames")
    p.add_argument(
        "--frames", required=True, help="dataset directory (images/, truth.jsonl) from the simulator"
    )
    p.add_argument("--out", required=True, help="weights file to write")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--width", type=int, default=32, help="channels of the first stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="weights to fine-tune instead of starting from scratch")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument(
        "--synthesize", type=int, metavar="CLIPS", help="first render this many clips into --frames"
    )
    p.add_argument("--max-density", type=float, default=4.0, help="with --synthesize: densest crowd (p/m²)")
    p.set_defaults(handler=_handle)
