"""Venue geometry for video: a site's zones and exits in local metres, and each camera's counting view.

Ground coordinates are metres east/north of the site's centre. A camera's homography is fitted to
its pose's `ground_refs` when the venue gives them, else to reference points derived from the pose
(`beffroi.venue.CameraView.ground_refs`), scaled to the resolution the camera is read at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.vision.geometry import FloatArray, LocalFrame, PinholeCamera
from analytics.vision.view import CountingView, ViewGate, ViewZone
from beffroi.devices import DeviceKind
from beffroi.events import LatLon
from beffroi.venue import CameraView as PoseView
from beffroi.venue import Device, Exit, Site, Venue


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


def _in_image(camera: PinholeCamera, gate: ViewGate) -> bool:
    """Whether the middle of the gate line shows in the camera's image."""
    uv, depth = camera.project_ground(np.linspace(gate.a, gate.b, 5)[1:4])
    ok = (
        (depth > 0)
        & (uv[:, 0] >= 0)
        & (uv[:, 0] < camera.width)
        & (uv[:, 1] >= 0)
        & (uv[:, 1] < camera.height)
    )
    return bool(ok.any())


def counting_view(
    venue: Venue, device_id: str, *, width: int | None = None, min_person_px: float = 0.0
) -> CountingView:
    """The camera's counting view: its site's zones and gates, a homography from the venue's
    reference points, and the region where people are at least `min_person_px` tall."""
    pc = placed_camera(venue, device_id, width=width)
    refs = PoseView.of(pc.device).ground_refs()
    frame = site_frame(pc.site)
    image = np.array([[r.u * pc.scale, r.v * pc.scale] for r in refs])
    ground = np.array([frame.to_xy(LatLon(lat=r.lat, lon=r.lon)) for r in refs])
    return CountingView.from_camera(
        device_id,
        pc.camera,
        zones=site_zones(pc.site),
        gates=[g for g in site_gates(pc.site) if _in_image(pc.camera, g)],
        min_person_px=min_person_px,
        max_range_m=pc.max_range_m,
        reference_points=(image, ground),
        site_id=pc.site.id,
    )
