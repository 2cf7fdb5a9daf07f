"""The thin slice end to end, in both modes, through one code path (`tower.runtime.compose`):

a sensor publishes a panic press -> the bridge validates it -> the bus -> the worker's threshold
rule -> the store -> GET /sites/{id}/alerts returns the alert and the SSE stream pushes it live.
stack: Mosquitto (QoS 1) -> Kafka -> PostgreSQL.  embedded: in-process source, MemoryBus, SQLite.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from beffroi.devices import DeviceKind
from ingest.mqtt_source import end_session, open_session
from simulators.publish import MqttPublisher, Publisher
from tests.fixtures.api import token_for, with_auth
from tower.runtime import ApiService, Runtime, compose
from tower.settings import Settings
from tower.testing import isolated, payload, provision_devices, tiny_venue, unique


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["embedded", pytest.param("stack", marks=pytest.mark.integration)])
def slice_settings(request, tmp_path) -> Iterator[Settings]:
    api = {"host": "127.0.0.1", "port": free_port()}
    if request.param == "embedded":
        settings = Settings(sqlite={"path": tmp_path / "slice.db"}, api=api)
        yield settings.model_copy(update={"mode": "embedded"})  # whatever BEFFROI_MODE says
        return
    base: Settings = request.getfixturevalue("stack_settings")
    settings = isolated(base.model_copy(update={"api": base.api.model_copy(update=api)}))
    open_session(settings.mqtt)
    yield settings
    end_session(settings.mqtt)


@dataclass
class Slice:
    rt: Runtime
    publisher: Publisher
    site: str
    headers: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://{self.rt.settings.api.host}:{self.rt.settings.api.port}"


@pytest.fixture
def running(slice_settings) -> Iterator[Slice]:
    site = unique("site-")
    venue = tiny_venue({f"{site}-pb": DeviceKind.PANIC_BUTTON, f"{site}-aq": "air_quality"}, site_id=site)
    rt = compose(with_auth(slice_settings), venue=venue)
    if slice_settings.mode == "stack":
        provision_devices(slice_settings, venue.devices)
        publisher: Publisher = MqttPublisher(slice_settings.mqtt)
    else:
        assert rt.publisher is not None
        publisher = rt.publisher
    with rt:
        api = next(s for s in rt.services if isinstance(s, ApiService))
        deadline = time.monotonic() + 30
        while not api.started and time.monotonic() < deadline:
            time.sleep(0.05)
        # an operator of every site, signed in with a bearer token from the API's own issuer
        headers = {"Authorization": f"Bearer {token_for(api.app, 'alice')}"}
        yield Slice(rt, publisher, site, headers)
        publisher.close()


def test_a_panic_press_reaches_the_operator_by_get_and_by_sse(running):
    rt, publisher, site = running.rt, running.publisher, running.site
    timeout = httpx.Timeout(10.0, read=45.0)
    with httpx.Client(base_url=running.base_url, headers=running.headers, timeout=timeout) as http:
        empty = http.get(f"/sites/{site}/alerts").json()
        assert (empty["site_id"], empty["count"], empty["alerts"]) == (site, 0, [])
        with http.stream("GET", f"/sites/{site}/alerts/stream") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith(":")  # the stream is registered: publish now
            publisher.publish(f"{site}-aq", payload(f"{site}-aq", {"pm25": 20.0, "co": 1.0}))
            publisher.publish(f"{site}-pb", payload(f"{site}-pb", {"pressed": 1}))
            publisher.flush(timeout=30)
            event = _next_event(lines)
        assert event["event"] == "alert"
        pushed = json.loads(event["data"])
        assert (pushed["site_id"], pushed["device_id"], pushed["rule"]) == (
            site,
            f"{site}-pb",
            "panic-button",
        )
        assert pushed["severity"] == "critical"
        assert event["id"] == pushed["alert_id"]

        page = http.get(f"/sites/{site}/alerts").json()
        assert page["count"] == 1
        assert page["alerts"][0]["alert_id"] == pushed["alert_id"]
        assert http.get(f"/sites/{site}/alerts", params={"status": "resolved"}).json()["count"] == 0
    assert rt.worker is not None
    assert rt.worker.store.count_readings(site) == 2


def _next_event(lines: Iterator[str]) -> dict[str, str]:
    event: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if event:
                return event
            continue
        key, _, value = line.partition(":")
        event[key] = value.strip()
    raise AssertionError("the stream ended without an event")


def test_bad_queries_get_a_4xx_with_a_reason(running):
    site = running.site
    with httpx.Client(base_url=running.base_url, headers=running.headers, timeout=10) as http:
        unknown = http.get("/sites/nowhere/alerts")
        assert unknown.status_code == 404
        assert "unknown site 'nowhere'" in unknown.json()["reason"]
        cases = {
            "limit=0": "limit",
            "limit=abc": "limit",
            "status=lost": "status",
            "since=2024-07-26T19:30:00": "since",  # no time zone
            "since=yesterday": "since",
        }
        for query, key in cases.items():
            r = http.get(f"/sites/{site}/alerts?{query}")
            assert r.status_code == 422, query
            body = r.json()
            assert body["error"] == "invalid_request"
            assert key in body["reason"], body
        assert http.get("/sites/Not A Site/alerts").status_code == 422
        health = http.get("/health").json()
        assert health["status"] == "ok"
        assert health["mode"] == running.rt.settings.mode
        assert health["alert_feed"]["ok"]
        assert health["store"]["ok"]
