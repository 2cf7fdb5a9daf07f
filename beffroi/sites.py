"""Venue geometry for video, shared by the camera renderer and the counter: a site's zones and exits
in local metres (metres east/north of the site's centre) and each camera placed as a pinhole model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from beffroi.devices import DeviceKind
from beffroi.geometry import FloatArray, LocalFrame, PinholeCamera
from beffroi.venue import Device, Exit, Site, Venue


@dataclass(frozen=True)
class ViewZone:
    id: str
    polygon: FloatArray  # ground metres
    area_m2: float  # whole zone


@dataclass(frozen=True)
class ViewGate:
    """A counting line on the ground, `a`→`b`; crossing towards its normal's side is 'in'."""

    id: str
    a: FloatArray
    b: FloatArray
    zone_in: str | None = None  # the zone that 'in' leads to
    zone_out: str | None = None

    @property
    def width_m(self) -> float:
        return float(np.hypot(*(self.b - self.a)))

    def signed_distance(self, xy: FloatArray) -> FloatArray:
        d = (self.b - self.a) / self.width_m
        out: FloatArray = (xy - self.a) @ np.array([d[1], -d[0]])
        return out

    def along(self, xy: FloatArray) -> FloatArray:
        out: FloatArray = (xy - self.a) @ ((self.b - self.a) / self.width_m)
        return out


def site_frame(site: Site) -> LocalFrame:
    return LocalFrame(site.center)


def site_zones(site: Site) -> list[ViewZone]:
    frame = site_frame(site)
    return [ViewZone(id=z.id, polygon=frame.polygon(z.polygon), area_m2=z.area) for z in site.zones]


def exit_line(
    exit_: Exit, zones: dict[str, FloatArray], frame: LocalFrame
) -> tuple[FloatArray, FloatArray] | None:
    """The exit as a line on the ground, (a, b): centred on its location, `width_m` long, across the
    way from its `from_zone` to its `to_zone` (centroid to centroid). Its right-hand normal (seen
    walking from a to b) points to `to_zone`: crossing that way is 'in'. None without a location."""
    if exit_.location is None:
        return None
    centre = np.array(frame.to_xy(exit_.location))
    src = zones[exit_.from_zone].mean(axis=0) if exit_.from_zone in zones else None
    dst = zones[exit_.to_zone].mean(axis=0) if exit_.to_zone in zones else None
    if src is not None and dst is not None:
        way = dst - src
    elif dst is not None:
        way = dst - centre
    elif src is not None:
        way = centre - src
    else:
        way = np.array([0.0, 1.0])
    norm = float(np.hypot(*way))
    way = way / norm if norm > 1e-9 else np.array([0.0, 1.0])
    along = np.array([-way[1], way[0]])  # then the right-hand normal of a->b is `way`
    half = exit_.width_m / 2.0
    return centre - along * half, centre + along * half


def site_gates(site: Site) -> list[ViewGate]:
    frame = site_frame(site)
    polys = {z.id: z.polygon for z in site_zones(site)}
    gates = []
    for e in site.exits:
        line = exit_line(e, polys, frame)
        if line is not None:
            gates.append(ViewGate(id=e.id, a=line[0], b=line[1], zone_in=e.to_zone, zone_out=e.from_zone))
    return gates


@dataclass(frozen=True)
class PlacedCamera:
    device: Device
    site: Site
    camera: PinholeCamera  # at the resolution it is read at
    scale: float  # read resolution / pose resolution

    @property
    def max_range_m(self) -> float:
        assert self.device.camera is not None
        return self.device.camera.max_range_m


def placed_camera(venue: Venue, device_id: str, *, width: int | None = None) -> PlacedCamera:
    """A venue camera as a pinhole model; `width` reads it at another resolution (same aspect)."""
    placed = venue.devices.get(device_id)
    if placed is None:
        raise KeyError(f"venue {venue.id!r} has no device {device_id!r}")
    device = placed.device
    if device.kind is not DeviceKind.CAMERA or device.camera is None or device.location is None:
        raise ValueError(f"device {device_id!r} is not a placed camera")
    pose = device.camera
    site = venue.site(placed.site_id)
    scale = (width / pose.width_px) if width else 1.0
    w, h = round(pose.width_px * scale), round(pose.height_px * scale)
    x, y = site_frame(site).to_xy(device.location)
    return PlacedCamera(
        device=device,
        site=site,
        camera=PinholeCamera.from_pose(pose, x=x, y=y, width=w, height=h),
        scale=scale,
    )
