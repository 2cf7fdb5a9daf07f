"""The venue model: sites, zones (WGS84 polygons), exits and placed devices.

A venue file is YAML validated by `Venue`; `beffroi validate FILE` checks it with line numbers.
Cameras carry a pose; `CameraView` turns it into a pinhole projection between image pixels and
WGS84 ground points (the ground-plane reference points a homography needs).
"""

from __future__ import annotations

import math
from enum import StrEnum
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.events import LatLon
from beffroi.yamlconf import load_model

_ID = r"^[a-z0-9][a-z0-9_-]*$"
EARTH_RADIUS_M = 6_371_008.8
FRUIN_MAX_SPECIFIC_FLOW = 82.0
"""Persons per metre of exit width per minute at the top of Fruin's level of service E."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteKind(StrEnum):
    STADIUM = "stadium"
    FAN_ZONE = "fan_zone"
    TRANSIT_HUB = "transit_hub"
    RIVERSIDE = "riverside"
    ARENA = "arena"
    OTHER = "other"


class ZoneKind(StrEnum):
    """What a zone is for; crowd plans select zones by kind (`kind:stand`)."""

    STAND = "stand"
    CONCOURSE = "concourse"
    PLAZA = "plaza"
    FORECOURT = "forecourt"
    STREET = "street"
    PLATFORM = "platform"
    HALL = "hall"
    VIEWING = "viewing"
    STAGE_FRONT = "stage_front"
    AMENITY = "amenity"
    QUAY = "quay"
    AREA = "area"


class ExitKind(StrEnum):
    GATE = "gate"
    """Ticket or security gate: closed before gates open, screened inbound."""
    WALKWAY = "walkway"
    VOMITORY = "vomitory"
    STAIRS = "stairs"
    TRAIN = "train"
    """Train doors on a platform edge: the outside is the rail network."""
    EMERGENCY = "emergency"
    """Closed unless the site is evacuated or emptied after the event."""


class LocalFrame:
    """Equirectangular east/north metres around an origin; exact enough within a few km."""

    def __init__(self, origin: LatLon) -> None:
        self.origin = origin
        self._kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(origin.lat))
        self._ky = math.radians(1.0) * EARTH_RADIUS_M

    def to_xy(self, p: LatLon) -> tuple[float, float]:
        return (p.lon - self.origin.lon) * self._kx, (p.lat - self.origin.lat) * self._ky

    def to_latlon(self, x: float, y: float) -> LatLon:
        return LatLon(lat=self.origin.lat + y / self._ky, lon=self.origin.lon + x / self._kx)


def distance_m(a: LatLon, b: LatLon) -> float:
    x, y = LocalFrame(a).to_xy(b)
    return math.hypot(x, y)


def centroid(points: list[LatLon]) -> LatLon:
    """Area centroid of a small polygon (vertex mean if degenerate)."""
    frame = LocalFrame(points[0])
    xy = [frame.to_xy(p) for p in points]
    a = cx = cy = 0.0
    for (x1, y1), (x2, y2) in zip(xy, xy[1:] + xy[:1], strict=True):
        cross = x1 * y2 - x2 * y1
        a += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    if abs(a) < 1e-9:
        n = len(points)
        return LatLon(lat=sum(p.lat for p in points) / n, lon=sum(p.lon for p in points) / n)
    return frame.to_latlon(cx / (3 * a), cy / (3 * a))


def polygon_area_m2(points: list[LatLon]) -> float:
    """Area of a small WGS84 polygon, on a local equirectangular projection."""
    lat0 = math.radians(sum(p.lat for p in points) / len(points))
    xy = [
        (math.radians(p.lon) * EARTH_RADIUS_M * math.cos(lat0), math.radians(p.lat) * EARTH_RADIUS_M)
        for p in points
    ]
    s = 0.0
    for (x1, y1), (x2, y2) in zip(xy, xy[1:] + xy[:1], strict=True):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


class Zone(_Model):
    id: str = Field(pattern=_ID)
    name: str = ""
    kind: ZoneKind = ZoneKind.AREA
    polygon: list[LatLon] = Field(min_length=3)
    area_m2: float | None = Field(default=None, gt=0)
    capacity: int = Field(ge=0)

    @property
    def area(self) -> float:
        return self.area_m2 if self.area_m2 is not None else polygon_area_m2(self.polygon)

    @cached_property
    def centroid(self) -> LatLon:
        return centroid(self.polygon)


class Exit(_Model):
    """A gate, exit or walkway between two zones; `None` on a side means outside the site.

    Inbound is from `from_zone` to `to_zone`; gate counters report `in` that way. Its capacity is
    `width_m x max_specific_flow` persons per minute, shared by both directions; a screened gate
    admits at most `width_m x screening_flow` inbound while screening runs.
    """

    id: str = Field(pattern=_ID)
    name: str = ""
    kind: ExitKind = ExitKind.WALKWAY
    width_m: float = Field(gt=0, le=200)
    from_zone: str | None = None
    to_zone: str | None = None
    location: LatLon | None = None
    max_specific_flow: float = Field(default=FRUIN_MAX_SPECIFIC_FLOW, gt=0, le=FRUIN_MAX_SPECIFIC_FLOW)
    screening_flow: float | None = Field(default=None, gt=0, le=FRUIN_MAX_SPECIFIC_FLOW)

    @model_validator(mode="after")
    def _sides(self) -> Exit:
        if self.from_zone is None and self.to_zone is None:
            raise ValueError("an exit needs at least one of `from_zone` and `to_zone`")
        if self.from_zone == self.to_zone:
            raise ValueError("an exit cannot lead from a zone to itself")
        return self


class GroundRef(_Model):
    """One image pixel and the WGS84 ground point it shows."""

    u: float
    v: float
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CameraPose(_Model):
    """Pose of a camera at its device `location`: heading clockwise from north, tilt down from the
    horizon, horizontal field of view over `width_px` x `height_px` square pixels."""

    height_m: float = Field(gt=0, le=300)
    heading_deg: float = Field(ge=0, lt=360)
    tilt_deg: float = Field(ge=0, le=90, description="downward angle from the horizon")
    fov_deg: float = Field(gt=0, lt=180)
    width_px: int = Field(default=1920, ge=64, le=8192)
    height_px: int = Field(default=1080, ge=64, le=8192)
    max_range_m: float = Field(default=150.0, gt=0, description="farthest ground distance worth counting")
    sees: list[str] = Field(default_factory=list, description="zone ids in view")
    ground_refs: list[GroundRef] | None = Field(
        default=None, min_length=4, description="explicit image-to-ground pairs; else derived from the pose"
    )


class Device(_Model):
    """A placed sensor. `covers` lists the zones an aggregating device counts (telco cells);
    a telco cell withholds counts below `min_count`. `interval_s` overrides the kind's default."""

    id: str = Field(pattern=_ID, max_length=64)
    kind: DeviceKind
    zone: str | None = None
    exit: str | None = None
    location: LatLon | None = None
    camera: CameraPose | None = None
    covers: list[str] = Field(default_factory=list)
    min_count: int | None = Field(default=None, ge=0)
    interval_s: float | None = Field(default=None, ge=0.1, le=3600)

    @property
    def model(self) -> str:
        return KIND_SPECS[self.kind].model

    @property
    def report_interval_s(self) -> float:
        return self.interval_s if self.interval_s is not None else KIND_SPECS[self.kind].interval_s

    @model_validator(mode="after")
    def _camera_pose(self) -> Device:
        if (self.kind is DeviceKind.CAMERA) != (self.camera is not None):
            raise ValueError("a camera needs a `camera` pose, and only cameras have one")
        if self.camera is not None and self.location is None:
            raise ValueError("a camera needs a `location`")
        if self.kind is DeviceKind.GATE_COUNTER and self.exit is None:
            raise ValueError("a gate counter needs the `exit` it counts")
        if self.min_count is not None and self.kind is not DeviceKind.TELCO_CELL:
            raise ValueError("only telco cells have a `min_count`")
        return self


