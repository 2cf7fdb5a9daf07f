"""A camera's surveyed reference points: image pixels and the WGS84 ground points they show, as an
installer would measure them, computed with the pinhole model the renderer draws with."""

from __future__ import annotations

import numpy as np

from beffroi.events import LatLon
from beffroi.geometry import LocalFrame, PinholeCamera
from beffroi.venue import CameraPose, GroundRef

#: decimals of the surveyed latitudes and longitudes: about a millimetre
LATLON_DECIMALS = 8


def survey_ground_refs(pose: CameraPose, location: LatLon, *, origin: LatLon, n: int = 8) -> list[GroundRef]:
    """`n` (≥4) reference points of a camera at `location`, spread over the lower part of its image
    (`PinholeCamera.reference_points`), at the pose's resolution. `origin` is the centre of the
    site frame the vision pipeline places the camera in (`beffroi.sites`), so the points
    fit exactly the homography it would derive from the pose."""
    if n < 4:
        raise ValueError("a homography needs 4 or more reference points")
    frame = LocalFrame(origin)
    x, y = frame.to_xy(location)
    camera = PinholeCamera.from_pose(pose, x=x, y=y, width=pose.width_px, height=pose.height_px)
    uv, _ = camera.reference_points(n=n)
    uv = np.round(uv, 1)
    ground = camera.ground_of_pixels(uv)  # rows below the horizon: every pose sees them
    refs = []
    for (u, v), (gx, gy) in zip(uv, ground, strict=True):
        p = frame.to_latlon(float(gx), float(gy))
        refs.append(
            GroundRef(
                u=float(u),
                v=float(v),
                lat=round(p.lat, LATLON_DECIMALS),
                lon=round(p.lon, LATLON_DECIMALS),
            )
        )
    return refs
