"""`beffroi count VIDEO --out counts.csv [--backend NAME]`: people per frame of a video file.

With no `--backend`, the default choice (`auto`, `analytics.vision.framecount`): the head density
model trained on real footage, boxes only where a configured detector does better, and causal
smoothing over the frames before (never after). `hog` and `yolo` count person boxes (`yolo` needs
`--weights`); `density` and `density-sim` sum a density map without smoothing.

The models (OpenCV, torch, ultralytics) are imported when the command runs, not when the CLI starts."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics.vision.framecount import FrameCounter
    from beffroi.images import Image

COUNT_BACKENDS = ("auto", "density", "density-sim", "hog", "yolo")


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
            try:
                cfg["upscale"] = float(args.upscale)
            except ValueError:
                raise SystemExit(
                    f"beffroi count: --upscale wants a number or 'auto', got {args.upscale!r}"
                ) from None
        if args.conf is not None:
            cfg["min_score"] = args.conf
    return cfg


def _counter(args: argparse.Namespace) -> FrameCounter:
    from analytics.vision.detectors.registry import create_detector
    from analytics.vision.framecount import DetectorCounter, hog_for_footage, make_counter

    if args.backend == "hog" and args.upscale == "auto":
        from ingest.video.source import file_frames

        first = [img for _, img in zip(range(8), (f for _, f in file_frames(str(args.video))), strict=False)]
        counter, scale = hog_for_footage(first)
        shown = (
            f"person height {scale.height_px([first[0].shape[0]])[0]:.0f} px at the bottom"
            if scale
            else "none"
        )
        print(f"scale from the footage: {shown}", file=sys.stderr)
        return counter
    if args.backend in ("hog", "yolo"):
        return DetectorCounter(create_detector(_config(args)), name=args.backend)
    weights = Path(args.weights) if args.weights else None
    return make_counter(args.backend, device=args.device, sequence=True, density_weights=weights)


def count_video(video: Path, out: Path, *, counter: FrameCounter, batch: int = 8) -> int:
    """Write `frame_index,count` for every frame of `video`; returns the number of frames."""
    from ingest.video.source import file_frames

    frames = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame_index", "count"])
        pending: list[tuple[int, Image]] = []

        def drain() -> None:
            counts = counter.count([img for _, img in pending])
            for (i, _), c in zip(pending, counts, strict=True):
                writer.writerow([i, f"{c:.2f}" if isinstance(c, float) and not c.is_integer() else int(c)])
            pending.clear()

        for index, image in file_frames(str(video)):
            pending.append((index, image))
            frames += 1
            if len(pending) >= batch:
                drain()
        if pending:
            drain()
    counter.close()
    return frames


def _handle(args: argparse.Namespace) -> int:
    if args.backend not in COUNT_BACKENDS:
        print(
            f"beffroi count: unknown backend {args.backend!r} (choose from {', '.join(COUNT_BACKENDS)})",
            file=sys.stderr,
        )
        return 2
    try:
        n = count_video(Path(args.video), Path(args.out), counter=_counter(args), batch=args.batch)
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
        default="auto",
        help="auto (default: the best measured choice), density, density-sim, hog, or yolo (needs --weights)",
    )
    p.add_argument("--out", required=True, help="CSV file to write: frame_index,count")
    p.add_argument(
        "--weights", help="weights file for --backend yolo, or head-density weights for auto/density"
    )
    p.add_argument("--imgsz", type=int, help="yolo: network input size (long side)")
    p.add_argument("--conf", type=float, help="minimum detection score")
    p.add_argument(
        "--upscale", help="hog: enlarge frames to find smaller people (a factor, or 'auto': from the footage)"
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch", type=int, default=8, help="frames per model call")
    p.set_defaults(handler=_handle)
