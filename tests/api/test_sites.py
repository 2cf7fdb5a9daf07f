"""The sites resource: the venue's sites with their open alerts, and one site placed for the map."""

from __future__ import annotations

import itertools
import math

import pytest

from beffroi.events import AlertStatus, LatLon
from beffroi.venue import Device, Exit, Site, Venue, Zone
from tests.fixtures.store import make_alert

EARTH_M_PER_DEG = math.pi / 180 * 6_371_000


def rect_area_m2(south: float, west: float, north: float, east: float) -> float:
    mid = math.radians((south + north) / 2)
    return (east - west) * EARTH_M_PER_DEG * math.cos(mid) * (north - south) * EARTH_M_PER_DEG


def signed_area(ring: list[list[float]]) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring)) / 2


def test_the_list_counts_open_alerts_only(api_client, demo_slice):
    [site] = api_client.get("/sites").json()["sites"]
    assert site == {
        "id": "stade-demo",
        "name": "Stade (demo)",
        "kind": "stadium",
        "center": {"lat": 48.9245, "lon": 2.3602},
        "zones": 3,
        "exits": 3,
        "devices": 10,
        "open_alerts": 0,
    }
    demo_slice.publish("panic-nord", {"pressed": 1})  # through the bridge and the worker
    demo_slice.drain()
    demo_slice.store.write_alerts(
        [
            make_alert(site_id="stade-demo", zone_id="parvis", status=AlertStatus.ACKNOWLEDGED),
            make_alert(site_id="stade-demo", zone_id="parvis", status=AlertStatus.IN_PROGRESS),
            make_alert(site_id="stade-demo", zone_id="parvis", status=AlertStatus.RESOLVED),
            make_alert(site_id="stade-demo", zone_id="parvis", status=AlertStatus.CLOSED),
            make_alert(site_id="elsewhere", status=AlertStatus.NEW),
        ]
    )
    body = api_client.get("/sites").json()
    assert (body["venue_id"], body["venue_name"], body["count"]) == ("demo", "Beffroi demo venue", 1)
    assert body["sites"][0]["open_alerts"] == 3
    assert api_client.get("/sites/stade-demo").json()["open_alerts"] == 3


def test_zones_are_geojson_with_area_and_capacity(api_client, demo_venue):
    zones = api_client.get("/sites/stade-demo").json()["zones"]
    assert zones["type"] == "FeatureCollection"
    assert zones["bbox"] == pytest.approx([2.3585, 48.923, 2.362, 48.9258])
    by_id = {f["id"]: f for f in zones["features"]}
    assert list(by_id) == ["parvis", "tribune-nord", "tribune-sud"]
    parvis = by_id["parvis"]
    assert parvis["type"] == "Feature"
    assert parvis["geometry"]["type"] == "Polygon"
    [ring] = parvis["geometry"]["coordinates"]
    assert ring[0] == ring[-1], "a GeoJSON ring is closed"
    assert len(ring) == 5
    assert signed_area(ring) > 0, "RFC 7946: exterior rings are counter-clockwise"
    venue_points = {(p.lon, p.lat) for p in demo_venue.site("stade-demo").zone("parvis").polygon}
    assert {tuple(p) for p in ring} == venue_points, "positions are [lon, lat]"
    props = parvis["properties"]
    assert props["name"] == "Parvis (forecourt)"
    assert props["capacity"] == 8000
    assert props["area_m2"] == pytest.approx(rect_area_m2(48.923, 2.3585, 48.9238, 2.362), rel=0.005)
    assert props["centroid"] == pytest.approx({"lat": 48.9234, "lon": 2.36025})
    assert by_id["tribune-nord"]["properties"]["capacity"] == 20000


