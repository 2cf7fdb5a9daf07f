"""The alerts API on a SQLite store: filters, ordering, and 4xx answers with a reason."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest

from analytics.rules.registry import build_rules
from api.app import create_app
from beffroi.clock import parse_iso
from beffroi.devices import DeviceKind
from beffroi.events import AlertStatus
from beffroi.identity import Role
from beffroi.sqlite_store import SqliteStore
from tests.fixtures.api import signed_in, with_auth
from tower.settings import Settings
from tower.testing import alert_on_every_reading, reading, tiny_venue

with warnings.catch_warnings():
    # starlette now asks for `httpx2`, which is not among our dependencies; httpx works as before
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

T0 = parse_iso("2024-07-26T19:30:00+00:00")


@pytest.fixture
def client(tmp_path):
    store = SqliteStore(tmp_path / "api.db")
    store.migrate()
    panic = next(r for r in build_rules(alert_on_every_reading().worker.rules) if r.name == "panic-button")
    presses = [
        reading("pb-1", {"pressed": 1}, kind=DeviceKind.PANIC_BUTTON, ts=T0 + timedelta(minutes=i))
        for i in range(5)
    ]
    alerts = panic.evaluate(presses)
    store.write_alerts([alerts[0].model_copy(update={"status": AlertStatus.RESOLVED}), *alerts[1:]])
    app = create_app(
        with_auth(Settings()),
        store=store,
        venue=tiny_venue({"pb-1": "panic_button"}),
        live_alerts=False,
    )
    with TestClient(app) as c:
        yield signed_in(c, "viewer", role=Role.VIEWER)
    store.close()


def test_alerts_newest_first_with_filters(client):
    page = client.get("/sites/site-1/alerts").json()
    assert page["count"] == 5
    assert [a["raised_at"] for a in page["alerts"]] == sorted(
        (a["raised_at"] for a in page["alerts"]), reverse=True
    )
    assert client.get("/sites/site-1/alerts", params={"limit": 2}).json()["count"] == 2
    since = (T0 + timedelta(minutes=3)).isoformat()
    assert client.get("/sites/site-1/alerts", params={"since": since}).json()["count"] == 2
    assert client.get("/sites/site-1/alerts", params={"status": "resolved"}).json()["count"] == 1
    assert client.get("/sites/site-1/alerts", params={"zone": "elsewhere"}).json()["count"] == 0


def test_errors_are_4xx_with_a_reason(client):
    r = client.get("/sites/site-9/alerts")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "reason": "unknown site 'site-9' (venue 'test' has 1 sites)"}
    r = client.get("/sites/site-1/alerts", params={"limit": 5000})
    assert r.status_code == 422
    assert r.json()["reason"].startswith("query.limit: Input should be less than or equal to 1000")
    r = client.get("/sites/site-1/alerts/stream")
    assert r.status_code == 503
    assert "without a bus" in r.json()["reason"]
    r = client.post("/sites/site-1/alerts")
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