class CameraView:
    """Pinhole projection of a placed camera onto the flat ground (z = 0).

    Pixel (0, 0) is the top-left corner; u grows right, v grows down.
    """

    def __init__(self, pose: CameraPose, location: LatLon) -> None:
        self.pose = pose
        self.location = location
        self.frame = LocalFrame(location)
        self.focal_px = (pose.width_px / 2) / math.tan(math.radians(pose.fov_deg) / 2)
        h, t = math.radians(pose.heading_deg), math.radians(pose.tilt_deg)
        self._fwd = (math.sin(h) * math.cos(t), math.cos(h) * math.cos(t), -math.sin(t))
        self._right = (math.cos(h), -math.sin(h), 0.0)
        f, r = self._fwd, self._right
        self._down = (f[1] * r[2] - f[2] * r[1], f[2] * r[0] - f[0] * r[2], f[0] * r[1] - f[1] * r[0])

    @classmethod
    def of(cls, device: Device) -> CameraView:
        if device.camera is None or device.location is None:
            raise ValueError(f"device {device.id!r} is not a placed camera")
        return cls(device.camera, device.location)

    def project_xy(self, x: float, y: float) -> tuple[float, float] | None:
        """Pixel of a ground point given in local metres around the camera, or None behind it."""
        d = (x, y, -self.pose.height_m)
        zc = sum(a * b for a, b in zip(d, self._fwd, strict=True))
        if zc <= 1e-6:
            return None
        xc = sum(a * b for a, b in zip(d, self._right, strict=True))
        yc = sum(a * b for a, b in zip(d, self._down, strict=True))
        f = self.focal_px
        return self.pose.width_px / 2 + f * xc / zc, self.pose.height_px / 2 + f * yc / zc

    def project(self, point: LatLon) -> tuple[float, float] | None:
        return self.project_xy(*self.frame.to_xy(point))

    def ground_xy(self, u: float, v: float) -> tuple[float, float] | None:
        """Local ground metres seen at pixel (u, v), or None at or above the horizon."""
        a, b = (u - self.pose.width_px / 2) / self.focal_px, (v - self.pose.height_px / 2) / self.focal_px
        ray = [f + a * r + b * d for f, r, d in zip(self._fwd, self._right, self._down, strict=True)]
        if ray[2] >= -1e-9:
            return None
        k = self.pose.height_m / -ray[2]
        return ray[0] * k, ray[1] * k

    def ground(self, u: float, v: float) -> LatLon | None:
        xy = self.ground_xy(u, v)
        return None if xy is None else self.frame.to_latlon(*xy)

    def in_view(self, point: LatLon) -> bool:
        x, y = self.frame.to_xy(point)
        if math.hypot(x, y) > self.pose.max_range_m:
            return False
        uv = self.project_xy(x, y)
        return uv is not None and 0 <= uv[0] < self.pose.width_px and 0 <= uv[1] < self.pose.height_px

    def ground_refs(self) -> list[GroundRef]:
        """The pose's explicit reference points, else five derived ones spread over the visible ground."""
        if self.pose.ground_refs is not None:
            return list(self.pose.ground_refs)
        w, h = self.pose.width_px, self.pose.height_px
        horizon = h / 2 - self.focal_px * math.tan(math.radians(self.pose.tilt_deg))
        top = max(0.0, horizon) + 0.15 * (h - max(0.0, horizon))
        refs: list[GroundRef] = []
        bottom = 0.95 * h
        middle = (top + h) / 2
        pixels = ((0.1 * w, top), (0.9 * w, top), (0.1 * w, bottom), (0.9 * w, bottom), (0.5 * w, middle))
        for u, v in pixels:
            p = self.ground(u, v)
            if p is not None:
                refs.append(GroundRef(u=round(u, 1), v=round(v, 1), lat=p.lat, lon=p.lon))
        if len(refs) < 4:
            raise ValueError("the camera sees too little ground for 4 reference points (tilt it down)")
        return refs


