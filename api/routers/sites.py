"""Sites of the venue: GET the list (with open-alert counts), or one site's geometry for the live map.

A site's zones come as a GeoJSON FeatureCollection (RFC 7946: [lon, lat] positions, closed rings
wound counter-clockwise); exits and devices come with the position the map draws them at, and
`placed` says where that position comes from (surveyed, or borrowed from an exit, a device or a zone).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from api.access import Viewer, ViewSite
from api.deps import StoreDep, VenueDep
from beffroi.devices import DeviceKind
from beffroi.events import LatLon
from beffroi.store import Store
from beffroi.venue import Device, Exit, ExitKind, Site, SiteKind, Zone, ZoneKind

router = APIRouter(tags=["sites"])

Placement = Literal["surveyed", "device", "exit", "zone", "covers"]
Position = tuple[float, float]  # GeoJSON: [lon, lat]


class SiteSummary(BaseModel):
    id: str
    name: str
    kind: SiteKind
    center: LatLon
    zones: int
    exits: int
    devices: int
    open_alerts: int


class SiteList(BaseModel):
    venue_id: str | None
    venue_name: str | None
    count: int
    sites: list[SiteSummary]


class PolygonGeometry(BaseModel):
    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[Position]]


class ZoneProperties(BaseModel):
    id: str
    name: str
    kind: ZoneKind
    area_m2: float
    capacity: int
    centroid: LatLon


class ZoneFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PolygonGeometry
    properties: ZoneProperties


class ZoneCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    bbox: tuple[float, float, float, float] | None
    """[west, south, east, north] of every zone; None for a site without zones."""
    features: list[ZoneFeature]


class ExitOut(BaseModel):
    id: str
    name: str
    kind: ExitKind
    width_m: float
    capacity_per_min: float
    """Persons per minute, both directions together: width x maximum specific flow."""
    from_zone: str | None
    to_zone: str | None
    position: LatLon | None
    placed: Literal["surveyed", "device"] | None


class DeviceOut(BaseModel):
    id: str
    kind: DeviceKind
    model: str
    zone: str | None
    exit: str | None
    covers: list[str]
    position: LatLon | None
    placed: Placement | None


class SiteDetail(BaseModel):
    id: str
    name: str
    kind: SiteKind
    center: LatLon
    open_alerts: int
    zones: ZoneCollection
    exits: list[ExitOut]
    devices: list[DeviceOut]


def open_alert_count(store: Store, site_id: str) -> int:
    """Alerts of the site not yet resolved or closed (beffroi.events.OPEN_ALERT_STATUSES)."""
    return store.count_alerts(site_id, is_open=True)


@router.get("/sites")
def list_sites(principal: Viewer, venue: VenueDep, store: StoreDep) -> SiteList:
    """The user's sites of the venue with their open alerts (new, acknowledged or in progress)."""
    if venue is None:
        return SiteList(venue_id=None, venue_name=None, count=0, sites=[])
    sites = [
        SiteSummary(
            id=s.id,
            name=s.name or s.id,
            kind=s.kind,
            center=s.center,
            zones=len(s.zones),
            exits=len(s.exits),
            devices=len(s.devices),
            open_alerts=open_alert_count(store, s.id),
        )
        for s in venue.sites
        if principal.sees(s.id)
    ]
    return SiteList(venue_id=venue.id, venue_name=venue.name or venue.id, count=len(sites), sites=sites)


@router.get("/sites/{site_id}")
def get_site(scope: ViewSite, venue: VenueDep, store: StoreDep) -> SiteDetail:
    """The site's zones (GeoJSON), exits and devices, placed for the map."""
    site_id = scope.site_id
    if venue is None:
        raise HTTPException(
            404, f"unknown site {site_id!r}: this API has no venue (settings.venue is not set)"
        )
    site = venue.site(site_id)
    exits = [_exit_out(e, site) for e in site.exits]
    exit_positions = {e.id: e.position for e in exits}
    zone_centroids = {z.id: z.centroid for z in site.zones}
    return SiteDetail(
        id=site.id,
        name=site.name or site.id,
        kind=site.kind,
        center=site.center,
        open_alerts=open_alert_count(store, site.id),
        zones=ZoneCollection(bbox=_bbox(site.zones), features=[_zone_feature(z) for z in site.zones]),
        exits=exits,
        devices=[_device_out(d, exit_positions, zone_centroids) for d in site.devices],
    )


def _ring(polygon: list[LatLon]) -> list[Position]:
    points = list(polygon)
    if len(points) > 3 and points[0] == points[-1]:
        points.pop()
    ring = [(p.lon, p.lat) for p in points]
    signed = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True))
    if signed < 0:  # RFC 7946: exterior rings are counter-clockwise
        ring.reverse()
    return [*ring, ring[0]]


def _zone_feature(zone: Zone) -> ZoneFeature:
    return ZoneFeature(
        id=zone.id,
        geometry=PolygonGeometry(coordinates=[_ring(zone.polygon)]),
        properties=ZoneProperties(
            id=zone.id,
            name=zone.name or zone.id,
            kind=zone.kind,
            area_m2=round(zone.area, 1),
            capacity=zone.capacity,
            centroid=zone.centroid,
        ),
    )


def _bbox(zones: list[Zone]) -> tuple[float, float, float, float] | None:
    points = [p for z in zones for p in z.polygon]
    if not points:
        return None
    lons, lats = [p.lon for p in points], [p.lat for p in points]
    return min(lons), min(lats), max(lons), max(lats)


def _exit_out(exit_: Exit, site: Site) -> ExitOut:
    position = exit_.location
    placed: Literal["surveyed", "device"] | None = "surveyed" if position is not None else None
    if position is None:
        counted = next((d for d in site.devices if d.exit == exit_.id and d.location is not None), None)
        if counted is not None:
            position, placed = counted.location, "device"
    return ExitOut(
        id=exit_.id,
        name=exit_.name or exit_.id,
        kind=exit_.kind,
        width_m=exit_.width_m,
        capacity_per_min=round(exit_.width_m * exit_.max_specific_flow, 1),
        from_zone=exit_.from_zone,
        to_zone=exit_.to_zone,
        position=position,
        placed=placed,
    )


def _device_out(
    device: Device, exit_positions: dict[str, LatLon | None], zone_centroids: dict[str, LatLon]
) -> DeviceOut:
    position: LatLon | None = None
    placed: Placement | None = None
    if device.location is not None:
        position, placed = device.location, "surveyed"
    elif device.exit is not None and exit_positions.get(device.exit) is not None:
        position, placed = exit_positions[device.exit], "exit"
    elif device.zone is not None:
        position, placed = zone_centroids[device.zone], "zone"
    elif device.covers:
        points = [zone_centroids[z] for z in device.covers]
        position = LatLon(
            lat=sum(p.lat for p in points) / len(points), lon=sum(p.lon for p in points) / len(points)
        )
        placed = "covers"
    return DeviceOut(
        id=device.id,
        kind=device.kind,
        model=device.model,
        zone=device.zone,
        exit=device.exit,
        covers=list(device.covers),
        position=position,
        placed=placed,
    )
