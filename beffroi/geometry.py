"""Camera geometry shared by the camera simulator (ground truth) and the vision pipeline.

Ground coordinates are metres in a local east/north frame around a site's centre (x east, y north,
z up). A `PinholeCamera` projects ground points into the image from a `CameraPose`: position,
height, compass heading, downward tilt and horizontal field of view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from beffroi.events import LatLon
from beffroi.venue import EARTH_RADIUS_M, CameraPose

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LocalFrame:
    """Equirectangular projection of WGS84 around `origin`, accurate to centimetres over a few km."""

    origin: LatLon

    @property
    def _cos_lat(self) -> float:
        return math.cos(math.radians(self.origin.lat))

    def to_xy(self, p: LatLon) -> tuple[float, float]:
        x = math.radians(p.lon - self.origin.lon) * EARTH_RADIUS_M * self._cos_lat
        y = math.radians(p.lat - self.origin.lat) * EARTH_RADIUS_M
        return x, y

    def polygon(self, points: list[LatLon]) -> FloatArray:
        return np.array([self.to_xy(p) for p in points], dtype=np.float64)

    def to_latlon(self, x: float, y: float) -> LatLon:
        lat = self.origin.lat + math.degrees(y / EARTH_RADIUS_M)
        lon = self.origin.lon + math.degrees(x / (EARTH_RADIUS_M * self._cos_lat))
        return LatLon(lat=lat, lon=lon)


@dataclass(frozen=True)
class PinholeCamera:
    """An ideal pinhole camera looking at flat ground. Image axes: u right, v down (pixels)."""

    x: float
    y: float
    height_m: float
    heading_deg: float
    tilt_deg: float
    fov_deg: float
    width: int
    height: int

    @classmethod
    def from_pose(cls, pose: CameraPose, *, x: float, y: float, width: int, height: int) -> PinholeCamera:
        return cls(
            x=x,
            y=y,
            height_m=pose.height_m,
            heading_deg=pose.heading_deg,
            tilt_deg=pose.tilt_deg,
            fov_deg=pose.fov_deg,
            width=width,
            height=height,
        )

    @property
    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)

    @property
    def axes(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Unit vectors (right, down, forward) of the camera, in ground coordinates."""
        h = math.radians(self.heading_deg)
        t = math.radians(self.tilt_deg)
        forward = np.array([math.sin(h) * math.cos(t), math.cos(h) * math.cos(t), -math.sin(t)])
        right = np.array([math.cos(h), -math.sin(h), 0.0])
        down = np.cross(forward, right)
        return right, down, forward

    @property
    def centre(self) -> FloatArray:
        return np.array([self.x, self.y, self.height_m])

    def project(self, points: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Image coordinates (N, 2) of 3-D points (N, 3), and their depth along the optical axis."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.centre
        right, down, forward = self.axes
        xc, yc, zc = p @ right, p @ down, p @ forward
        safe = np.where(zc > 1e-6, zc, np.nan)
        f = self.focal_px
        uv = np.stack([f * xc / safe + self.width / 2.0, f * yc / safe + self.height / 2.0], axis=1)
        return uv, zc

    def project_ground(self, xy: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        g = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return self.project(np.column_stack([g, np.zeros(len(g))]))

    def ground_of_pixels(self, uv: npt.ArrayLike) -> FloatArray:
        """Ground points (N, 2) seen at pixels (N, 2); NaN for pixels at or above the horizon."""
        px = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        right, down, forward = self.axes
        f = self.focal_px
        rays = (
            forward[None, :]
            + ((px[:, 0] - self.width / 2.0) / f)[:, None] * right[None, :]
            + ((px[:, 1] - self.height / 2.0) / f)[:, None] * down[None, :]
        )
        dz = rays[:, 2]
        s = np.where(dz < -1e-9, -self.height_m / np.where(dz < -1e-9, dz, -1.0), np.nan)
        return np.column_stack([self.x + s * rays[:, 0], self.y + s * rays[:, 1]])

    def horizon_v(self) -> float:
        """Image row of the horizon (may lie above the image)."""
        return self.height / 2.0 - self.focal_px * math.tan(math.radians(self.tilt_deg))

    def footprint(self, *, max_range_m: float = 80.0, margin: float = 0.0) -> FloatArray:
        """Ground polygon seen by the camera, cut at `max_range_m` from the camera's foot.

        `margin` widens the image on each side by that fraction of its size (and twice as much
        below), for the ground just outside the view whose people still show in it.
        """
        top = max(self.horizon_v() + 1.0, -margin * self.height)
        x0, x1 = -margin * self.width, (1.0 + margin) * self.width
        bottom = (1.0 + 2.0 * margin) * self.height
        w = x1 - x0
        border: list[tuple[float, float]] = []
        n = 16
        border += [(x0 + w * i / n, bottom) for i in range(n + 1)]
        border += [(x1, bottom - (bottom - top) * i / n) for i in range(1, n + 1)]
        border += [(x1 - w * i / n, top) for i in range(1, n + 1)]
        border += [(x0, top + (bottom - top) * i / n) for i in range(1, n)]
        ground = self.ground_of_pixels(np.array(border))
        d = ground - np.array([self.x, self.y])
        r = np.hypot(d[:, 0], d[:, 1])
        ok = np.isfinite(r)
        scale = np.where(ok & (r > max_range_m), max_range_m / np.where(r > 0, r, 1.0), 1.0)
        ground = np.array([self.x, self.y]) + d * scale[:, None]
        result: FloatArray = ground[ok]
        return result

    def reference_points(self, *, n: int = 6) -> tuple[FloatArray, FloatArray]:
        """`n`≥4 image↔ground correspondences spread over the lower image, for a homography."""
        top = max(self.horizon_v() + 0.15 * self.height, 0.3 * self.height)
        us = np.linspace(0.1, 0.9, max(2, (n + 1) // 2)) * self.width
        vs = np.array([top, 0.95 * self.height])
        uv = np.array([(u, v) for v in vs for u in us])[: max(n, 4)]
        return uv, self.ground_of_pixels(uv)


def points_in_polygon(points: npt.ArrayLike, polygon: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Even-odd rule test of many points (N, 2) against one polygon (M, 2), vectorised."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0:1], p[:, 1:2]
    x1, y1 = poly[:, 0][None, :], poly[:, 1][None, :]
    x2, y2 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    inside: npt.NDArray[np.bool_] = (np.count_nonzero(straddles & (x < x_cross), axis=1) % 2) == 1
    return inside


def polygon_area(polygon: npt.ArrayLike) -> float:
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def overlap_area(a: npt.ArrayLike, b: npt.ArrayLike, *, cell_m: float = 0.25) -> float:
    """Area (m²) of the intersection of two ground polygons, by rasterising on a `cell_m` grid."""
    pa = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    pb = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    lo = np.maximum(pa.min(axis=0), pb.min(axis=0))
    hi = np.minimum(pa.max(axis=0), pb.max(axis=0))
    if np.any(hi <= lo):
        return 0.0
    xs = np.arange(lo[0] + cell_m / 2, hi[0], cell_m)
    ys = np.arange(lo[1] + cell_m / 2, hi[1], cell_m)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    inside = points_in_polygon(pts, pa)
    inside[inside] = points_in_polygon(pts[inside], pb)
    return float(np.count_nonzero(inside)) * cell_m * cell_m
