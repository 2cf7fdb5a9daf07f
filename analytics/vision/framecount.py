"""Whole-frame people counters behind one seam, for `beffroi count` and `beffroi eval-count`.

A `FrameCounter` takes frames and returns one count per frame. Backends:
- `hog`, `yolo`: the number of person boxes (the detector plugins);
- `density-sim`: the sum of the simulator-trained density map (`weights/density.pt`);
- `density`: the sum of the head density map trained on real footage (`weights/density-heads.pt`);
- `auto` (the default): per region, boxes where the measured density is sparse and a detector is
  configured, the density map elsewhere (`RegionChoice`), then causal smoothing for video.

`CausalSmoother` smooths a fixed camera's counts with the frames before only (never after), so
that a person hidden for one frame is not lost and a count does not wait for the future.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics.vision.density.model import DensityEstimator, DensityMap
from analytics.vision.detectors.base import Detections, PersonDetector
from analytics.vision.scale import PersonScale
from beffroi.images import Image

#: the committed models (weights/README.md): trained by our commands, never downloaded
WEIGHTS = Path(__file__).resolve().parent / "weights"
HEAD_WEIGHTS = WEIGHTS / "density-heads.pt"
BACKENDS = ("auto", "density", "density-sim", "hog", "yolo")
DEFAULT_BACKEND = "auto"
#: whether `auto` counts apart people whole (`discrete_count`) instead of the calibrated map sum:
#: chosen on the train splits, never on validation (off: the shipped model leaves too much mass on
#: empty floor for blobs to stand apart)
AUTO_DISCRETE = False


class FrameCounter(ABC):
    name: str = ""

    @abstractmethod
    def count(self, images: Sequence[Image]) -> list[float]:
        """People in each frame."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget the past (a new video, or stills that are not a sequence)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the models."""


@dataclass
class DetectorCounter(FrameCounter):
    detector: PersonDetector
    min_score: float = 0.0
    name: str = "detector"

    def count(self, images: Sequence[Image]) -> list[float]:
        return [float(len(d.above(self.min_score))) for d in self.detector.detect(images)]

    def close(self) -> None:
        self.detector.close()


@dataclass(frozen=True)
class CountCalibration:
    """A map's count as `gain` x its mass above `floor` persons per cell (fitted on train splits by
    `beffroi train-density --calibrate`; stored in the weights' meta). Identity by default."""

    floor: float = 0.0
    gain: float = 1.0

    def apply(self, density: DensityMap) -> float:
        if self.floor <= 0 and self.gain == 1.0:
            return float(density.sum())
        return self.gain * float(np.maximum(density - self.floor, 0.0).sum())

    def scale_map(self, density: DensityMap) -> DensityMap:
        """The map calibrated cell by cell (its sum is `apply`): for counting parts of a frame."""
        if self.floor <= 0 and self.gain == 1.0:
            return density
        out: DensityMap = (self.gain * np.maximum(density - self.floor, 0.0)).astype(np.float32)
        return out

    @classmethod
    def of_weights(cls, path: Path) -> CountCalibration:
        from analytics.vision.density.model import density_meta

        cal = density_meta(path).get("calibration")
        return cls(float(cal["floor"]), float(cal["gain"])) if isinstance(cal, dict) else cls()


@dataclass
class DensityCounter(FrameCounter):
    estimator: DensityEstimator
    name: str = "density"
    calibration: CountCalibration = CountCalibration()

    def count(self, images: Sequence[Image]) -> list[float]:
        return [self.calibration.apply(m) for m in self.estimator.estimate(images)]


