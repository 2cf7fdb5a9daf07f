"""`beffroi train-detector --frames DIR --out weights.pt`: train the YOLO person detector, offline.

ultralytics and torch are imported when the command runs, not when the CLI starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from analytics.vision.training.detector import DEFAULT_MODEL, DetectorTraining, train_detector

    frames = Path(args.frames)
    if args.synthesize:
        from simulators.camera.dataset import DatasetSpec, write_dataset

        n = write_dataset(frames, DatasetSpec(clips=args.synthesize, seed=args.seed))
        print(f"{frames}: rendered {n} frames")
    spec = DetectorTraining(
        model=Path(args.model) if args.model else DEFAULT_MODEL,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        seed=args.seed,
        max_labels=args.max_labels,
    )
    try:
        out = train_detector(frames, Path(args.out), spec)
    except (OSError, ValueError) as exc:
        print(f"beffroi train-detector: {exc}", file=sys.stderr)
        return 1
    print(f"weights written to {out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train-detector", help="train or fine-tune the YOLO person detector on simulator frames"
    )
    p.add_argument(
        "--frames", required=True, help="dataset directory (images/, labels/) from the camera simulator"
    )
    p.add_argument("--out", required=True, help="weights file to write")
    p.add_argument(
        "--model",
        help="model .yaml (from scratch) or .pt (fine-tune); default: "
        "analytics/vision/detectors/models/beffroi-person.yaml",
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, or a CUDA device such as 0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-labels", type=int, help="leave out frames with more people than this")
    p.add_argument(
        "--synthesize", type=int, metavar="CLIPS", help="first render this many clips into --frames"
    )
    p.set_defaults(handler=_handle)
