"""Counting accuracy on simulator frames the models never saw (other seeds), with the committed
weights (analytics/vision/weights/README.md gives the commands that made them).

Counts are compared inside each camera's counting region (feet where a standing person is at least
48 px tall in these 640x360 frames), as the pipeline counts."""

import functools
from pathlib import Path

import numpy as np
import pytest

import analytics.vision
from analytics.vision.counting import CameraCounter, FusionConfig
from analytics.vision.density.model import DensityEstimator
from analytics.vision.detectors.registry import create_detector
from tests.vision.scenes import CCTV_POSES, cctv_scene, counting_view_of, crowd_frames, truth_in_region

WEIGHTS = Path(analytics.vision.__file__).resolve().parent / "weights"
DETECTOR = {"type": "yolo", "weights": str(WEIGHTS / "person-320.pt"), "imgsz": 320, "device": "cpu"}
SEEDS = range(1000, 1002)


@functools.cache
def frames(pose: int, density: float) -> list:
    """Rendered once per test session: several tests count the same frames."""
    scene = cctv_scene(CCTV_POSES[pose])
    return list(crowd_frames(scene, density=density, seeds=SEEDS))


@pytest.fixture(scope="module")
def models():
    return create_detector(DETECTOR), DensityEstimator(WEIGHTS / "density.pt", device="cpu")


def pipeline_counts(models, densities):
    """(density, counted, true) per frame, through detection and the density model as fused in use."""
    detector, density_model = models
    rows = []
    for pose in range(len(CCTV_POSES)):
        view = counting_view_of(cctv_scene(CCTV_POSES[pose]))
        counter = CameraCounter.for_view(view, fusion=FusionConfig(), track=False)
        for density in densities:
            for frame, truth in frames(pose, density):
                (det,) = detector.detect([frame])
                dmap = (
                    density_model.estimate([frame], from_rows=[counter.density_from_row])[0]
                    if counter.needs_density(det)
                    else None
                )
                obs = counter.observe(0.0, det, dmap)
                rows.append(
                    (density, obs.count, truth_in_region(truth, view), obs.zones["west"].density_weight)
                )
    return np.array(rows)


def relative_mae(rows):
    return np.abs(rows[:, 1] - rows[:, 2]).mean() / rows[:, 2].mean()


def test_count_error_within_10_percent_up_to_2_persons_per_m2(models):
    rows = pipeline_counts(models, (0.25, 0.5, 1.0, 1.5, 2.0))
    assert rows[:, 2].min() >= 20
    assert relative_mae(rows) <= 0.10
    for density in (0.25, 0.5, 1.0, 1.5, 2.0):
        assert relative_mae(rows[rows[:, 0] == density]) <= 0.12, density
    assert (rows[rows[:, 0] <= 0.5, 3] == 0).all()  # sparse crowds: boxes alone


def test_detection_alone_counts_sparse_crowds_within_10_percent(models):
    detector, _ = models
    rows = []
    for pose in range(len(CCTV_POSES)):
        view = counting_view_of(cctv_scene(CCTV_POSES[pose]))
        counter = CameraCounter.for_view(view, track=False)
        for density in (0.25, 0.5, 1.0):
            for frame, truth in frames(pose, density):
                rows.append(
                    (
                        density,
                        counter.observe(0.0, detector.detect([frame])[0]).count,
                        truth_in_region(truth, view),
                    )
                )
    assert relative_mae(np.array(rows)) <= 0.10


def test_density_model_error_within_15_percent_above_2_persons_per_m2(models):
    rows = pipeline_counts(models, (2.5, 3.5, 4.5))
    assert (rows[:, 3] == 1.0).all()  # dense crowds: the density map alone
    assert relative_mae(rows) <= 0.15
    assert abs(np.mean(rows[:, 1] - rows[:, 2])) <= 0.10 * rows[:, 2].mean()  # no strong bias
