"""`beffroi count VIDEO --backend NAME --out counts.csv`: people per frame of a video file.

The detectors (OpenCV, torch, ultralytics) are imported when the command runs, not when the CLI
starts."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beffroi.images import Image


def _config(args: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {"type": args.backend}
    if args.backend == "yolo":
        if args.weights is None:
            raise SystemExit("beffroi count: --backend yolo needs --weights PATH (nothing is downloaded)")
        cfg["weights"] = args.weights
        if args.imgsz is not None:
            cfg["imgsz"] = args.imgsz
        if args.conf is not None:
            cfg["conf"] = args.conf
        cfg["device"] = args.device
    elif args.backend == "hog":
        if args.upscale is not None:
            cfg["upscale"] = args.upscale
        if args.conf is not None:
            cfg["min_score"] = args.conf
    return cfg


def count_video(video: Path, out: Path, *, config: dict[str, Any], batch: int = 8) -> int:
    """Write `frame_index,count` for every frame of `video`; returns the number of frames."""
    from analytics.vision.detectors.registry import create_detector
    from ingest.video.source import file_frames

    detector = create_detector(config)
    frames = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame_index", "count"])
        pending: list[tuple[int, Image]] = []

        def drain() -> None:
            dets = detector.detect([img for _, img in pending])
            for (i, _), d in zip(pending, dets, strict=True):
                writer.writerow([i, len(d)])
            pending.clear()

        for index, image in file_frames(str(video)):
            pending.append((index, image))
            frames += 1
            if len(pending) >= (batch if detector.batched else 1):
                drain()
        if pending:
            drain()
    detector.close()
    return frames


def _handle(args: argparse.Namespace) -> int:
    from analytics.vision.detectors.registry import PLUGINS

    if args.backend not in PLUGINS:
        print(
            f"beffroi count: unknown backend {args.backend!r} (choose from {', '.join(sorted(PLUGINS))})",
            file=sys.stderr,
        )
        return 2
    try:
        n = count_video(Path(args.video), Path(args.out), config=_config(args), batch=args.batch)
    except (OSError, ValueError) as exc:
        print(f"beffroi count: {exc}", file=sys.stderr)
        return 1
    print(f"{args.video}: {n} frames counted -> {args.out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("count", help="count people in every frame of a video file")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument(
        "--backend",
        default="hog",
        help="person detector plugin: hog (default; OpenCV's, offline) or yolo (needs --weights)",
    )
    p.add_argument("--out", required=True, help="CSV file to write: frame_index,count")
    p.add_argument("--weights", help="weights file for --backend yolo")
    p.add_argument("--imgsz", type=int, help="yolo: network input size (long side)")
    p.add_argument("--conf", type=float, help="minimum detection score")
    p.add_argument("--upscale", type=float, help="hog: enlarge frames to find smaller people")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch", type=int, default=8, help="frames per detector call (batched backends)")
    p.set_defaults(handler=_handle)
