"""Testing helpers shipped with Beffroi (like `bytewax.testing`): list-fed sources, collecting sinks,
one-line payloads, readings and zone states, and the whole slice in memory, driven step by step.

    with pipeline({"pb-1": DeviceKind.PANIC_BUTTON}) as p:
        p.publish("pb-1", {"pressed": 1})
        p.drain()
        [alert] = p.alerts()
        assert alert.severity == "critical"

    with pipeline({}) as p:
        p.publish_zone_states(zone_series([4.0] * 20 + [5.5] * 30))
        p.drain()
        assert [a.severity for a in p.alerts()] == ["critical", "high"]
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from analytics.crowd_worker import CrowdWorker
from analytics.detect_worker import DetectWorker, DetectWorkerConfig
from analytics.rules.registry import build_rules
from analytics.rules.zone import ZoneRule
from analytics.worker import Worker, WorkerConfig
from beffroi.bus import Bus, Record
from beffroi.clock import utcnow
from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.events import Alert, DeadLetter, DeadLetterReason, LatLon, Reading, message_id_for
from beffroi.memory_bus import MemoryBus
from beffroi.mqtt_auth import data_topic
from beffroi.sqlite_store import SqliteStore
from beffroi.store import Store
from beffroi.venue import Device, Exit, Site, Venue, Zone
from ingest.bridge import Bridge, BridgeConfig
from ingest.source import Inbound, QueueSource
from simulators.engine import Simulation
from simulators.publish import InProcessPublisher, live_objects_payload
from simulators.scenario_file import load_scenario
from tower.runtime import deprovision_devices
from tower.runtime import provision_devices as _provision_devices
from tower.settings import Settings
from tower.settings import write_settings as write_settings  # re-exported for tests and benchmarks

if TYPE_CHECKING:
    from beffroi.records import ZoneState

SITE = "site-1"
ZONE = "zone-1"
T0 = datetime(2026, 7, 26, 19, 0, tzinfo=UTC)
"""The time of the first state of `zone_series` (a fixed instant: alert ids are reproducible)."""

# -- building blocks in one line ---------------------------------------------------------------


def kind_of(value: Mapping[str, Any]) -> DeviceKind:
    """The device kind whose value fields are exactly these (e.g. {"pressed": 1} -> panic_button)."""
    names = set(value)
    matches = [s.kind for s in KIND_SPECS.values() if {f.name for f in s.fields} == names]
    if len(matches) != 1:
        raise ValueError(f"no single device kind reports exactly {sorted(names)}; pass kind=")
    return matches[0]


def tiny_venue(
    devices: Mapping[str, DeviceKind | str],
    *,
    site_id: str = SITE,
    zone_id: str = ZONE,
    venue_id: str = "test",
) -> Venue:
    """A venue of one site, one zone and one exit holding `devices` (id -> kind; no cameras)."""
    square = [LatLon(lat=48.0, lon=2.0), LatLon(lat=48.0, lon=2.001), LatLon(lat=48.001, lon=2.001)]
    return Venue(
        id=venue_id,
        sites=[
            Site(
                id=site_id,
                center=LatLon(lat=48.0005, lon=2.0005),
                zones=[Zone(id=zone_id, polygon=square, capacity=1000)],
                exits=[Exit(id="exit-1", width_m=4.0, from_zone=zone_id)],
                devices=[
                    Device(
                        id=d,
                        kind=DeviceKind(k),
                        zone=zone_id,
                        exit="exit-1" if DeviceKind(k) is DeviceKind.GATE_COUNTER else None,
                    )
                    for d, k in devices.items()
                ],
            )
        ],
    )


def payload(
    device_id: str,
    value: Mapping[str, float | int | bool],
    /,
    *,
    kind: DeviceKind | None = None,
    ts: datetime | None = None,
    namespace: str = "beffroi",
    **fields: Any,
) -> bytes:
    """A Live Objects message of `device_id`; `fields` replace or add top-level keys (None drops one)."""
    model = KIND_SPECS[kind or kind_of(value)].model
    raw = live_objects_payload(device_id, model=model, value=value, ts=ts or utcnow(), namespace=namespace)
    if not fields:
        return raw
    doc = json.loads(raw)
    for k, v in fields.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


def reading(
    device_id: str,
    value: Mapping[str, float],
    *,
    kind: DeviceKind | None = None,
    site_id: str = SITE,
    zone_id: str | None = ZONE,
    ts: datetime | None = None,
) -> Reading:
    """A validated reading, as the bridge would produce it."""
    ts = ts or utcnow()
    raw = payload(device_id, value, kind=kind, ts=ts)
    return Reading(
        message_id=message_id_for(device_id, raw),
        device_id=device_id,
        site_id=site_id,
        zone_id=zone_id,
        stream_id=f"urn:lo:nsid:beffroi:{device_id}!data",
        model=KIND_SPECS[kind or kind_of(value)].model,
        ts=ts,
        received_at=ts,
        value={k: float(v) for k, v in value.items()},
    )


def zone_state(
    density: float,
    *,
    ts: datetime = T0,
    zone_id: str = ZONE,
    site_id: str | None = SITE,
    area_m2: float = 1000.0,
    confidence: float = 0.9,
    coverage: float = 1.0,
    gates: Mapping[str, tuple[float, float]] | None = None,
) -> ZoneState:
    """A zone state as the video pipeline publishes it; `gates` maps gate id -> (width m, p/m/min)."""
    from analytics.vision.los import density_los, flow_los
    from beffroi.records import GateFlow, ZoneState

    flows = [
        GateFlow(gate_id=g, width_m=w, entered=0, left=0, flow_ppm_per_m=f, los=flow_los(f))
        for g, (w, f) in (gates or {}).items()
    ]
    width = sum(g.width_m for g in flows)
    flow = sum(g.flow_ppm_per_m * g.width_m for g in flows) / width if width else 0.0
    return ZoneState(
        zone_id=zone_id,
        site_id=site_id,
        ts=ts,
        window_s=1.0,
        count=density * area_m2,
        observed_count=density * area_m2 * coverage,
        observed_area_m2=area_m2 * coverage,
        coverage=coverage,
        density=density,
        los=density_los(density),
        flow_ppm_per_m=flow,
        flow_los=flow_los(flow),
        gates=flows,
        confidence=confidence,
        method="detection",
        cameras=["cam-1"],
        frames=5,
    )


def zone_series(
    densities: Iterable[float], *, start: datetime = T0, step_s: float = 1.0, **fields: Any
) -> list[ZoneState]:
    """One zone state per density, `step_s` apart from `start`; `fields` go to `zone_state`
    (a per-state sequence for `confidence` or `gates` is also accepted)."""
    out = []
    for i, d in enumerate(densities):
        kw = {k: v[i] if isinstance(v, list) else v for k, v in fields.items()}
        out.append(zone_state(d, ts=start + timedelta(seconds=i * step_s), **kw))
    return out


def run_zone_rule(rule: ZoneRule, states: Sequence[ZoneState], *, batch: int = 7) -> list[Alert]:
    """Every alert `rule` raises over `states`, stepped in batches of `batch` (as a worker polls)."""
    state = rule.initial()
    alerts: list[Alert] = []
    for i in range(0, len(states), batch):
        state, raised = rule.step(state, states[i : i + batch])
        alerts += raised
    return alerts


# -- list-fed sources and collecting sinks -----------------------------------------------------


class ListSource:
    """A bridge source fed from a list of (device id or topic, payload); counts what was acked."""

    def __init__(self, messages: Iterable[tuple[str, bytes]] = ()) -> None:
        self._pending: list[Inbound] = [Inbound(t if "/" in t else data_topic(t), p) for t, p in messages]
        self.acked: list[Inbound] = []

    def add(self, device_or_topic: str, raw: bytes) -> None:
        topic = device_or_topic if "/" in device_or_topic else data_topic(device_or_topic)
        self._pending.append(Inbound(topic, raw))

    def next_batch(self, *, max_items: int, linger_s: float, timeout_s: float) -> list[Inbound]:
        batch, self._pending = self._pending[:max_items], self._pending[max_items:]
        return batch

    def ack(self, batch: Sequence[Inbound]) -> None:
        self.acked.extend(batch)

    def close(self) -> None:
        pass


def collect(
    bus: Bus, topic: str, *, expect: int | None = None, timeout: float = 0.2, deadline_s: float = 60.0
) -> list[Record]:
    """Every record on `topic` so far, read by a fresh group (a collecting sink).

    Without `expect`, reads until a poll of `timeout` seconds returns nothing (a MemoryBus answers
    at once). With it, reads until `expect` records came (or `deadline_s` passed), then until idle,
    so that a Kafka group has time to join and extra records would still show up.
    """
    out: list[Record] = []
    end = time.monotonic() + deadline_s
    with bus.subscribe(f"{topic}.collect-{uuid.uuid4().hex[:12]}", [topic]) as sub:
        while True:
            records = sub.poll(10_000, timeout=timeout if expect is None else 1.0)
            out += records
            if records:
                continue
            if expect is None or len(out) >= expect or time.monotonic() > end:
                return out


# -- the slice in memory -----------------------------------------------------------------------


class Pipeline:
    """Bridge and worker over a MemoryBus and a store, run synchronously by `drain()`: a SqliteStore
    at `store_path`, or `store` as given (migrated here, closed with the pipeline; any backend)."""

    def __init__(
        self, venue: Venue, *, settings: Settings, store_path: Path, store: Store | None = None
    ) -> None:
        self.venue = venue
        self.settings = settings
        self.bus = MemoryBus()
        self.bus.ensure_topics(settings.kafka.partitions())
        self.store: Store = store if store is not None else SqliteStore(store_path)
        self.store.migrate()
        self.source = QueueSource()
        self.bridge = Bridge(
            source=self.source,
            bus=self.bus,
            devices=venue.devices,
            config=BridgeConfig.from_settings(settings),
        )
        self.worker = Worker(
            bus=self.bus,
            store=self.store,
            rules=build_rules(settings.worker.rules),
            config=WorkerConfig.from_settings(settings),
        )
        self.crowd = (
            CrowdWorker.from_settings(settings, bus=self.bus, store=self.store)
            if settings.crowd.enabled
            else None
        )

    def publish_zone_states(self, states: Iterable[ZoneState]) -> int:
        """Send zone states on the zone_state topic, as the video pipeline does."""
        from analytics.vision.publish import ZoneStatePublisher

        publisher = ZoneStatePublisher(self.bus, self.settings.kafka.topic("zone_state"))
        sent = publisher.publish(states)
        publisher.flush()
        return sent

    def publish(self, device_id: str, value: Mapping[str, float | int | bool], **kw: Any) -> bytes:
        raw = payload(device_id, value, kind=self.venue.devices[device_id].device.kind, **kw)
        self.source.offer(data_topic(device_id), raw)
        return raw

    def send_raw(self, device_or_topic: str, raw: bytes) -> None:
        topic = device_or_topic if "/" in device_or_topic else data_topic(device_or_topic)
        self.source.offer(topic, raw)

    def drain(self) -> None:
        """Run the bridge until its source is empty, then the workers until the bus is."""
        while self.bridge.run_once(timeout_s=0):
            pass
        while self.worker.run_once(timeout_s=0.05):
            pass
        while self.crowd is not None and self.crowd.run_once(timeout_s=0):
            pass

    def topic(self, name: str) -> list[Record]:
        return collect(self.bus, self.settings.kafka.topic(name))

    def alerts(self, site_id: str | None = None) -> list[Alert]:
        return self.store.list_alerts(site_id or self.venue.sites[0].id, limit=10_000)

    def dead_letters(self, reason: DeadLetterReason | None = None) -> list[DeadLetter]:
        return self.store.list_dead_letters(reason=reason, limit=10_000)

    def close(self) -> None:
        self.worker.close()
        if self.crowd is not None:
            self.crowd.close()
        self.store.close()
        self.bus.close()


@contextmanager
def pipeline(
    devices: Mapping[str, DeviceKind | str] | Venue, *, settings: Settings | None = None
) -> Iterator[Pipeline]:
    """The slice (bridge -> bus -> worker -> store) in memory, for `devices` or a whole venue."""
    venue = devices if isinstance(devices, Venue) else tiny_venue(devices)
    with tempfile.TemporaryDirectory(prefix="beffroi-test-") as tmp:
        p = Pipeline(venue, settings=settings or Settings(), store_path=Path(tmp) / "store.db")
        try:
            yield p
        finally:
            p.close()


def alert_on_every_reading(settings: Settings | None = None) -> Settings:
    """Settings whose rules alert on every reading past their level (no hold window)."""
    s = settings or Settings()
    rules = [r.model_copy(update={"hold_s": 0.0}) for r in s.worker.rules]
    return s.model_copy(update={"worker": s.worker.model_copy(update={"rules": rules})})


# -- settings for subprocesses -----------------------------------------------------------------


def write_venue(venue: Venue, path: Path | str) -> Path:
    """Write a venue as YAML (for a component started as its own process)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(venue.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path


def unique(prefix: str = "t") -> str:
    """A short id unique to this call, valid as a device, site or group id."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# -- the real stack ----------------------------------------------------------------------------


def isolated(settings: Settings, *, name: str = "slice") -> Settings:
    """`settings` with a bridge MQTT session and worker groups of their own (the groups carry the
    topic prefix, so a test's clean-up of `prefix*` removes them)."""
    prefix = settings.kafka.topic_prefix
    return settings.model_copy(
        update={
            "mqtt": settings.mqtt.model_copy(update={"client_id": unique(f"beffroi-bridge-{name}-")}),
            "worker": settings.worker.model_copy(update={"group": f"{prefix}{name}-analytics"}),
            "crowd": settings.crowd.model_copy(update={"group": f"{prefix}{name}-crowd"}),
        }
    )


_PROVISIONED: set[str] = set()


def provision_devices(settings: Settings, device_ids: Iterable[str]) -> None:
    """Give these devices MQTT logins on the local broker, for this test or benchmark only:
    `remove_test_logins` (the `stack_settings` fixture's teardown) removes them."""
    ids = list(device_ids)
    _PROVISIONED.update(ids)
    _provision_devices(settings, ids)


def remove_test_logins() -> int:
    """Remove the logins `provision_devices` gave; returns how many were removed."""
    ids = sorted(_PROVISIONED)
    _PROVISIONED.clear()
    return deprovision_devices(ids) if ids else 0


class ComponentProcess:
    """A component run as its own process (`python -m MODULE --settings FILE`), to kill -9 and restart."""

    def __init__(
        self,
        module: str,
        *,
        settings_file: Path,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        """`env` is added to this process's environment (e.g. BEFFROI_METRICS__PORT); `name` names
        its log file (default: the module's last part)."""
        self.module = module
        self.settings_file = settings_file
        self.log_path = log_dir / f"{name or module.rsplit('.', 1)[-1]}.log"
        self.env = dict(env or {})
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--settings", str(self.settings_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parent.parent,
                env={**os.environ, **self.env},
            )

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, no commit."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# -- a scenario recorded through the embedded slice (for replay) -------------------------------


@dataclass
class Recording:
    store_path: Path
    since: datetime
    until: datetime
    published: int
    alerts: int
    wall_s: float


def record_scenario(
    scenario_path: Path,
    store_path: Path,
    *,
    settings: Settings | None = None,
    scale: float | None = None,
    duration_s: float = 3600.0,
    start: datetime | None = None,
    from_s: float = 0.0,
    out_dir: Path | None = None,
    drain_every: int = 10,
) -> Recording:
    """Run a scenario's sensors through bridge, worker and detector worker (MemoryBus, SQLite at
    `store_path`), draining every `drain_every` ticks as a live system keeps up, then to the end of
    input. The bridge's clock is the simulated one (a live system receives each reading as it is
    sent); the recording starts `from_s` into the scenario. Ground truth goes to `out_dir`."""
    settings = settings or Settings()
    start = start or (utcnow() - timedelta(seconds=from_s + duration_s + 600)).replace(microsecond=0)
    sim = Simulation(load_scenario(scenario_path), scale=scale, start=start, out_dir=out_dir)
    venue = sim.world.venue
    bus = MemoryBus()
    bus.ensure_topics(settings.kafka.partitions())
    store = SqliteStore(store_path)
    store.migrate()
    source = QueueSource()
    bridge = Bridge(
        source=source, bus=bus, devices=venue.devices, config=BridgeConfig.from_settings(settings)
    )
    worker = Worker.from_settings(settings, bus=bus, store=store)
    config = dataclasses.replace(DetectWorkerConfig.from_settings(settings), snapshot_path=None)
    detect = DetectWorker(bus=bus, store=store, config=config, venue=venue)
    ticks = 0

    def drain(_: object = None) -> None:
        nonlocal ticks
        ticks += 1
        if _ is not None and ticks % drain_every:
            return
        while bridge.run_once(timeout_s=0):
            pass
        while worker.run_once(timeout_s=0):
            pass
        while detect.run_once(timeout_s=0):
            pass

    began = time.monotonic()
    publisher = InProcessPublisher(source.offer)
    try:
        sim.run(publisher, duration_s=duration_s, speed=0.0, from_s=from_s, on_tick=drain)
        drain()
        detect.drain()
        alerts = sum(store.count_alerts(s.id) for s in venue.sites)
    finally:
        worker.close()
        detect.close()
        store.close()
        bus.close()
    return Recording(
        store_path=store_path,
        since=start + timedelta(seconds=from_s),
        until=start + timedelta(seconds=from_s + duration_s),
        published=publisher.published,
        alerts=alerts,
        wall_s=time.monotonic() - began,
    )


class TimedSource(QueueSource):
    """A `QueueSource` that notes when each acknowledgement came (recovery tests and benchmarks)."""

    def __init__(self) -> None:
        super().__init__()
        self.ack_times: list[float] = []

    def ack(self, batch: Sequence[Inbound]) -> None:
        super().ack(batch)
        self.ack_times.append(time.monotonic())
