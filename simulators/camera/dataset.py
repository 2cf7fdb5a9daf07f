"""Training frames for the person detector and the density model, from varied synthetic views.

Each clip places a camera at a random height, tilt, heading and field of view over a plaza with
a crowd at a random density, renders a few frames spaced in time, and writes them with their
labels through a `DatasetSink`. Everything follows from the seed.

`varied=True` widens what the frames look like, for models that must hold on real footage: camera
heights 3-20 m and tilts 15-75 degrees, a textured background per clip (tiles, stripes, noise in
random colours, blended over the plaza), and per-clip camera artefacts (gamma, colour cast, blur,
sensor noise, JPEG quality from 20 to 90).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from beffroi.geometry import PinholeCamera
from beffroi.venue import CameraPose
from simulators.camera.crowd import GroundGate, GroundZone, StaticConditions
from simulators.camera.render import CameraRenderer, CameraScene, Image
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
    varied: bool = False


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


def random_pose(rng: np.random.Generator, *, varied: bool = False) -> CameraPose:
    return CameraPose(
        height_m=float(rng.uniform(3.0, 20.0) if varied else rng.uniform(5.0, 14.0)),
        heading_deg=float(rng.uniform(-25.0, 25.0)) % 360.0,
        tilt_deg=float(rng.uniform(15.0, 75.0) if varied else rng.uniform(25.0, 60.0)),
        fov_deg=float(rng.uniform(45.0, 75.0)),
    )


def textured_background(background: Image, rng: np.random.Generator) -> Image:
    """The plaza blended with a random texture (tiles, stripes or blotches) in a random colour."""
    h, w = background.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = int(rng.integers(3))
    if kind == 0:
        cell = float(rng.uniform(6, 40))
        pattern = ((xx // cell + yy // cell) % 2).astype(np.float32)
    elif kind == 1:
        angle, period = float(rng.uniform(0, np.pi)), float(rng.uniform(4, 30))
        pattern = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    else:
        small = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        pattern = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    colour = rng.uniform(30, 220, size=3).astype(np.float32)
    alpha = float(rng.uniform(0.2, 0.7))
    tex = pattern[..., None] * colour + (1 - pattern[..., None]) * colour * float(rng.uniform(0.3, 0.9))
    out = (1 - alpha) * background.astype(np.float32) + alpha * tex
    textured: Image = np.clip(out, 0, 255).astype(np.uint8)
    return textured


@dataclass(frozen=True)
class CameraArtefacts:
    """One camera's look: gamma, colour cast, blur, sensor noise and JPEG quality."""

    gamma: float
    cast: tuple[float, float, float]
    blur: float
    noise: float
    quality: int

    @classmethod
    def random(cls, rng: np.random.Generator) -> CameraArtefacts:
        c = rng.uniform(0.8, 1.2, size=3)
        return cls(
            gamma=float(rng.uniform(0.6, 1.6)),
            cast=(float(c[0]), float(c[1]), float(c[2])),
            blur=float(rng.uniform(0.0, 1.5)) if rng.random() < 0.5 else 0.0,
            noise=float(rng.uniform(0.0, 10.0)),
            quality=int(rng.integers(20, 91)),
        )

    def apply(self, frame: Image, rng: np.random.Generator) -> Image:
        img = 255.0 * np.power(frame.astype(np.float32) / 255.0, self.gamma) * np.array(self.cast, np.float32)
        if self.blur > 0.2:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        if self.noise > 0:
            img = img + rng.normal(0, self.noise, size=img.shape).astype(np.float32)
        ok, buf = cv2.imencode(
            ".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        out: Image = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8) if ok else frame
        return out


def write_dataset(out: Path | str, spec: DatasetSpec = DatasetSpec()) -> int:
    """Render `spec.clips` clips into `out`; returns the number of images written."""
    rng = np.random.default_rng([spec.seed, 101])
    sink = DatasetSink(out)
    try:
        for clip in range(spec.clips):
            pose = random_pose(rng, varied=spec.varied)
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
            look = CameraArtefacts.random(rng) if spec.varied else None
            if spec.varied:
                renderer.background = textured_background(renderer.background, rng)
            for _ in range(spec.frames_per_clip):
                frame, truth = renderer.next_frame()
                if look is not None:
                    frame = look.apply(frame, rng)
                sink.write(frame, truth)
                renderer.skip(spec.frame_gap - 1)
    finally:
        sink.close()
    return sink.images
