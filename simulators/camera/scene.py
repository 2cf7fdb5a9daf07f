"""Build a camera's ground scene (local metres) from the venue: its pose, zones and gates."""

from __future__ import annotations

import numpy as np

from beffroi.geometry import FloatArray, overlap_area, points_in_polygon
from beffroi.sites import placed_camera, site_gates, site_zones
from beffroi.venue import Venue
from simulators.camera.crowd import GroundGate, GroundZone
from simulators.camera.render import CameraScene

#: people farther than this are a few pixels tall: not drawn, to keep rendering cheap
RENDER_RANGE_M = 60.0


def camera_scene(
    venue: Venue, device_id: str, *, width: int | None = 640, render_range_m: float = RENDER_RANGE_M
) -> CameraScene:
    """The scene for camera `device_id` rendered `width` pixels wide (the pose's aspect ratio): every
    zone and gate of its site that shows in its view, people drawn up to `render_range_m` away."""
    pc = placed_camera(venue, device_id, width=width)
    reach = min(pc.max_range_m, render_range_m)
    view = pc.camera.footprint(max_range_m=reach, margin=0.12)
    zones = [
        GroundZone(id=z.id, polygon=z.polygon, area_m2=z.area_m2)
        for z in site_zones(pc.site)
        if overlap_area(z.polygon, view, cell_m=1.0) > 0
    ]
    gates = [
        GroundGate(id=g.id, a=g.a, b=g.b, from_zone=g.zone_out, to_zone=g.zone_in)
        for g in site_gates(pc.site)
        if _near(g.a, g.b, view)
    ]
    return CameraScene(camera_id=device_id, camera=pc.camera, zones=zones, gates=gates, max_range_m=reach)


def _near(a: FloatArray, b: FloatArray, view: FloatArray) -> bool:
    return bool(points_in_polygon(np.linspace(a, b, 9), view).any())
