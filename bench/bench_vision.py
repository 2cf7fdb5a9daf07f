"""Benchmark of the video pipeline: frames/s per backend, end to end and model alone, side by side.

    python -m bench.bench_vision [--backends hog,yolo,density,default] [--imgsz 320] [--frames 96]
                                 [--threads 1] [--gpu-streams 64]

Frames come from the camera simulator (a plaza crowd), written once as MJPG videos at 640x360, the
resolution the committed models meet the accuracy bar at (tests/vision/test_accuracy.py). For each
backend, in the same run and on the same frames:
- model only: the network alone on frames already decoded and preprocessed (yolo; density, on the
  rows the pipeline gives it: the counting region and room above), or the detector on decoded
  frames (hog, whose model is its whole detector);
- end to end: camera readers decode the video files (one per stream), the cross-camera queue batches
  them, and the pipeline detects, places feet on the ground, counts per zone and aggregates per
  second; and the ratio of end to end to model only.
Backends: `hog` and `yolo` count with boxes alone (a 0.5 persons/m² crowd); `density` is the dense
crowd path (2.5 persons/m²: the density map counts, boxes only decide that it should); `default` is
the default CPU pipeline (`VisionSettings()`: yolo at 320 px fused with the density model) on a
1 person/m² crowd, where both models run on every frame. The last line says whether `default`
reaches 20 frames/s. With CUDA, yolo and the density model also run batched across `--gpu-streams`
streams in half precision; without, that part is skipped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics.vision.counting import CameraCounter, FusionConfig
from analytics.vision.density.model import DensityEstimator
from analytics.vision.detectors.base import PersonDetector
from analytics.vision.detectors.plugins.yolo import YoloDetector
from analytics.vision.detectors.registry import create_detector
from analytics.vision.pipeline import VisionPipeline
from analytics.vision.service import WEIGHTS, VisionSettings
from analytics.vision.view import CountingView
from analytics.vision.zone_state import ZoneAggregator, ZoneInfo
from beffroi.images import Image
from beffroi.sites import ViewZone
from beffroi.venue import CameraPose
from ingest.video.batching import FrameQueue
from ingest.video.source import CameraReader, CameraSource
from simulators.camera.crowd import StaticConditions
from simulators.camera.dataset import plaza_scene
from simulators.camera.render import CameraRenderer
from simulators.camera.sinks import VideoFileSink

DEFAULT_WEIGHTS = WEIGHTS / "person-320.pt"
POSE = CameraPose(height_m=9.0, heading_deg=0.0, tilt_deg=40.0, fov_deg=60.0)
TARGET_FPS = 20.0


@dataclass(frozen=True)
class Clip:
    video: Path
    images: list[Image]


def render_video(path: Path, *, frames: int, width: int, height: int, density: float = 1.0) -> Clip:
    scene = plaza_scene("bench", POSE, width=width, height=height, max_range_m=40.0)
    r = CameraRenderer(
        scene, conditions=StaticConditions({"west": density, "east": density}), fps=5.0, seed=1
    )
    sink = VideoFileSink(path, fps=5.0, size=(width, height))
    images = []
    for _ in range(frames):
        image, truth = r.next_frame()
        sink.write(image, truth)
        images.append(image)
    sink.close()
    return Clip(path, images)


def view(width: int, height: int) -> CountingView:
    scene = plaza_scene("bench", POSE, width=width, height=height, max_range_m=40.0)
    zones = [ViewZone(z.id, z.polygon, z.area_m2) for z in scene.zones]
    return CountingView.from_camera("bench", scene.camera, zones=zones, min_person_px=0.075 * width)


def rate(fn: Callable[[], int], *, repeat: int = 1) -> float:
    fn()  # warm-up
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def detector_model_only(det: PersonDetector, images: list[Image], batch: int) -> Callable[[], int]:
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


def density_model_only(
    est: DensityEstimator, images: list[Image], batch: int, *, from_row: int
) -> Callable[[], int]:
    """The density network on the rows the pipeline gives it (below `from_row`)."""
    import torch

    def to_input(chunk: list[Image]) -> Any:
        x = torch.from_numpy(np.stack([img[from_row:] for img in chunk])).to(est.device).permute(0, 3, 1, 2)
        return x.half() if est.half else x.float()

    batches = [to_input(images[i : i + batch]) for i in range(0, len(images), batch)]

    def run() -> int:
        with torch.inference_mode():
            for b in batches:
                est.net(b)
        if est.device.type == "cuda":
            torch.cuda.synchronize()
        return len(images)

    return run


def end_to_end(
    det: PersonDetector,
    videos: list[Path],
    cv: CountingView,
    batch: int,
    *,
    density: DensityEstimator | None = None,
    fusion: FusionConfig | None = None,
) -> Callable[[], int]:
    def run() -> int:
        counters = {
            f"s{i}": CameraCounter.for_view(cv, fusion=fusion, track=False) for i in range(len(videos))
        }
        agg = ZoneAggregator(zones={(None, z.id): ZoneInfo(area_m2=z.area_m2) for z in cv.zones})
        pipe = VisionPipeline(detector=det, counters=counters, aggregator=agg, density=density)
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


def report(name: str, model: float, e2e: float, note: str = "") -> dict[str, float]:
    print(
        f"{name:>22}: model only {model:8.1f} frames/s | end to end {e2e:8.1f} frames/s | "
        f"end-to-end/model ratio {e2e / model:.2f}{note}",
        flush=True,
    )
    return {"model": model, "end_to_end": e2e, "ratio": e2e / model}


def bench_detection(
    name: str, cfg: dict[str, Any], clip: Clip, cv: CountingView, batch: int
) -> dict[str, float]:
    det = create_detector(cfg)
    b = batch if det.batched else 1
    m = rate(detector_model_only(det, clip.images, b), repeat=2)
    e = rate(end_to_end(det, [clip.video], cv, b))
    return report(name, m, e)


def bench_density(
    name: str, det_cfg: dict[str, Any], clip: Clip, cv: CountingView, batch: int, *, device: str
) -> dict[str, float]:
    """The density map on every frame: model only is the density network; end to end adds decoding,
    the detector that decides a frame is dense, and counting the map's cells per zone."""
    det = create_detector(det_cfg)
    est = DensityEstimator(WEIGHTS / "density.pt", device="cuda" if device == "cuda" else "cpu", batch=batch)
    fusion = FusionConfig(detect_below=0.0, density_above=0.0)
    from_row = CameraCounter.for_view(cv, fusion=fusion, track=False).density_from_row
    m = rate(density_model_only(est, clip.images, batch, from_row=from_row), repeat=2)
    e = rate(end_to_end(det, [clip.video], cv, batch, density=est, fusion=fusion))
    return report(name, m, e, " (model: density net)")


