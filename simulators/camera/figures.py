"""People as drawn figures: varied build, clothes, skin, hair, hats and bags, drawn in perspective.

`Figures` holds everyone in one frame as arrays: keypoints are computed for all at once, then
each figure is drawn with a handful of OpenCV primitives along its own image axis (feet to the
top of the head), so perspective and tilt come from the camera projection itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from beffroi.geometry import FloatArray, PinholeCamera

Colour = tuple[int, int, int]

_SKIN: tuple[Colour, ...] = (
    (189, 224, 255),
    (160, 200, 240),
    (130, 170, 225),
    (100, 140, 198),
    (70, 105, 160),
    (45, 70, 110),
)
_HAIR: tuple[Colour, ...] = ((20, 20, 25), (30, 45, 70), (40, 80, 130), (140, 190, 220), (160, 160, 160))
_TROUSERS: tuple[Colour, ...] = (
    (60, 40, 30),
    (110, 80, 40),
    (40, 40, 40),
    (150, 150, 150),
    (80, 110, 140),
    (30, 30, 100),
    (170, 200, 210),
)


def _hsv(h: float, s: float, v: float) -> Colour:
    hsv = np.array([[[h * 179, s * 255, v * 255]]], dtype=np.uint8)
    px = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(px[0]), int(px[1]), int(px[2])


@dataclass(frozen=True)
class Appearance:
    height_m: float
    build: float
    shirt: Colour
    sleeves: bool
    trousers: Colour
    skin: Colour
    hair: Colour
    hat: Colour | None
    bag: Colour | None

    @classmethod
    def of(cls, person_id: int, seed: int) -> Appearance:
        rng = np.random.default_rng([seed, person_id, 7])
        hat = _hsv(rng.random(), rng.uniform(0.2, 1), rng.uniform(0.3, 1)) if rng.random() < 0.2 else None
        bag = _hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.15, 0.6)) if rng.random() < 0.3 else None
        return cls(
            height_m=float(np.clip(rng.normal(1.72, 0.09), 1.45, 2.0)),
            build=float(rng.uniform(0.85, 1.2)),
            shirt=_hsv(rng.random(), rng.uniform(0.1, 1.0), rng.uniform(0.25, 1.0)),
            sleeves=bool(rng.random() < 0.5),
            trousers=_TROUSERS[int(rng.integers(len(_TROUSERS)))],
            skin=_SKIN[int(rng.integers(len(_SKIN)))],
            hair=_HAIR[int(rng.integers(len(_HAIR)))],
            hat=hat,
            bag=bag,
        )


# keypoints: (name, fraction of body height from the feet, offset across the body in metres x build)
_KEYPOINTS: tuple[tuple[str, float, float], ...] = (
    ("foot_l", 0.0, -0.10),
    ("foot_r", 0.0, 0.10),
    ("hip_l", 0.50, -0.09),
    ("hip_r", 0.50, 0.09),
    ("waist_l", 0.52, -0.17),
    ("waist_r", 0.52, 0.17),
    ("sh_l", 0.80, -0.22),
    ("sh_r", 0.80, 0.22),
    ("elbow_l", 0.64, -0.27),
    ("elbow_r", 0.64, 0.27),
    ("hand_l", 0.46, -0.27),
    ("hand_r", 0.46, 0.27),
    ("neck", 0.84, 0.0),
    ("head", 0.935, 0.0),
)
K = {name: i for i, (name, _, _) in enumerate(_KEYPOINTS)}
_FRAC = np.array([f for _, f, _ in _KEYPOINTS])
_ACROSS = np.array([a for _, _, a in _KEYPOINTS])
# how each keypoint moves with the walking phase: across the body (feet), along the body (hands)
_SWING_ACROSS = np.zeros(len(_KEYPOINTS))
_SWING_ACROSS[[K["foot_l"], K["foot_r"]]] = [0.12, -0.12]
_SWING_ALONG = np.zeros(len(_KEYPOINTS))
_SWING_ALONG[[K["hand_l"], K["hand_r"], K["elbow_l"], K["elbow_r"]]] = [0.036, -0.036, 0.0024, -0.0024]
_OUTLINE = [K[n] for n in ("foot_l", "hand_l", "elbow_l", "sh_l", "sh_r", "elbow_r", "hand_r", "foot_r")]


@dataclass
class Figures:
    """Everyone visible in one frame, projected: arrays with one row per person."""

    index: npt.NDArray[np.int64]  # row in the crowd's agent arrays
    foot: FloatArray  # (N, 2) image point of the feet
    top: FloatArray  # (N, 2) image point of the top of the head
    px_per_m: FloatArray  # horizontal scale at each person's distance
    depth: FloatArray
    looks: list[Appearance]
    keypoints: FloatArray  # (N, K, 2)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def head_radius(self) -> FloatArray:
        r: FloatArray = np.maximum(1.0, 0.105 * self.px_per_m)
        return r

    def boxes(self) -> FloatArray:
        """Tight (x1, y1, x2, y2) of each figure, unclipped, shape (N, 4)."""
        if len(self) == 0:
            return np.zeros((0, 4))
        limb = np.maximum(1.0, 0.07 * self.px_per_m)[:, None]
        r = self.head_radius[:, None]
        head = self.keypoints[:, K["head"]]
        lo = np.minimum(np.minimum(self.keypoints.min(axis=1) - limb, head - r), self.top)
        hi = np.maximum(self.keypoints.max(axis=1) + limb, head + r)
        out: FloatArray = np.concatenate([lo, hi], axis=1)
        return out

    def outlines(self) -> npt.NDArray[np.int32]:
        """Polygon around each figure (body and head cap), shape (N, 13, 2), for the occlusion mask."""
        if len(self) == 0:
            return np.zeros((0, len(_OUTLINE) + 5, 2), dtype=np.int32)
        axis = self.top - self.foot
        base = np.arctan2(axis[:, 1], axis[:, 0]) - math.pi / 2
        angles = base[:, None] + np.linspace(0.0, math.pi, 5)[None, :]
        head = self.keypoints[:, K["head"]]
        cap = head[:, None, :] + self.head_radius[:, None, None] * np.stack(
            [np.cos(angles), np.sin(angles)], -1
        )
        body = self.keypoints[:, _OUTLINE]
        pts = np.concatenate([body[:, :4], cap, body[:, 4:]], axis=1)
        out: npt.NDArray[np.int32] = pts.round().astype(np.int32)
        return out

    def draw(self, img: npt.NDArray[np.uint8], i: int) -> None:
        kp = self.keypoints[i].round().astype(int).tolist()
        look = self.looks[i]
        s = float(self.px_per_m[i])
        aa = cv2.LINE_AA if s > 25 else cv2.LINE_8
        leg = max(1, round(0.13 * s * look.build))
        arm = max(1, round(0.085 * s))

        def pt(name: str) -> tuple[int, int]:
            x, y = kp[K[name]]
            return x, y

        cv2.line(img, pt("hip_l"), pt("foot_l"), look.trousers, leg, aa)
        cv2.line(img, pt("hip_r"), pt("foot_r"), look.trousers, leg, aa)
        torso = np.array([kp[K["waist_l"]], kp[K["waist_r"]], kp[K["sh_r"]], kp[K["sh_l"]]], dtype=np.int32)
        cv2.fillConvexPoly(img, torso, look.shirt, aa)
        forearm = look.shirt if look.sleeves else look.skin
        for side in ("l", "r"):
            cv2.line(img, pt(f"sh_{side}"), pt(f"elbow_{side}"), look.shirt, arm, aa)
            cv2.line(img, pt(f"elbow_{side}"), pt(f"hand_{side}"), forearm, arm, aa)
        if look.bag is not None:
            x, y = pt("hand_r")
            half = max(1, round(0.09 * s))
            cv2.rectangle(img, (x - half, y), (x + half, y + 2 * half), look.bag, -1)
        cv2.line(img, pt("neck"), pt("head"), look.skin, max(1, round(0.07 * s)), aa)
        r = float(self.head_radius[i])
        head = pt("head")
        cv2.circle(img, head, max(1, round(r)), look.skin, -1, aa)
        axis = self.top[i] - self.foot[i]
        angle = math.degrees(math.atan2(axis[1], axis[0]))
        hair = look.hat if look.hat is not None else look.hair
        span = 110 if look.hat is not None else 80
        rr = max(1, round(r * (1.08 if look.hat is not None else 1.0)))
        cv2.ellipse(img, head, (rr, rr), angle, -span, span, hair, -1, aa)


def place(
    camera: PinholeCamera,
    *,
    index: npt.NDArray[np.int64],
    xy: FloatArray,
    phases: FloatArray,
    looks: list[Appearance],
) -> Figures:
    """Project people standing at ground points `xy` into the camera; those behind it are dropped."""
    heights = np.array([lk.height_m for lk in looks]) if looks else np.zeros(0)
    builds = np.array([lk.build for lk in looks]) if looks else np.zeros(0)
    foot, depth = camera.project(np.column_stack([xy, np.zeros(len(xy))]))
    top, top_depth = camera.project(np.column_stack([xy, heights]))
    ok = (depth > 0.3) & (top_depth > 0.3) & np.isfinite(foot).all(axis=1) & np.isfinite(top).all(axis=1)
    foot, top, depth, top_depth = foot[ok], top[ok], depth[ok], top_depth[ok]
    s = camera.focal_px / ((depth + top_depth) / 2.0)
    axis = top - foot
    length = np.hypot(axis[:, 0], axis[:, 1])
    up = np.where(length[:, None] > 1e-6, axis / np.maximum(length, 1e-6)[:, None], np.array([0.0, -1.0]))
    side = np.column_stack([-up[:, 1], up[:, 0]])
    swing = np.sin(phases[ok])[:, None]
    across = (_ACROSS[None, :] * builds[ok][:, None] + _SWING_ACROSS[None, :] * swing) * s[:, None]
    along = _FRAC[None, :] + _SWING_ALONG[None, :] * swing * 10
    keypoints = foot[:, None, :] + along[..., None] * axis[:, None, :] + across[..., None] * side[:, None, :]
    kept = np.flatnonzero(ok)
    return Figures(
        index=index[kept],
        foot=foot,
        top=top,
        px_per_m=s,
        depth=depth,
        looks=[looks[i] for i in kept],
        keypoints=keypoints,
    )
