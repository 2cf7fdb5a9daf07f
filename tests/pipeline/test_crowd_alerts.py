"""Zone states on the zone_state topic -> crowd worker -> alerts in the store and on the alerts topic."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from analytics.consumer import WorkerError
from analytics.crowd_worker import CrowdWorker
from beffroi.sqlite_store import SqliteStore
from beffroi.store import StoreError
from beffroi.yamlconf import ConfigError
from tower.runtime import compose
from tower.settings import Settings, load_settings
from tower.testing import T0, pipeline, tiny_venue, zone_series

CRUSH = [4.0] * 20 + [5.5] * 30  # warning level from the start, critical from t=20 s


def test_zone_states_on_the_bus_become_stored_and_published_alerts():
    with pipeline({}) as p:
        p.publish_zone_states(zone_series(CRUSH))
        p.drain()
        critical, warning = p.alerts()
        assert (critical.severity, warning.severity) == ("critical", "high")
        assert (critical.rule, critical.zone_id) == ("zone-density", "zone-1")
        assert critical.raised_at == T0 + timedelta(seconds=35)
        published = [r.header("alert_id") or b"" for r in p.topic("alerts")]
        assert sorted(published) == sorted(a.alert_id.encode() for a in (critical, warning))
        assert p.crowd is not None
        assert p.crowd.stats.states == 50


def test_every_zone_rule_runs_by_default():
    rising = [2.0 + 0.6 * i / 60 for i in range(300)]  # 2.0 -> 5.0 in 5 minutes
    gate = {"exit-1": (4.0, 90.0)}
    with pipeline({}) as p:
        p.publish_zone_states(zone_series(rising, gates=gate))
        p.drain()
        assert {a.rule for a in p.alerts()} == {"zone-density", "density-trend", "gate-flow"}


def test_a_batch_processed_twice_stores_nothing_twice():
    with pipeline({}) as p:
        p.publish_zone_states(zone_series(CRUSH))
        p.drain()
        assert p.crowd is not None
        # a crash after the store write, before the commit: the same records again, from the same state
        fresh = CrowdWorker(bus=p.bus, store=p.store, rules=p.crowd.rules, config=p.crowd.config)
        with p.bus.subscribe("replay", [p.crowd.config.zone_state_topic]) as replay:
            records = replay.poll(1000, timeout=0.1)
        batch = fresh.process(records)
        fresh.close()
        assert len(batch.alerts) == 2
        assert fresh.stats.new_alerts == 0
        assert len(p.alerts()) == 2


class FailingStore(SqliteStore):
    failures = 0

    def write_alerts(self, alerts):
        if self.failures:
            self.failures -= 1
            raise StoreError("alerts: disk full (injected)")
        return super().write_alerts(alerts)


def test_a_failed_store_write_commits_nothing_and_the_retry_raises_the_same_alerts(tmp_path: Path):
    with pipeline({}) as p:
        store = FailingStore(tmp_path / "s.db")
        store.migrate()
        assert p.crowd is not None
        worker = CrowdWorker(bus=p.bus, store=store, rules=p.crowd.rules, config=p.crowd.config)
        p.publish_zone_states(zone_series(CRUSH))
        store.failures = 1
        with pytest.raises(WorkerError, match="'store alerts'"):
            worker.run_once(timeout_s=0)
        assert store.list_alerts("site-1") == []
        worker.close()  # what run() does after a failure
        assert worker.run_once(timeout_s=0) == 50
        assert len(store.list_alerts("site-1")) == 2
        assert worker.stats.failures == 0  # run_once raised; run() would count it
        worker.close()
        store.close()


def test_a_restarted_worker_does_not_alert_again_on_the_episode_in_progress():
    with pipeline({}) as p:
        assert p.crowd is not None
        states = zone_series([5.5] * 300)  # five minutes of one episode
        p.publish_zone_states(states[:100])
        p.drain()
        assert len(p.alerts()) == 2
        p.crowd.close()
        # a new process: empty rule state, the group's committed offsets, the same store
        restarted = CrowdWorker(bus=p.bus, store=p.store, rules=p.crowd.rules, config=p.crowd.config)
        p.publish_zone_states(states[100:])
        while restarted.run_once(timeout_s=0):
            pass
        assert len(p.alerts()) == 2
        assert restarted.stats.resumed == 2
        # a later episode, after the crowd cleared, alerts again
        later = zone_series([1.0] * 40 + [5.5] * 30, start=states[-1].ts + timedelta(seconds=1))
        p.publish_zone_states(later)
        while restarted.run_once(timeout_s=0):
            pass
        assert len(p.alerts()) == 4
        restarted.close()


def test_without_resume_a_restart_would_alert_twice():
    with pipeline({}) as p:
        assert p.crowd is not None
        states = zone_series([5.5] * 300)
        p.publish_zone_states(states[:100])
        p.drain()
        p.crowd.close()
        config = dataclasses.replace(p.crowd.config, resume_s=0.0)
        restarted = CrowdWorker(bus=p.bus, store=p.store, rules=p.crowd.rules, config=config)
        p.publish_zone_states(states[100:])
        while restarted.run_once(timeout_s=0):
            pass
        assert len(p.alerts()) == 4
        restarted.close()


def test_a_record_that_is_not_a_zone_state_becomes_a_worker_dead_letter():
    with pipeline({}) as p:
        assert p.crowd is not None
        p.bus.send(p.crowd.config.zone_state_topic, b'{"zone_id": "z"}', key=b"site-1/z")
        p.publish_zone_states(zone_series(CRUSH))
        p.drain()
        [dl] = p.dead_letters()
        assert (dl.stage, dl.payload) == ("worker", b'{"zone_id": "z"}')
        assert "not a zone state" in dl.detail
        assert len(p.alerts()) == 2


def test_crowd_rules_are_a_settings_section_and_errors_name_the_line(tmp_path: Path):
    path = tmp_path / "settings.yaml"
    path.write_text(
        "crowd:\n"
        "  rules:\n"
        "    - type: crowd_density\n"
        "      zones: {walkway-1: {warn: 1.1, critical: 2.2}}\n"
        "    - type: gate_flow\n"
        "      warn: 90\n"
        "      critical: 82\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"{path}:5: crowd.rules.1.gate_flow" in str(err.value)
    assert "warn (90) must be below critical (82)" in str(err.value)
    path.write_text(
        "crowd:\n  rules:\n    - type: crowd_density\n      zones: {walkway-1: {critical: 2.2}}\n"
    )
    [rule] = load_settings(path).crowd.rules
    assert rule.type == "crowd_density"
    assert rule.zones["walkway-1"].critical == 2.2


@pytest.mark.parametrize("enabled", [True, False])
def test_beffroi_run_starts_the_crowd_worker_unless_disabled(tmp_path: Path, enabled: bool):
    settings = Settings().model_copy(
        update={
            "mode": "embedded",
            "sqlite": Settings().sqlite.model_copy(update={"path": tmp_path / "b.db"}),
            "detectors": Settings().detectors.model_copy(update={"enabled": False}),
            "crowd": Settings().crowd.model_copy(update={"enabled": enabled}),
        }
    )
    runtime = compose(settings, venue=tiny_venue({}), api=False)
    try:
        assert ("crowd" in [s.name for s in runtime.services]) is enabled
    finally:
        runtime.stop()
