"""Image ↔ ground-plane homography of one camera, from four or more reference points."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from beffroi.geometry import FloatArray


class HomographyError(ValueError):
    """The reference points do not define a usable homography; the message names the camera."""


@dataclass(frozen=True)
class GroundHomography:
    """Maps image pixels (u, v) to ground metres (x, y) and back."""

    camera_id: str
    image_to_ground: FloatArray  # 3x3
    ground_to_image: FloatArray  # 3x3
    rms_error_m: float  # fit error on the reference points, in ground metres

    @classmethod
    def fit(
        cls,
        camera_id: str,
        image_points: npt.ArrayLike,
        ground_points: npt.ArrayLike,
        *,
        ransac_m: float = 0.0,
    ) -> GroundHomography:
        """Fit from ≥4 correspondences (least squares; with RANSAC when `ransac_m` > 0)."""
        img = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
        gnd = np.asarray(ground_points, dtype=np.float64).reshape(-1, 2)
        if len(img) != len(gnd):
            raise HomographyError(
                f"camera {camera_id!r}: {len(img)} image points but {len(gnd)} ground points"
            )
        if len(img) < 4:
            raise HomographyError(f"camera {camera_id!r}: a homography needs 4 or more reference points")
        if not (np.isfinite(img).all() and np.isfinite(gnd).all()):
            raise HomographyError(f"camera {camera_id!r}: reference points must be finite")
        method = cv2.RANSAC if ransac_m > 0 else 0
        h, _ = cv2.findHomography(img, gnd, method, ransac_m if ransac_m > 0 else 3.0)
        if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
            raise HomographyError(f"camera {camera_id!r}: reference points are degenerate (collinear?)")
        hm: FloatArray = np.asarray(h, dtype=np.float64)
        inv = np.linalg.inv(hm)
        fitted = cv2.perspectiveTransform(img[None, :, :], hm)[0]
        rms = float(np.sqrt(np.mean(np.sum((fitted - gnd) ** 2, axis=1))))
        return cls(camera_id=camera_id, image_to_ground=hm, ground_to_image=inv / inv[2, 2], rms_error_m=rms)

    def to_ground(self, uv: npt.ArrayLike) -> FloatArray:
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2))
        out: FloatArray = cv2.perspectiveTransform(pts[None, :, :], self.image_to_ground)[0]
        return out

    def to_image(self, xy: npt.ArrayLike) -> FloatArray:
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2))
        out: FloatArray = cv2.perspectiveTransform(pts[None, :, :], self.ground_to_image)[0]
        return out