@dataclass(frozen=True)
class RegionChoice:
    """Boxes or density, tile by tile, from the density the map measures there.

    A tile (`tile` pixels square) whose density-map count is under `sparse_below` persons per
    (`tile` px)² is sparse: a detector's boxes (their head point) count it, when a detector is
    given; elsewhere the map's own sum counts it."""

    tile: int = 64
    sparse_below: float = 1.0
    min_score: float = 0.5

    def combine(self, density: DensityMap, detections: Detections | None, *, stride: int = 8) -> float:
        if detections is None:
            return float(density.sum())
        cells = self.tile // stride
        gh, gw = density.shape
        th, tw = -(-gh // cells), -(-gw // cells)
        pad = np.zeros((th * cells, tw * cells), np.float64)
        pad[:gh, :gw] = density
        per_tile = pad.reshape(th, cells, tw, cells).sum(axis=(1, 3))
        det = detections.above(self.min_score)
        b = det.boxes
        heads = np.column_stack([(b[:, 0] + b[:, 2]) / 2, b[:, 1] + 0.08 * (b[:, 3] - b[:, 1])])
        ti = np.clip((heads[:, 1] // self.tile).astype(int), 0, th - 1)
        tj = np.clip((heads[:, 0] // self.tile).astype(int), 0, tw - 1)
        boxes = np.zeros((th, tw))
        np.add.at(boxes, (ti, tj), 1.0)
        sparse = per_tile < self.sparse_below
        return float(np.where(sparse, boxes, per_tile).sum())


def discrete_count(density: DensityMap, *, floor: float = 0.05, crowd_mass: float = 2.5) -> float:
    """People on a density map, as objects where they stand apart and as mass where they crowd.

    Cells over `floor` persons form blobs; a blob holding less than `crowd_mass` persons is a few
    separate people, counted whole (its mass rounded, at least one when it holds half a person);
    a heavier blob is a crowd, counted by its mass. Mass under `floor` (noise on an empty floor)
    is dropped. On a sparse scene this removes the fractional drift of summing a map."""
    import cv2

    on = (density > floor).astype(np.uint8)
    n, labels = cv2.connectedComponents(on, connectivity=8)
    if n <= 1:
        return 0.0
    mass = np.bincount(labels.ravel(), weights=density.ravel().astype(np.float64), minlength=n)[1:]
    few = mass < crowd_mass
    whole = np.where(mass >= 0.5, np.maximum(np.round(mass), 1.0), 0.0)
    return float(np.where(few, whole, mass).sum())


@dataclass
class RegionCounter(FrameCounter):
    estimator: DensityEstimator
    detector: PersonDetector | None = None
    choice: RegionChoice = RegionChoice()
    name: str = "auto"

    discrete: bool = False  # without a detector: count apart people whole (`discrete_count`)
    calibration: CountCalibration = CountCalibration()

    def count(self, images: Sequence[Image]) -> list[float]:
        maps = self.estimator.estimate(images)
        if self.detector is None:
            if self.discrete:
                return [discrete_count(m) for m in maps]
            return [self.calibration.apply(m) for m in maps]
        dets = self.detector.detect(images)
        return [self.choice.combine(m, d) for m, d in zip(maps, dets, strict=True)]

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()


class CausalSmoother:
    """Exponential smoothing of a count over the frames before (and the current one), never after.

    `alpha` is the weight of the current frame; a jump larger than `reset_above` (relative) is taken
    at once, so that a real change in the crowd is not lagged."""

    def __init__(self, *, alpha: float = 0.5, reset_above: float = 0.5) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"smoothing alpha {alpha} outside (0, 1]")
        self.alpha = alpha
        self.reset_above = reset_above
        self._state: float | None = None

    def update(self, value: float) -> float:
        s = self._state
        if s is None or abs(value - s) > self.reset_above * max(s, 4.0):
            self._state = value
        else:
            self._state = self.alpha * value + (1 - self.alpha) * s
        return self._state

    def reset(self) -> None:
        self._state = None


@dataclass
class SmoothedCounter(FrameCounter):
    inner: FrameCounter
    smoother: CausalSmoother

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def count(self, images: Sequence[Image]) -> list[float]:
        return [self.smoother.update(c) for c in self.inner.count(images)]

    def reset(self) -> None:
        self.inner.reset()
        self.smoother.reset()

    def close(self) -> None:
        self.inner.close()


def make_counter(
    backend: str,
    *,
    device: str = "cpu",
    sequence: bool = False,
    density_weights: Path | None = None,
    detector: dict[str, Any] | None = None,
) -> FrameCounter:
    """A counter by backend name (`BACKENDS`); `sequence` adds causal smoothing to `auto`."""
    from analytics.vision.detectors.registry import create_detector

    dev: Any = device
    if backend == "hog":
        return DetectorCounter(create_detector({"type": "hog"}), name="hog")
    if backend == "yolo":
        cfg = {"type": "yolo", "weights": WEIGHTS / "person-320.pt", "imgsz": 320, "device": device}
        return DetectorCounter(create_detector(cfg), min_score=0.35, name="yolo")
    if backend == "density-sim":
        return DensityCounter(DensityEstimator(WEIGHTS / "density.pt", device=dev), name="density-sim")
    weights = density_weights or HEAD_WEIGHTS
    est = DensityEstimator(weights, device=dev)
    if backend == "density":
        return DensityCounter(est, name="density")
    if backend == "auto":
        det = create_detector(detector) if detector else None
        cal = CountCalibration.of_weights(weights)
        counter: FrameCounter = RegionCounter(est, det, discrete=AUTO_DISCRETE, calibration=cal)
        return SmoothedCounter(counter, CausalSmoother()) if sequence else counter
    raise ValueError(f"unknown counting backend {backend!r} (choose from {', '.join(BACKENDS)})")


def hog_for_footage(
    frames: Sequence[Image], *, min_score: float = 0.0
) -> tuple[DetectorCounter, PersonScale | None]:
    """HOG with its upscale set from the footage: a person scale estimated from boxes found on
    `frames` at native size, and enough enlargement for the median person of the lower 60% of
    the frame to fill HOG's window. Without enough boxes, native size (and no scale)."""
    from analytics.vision.detectors.plugins.hog import HogConfig, HogDetector

    probe = HogDetector(HogConfig())
    try:
        scale = PersonScale.from_detections(probe.detect(frames), min_score=0.5)
    except ValueError:
        return DetectorCounter(probe, min_score=min_score, name="hog"), None
    h = frames[0].shape[0]
    upscale = scale.detector_upscale(list(np.linspace(0.4 * h, h, 8)))
    return DetectorCounter(HogDetector(HogConfig(upscale=upscale)), min_score=min_score, name="hog"), scale