def test_exits_and_devices_are_placed_and_say_from_where(api_client):
    site = api_client.get("/sites/stade-demo").json()
    exits = {e["id"]: e for e in site["exits"]}
    # Porte A has no surveyed point, but gate-a counts it and has one
    assert exits["porte-a"]["position"] == {"lat": 48.9231, "lon": 2.3602}
    assert exits["porte-a"]["placed"] == "device"
    assert exits["porte-a"]["capacity_per_min"] == pytest.approx(6.0 * 82)
    assert (exits["porte-n"]["from_zone"], exits["porte-n"]["to_zone"]) == ("parvis", "tribune-nord")
    assert exits["porte-n"]["position"] is None
    assert exits["porte-n"]["placed"] is None
    devices = {d["id"]: d for d in site["devices"]}
    assert len(devices) == 10
    assert devices["fence-east"]["position"] == {"lat": 48.9234, "lon": 2.3621}
    assert devices["fence-east"]["placed"] == "surveyed"
    assert devices["panic-nord"]["placed"] == "zone"
    assert devices["panic-nord"]["position"] == pytest.approx({"lat": 48.9254, "lon": 2.36025})
    assert devices["gate-n"]["placed"] == "zone", "its exit has no position: its zone's centre"
    assert devices["panic-nord"]["kind"] == "panic_button"
    assert devices["panic-nord"]["model"] == "beffroi.panic_button.v1"


def test_rings_are_normalised_and_cells_sit_between_the_zones_they_cover(make_api_client):
    square = [(48.0, 2.0), (48.0, 2.001), (48.001, 2.001), (48.001, 2.0)]
    clockwise = [LatLon(lat=lat, lon=lon) for lat, lon in reversed(square)]
    closed = [LatLon(lat=lat, lon=lon) for lat, lon in [*square, square[0]]]
    east = [LatLon(lat=lat, lon=lon + 0.002) for lat, lon in square]
    venue = Venue(
        id="v",
        sites=[
            Site(
                id="s",
                center=LatLon(lat=48.0005, lon=2.0015),
                zones=[
                    Zone(id="cw", polygon=clockwise, capacity=10),
                    Zone(id="closed", polygon=closed, capacity=10),
                    Zone(id="east", polygon=east, capacity=10, area_m2=1234.5),
                ],
                exits=[Exit(id="x", width_m=2.0, from_zone="cw")],
                devices=[Device(id="cell-1", kind="telco_cell", covers=["cw", "east"], min_count=20)],
            )
        ],
    )
    site = make_api_client(venue).get("/sites/s").json()
    rings = {f["id"]: f["geometry"]["coordinates"][0] for f in site["zones"]["features"]}
    for zone_id in ("cw", "closed"):
        assert len(rings[zone_id]) == 5, zone_id
        assert signed_area(rings[zone_id]) > 0, zone_id
    areas = {f["id"]: f["properties"]["area_m2"] for f in site["zones"]["features"]}
    assert areas["east"] == 1234.5, "a surveyed area wins over the polygon's"
    assert areas["cw"] == pytest.approx(rect_area_m2(48.0, 2.0, 48.001, 2.001), rel=0.005)
    [cell] = site["devices"]
    assert cell["placed"] == "covers"
    assert cell["position"] == pytest.approx({"lat": 48.0005, "lon": 2.0015})
    assert site["exits"][0]["position"] is None


def test_unknown_sites_are_404_with_a_reason(api_client):
    r = api_client.get("/sites/nowhere")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "reason": "unknown site 'nowhere' (venue 'demo' has 1 sites)"}
    r = api_client.get("/sites/Not A Site")
    assert r.status_code == 422
    assert r.json()["reason"].startswith("path.site_id: String should match pattern")


def test_without_a_venue_there_are_no_sites(make_api_client):
    client = make_api_client(None)
    assert client.get("/sites").json() == {"venue_id": None, "venue_name": None, "count": 0, "sites": []}
    r = client.get("/sites/stade-demo")
    assert r.status_code == 404
    assert (
        r.json()["reason"] == "unknown site 'stade-demo': this API has no venue (settings.venue is not set)"
    )
