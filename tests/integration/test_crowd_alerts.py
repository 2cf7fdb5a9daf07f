"""Crowd alerts on the real stack: zone states on Kafka -> crowd worker -> PostgreSQL and the alerts topic.

Also shows that a second consumer group replaying every zone state from the start stores nothing new:
its rules rebuild the same episodes, so the alert ids are the same.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from analytics.crowd_worker import CrowdWorker
from analytics.vision.publish import ZoneStatePublisher
from beffroi.bus_factory import make_bus
from beffroi.store_factory import make_store
from tower.settings import Settings
from tower.testing import collect, isolated, unique, zone_series

pytestmark = pytest.mark.integration


def run_until(worker: CrowdWorker, *, states: int, deadline_s: float = 60.0) -> None:
    """Poll until `states` zone states were processed (a Kafka group takes a moment to join)."""
    end = time.monotonic() + deadline_s
    while worker.stats.states < states and time.monotonic() < end:
        worker.run_once(timeout_s=1.0)
    assert worker.stats.states == states, worker.stats.summary()


def test_zone_states_on_kafka_raise_alerts_in_postgres_once(stack_settings: Settings):
    settings = isolated(stack_settings, name="crowd")
    site = unique("site-")
    states = zone_series([4.0] * 20 + [5.5] * 40, site_id=site, gates={"exit-1": (4.0, 95.0)})
    with make_bus(settings) as bus, make_store(settings) as store:
        store.migrate()
        publisher = ZoneStatePublisher(bus, settings.kafka.topic("zone_state"))
        publisher.publish(states)
        publisher.flush()
        first = CrowdWorker.from_settings(settings, bus=bus, store=store)
        try:
            run_until(first, states=len(states))
        finally:
            first.close()
        alerts = store.list_alerts(site, limit=100)
        assert sorted((a.rule, a.severity.value) for a in alerts) == [
            ("gate-flow", "high"),
            ("gate-flow", "medium"),
            ("zone-density", "critical"),
            ("zone-density", "high"),
        ]
        published = collect(bus, settings.kafka.topic("alerts"), expect=4)
        assert sorted(r.header("alert_id") or b"" for r in published) == sorted(
            a.alert_id.encode() for a in alerts
        )

        config = dataclasses.replace(first.config, group=f"{settings.kafka.topic_prefix}replay")
        replay = CrowdWorker(bus=bus, store=store, rules=first.rules, config=config)
        try:
            run_until(replay, states=len(states))
        finally:
            replay.close()
        assert replay.stats.alerts == 4
        assert replay.stats.new_alerts == 0
        assert len(store.list_alerts(site, limit=100)) == 4
