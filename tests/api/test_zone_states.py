"""GET /sites/{id}/zone-states: the newest zone state of each zone, from the video pipeline's topic."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient

from tower.testing import T0, zone_series, zone_state


def _wait_for(client: TestClient, url: str, count: int) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, object] = client.get(url).json()
        if body["count"] == count or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_the_newest_state_of_each_zone_of_the_site_only(api_client, demo_slice):
    parvis = zone_series([1.0, 2.5, 4.2], zone_id="parvis", site_id="stade-demo")
    nord = [zone_state(0.4, ts=T0, zone_id="tribune-nord", site_id="stade-demo")]
    late_old = [zone_state(0.1, ts=T0 - timedelta(minutes=5), zone_id="parvis", site_id="stade-demo")]
    other = [zone_state(3.0, zone_id="parvis", site_id="fan-demo")]
    demo_slice.publish_zone_states([*parvis, *nord, *late_old, *other])
    body = _wait_for(api_client, "/sites/stade-demo/zone-states", 2)
    assert (body["site_id"], body["live"], body["count"]) == ("stade-demo", True, 2)
    states = {s["zone_id"]: s for s in body["states"]}  # type: ignore[attr-defined]
    assert list(states) == ["parvis", "tribune-nord"]
    assert states["parvis"]["density"] == 4.2, "an older state arriving late does not replace a newer one"
    assert states["parvis"]["los"] == "E"
    assert states["tribune-nord"]["los"] == "A"


def test_without_a_bus_there_is_nothing_live(make_api_client, demo_venue):
    client = make_api_client(demo_venue)
    body = client.get("/sites/stade-demo/zone-states").json()
    assert body == {"site_id": "stade-demo", "live": False, "count": 0, "states": []}
    assert client.get("/sites/nowhere/zone-states").status_code == 404
