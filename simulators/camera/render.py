"""Render a camera's view of the crowd: textured ground, people in depth order, changing light.

`CameraRenderer.next_frame()` returns a BGR frame and its ground truth (`FrameTruth`): every
person's box, visible fraction and zone, the count per zone inside the view, and gate crossings.
The same scene, conditions and seed give the same frames, bit for bit.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from beffroi.geometry import FloatArray, PinholeCamera, overlap_area, points_in_polygon
from simulators.camera.crowd import CrowdConditions, CrowdWindow, GroundGate, GroundZone
from simulators.camera.figures import Appearance, Figures, K, place

Image = npt.NDArray[np.uint8]

#: persons less visible than this (fraction of their outline) get no detector training label
LABEL_MIN_VISIBLE = 0.1


@dataclass(frozen=True)
class CameraScene:
    """What one camera looks at: its calibrated pose and the ground zones and gates around it."""

    camera_id: str
    camera: PinholeCamera
    zones: list[GroundZone]
    gates: list[GroundGate] = field(default_factory=list)
    max_range_m: float = 60.0

    def view_polygon(self) -> FloatArray:
        """Ground polygon whose points show inside the image."""
        return self.camera.footprint(max_range_m=self.max_range_m)


@dataclass(frozen=True)
class PersonTruth:
    id: int
    box: tuple[float, float, float, float]  # clipped to the image
    foot: tuple[float, float]
    head: tuple[float, float]  # image point of the centre of the head
    ground: tuple[float, float]
    visible: float
    zone: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "box": [round(v, 1) for v in self.box],
            "foot": [round(v, 1) for v in self.foot],
            "head": [round(v, 1) for v in self.head],
            "ground": [round(v, 3) for v in self.ground],
            "visible": round(self.visible, 3),
            "zone": self.zone,
        }


@dataclass(frozen=True)
class ZoneTruth:
    count: int
    area_m2: float  # area of the zone inside the view

    @property
    def density(self) -> float:
        return self.count / self.area_m2 if self.area_m2 > 0 else 0.0


@dataclass(frozen=True)
class FrameTruth:
    camera_id: str
    frame: int
    t_s: float
    persons: list[PersonTruth]
    zones: dict[str, ZoneTruth]
    crossings: list[tuple[str, int]]  # (gate id, +1 towards its to_zone / -1 back)

    @property
    def count(self) -> int:
        """People whose feet are inside the image."""
        return len(self.persons)

    def as_json(self) -> dict[str, Any]:
        return {
            "camera": self.camera_id,
            "frame": self.frame,
            "t": round(self.t_s, 4),
            "count": self.count,
            "zones": {
                z: {"count": v.count, "area_m2": round(v.area_m2, 2), "density": round(v.density, 4)}
                for z, v in self.zones.items()
            },
            "crossings": [{"gate": g, "dir": "in" if d > 0 else "out"} for g, d in self.crossings],
            "persons": [p.as_json() for p in self.persons],
        }

    def yolo_labels(self, width: int, height: int) -> list[str]:
        """Label lines `0 cx cy w h` (normalised) for the persons a detector should find."""
        lines = []
        for p in self.persons:
            if p.visible < LABEL_MIN_VISIBLE:
                continue
            x1, y1, x2, y2 = p.box
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            lines.append(f"0 {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
        return lines


def _zone_colour(zone_id: str) -> npt.NDArray[np.float64]:
    palette = np.array(
        [[128, 128, 128], [105, 110, 112], [70, 120, 80], [120, 150, 170], [95, 100, 90], [140, 135, 125]],
        dtype=np.float64,
    )
    colour: npt.NDArray[np.float64] = palette[zlib.crc32(zone_id.encode()) % len(palette)]
    return colour


def render_background(scene: CameraScene, *, seed: int) -> Image:
    """Ground texture (paving, zone surfaces, painted gate lines) and sky, seen by the camera."""
    cam = scene.camera
    rng = np.random.default_rng([seed, 11])
    vs, us = np.mgrid[0 : cam.height, 0 : cam.width]
    ground = cam.ground_of_pixels(np.column_stack([us.ravel() + 0.5, vs.ravel() + 0.5]))
    sky = ~np.isfinite(ground[:, 0])
    g = np.where(sky[:, None], 0.0, ground)
    colour = np.tile(np.array([[72.0, 76.0, 78.0]]), (len(g), 1))
    for z in scene.zones:
        inside = points_in_polygon(g, z.polygon) & ~sky
        colour[inside] = _zone_colour(z.id)
    # metres covered by one pixel, to fade fine texture out with distance instead of aliasing
    dist = np.hypot(g[:, 0] - cam.x, g[:, 1] - cam.y)
    slant = np.hypot(dist, cam.height_m)
    m_per_px = slant / cam.focal_px * np.maximum(1.0, slant / np.maximum(cam.height_m, 1e-3)) ** 0.5
    fine = np.clip(1.0 - m_per_px / 0.12, 0.0, 1.0)
    tile = 0.6
    fx, fy = np.mod(g[:, 0] / tile, 1.0), np.mod(g[:, 1] / tile, 1.0)
    grout = ((fx < 0.05) | (fy < 0.05)).astype(np.float64)
    colour *= (1.0 - 0.25 * grout * fine)[:, None]
    stains = np.zeros(len(g))
    for _ in range(6):
        k = rng.uniform(0.05, 0.6, 2)
        stains += np.sin(g[:, 0] * k[0] + rng.uniform(0, 6.3)) * np.sin(g[:, 1] * k[1] + rng.uniform(0, 6.3))
    colour *= (1.0 + 0.05 * stains)[:, None]
    for gate in scene.gates:
        d = np.abs(gate.signed_distance(g))
        t = gate.along(g)
        line = (d < 0.06) & (t > -0.3) & (t < gate.width_m + 0.3) & ~sky
        colour[line] = (40, 200, 230)
    sky_rows = vs.ravel()[sky].astype(np.float64)
    horizon = max(cam.horizon_v(), 1.0)
    colour[sky] = np.column_stack(
        [
            230 - 60 * (1 - sky_rows / horizon),
            200 - 50 * (1 - sky_rows / horizon),
            170 - 40 * (1 - sky_rows / horizon),
        ]
    )
    img = np.clip(colour, 0, 255).reshape(cam.height, cam.width, 3).astype(np.uint8)
    if sky.any():  # a skyline of buildings along the horizon
        hv = round(cam.horizon_v())
        x = 0
        while x < cam.width:
            w = int(rng.integers(20, 90))
            h = int(rng.integers(10, 60))
            shade = int(rng.integers(60, 140))
            cv2.rectangle(img, (x, max(0, hv - h)), (x + w, hv), (shade, shade, shade + 10), -1)
            x += w
    out: Image = cv2.GaussianBlur(img, (3, 3), 0)
    return out


class Lighting:
    """Slow daylight drift, passing clouds and colour temperature, per seed."""

    def __init__(self, *, seed: int, shape: tuple[int, int]) -> None:
        rng = np.random.default_rng([seed, 13])
        self._waves = rng.uniform([20.0, 0.0], [90.0, 2 * math.pi], size=(3, 2))
        self._base = float(rng.uniform(0.8, 1.1))
        h, w = shape
        self._noise = [
            np.clip(rng.normal(0.0, 3.0, size=(h, w, 3)), -12, 12).astype(np.int16) for _ in range(4)
        ]
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
        self._vignette = (1.0 - 0.18 * np.clip(r - 0.4, 0, None) ** 2)[..., None].astype(np.float32)

    def gains(self, t_s: float) -> tuple[float, float, float]:
        level = self._base
        for period, phase in self._waves:
            level += 0.12 * math.sin(2 * math.pi * t_s / period + phase)
        warm = 0.06 * math.sin(2 * math.pi * t_s / 300.0 + self._waves[0, 1])
        return level * (1 - warm), level, level * (1 + warm)

    def apply(self, img: Image, *, t_s: float, frame: int) -> Image:
        b, g, r = self.gains(t_s)
        lit = img.astype(np.float32) * self._vignette * np.array([b, g, r], dtype=np.float32)
        lit += self._noise[frame % len(self._noise)]
        out: Image = np.clip(lit, 0, 255).astype(np.uint8)
        return out


class CameraRenderer:
    """Frames and ground truth for one camera, at `fps`, from the crowd `conditions`."""

    def __init__(self, scene: CameraScene, *, conditions: CrowdConditions, fps: float, seed: int) -> None:
        self.scene = scene
        self.fps = fps
        self.seed = seed
        cam = scene.camera
        self.view = scene.view_polygon()
        self.crowd = CrowdWindow(
            window=cam.footprint(max_range_m=scene.max_range_m, margin=0.12),
            zones=scene.zones,
            gates=scene.gates,
            conditions=conditions,
            seed=seed,
        )
        self.visible_area = {z.id: overlap_area(z.polygon, self.view) for z in scene.zones}
        self.background = render_background(scene, seed=seed)
        self.lighting = Lighting(seed=seed, shape=(cam.height, cam.width))
        self.frame_index = 0
        self._looks: dict[int, Appearance] = {}

    def _look(self, person_id: int) -> Appearance:
        look = self._looks.get(person_id)
        if look is None:
            look = self._looks[person_id] = Appearance.of(person_id, self.seed)
        return look

    def skip(self, frames: int) -> None:
        """Advance the crowd by `frames` frames without drawing them."""
        for _ in range(frames):
            self.crowd.step(1.0 / self.fps)
            self.frame_index += 1

    def next_frame(self) -> tuple[Image, FrameTruth]:
        i = self.frame_index
        t_s = i / self.fps
        self.crowd.step(1.0 / self.fps)
        agents = self.crowd.agents
        live = {int(p) for p in agents.ids}
        self._looks = {k: v for k, v in self._looks.items() if k in live}
        looks = [self._look(int(p)) for p in agents.ids]
        figures = place(
            self.scene.camera, index=np.arange(len(agents)), xy=agents.pos, phases=agents.phase, looks=looks
        )
        boxes = figures.boxes()
        img, visible = self._draw(figures, boxes)
        persons = self._persons(figures, boxes, visible)
        zones: dict[str, ZoneTruth] = {}
        for z in self.scene.zones:
            n = sum(1 for p in persons if p.zone == z.id)
            zones[z.id] = ZoneTruth(count=n, area_m2=self.visible_area[z.id])
        truth = FrameTruth(
            camera_id=self.scene.camera_id,
            frame=i,
            t_s=t_s,
            persons=persons,
            zones=zones,
            crossings=[(g, d) for g, _, d in self.crowd.crossings],
        )
        self.frame_index += 1
        return self.lighting.apply(img, t_s=t_s, frame=i), truth

    def _draw(self, figures: Figures, boxes: FloatArray) -> tuple[Image, FloatArray]:
        """Draw far to near; returns the image and each figure's visible fraction of its outline."""
        cam = self.scene.camera
        img = self.background.copy()
        mask = np.zeros((cam.height, cam.width), dtype=np.uint16)
        full = np.ones(len(figures))
        on_screen = (
            (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] < cam.width) & (boxes[:, 1] < cam.height)
        )
        order = [int(i) for i in np.argsort(-figures.depth, kind="stable") if on_screen[i]]
        outlines = figures.outlines()
        for i in order:
            figures.draw(img, i)
            cv2.fillPoly(mask, [outlines[i]], i + 1)
            x1, y1 = max(0, int(boxes[i, 0])), max(0, int(boxes[i, 1]))
            x2, y2 = min(cam.width, int(boxes[i, 2]) + 2), min(cam.height, int(boxes[i, 3]) + 2)
            full[i] = max(1, int(np.count_nonzero(mask[y1:y2, x1:x2] == i + 1)))
        counts = np.bincount(mask.ravel(), minlength=len(figures) + 1)[1:]
        visible: FloatArray = np.minimum(1.0, counts / full)
        return img, visible

    def _persons(self, figures: Figures, boxes: FloatArray, visible: FloatArray) -> list[PersonTruth]:
        cam = self.scene.camera
        agents = self.crowd.agents
        u, v = figures.foot[:, 0], figures.foot[:, 1]
        inside = np.flatnonzero((u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height))
        rows = figures.index[inside]
        zone_of = self.crowd.zone_index(agents.pos[rows])
        clipped = np.clip(boxes[inside], 0, [cam.width, cam.height, cam.width, cam.height])
        heads = figures.keypoints[inside, K["head"]]
        out = []
        for k, j in enumerate(inside.tolist()):
            row, z = int(rows[k]), int(zone_of[k])
            x1, y1, x2, y2 = clipped[k].tolist()
            out.append(
                PersonTruth(
                    id=int(agents.ids[row]),
                    box=(x1, y1, x2, y2),
                    foot=(float(u[j]), float(v[j])),
                    head=(float(heads[k, 0]), float(heads[k, 1])),
                    ground=(float(agents.pos[row, 0]), float(agents.pos[row, 1])),
                    visible=float(visible[j]),
                    zone=self.scene.zones[z].id if z >= 0 else None,
                )
            )
        return out
