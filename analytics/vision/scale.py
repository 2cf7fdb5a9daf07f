"""Expected person size per image row: from a calibrated camera, or estimated from footage.

On flat ground seen by a pinhole camera, the pixels per metre at an image row are an affine function
of the row (inverse depth is affine in image coordinates on a plane), so a standing person's height
in pixels is nearly so (`v` the row of the feet; a quadratic in `v` takes up the rest of a tilted
view). `PersonScale` holds that polynomial and gives what depends on it: the density kernels of
annotated heads, and the upscale a fixed-window detector (HOG, 128 px window) needs to see the
people of a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.vision.detectors.base import Detections
from beffroi.geometry import PinholeCamera

FloatArray = npt.NDArray[np.float64]
PERSON_HEIGHT_M = 1.7
#: a head's kernel width as a share of the person's height (about half a head's width)
HEAD_SIGMA_SHARE = 0.06


@dataclass(frozen=True)
class PersonScale:
    coef: tuple[float, ...]  # person height (px) = polyval(coef, feet row), highest power first
    source: str = "camera"

    @property
    def slope(self) -> float:
        """Pixels of person height per image row, at the middle of a 480-row frame."""
        return float(np.polyval(np.polyder(np.asarray(self.coef)), 240.0))

    def height_px(self, rows: npt.ArrayLike) -> FloatArray:
        h: FloatArray = np.maximum(np.polyval(np.asarray(self.coef), np.asarray(rows, np.float64)), 1.0)
        return h

    def feet_rows(self, head_rows: npt.ArrayLike) -> FloatArray:
        """The row of the feet of a person whose head is at `head_rows` (about 0.9 height lower)."""
        head = np.asarray(head_rows, np.float64)
        feet = head.copy()
        for _ in range(30):  # feet row v_f with v_f - 0.9 h(v_f) = head row, by fixed point
            feet = head + 0.9 * self.height_px(feet)
        return feet

    def head_sigmas(self, heads: FloatArray) -> FloatArray:
        """Kernel widths (px) for head points: the person under a head stands about 0.9 height lower."""
        if len(heads) == 0:
            return np.zeros(0)
        sig: FloatArray = np.clip(HEAD_SIGMA_SHARE * self.height_px(self.feet_rows(heads[:, 1])), 1.5, 24.0)
        return sig

    def heads_to_feet(self, density: npt.NDArray[np.float32], *, stride: int = 8) -> npt.NDArray[np.float32]:
        """A head-anchored density map (`stride`-pixel cells) with each row's mass moved down to the
        row of the feet under those heads, so that its cells land on the ground through the camera's
        homography as a feet-anchored map does. Mass whose feet fall below the frame is dropped (those
        people stand outside the image, as their boxes' feet would)."""
        gh = density.shape[0]
        feet = self.feet_rows((np.arange(gh) + 0.5) * stride)
        dest = np.floor(feet / stride).astype(int)
        out = np.zeros_like(density)
        keep = dest < gh
        np.add.at(out, dest[keep], density[keep])
        return out

    def detector_upscale(
        self, rows: Sequence[float], *, window_px: float = 110.0, most: float = 3.0
    ) -> float:
        """Enlargement for a detector whose window finds people of `window_px` and up, so that the
        median person standing on `rows` reaches it (1 when they already do)."""
        h = float(np.median(self.height_px(list(rows))))
        return float(np.clip(window_px / h, 1.0, most))

    @classmethod
    def from_camera(cls, camera: PinholeCamera, *, person_m: float = PERSON_HEIGHT_M) -> PersonScale:
        """From a calibrated camera (its pose gives the ground homography and the vertical): people
        standing along the image's centre column, feet to head, projected and fitted with a line."""
        rows = np.linspace(
            max(camera.horizon_v() + 0.1 * camera.height, 0.3 * camera.height), camera.height, 16
        )
        cols = np.full_like(rows, camera.width / 2.0)
        ground = camera.ground_of_pixels(np.column_stack([cols, rows]))
        ok = np.isfinite(ground).all(axis=1)
        if ok.sum() < 2:
            raise ValueError("camera: too few image rows see the ground to set a person scale")
        feet, _ = camera.project(np.column_stack([ground[ok], np.zeros(ok.sum())]))
        heads, _ = camera.project(np.column_stack([ground[ok], np.full(ok.sum(), person_m)]))
        coef = np.polyfit(feet[:, 1], feet[:, 1] - heads[:, 1], 2)
        return cls(tuple(float(c) for c in coef), "camera")

    @classmethod
    def from_detections(
        cls, frames: Sequence[Detections], *, min_score: float = 0.5, min_boxes: int = 8
    ) -> PersonScale:
        """Estimated from the footage: a robust line through box height against foot row.

        Fits, drops the boxes farthest from the line (a third), and fits again."""
        boxes = [d.above(min_score).boxes for d in frames]
        b = np.vstack([x for x in boxes if len(x)]) if any(len(x) for x in boxes) else np.zeros((0, 4))
        if len(b) < min_boxes:
            raise ValueError(f"too few person boxes ({len(b)} < {min_boxes}) to estimate the scale")
        rows, heights = b[:, 3], b[:, 3] - b[:, 1]
        slope, intercept = np.polyfit(rows, heights, 1)
        resid = np.abs(heights - (slope * rows + intercept))
        keep = resid <= np.quantile(resid, 0.67)
        if keep.sum() >= 2 and np.ptp(rows[keep]) > 0:
            slope, intercept = np.polyfit(rows[keep], heights[keep], 1)
        if np.ptp(rows) == 0:
            slope, intercept = 0.0, float(np.median(heights))
        return cls((float(slope), float(intercept)), "footage")
