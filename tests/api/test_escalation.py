"""Escalation of alerts nobody acknowledged, on a fake clock: the escalator over a real store, and
the API's periodic task pushing each escalation on the live stream (the store's side, both
dialects and two processes racing, is in tests/contract/test_store_contract.py)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.escalation import EscalationSettings, Escalator
from beffroi.events import AlertStatus, Severity
from beffroi.identity import AuditKind
from beffroi.sqlite_store import SqliteStore
from beffroi.store import Escalation
from tests.fixtures.api import signed_in
from tests.fixtures.store import make_alert


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "escalation.db") as s:
        s.migrate()
        yield s


def test_the_escalator_escalates_what_is_due_on_its_clock_and_announces_it(store):
    high, low = make_alert(severity=Severity.HIGH), make_alert(severity=Severity.LOW)
    store.write_alerts([high, low])
    clock = FakeClock(high.raised_at)
    announced: list[Escalation] = []
    settings = EscalationSettings(after_s={Severity.HIGH: 120.0, Severity.LOW: 600.0})
    escalator = Escalator(store, settings, clock=clock, on_escalated=announced.append)
    assert escalator.run_once() == []
    clock.now += timedelta(seconds=120)
    [first] = escalator.run_once()
    assert (first.alert_id, first.from_severity, first.to_severity) == (
        high.alert_id,
        Severity.HIGH,
        Severity.CRITICAL,
    )
    assert escalator.run_once() == [], "once per level"
    assert announced == [first]
    clock.now += timedelta(seconds=600)
    assert [e.alert_id for e in escalator.run_once()] == [low.alert_id], "critical: not after 600 s"
    off = Escalator(store, EscalationSettings(enabled=False), clock=FakeClock(clock.now + timedelta(days=9)))
    assert off.run_once() == []


def test_escalation_settings_refuse_unknown_severities():
    with pytest.raises(ValueError, match="after_s"):
        EscalationSettings.model_validate({"after_s": {"urgent": 10}})


@pytest.fixture
def api_settings(api_settings):
    escalation = EscalationSettings(after_s={Severity.CRITICAL: 60.0}, check_every_s=0.02)
    return api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"escalation": escalation})}
    )


def test_the_api_escalates_on_its_clock_and_pushes_a_case_event(demo_slice):
    demo_slice.publish("panic-nord", {"pressed": 1})
    demo_slice.drain()
    [alert] = demo_slice.alerts("stade-demo")
    assert (alert.severity, alert.status) == (Severity.CRITICAL, AlertStatus.NEW)
    clock = FakeClock(alert.raised_at)
    app = create_app(
        demo_slice.settings, store=demo_slice.store, bus=demo_slice.bus, venue=demo_slice.venue, clock=clock
    )
    with TestClient(app) as client:
        signed_in(client)
        pushed: list[tuple[str, str]] = []
        arrived = threading.Event()

        def push(site: str, item) -> None:
            pushed.append((site, item.event.decode()))
            arrived.set()

        app.state.feed.push = push
        url = f"/sites/stade-demo/alerts/{alert.alert_id}"
        assert client.get(url).json()["escalations"] == 0
        clock.now = alert.raised_at + timedelta(seconds=60)
        assert arrived.wait(timeout=10), "the periodic task escalated nothing"
        case = client.get(url).json()
        assert (case["escalations"], case["alert"]["severity"]) == (1, "critical")
        [(site, event)] = pushed
        assert site == "stade-demo"
        assert "event: case" in event
        assert '"escalations":1' in event
        [record] = app.state.identity.list_audit(kind=AuditKind.ALERT_ESCALATED)
        assert (record.target, record.site_id) == (alert.alert_id, "stade-demo")
