"""The detector worker on a MemoryBus: scores and alerts out, and a restart from a snapshot plus
replay from its offsets gives exactly what an uninterrupted run gives."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analytics.detect_worker import DetectWorker, DetectWorkerConfig
from analytics.detectors.engine import EngineConfig
from analytics.snapshot import load_snapshot, save_snapshot
from beffroi import metrics
from beffroi.devices import DeviceKind
from beffroi.memory_bus import MemoryBus
from beffroi.records import reading_record
from beffroi.sqlite_store import SqliteStore
from beffroi.venue import LatLon, Site, Venue, Zone, ZoneKind
from tower.settings import Settings
from tower.testing import collect, reading

T0 = datetime(2024, 7, 26, 18, 0, tzinfo=UTC)
DEVICES = {f"snd-{i}": DeviceKind.ACOUSTIC for i in range(4)} | {
    f"tmp-{i}": DeviceKind.TEMPERATURE for i in range(4)
}
FIELD = {DeviceKind.ACOUSTIC: "dba", DeviceKind.TEMPERATURE: "celsius"}


def scenario_readings(seconds: int = 300):
    """Sound every 2 s, temperature every 5 s; a bang on snd-1 at 240 s; tmp-2 stuck from 200 s."""
    rng = np.random.default_rng(7)
    out = []
    for s in range(seconds):
        for i, (dev, kind) in enumerate(DEVICES.items()):
            every = 2 if kind is DeviceKind.ACOUSTIC else 5
            if (s + i) % every:
                continue
            base = 70.0 if kind is DeviceKind.ACOUSTIC else 24.0
            v = base + rng.normal(0, 1.5 if kind is DeviceKind.ACOUSTIC else 0.2)
            if dev == "snd-1" and 240 <= s < 244:
                v += 35.0
            if dev == "tmp-2" and s >= 200:
                v = 24.37
            ts = T0 + timedelta(seconds=s, milliseconds=int(rng.integers(0, 900)))
            out.append(reading(dev, {FIELD[kind]: round(float(v), 2)}, kind=kind, ts=ts))
    return out


@pytest.fixture
def settings():
    # few devices per partition: a poll of 20 readings spans a few seconds of one partition
    return Settings(
        mode="embedded", kafka={"topic_prefix": "t.", "topics": {"readings": {"name": "r", "partitions": 2}}}
    )


def loaded_bus(settings: Settings) -> MemoryBus:
    bus = MemoryBus()
    bus.ensure_topics(settings.kafka.partitions())
    for r in scenario_readings():
        rec = reading_record(settings.kafka.topic("readings"), r)
        bus.send(rec.topic, rec.value, key=rec.key, headers=rec.headers)
    return bus


def worker_for(bus: MemoryBus, store: SqliteStore, settings: Settings, snapshot: Path) -> DetectWorker:
    config = DetectWorkerConfig.from_settings(
        settings, snapshot_path=snapshot, engine=EngineConfig(tick_s=1.0, lateness_s=20.0)
    )
    config = DetectWorkerConfig(**{**config.__dict__, "batch_size": 20, "snapshot_every_s": 1e9})
    return DetectWorker(bus=bus, store=store, config=config)


def drain(worker: DetectWorker, max_polls: int | None = None) -> int:
    polls = 0
    while (max_polls is None or polls < max_polls) and worker.run_once(timeout_s=0.0):
        polls += 1
    return polls


def published_scores(bus: MemoryBus, settings: Settings) -> dict[tuple[str, str], dict[str, list[float]]]:
    """The last published scores of each (tick, site): a replayed tick is published again."""
    latest = {}
    for rec in collect(bus, settings.kafka.topic("scores")):
        doc = json.loads(rec.value)
        latest[(doc["tick"], doc["site_id"])] = doc["streams"]
    return latest


def test_scores_and_alerts_flow_and_faults_stay_faults(settings, tmp_path):
    bus = loaded_bus(settings)
    with SqliteStore(tmp_path / "a.db") as store:
        store.migrate()
        worker = worker_for(bus, store, settings, tmp_path / "a.snap")
        drain(worker)
        worker.drain()
        alerts = store.list_alerts("site-1", limit=100)
    scores = published_scores(bus, settings)
    assert len(scores) >= 290  # one per tick of the site
    incidents = [a for a in alerts if a.category == "incident"]
    faults = [a for a in alerts if a.category == "fault"]
    assert any(a.device_id == "snd-1" and 240 <= (a.raised_at - T0).total_seconds() <= 246 for a in incidents)
    assert any(a.device_id == "tmp-2" and a.rule == "fault:stuck" for a in faults)
    assert not any(a.device_id == "tmp-2" for a in incidents)
    on_bus = {json.loads(r.value)["alert_id"] for r in collect(bus, settings.kafka.topic("alerts"))}
    assert on_bus == {a.alert_id for a in alerts}


def test_restart_from_snapshot_replays_to_the_same_scores(settings, tmp_path):
    bus_a = loaded_bus(settings)
    with SqliteStore(tmp_path / "a.db") as store:
        store.migrate()
        straight = worker_for(bus_a, store, settings, tmp_path / "a.snap")
        drain(straight)
        straight.drain()
        alerts_a = {a.alert_id for a in store.list_alerts("site-1", limit=500)}
    expected = published_scores(bus_a, settings)

    bus_b = loaded_bus(settings)
    with SqliteStore(tmp_path / "b.db") as store:
        store.migrate()
        first = worker_for(bus_b, store, settings, tmp_path / "b.snap")
        assert drain(first, max_polls=30) == 30
        first.snapshot()
        assert drain(first, max_polls=10) == 10  # processed after the snapshot: lost in the "crash"
        first.close()
        second = worker_for(bus_b, store, settings, tmp_path / "b.snap")
        drain(second)
        second.drain()
        assert second.stats.restored_from == str(tmp_path / "b.snap")
        assert 0 < second.stats.readings < len(scenario_readings())
        alerts_b = {a.alert_id for a in store.list_alerts("site-1", limit=500)}
    assert published_scores(bus_b, settings) == expected
    assert alerts_b == alerts_a


def test_empty_partitions_do_not_hold_detection_back(tmp_path):
    """A sparse venue: 8 devices over 12 partitions. Ticks are scored as readings arrive, not only
    after `max_skew_s` (300 s) of waiting for partitions that never deliver."""
    sparse = Settings(
        mode="embedded", kafka={"topic_prefix": "t.", "topics": {"readings": {"name": "r", "partitions": 12}}}
    )
    bus = MemoryBus()
    bus.ensure_topics(sparse.kafka.partitions())
    for r in scenario_readings(seconds=120):
        rec = reading_record(sparse.kafka.topic("readings"), r)
        bus.send(rec.topic, rec.value, key=rec.key, headers=rec.headers)
    with SqliteStore(tmp_path / "s.db") as store:
        store.migrate()
        worker = worker_for(bus, store, sparse, tmp_path / "s.snap")
        drain(worker)
        seen = {key.rsplit(":", 1)[1] for key in worker._partition_ts}
        assert len(seen) < 12  # some partitions never deliver
        # lateness is 20 s: most of the first 100 s is scored without draining the engine
        assert worker.stats.ticks >= 80


def test_worker_groups_peers_by_the_venue_zone_kinds(settings: Settings, tmp_path: Path) -> None:
    """With the venue, a sensor's narrow peer group is its kind of zone; the group survives a reset."""
    venue = Venue(
        id="v",
        sites=[
            Site(
                id="s",
                center=LatLon(lat=48.0, lon=2.0),
                zones=[
                    Zone(
                        id=z,
                        kind=kind,
                        capacity=100,
                        polygon=[
                            LatLon(lat=48.0, lon=2.0),
                            LatLon(lat=48.0, lon=2.001),
                            LatLon(lat=48.001, lon=2.001),
                        ],
                    )
                    for z, kind in (("n", ZoneKind.STAND), ("s", ZoneKind.STAND), ("p", ZoneKind.FORECOURT))
                ],
            )
        ],
    )
    readings = [
        reading(f"tmp-{z}", {"celsius": 24.0}, kind=DeviceKind.TEMPERATURE, site_id="s", zone_id=z, ts=T0)
        for z in ("n", "s", "p")
    ]
    config = DetectWorkerConfig.from_settings(settings, engine=EngineConfig(tick_s=1.0))
    with SqliteStore(tmp_path / "z.db") as store:
        bare = DetectWorker(bus=MemoryBus(), store=store, config=config)
        bare.engine.add(readings, watermark=T0.timestamp() + 60)
        assert (bare.engine.table.meta.peer_group == -1).all()
        worker = DetectWorker(bus=MemoryBus(), store=store, config=config, venue=venue)
        for _ in range(2):
            worker.engine.add(readings, watermark=T0.timestamp() + 60)
            group = worker.engine.table.meta.peer_group
            n, s, p = (int(group[worker.engine.table.index[f"tmp-{z}/celsius"]]) for z in "nsp")
            assert n == s != p  # stands together, the forecourt apart
            assert p >= 0
            worker._reset()


