"""Benchmark of the video pipeline: frames/s per person-detector backend, end to end and model alone.

    python -m bench.bench_vision [--backends hog,yolo] [--weights PATH] [--imgsz 320] [--frames 120]

Frames come from the camera simulator (a plaza crowd at 1 person/m²), written once as an MJPG video.
For each backend, in the same run and on the same frames:
- model only: the network alone on frames already decoded and preprocessed (yolo), or the
  detector on decoded frames (hog, whose model is its whole detector);
- detector: `detect()` on decoded frames (pre- and post-processing included);
- end to end: camera readers decode the video files (one per stream), the cross-camera queue batches
  them, and the pipeline detects, places feet on the ground, counts per zone and aggregates per
  second; and the ratio of end to end to model only.
With CUDA, the yolo backend is also run batched across `--gpu-streams` streams (default 64) in half
precision.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analytics.vision.counting import CameraCounter
from analytics.vision.detectors.base import Image, PersonDetector
from analytics.vision.detectors.plugins.yolo import YoloDetector
from analytics.vision.detectors.registry import create_detector
from analytics.vision.pipeline import VisionPipeline
from analytics.vision.view import CountingView, ViewZone
from analytics.vision.zone_state import ZoneAggregator, ZoneInfo
from beffroi.venue import CameraPose
from ingest.video.batching import FrameQueue
from ingest.video.source import CameraReader, CameraSource
from simulators.camera.crowd import StaticConditions
from simulators.camera.dataset import plaza_scene
from simulators.camera.render import CameraRenderer
from simulators.camera.sinks import VideoFileSink

DEFAULT_WEIGHTS = (
    Path(__file__).resolve().parent.parent / "analytics" / "vision" / "weights" / "person-320.pt"
)
POSE = CameraPose(height_m=9.0, heading_deg=0.0, tilt_deg=40.0, fov_deg=60.0)


def render_video(path: Path, *, frames: int, width: int, height: int) -> list[Image]:
    scene = plaza_scene("bench", POSE, width=width, height=height, max_range_m=40.0)
    r = CameraRenderer(scene, conditions=StaticConditions({"west": 1.0, "east": 1.0}), fps=5.0, seed=1)
    sink = VideoFileSink(path, fps=5.0, size=(width, height))
    images = []
    for _ in range(frames):
        image, truth = r.next_frame()
        sink.write(image, truth)
        images.append(image)
    sink.close()
    return images


def view(width: int, height: int) -> CountingView:
    scene = plaza_scene("bench", POSE, width=width, height=height, max_range_m=40.0)
    zones = [ViewZone(z.id, z.polygon, z.area_m2) for z in scene.zones]
    return CountingView.from_camera("bench", scene.camera, zones=zones, min_person_px=0.08 * width)


def rate(fn: Callable[[], int], *, repeat: int = 1) -> float:
    fn()  # warm-up
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def model_only(det: PersonDetector, images: list[Image], batch: int) -> Callable[[], int]:
    if isinstance(det, YoloDetector):
        import torch

        batches = [det.preprocess(images[i : i + batch]) for i in range(0, len(images), batch)]

        def run() -> int:
            for b in batches:
                det.forward(b)
            if det.device.type == "cuda":
                torch.cuda.synchronize()
            return len(images)

        return run

    def run_detector() -> int:
        for i in range(0, len(images), batch):
            det.detect(images[i : i + batch])
        return len(images)

    return run_detector


def detector_only(det: PersonDetector, images: list[Image], batch: int) -> Callable[[], int]:
    def run() -> int:
        for i in range(0, len(images), batch):
            det.detect(images[i : i + batch])
        return len(images)

    return run


def end_to_end(det: PersonDetector, videos: list[Path], cv: CountingView, batch: int) -> Callable[[], int]:
    def run() -> int:
        counters = {f"s{i}": CameraCounter.for_view(cv, track=False) for i in range(len(videos))}
        agg = ZoneAggregator(zones={(None, z.id): ZoneInfo(area_m2=z.area_m2) for z in cv.zones})
        pipe = VisionPipeline(detector=det, counters=counters, aggregator=agg)
        queue = FrameQueue(maxsize=4 * batch, policy="block")
        readers = [
            CameraReader(CameraSource(f"s{i}", str(v), sample_fps=1000.0), sink=queue.put).start()
            for i, v in enumerate(videos)
        ]

        def close_when_done() -> None:
            for r in readers:
                r.finished.wait()
            queue.close()

        threading.Thread(target=close_when_done, daemon=True).start()
        while True:
            frames = queue.get_batch(batch, timeout=5.0, linger_s=0.01)
            if not frames:
                break
            pipe.process(frames)
        pipe.flush()
        return pipe.stats.frames

    return run


def bench_backend(
    name: str, cfg: dict[str, Any], images: list[Image], videos: list[Path], cv: CountingView, batch: int
) -> dict[str, float]:
    det = create_detector(cfg)
    b = batch if det.batched else 1
    m = rate(model_only(det, images, b), repeat=2)
    d = rate(detector_only(det, images, b), repeat=2)
    e = rate(end_to_end(det, videos, cv, b), repeat=1)
    print(
        f"{name:>12}: model only {m:8.1f} frames/s | detector {d:8.1f} frames/s | "
        f"end to end {e:8.1f} frames/s | end-to-end/model ratio {e / m:.2f}",
        flush=True,
    )
    return {"model": m, "detector": d, "end_to_end": e}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_vision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backends", default="hog,yolo")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--gpu-streams", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"CPU threads: {torch.get_num_threads()} (cores: {os.cpu_count()}); frames {args.width}x{args.height}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        video = Path(tmp) / "cam.avi"
        images = render_video(video, frames=args.frames, width=args.width, height=args.height)
        cv = view(args.width, args.height)
        for name in args.backends.split(","):
            if name == "hog":
                bench_backend("hog", {"type": "hog"}, images[: max(8, args.frames // 4)], [video], cv, 1)
            elif name == "yolo":
                cfg = {"type": "yolo", "weights": str(args.weights), "imgsz": args.imgsz, "device": "cpu"}
                bench_backend(f"yolo@{args.imgsz}", cfg, images, [video], cv, args.batch)
                if torch.cuda.is_available():
                    gpu = {**cfg, "device": "cuda", "batch": args.gpu_streams}
                    many = [video] * args.gpu_streams
                    stacked = (images * (args.gpu_streams * 4 // len(images) + 1))[: args.gpu_streams * 4]
                    bench_backend(f"yolo-cuda x{args.gpu_streams}", gpu, stacked, many, cv, args.gpu_streams)
            else:
                raise SystemExit(f"unknown backend {name!r}")


if __name__ == "__main__":
    main()
