"""The venue model: sites, zones (WGS84 polygons), exits and placed devices.

A venue file is YAML validated by `Venue`; `beffroi validate FILE` checks it with line numbers.
"""

from __future__ import annotations

import math
from enum import StrEnum
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, model_validator

from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.events import LatLon

_ID = r"^[a-z0-9][a-z0-9_-]*$"
EARTH_RADIUS_M = 6_371_008.8


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteKind(StrEnum):
    STADIUM = "stadium"
    FAN_ZONE = "fan_zone"
    TRANSIT_HUB = "transit_hub"
    RIVERSIDE = "riverside"
    ARENA = "arena"
    OTHER = "other"


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
    polygon: list[LatLon] = Field(min_length=3)
    area_m2: float | None = Field(default=None, gt=0)
    capacity: int = Field(ge=0)

    @property
    def area(self) -> float:
        return self.area_m2 if self.area_m2 is not None else polygon_area_m2(self.polygon)


class Exit(_Model):
    """A gate, exit or walkway between two zones; `None` on a side means outside the site."""

    id: str = Field(pattern=_ID)
    name: str = ""
    width_m: float = Field(gt=0, le=200)
    from_zone: str | None = None
    to_zone: str | None = None
    location: LatLon | None = None


class CameraPose(_Model):
    height_m: float = Field(gt=0, le=300)
    heading_deg: float = Field(ge=0, lt=360)
    tilt_deg: float = Field(ge=0, le=90, description="downward angle from the horizon")
    fov_deg: float = Field(gt=0, lt=180)
    sees: list[str] = Field(default_factory=list, description="zone ids in view")


class Device(_Model):
    id: str = Field(pattern=_ID, max_length=64)
    kind: DeviceKind
    zone: str | None = None
    exit: str | None = None
    location: LatLon | None = None
    camera: CameraPose | None = None

    @property
    def model(self) -> str:
        return KIND_SPECS[self.kind].model

    @model_validator(mode="after")
    def _camera_pose(self) -> Device:
        if (self.kind is DeviceKind.CAMERA) != (self.camera is not None):
            raise ValueError("a camera needs a `camera` pose, and only cameras have one")
        return self


class Site(_Model):
    id: str = Field(pattern=_ID)
    name: str = ""
    kind: SiteKind = SiteKind.OTHER
    center: LatLon
    zones: list[Zone] = Field(default_factory=list)
    exits: list[Exit] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)

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