class Site(_Model):
    id: str = Field(pattern=_ID)
    name: str = ""
    kind: SiteKind = SiteKind.OTHER
    center: LatLon
    zones: list[Zone] = Field(default_factory=list)
    exits: list[Exit] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)

    def zone(self, zone_id: str) -> Zone:
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(f"no zone {zone_id!r} in site {self.id!r}")

    def exit(self, exit_id: str) -> Exit:
        for e in self.exits:
            if e.id == exit_id:
                return e
        raise KeyError(f"no exit {exit_id!r} in site {self.id!r}")

    @model_validator(mode="after")
    def _references(self) -> Site:
        zone_ids = {z.id for z in self.zones}
        exit_ids = {e.id for e in self.exits}
        for e in self.exits:
            for side in (e.from_zone, e.to_zone):
                if side is not None and side not in zone_ids:
                    raise ValueError(f"exit {e.id!r} refers to unknown zone {side!r}")
        for d in self.devices:
            if d.zone is not None and d.zone not in zone_ids:
                raise ValueError(f"device {d.id!r} refers to unknown zone {d.zone!r}")
            for z in d.covers:
                if z not in zone_ids:
                    raise ValueError(f"device {d.id!r} covers unknown zone {z!r}")
            if d.exit is not None and d.exit not in exit_ids:
                raise ValueError(f"device {d.id!r} refers to unknown exit {d.exit!r}")
            if d.camera is not None:
                for z in d.camera.sees:
                    if z not in zone_ids:
                        raise ValueError(f"camera {d.id!r} sees unknown zone {z!r}")
        return self


class PlacedDevice(_Model):
    """A device together with the site that holds it: what the ingest bridge looks up."""

    device: Device
    site_id: str


class Venue(_Model):
    id: str = Field(pattern=_ID)
    name: str = ""
    namespace: str = Field(default="beffroi", pattern=r"^[A-Za-z0-9_-]+$")
    sites: list[Site] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Venue:
        for s in self.sites:
            for what, ids in (("zone", [z.id for z in s.zones]), ("exit", [e.id for e in s.exits])):
                seen_in_site: set[str] = set()
                for i in ids:
                    if i in seen_in_site:
                        raise ValueError(f"duplicate {what} id {i!r} in site {s.id!r}")
                    seen_in_site.add(i)
        for what, ids in (
            ("site", [s.id for s in self.sites]),
            ("device", [d.id for s in self.sites for d in s.devices]),
        ):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    raise ValueError(f"duplicate {what} id {i!r}")
                seen.add(i)
        return self

    @cached_property
    def devices(self) -> dict[str, PlacedDevice]:
        return {d.id: PlacedDevice(device=d, site_id=s.id) for s in self.sites for d in s.devices}

    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(f"no site {site_id!r} in venue {self.id!r}")

    def to_yaml(self) -> str:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: ~20x faster on big venues
        return yaml.dump(
            self.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
            Dumper=dumper,
            sort_keys=False,
            allow_unicode=True,
            width=120,
        )


def load_venue(path: Path | str) -> Venue:
    """Load and validate a venue file; errors name the file and line."""
    return load_model(Venue, path)


def dump_venue(venue: Venue, path: Path | str) -> None:
    Path(path).write_text(venue.to_yaml(), encoding="utf-8")
