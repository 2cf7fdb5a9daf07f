"""Plane geometry on local metres: polygons, sampling, camera coverage of zones."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from beffroi.events import LatLon
from beffroi.venue import CameraView, LocalFrame, Zone

FloatArray = npt.NDArray[np.float64]


def ellipse_point(a: float, b: float, bearing_deg: float) -> tuple[float, float]:
    """Point of an ellipse with east semi-axis `a` and north semi-axis `b` at a bearing from north."""
    t = math.radians(bearing_deg)
    return a * math.sin(t), b * math.cos(t)


def ring_sector(
    inner: tuple[float, float], outer: tuple[float, float], b0: float, b1: float, steps: int = 6
) -> list[tuple[float, float]]:
    """Polygon between two concentric ellipses and two bearings, in local metres."""
    bearings = [b0 + (b1 - b0) * i / steps for i in range(steps + 1)]
    out = [ellipse_point(*outer, b) for b in bearings]
    inn = [ellipse_point(*inner, b) for b in reversed(bearings)]
    return out + inn


def to_latlon(frame: LocalFrame, xy: list[tuple[float, float]]) -> list[LatLon]:
    return [frame.to_latlon(x, y) for x, y in xy]


def points_in_polygon(poly: FloatArray, pts: FloatArray) -> npt.NDArray[np.bool_]:
    """Even-odd rule for many points (n x 2) against one polygon (m x 2)."""
    x, y = pts[:, 0], pts[:, 1]
    inside = np.zeros(len(pts), dtype=bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < xcross)
        xj, yj = xi, yi
    return inside


def sample_polygon(poly: FloatArray, target: int = 200) -> FloatArray:
    """About `target` points on a regular grid inside a polygon (at least its centroid-ish vertex mean)."""
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    area = (
        abs(float(np.dot(poly[:, 0], np.roll(poly[:, 1], -1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], -1))))
        / 2
    )
    step = math.sqrt(max(area, 1e-6) / target)
    nx, ny = max(2, int(span[0] / step) + 1), max(2, int(span[1] / step) + 1)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], nx), np.linspace(lo[1], hi[1], ny))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    inside = pts[points_in_polygon(poly, pts)]
    return inside if len(inside) else poly.mean(axis=0, keepdims=True)


def zone_xy(frame: LocalFrame, zone: Zone) -> FloatArray:
    return np.array([frame.to_xy(p) for p in zone.polygon], dtype=np.float64)


def camera_coverage(view: CameraView, zones: list[Zone], samples: int = 150) -> dict[str, float]:
    """Fraction of each zone's ground a camera sees within its range (zones it misses are left out)."""
    pose = view.pose
    cover: dict[str, float] = {}
    for zone in zones:
        pts = sample_polygon(zone_xy(view.frame, zone), samples)
        near = np.hypot(pts[:, 0], pts[:, 1]) <= pose.max_range_m
        seen = 0
        for x, y in pts[near]:
            uv = view.project_xy(float(x), float(y))
            if uv is not None and 0 <= uv[0] < pose.width_px and 0 <= uv[1] < pose.height_px:
                seen += 1
        if seen:
            cover[zone.id] = seen / len(pts)
    return cover


def aim(from_xy: tuple[float, float], to_xy: tuple[float, float], height_m: float) -> tuple[float, float]:
    """Heading (clockwise from north) and downward tilt that centre a ground point in view."""
    dx, dy = to_xy[0] - from_xy[0], to_xy[1] - from_xy[1]
    heading = math.degrees(math.atan2(dx, dy)) % 360.0
    tilt = math.degrees(math.atan2(height_m, max(math.hypot(dx, dy), 1.0)))
    return round(heading, 2) % 360.0, round(tilt, 2)
