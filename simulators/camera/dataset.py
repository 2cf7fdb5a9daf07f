"""Training frames for the person detector and the density model, from varied synthetic views.

Each clip places a camera at a random height, tilt, heading and field of view over a plaza with
a crowd at a random density, renders a few frames spaced in time, and writes them with their
labels through a `DatasetSink`. Everything follows from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beffroi.geometry import PinholeCamera
from beffroi.venue import CameraPose
from simulators.camera.crowd import GroundGate, GroundZone, StaticConditions
from simulators.camera.render import CameraRenderer, CameraScene
from simulators.camera.sinks import DatasetSink


@dataclass(frozen=True)
class DatasetSpec:
    clips: int = 40
    frames_per_clip: int = 5
    frame_gap: int = 8  # rendered frames between kept frames (people move in between)
    width: int = 640
    height: int = 360
    min_density: float = 0.05
    max_density: float = 3.0
    fps: float = 5.0
    max_range_m: float = 40.0
    seed: int = 0


def plaza_scene(
    camera_id: str, pose: CameraPose, *, width: int, height: int, max_range_m: float, gate: bool = False
) -> CameraScene:
    """A camera on the south edge of a 120 m x 120 m plaza, split in two zones, with an optional gate."""
    camera = PinholeCamera.from_pose(pose, x=0.0, y=-5.0, width=width, height=height)
    west = np.array([[-60.0, -10.0], [0.0, -10.0], [0.0, 110.0], [-60.0, 110.0]])
    east = np.array([[0.0, -10.0], [60.0, -10.0], [60.0, 110.0], [0.0, 110.0]])
    zones = [GroundZone("west", west, 7200.0), GroundZone("east", east, 7200.0)]
    gates = [GroundGate("mid", np.array([0.0, 8.0]), np.array([0.0, 14.0]), "west", "east")] if gate else []
    return CameraScene(camera_id=camera_id, camera=camera, zones=zones, gates=gates, max_range_m=max_range_m)


def random_pose(rng: np.random.Generator) -> CameraPose:
    return CameraPose(
        height_m=float(rng.uniform(5.0, 14.0)),
        heading_deg=float(rng.uniform(-25.0, 25.0)) % 360.0,
        tilt_deg=float(rng.uniform(25.0, 60.0)),
        fov_deg=float(rng.uniform(45.0, 75.0)),
    )


def write_dataset(out: Path | str, spec: DatasetSpec = DatasetSpec()) -> int:
    """Render `spec.clips` clips into `out`; returns the number of images written."""
    rng = np.random.default_rng([spec.seed, 101])
    sink = DatasetSink(out)
    try:
        for clip in range(spec.clips):
            pose = random_pose(rng)
            d_log = rng.uniform(np.log(spec.min_density), np.log(spec.max_density))
            west, east = float(np.exp(d_log)), float(np.exp(d_log + rng.normal(0, 0.3)))
            scene = plaza_scene(
                f"s{spec.seed}c{clip:04d}",
                pose,
                width=spec.width,
                height=spec.height,
                max_range_m=spec.max_range_m,
            )
            renderer = CameraRenderer(
                scene,
                conditions=StaticConditions({"west": west, "east": east}),
                fps=spec.fps,
                seed=int(rng.integers(2**31)),
            )
            for _ in range(spec.frames_per_clip):
                frame, truth = renderer.next_frame()
                sink.write(frame, truth)
                renderer.skip(spec.frame_gap - 1)
    finally:
        sink.close()
    return sink.images