def test_a_snapshot_that_does_not_fit_is_moved_aside_and_detectors_start_cold(settings, tmp_path):
    """A snapshot of another version (per-stream arrays that disagree with its stream table) must not
    stop the detectors: it is kept aside for inspection and the worker starts from empty state."""
    bus = loaded_bus(settings)
    snap = tmp_path / "d.snap"
    with SqliteStore(tmp_path / "d.db") as store:
        store.migrate()
        first = worker_for(bus, store, settings, snap)
        assert drain(first, max_polls=30) == 30
        first.snapshot()
        first.close()
        loaded = load_snapshot(snap)
        assert loaded is not None
        arrays, meta = loaded
        arrays["last_ts"] = arrays["last_ts"][:0]
        save_snapshot(snap, arrays, meta)

        second = worker_for(bus, store, settings, snap)
        drain(second)
        second.drain()
        assert second.stats.restored_from is None
        assert not snap.exists()
        assert (tmp_path / "d.snap.incompatible").exists()
        # it went on cold from the offsets committed with the snapshot: nothing read twice or skipped
        assert second.stats.ticks > 0
        assert first.stats.readings + second.stats.readings == len(scenario_readings())


def test_a_snapshot_of_another_detector_stack_is_moved_aside(settings, tmp_path):
    """A detector whose state arrays the snapshot lacks (one added since) starts cold too."""
    bus = loaded_bus(settings)
    snap = tmp_path / "k.snap"
    with SqliteStore(tmp_path / "k.db") as store:
        store.migrate()
        first = worker_for(bus, store, settings, snap)
        assert drain(first, max_polls=5) == 5
        first.snapshot()
        first.close()
        loaded = load_snapshot(snap)
        assert loaded is not None
        arrays, meta = loaded
        save_snapshot(snap, {k: v for k, v in arrays.items() if not k.startswith("stack.0.")}, meta)

        second = worker_for(bus, store, settings, snap)
        assert second.run_once(timeout_s=0.0) > 0
        assert second.stats.restored_from is None
        assert (tmp_path / "k.snap.incompatible").exists()


