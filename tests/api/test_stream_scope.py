"""The live stream, signed in with the map page's cookie: a user's stream carries their site's alerts
and never another site's, and it cannot be opened on a site outside theirs."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time

import httpx

from beffroi.identity import Role
from tests.fixtures.api import add_user, token_for, with_fan_zone

PASSWORD = "correct horse battery staple"


def test_a_stream_carries_only_the_users_site(make_live_api, demo_venue):
    live = make_live_api(with_fan_zone(demo_venue))
    add_user(live.app, "olga", role=Role.VIEWER, sites=("fan-demo",), password=PASSWORD)
    with httpx.Client(base_url=live.base_url, timeout=10) as client:
        r = client.post("/auth/session", data={"username": "olga", "password": PASSWORD})
        assert r.status_code == 200
        assert client.get("/sites/stade-demo/alerts/stream").status_code == 404
        events: queue.Queue[dict] = queue.Queue()
        opened = threading.Event()

        def listen() -> None:
            with client.stream("GET", "/sites/fan-demo/alerts/stream") as stream:
                for line in stream.iter_lines():
                    opened.set()
                    if line.startswith("data: "):
                        events.put(json.loads(line[6:]))
                        return

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert opened.wait(10), "the stream did not open"
        live.slice.publish("panic-nord", {"pressed": 1})  # stade-demo: not olga's
        live.slice.drain()
        live.slice.publish("panic-fz", {"pressed": 1})
        live.slice.drain()
        [theirs] = live.slice.alerts("fan-demo")
        first = events.get(timeout=10)
        assert (first["site_id"], first["alert_id"]) == ("fan-demo", theirs.alert_id)
        reader.join(timeout=5)


def test_actions_are_pushed_on_the_stream_as_case_events(make_live_api, demo_venue):
    live = make_live_api(demo_venue)
    add_user(live.app, "olga", role=Role.OPERATOR, sites=("stade-demo",), password=PASSWORD)
    live.slice.publish("panic-nord", {"pressed": 1})
    live.slice.drain()
    [alert] = live.slice.alerts("stade-demo")
    with httpx.Client(base_url=live.base_url, timeout=10) as client:
        assert (
            client.post("/auth/session", data={"username": "olga", "password": PASSWORD}).status_code == 200
        )
        events: queue.Queue[tuple[str, dict]] = queue.Queue()
        opened = threading.Event()

        def listen() -> None:
            kind = ""
            with client.stream("GET", "/sites/stade-demo/alerts/stream") as stream:
                for line in stream.iter_lines():
                    opened.set()
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.put((kind, json.loads(line[6:])))
                        return

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert opened.wait(10)
        r = client.post(f"/sites/stade-demo/alerts/{alert.alert_id}/actions", json={"action": "acknowledge"})
        assert r.status_code == 200
        kind, case = events.get(timeout=10)
        assert kind == "case"
        assert (case["alert"]["alert_id"], case["alert"]["status"], case["owner"]) == (
            alert.alert_id,
            "acknowledged",
            "olga",
        )
        reader.join(timeout=5)


def test_a_stream_is_pinged_and_ends_with_its_client(live_api):
    token = token_for(live_api.app, "vic", role=Role.VIEWER, sites=("stade-demo",))
    feed = live_api.app.state.feed
    feed.ping_s = 0.05  # the feed pings every stream at once
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=live_api.base_url, timeout=10, headers=headers) as client,
        client.stream("GET", "/sites/stade-demo/alerts/stream") as stream,
    ):
        assert stream.headers["cache-control"] == "no-store"
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        lines = stream.iter_lines()
        assert next(lines) == ": watching alerts of stade-demo"
        assert feed.listeners() == 1
        assert ": ping" in itertools.islice(lines, 10)
    deadline = time.monotonic() + 10
    while feed.listeners() and time.monotonic() < deadline:  # the server sees the client go
        time.sleep(0.02)
    assert feed.listeners() == 0