def bench_default(clip: Clip, cv: CountingView, batch: int) -> dict[str, float]:
    """`VisionSettings()` as the service builds it: yolo at 320 px, fused with the density model."""
    settings = VisionSettings()
    det = create_detector(settings.detector.model_copy(update={"device": "cpu"}))
    assert settings.density_weights is not None
    est = DensityEstimator(settings.density_weights, device="cpu", batch=batch)
    f = settings.fusion
    fusion = FusionConfig(detect_below=f.detect_below, density_above=f.density_above, min_score=f.min_score)
    from_row = CameraCounter.for_view(cv, fusion=fusion, track=False).density_from_row
    both = (
        detector_model_only(det, clip.images, batch),
        density_model_only(est, clip.images, batch, from_row=from_row),
    )
    m = rate(lambda: (both[0](), both[1]())[0], repeat=2)
    e = rate(end_to_end(det, [clip.video], cv, batch, density=est, fusion=fusion))
    return report("default (yolo+density)", m, e, " (model: both networks)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_vision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backends", default="hog,yolo,density,default")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--gpu-streams", type=int, default=64)
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: the service's advice on a shared CPU)"
    )
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(
        f"CPU threads: {torch.get_num_threads()} (cores: {os.cpu_count()}); "
        f"frames {args.width}x{args.height}; yolo at {args.imgsz} px ({args.weights.name})"
    )
    yolo = {"type": "yolo", "weights": str(args.weights), "imgsz": args.imgsz, "device": "cpu"}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        size = {"frames": args.frames, "width": args.width, "height": args.height}
        sparse = render_video(Path(tmp) / "sparse.avi", density=0.5, **size)
        medium = render_video(Path(tmp) / "medium.avi", density=1.0, **size)
        dense = render_video(Path(tmp) / "dense.avi", density=2.5, **size)
        cv = view(args.width, args.height)
        for name in args.backends.split(","):
            if name == "hog":
                few = Clip(sparse.video, sparse.images[: max(8, args.frames // 4)])
                results[name] = bench_detection("hog", {"type": "hog"}, few, cv, 1)
            elif name == "yolo":
                results[name] = bench_detection(f"yolo@{args.imgsz}", yolo, sparse, cv, args.batch)
            elif name == "density":
                results[name] = bench_density("density", yolo, dense, cv, args.batch, device="cpu")
            elif name == "default":
                results[name] = bench_default(medium, cv, args.batch)
            else:
                raise SystemExit(f"unknown backend {name!r}")
        if "default" in results:
            fps = results["default"]["end_to_end"]
            verdict = "reaches" if fps >= TARGET_FPS else "does NOT reach"
            print(
                f"default CPU pipeline (yolo@{args.imgsz} + density model, {args.width}x{args.height}, "
                f"{torch.get_num_threads()} thread(s)): {fps:.1f} frames/s end to end, {verdict} the "
                f"{TARGET_FPS:.0f} frames/s target"
            )
        if not torch.cuda.is_available():
            print(f"GPU: skipped (no CUDA); would batch {args.gpu_streams} streams in half precision")
            return
        n = args.gpu_streams
        many = [medium.video] * n
        stacked = (medium.images * (n * 4 // len(medium.images) + 1))[: n * 4]
        gpu_clip = Clip(medium.video, stacked)
        gpu = {**yolo, "device": "cuda", "batch": n}
        det = create_detector(gpu)
        m = rate(detector_model_only(det, stacked, n), repeat=3)
        e = rate(end_to_end(det, many, cv, n))
        report(f"yolo-cuda-fp16 x{n}", m, e)
        bench_density(f"density-cuda-fp16 x{n}", gpu, gpu_clip, cv, n, device="cuda")


if __name__ == "__main__":
    main()