def test_an_idle_worker_snapshots_and_commits_when_one_is_due(settings, tmp_path):
    """The snapshot is due by time: an empty poll takes it, so the group's offsets move on."""
    bus = loaded_bus(settings)
    snap = tmp_path / "i.snap"
    with SqliteStore(tmp_path / "i.db") as store:
        store.migrate()
        worker = worker_for(bus, store, settings, snap)
        drain(worker)
        assert worker.stats.snapshots == 0
        assert not snap.exists()
        worker.config = dataclasses.replace(worker.config, snapshot_every_s=0.0)
        assert worker.run_once(timeout_s=0.0) == 0
        assert worker.stats.snapshots == 1
        assert snap.exists()
        worker.close()
        # the positions were committed with the snapshot: the group has nothing left to read
        with bus.subscribe(worker.config.group, [worker.config.readings_topic]) as again:
            assert again.poll(100, timeout=0.0) == []


def test_the_detector_worker_counts_in_the_loop_metrics(settings, tmp_path):
    """The shared consumer loop labels the detector worker's records, alerts and lag `detectors`."""
    bus = loaded_bus(settings)
    before = metrics.parse(metrics.exposition()[0].decode())
    with SqliteStore(tmp_path / "m.db") as store:
        store.migrate()
        worker = worker_for(bus, store, settings, tmp_path / "m.snap")
        drain(worker)
        worker.drain()
        raised = store.list_alerts("site-1", limit=500)
        after = metrics.parse(metrics.exposition()[0].decode())
        worker.close()

    def delta(name: str, **labels: str) -> float:
        return metrics.total(after, name, **labels) - metrics.total(before, name, **labels)

    assert delta("beffroi_messages_in_total", component="detectors") == len(scenario_readings())
    assert delta("beffroi_messages_out_total", component="detectors") == len(scenario_readings())
    assert delta("beffroi_alerts_raised_total", rule="fault:stuck") == sum(
        a.rule == "fault:stuck" for a in raised
    )
    assert delta("beffroi_latency_seconds_count", component="detectors", stage="alerted") == len(raised)
    assert any(s.name == "beffroi_consumer_lag" and s.labels["component"] == "detectors" for s in after)
