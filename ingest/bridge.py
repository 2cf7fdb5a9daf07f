"""The ingest bridge: MQTT messages in, readings and dead letters out to the bus.

Per batch: validate every message, send readings (keyed by device id) and dead letters (original
bytes, reason headers), `bus.flush()`, and only THEN acknowledge the batch to its source. When the
flush fails nothing is acknowledged: the batch is sent again until the bus takes it, and a crash
in between leaves the messages unacknowledged in the broker, which delivers them again. Bad input
never stops the bridge; rejections are counted per reason.

Run alone with `python -m tower.processes.bridge --settings FILE` (stack mode: Mosquitto -> Kafka).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from beffroi import metrics
from beffroi.bus import Bus, BusError
from beffroi.clock import utcnow
from beffroi.events import DeadLetter
from beffroi.records import Outgoing, dead_letter_record, reading_record
from beffroi.venue import PlacedDevice
from ingest.settings import IngestPlatformSettings
from ingest.source import Inbound, MessageSource
from ingest.validate import Limits, validate_message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BridgeConfig:
    readings_topic: str
    deadletter_topic: str
    limits: Limits = field(default_factory=Limits)
    namespace: str = "beffroi"
    batch_size: int = 1000
    linger_s: float = 0.02
    poll_timeout_s: float = 0.2
    retry_backoff_s: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)

    @classmethod
    def from_settings(cls, settings: IngestPlatformSettings) -> BridgeConfig:
        return cls(
            readings_topic=settings.kafka.topic("readings"),
            deadletter_topic=settings.kafka.topic("deadletter"),
            limits=Limits.from_settings(settings.ingest),
            namespace=settings.mqtt.namespace,
            batch_size=settings.ingest.batch_size,
            linger_s=settings.ingest.batch_linger_ms / 1000.0,
        )


@dataclass
class BridgeStats:
    """Counters since start: readings forwarded, dead letters per reason, failed flushes."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    flush_failures: int = 0

    @property
    def dead_lettered(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items())) or "none"
        return (
            f"bridge: {self.accepted} readings forwarded, {self.dead_lettered} dead-lettered ({reasons}), "
            f"{self.batches} batches, {self.flush_failures} failed flushes"
        )


class Bridge:
    """Moves messages from a `MessageSource` to a `Bus`; the same class in both modes."""

    def __init__(
        self,
        *,
        source: MessageSource,
        bus: Bus,
        devices: Mapping[str, PlacedDevice],
        config: BridgeConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.source = source
        self.bus = bus
        self.devices = devices
        self.config = config
        self.clock = clock
        self.stats = BridgeStats()
        self._stop = threading.Event()
        self._in = metrics.MESSAGES_IN.labels("bridge")
        self._out = metrics.MESSAGES_OUT.labels("bridge")
        self._pending = metrics.PENDING.labels("bridge")

    def stop(self) -> None:
        self._stop.set()

    def run_once(self, *, timeout_s: float | None = None) -> int:
        """Process one batch; returns how many messages it held (0 when none came)."""
        cfg = self.config
        batch = self.source.next_batch(
            max_items=cfg.batch_size,
            linger_s=cfg.linger_s,
            timeout_s=cfg.poll_timeout_s if timeout_s is None else timeout_s,
        )
        if batch:
            self.process(batch)
        return len(batch)

    def process(self, batch: Sequence[Inbound]) -> bool:
        """Validate, send, flush, then acknowledge. False when stopped before the bus confirmed."""
        self._in.inc(len(batch))
        self._pending.inc(len(batch))
        try:
            records, sensor_ts, rejected = self._convert(batch)
            if not self._deliver(records):
                return False
            self.source.ack(batch)
        finally:
            self._pending.dec(len(batch))
        metrics.observe_latency("bridge", "forwarded", sensor_ts)
        self._out.inc(len(batch))
        for reason, count in rejected.items():
            metrics.DEAD_LETTERS.labels("bridge", reason).inc(count)
        self.stats.accepted += len(sensor_ts)
        self.stats.rejected.update(rejected)
        self.stats.batches += 1
        return True

    def run(self, *, summary_every_s: float = 30.0) -> None:
        """Process batches until `stop()`; logs a summary of the counters periodically."""
        next_summary = time.monotonic() + summary_every_s
        while not self._stop.is_set():
            self.run_once()
            if time.monotonic() >= next_summary:
                log.info("%s", self.stats.summary())
                next_summary = time.monotonic() + summary_every_s
        log.info("%s", self.stats.summary())

    def _convert(self, batch: Sequence[Inbound]) -> tuple[list[Outgoing], list[datetime], Counter[str]]:
        """The records to send, the sensor timestamps of the readings, dead letters per reason."""
        cfg = self.config
        now = self.clock()
        records: list[Outgoing] = []
        sensor_ts: list[datetime] = []
        rejected: Counter[str] = Counter()
        for msg in batch:
            result = validate_message(
                msg.payload,
                topic=msg.topic,
                devices=self.devices,
                now=now,
                limits=cfg.limits,
                namespace=cfg.namespace,
            )
            if isinstance(result, DeadLetter):
                rejected[result.reason.value] += 1
                records.append(dead_letter_record(cfg.deadletter_topic, result))
                log.debug("dead letter from %s: %s (%s)", msg.topic, result.reason.value, result.detail)
            else:
                sensor_ts.append(result.ts)
                records.append(reading_record(cfg.readings_topic, result))
        return records, sensor_ts, rejected

    def _deliver(self, records: Sequence[Outgoing]) -> bool:
        attempt = 0
        while True:
            try:
                for r in records:
                    self.bus.send(r.topic, r.value, key=r.key, headers=r.headers)
                self.bus.flush()
                return True
            except BusError as exc:
                self.stats.flush_failures += 1
                metrics.FAILURES.labels("bridge", "send").inc()
                delay = self.config.retry_backoff_s[min(attempt, len(self.config.retry_backoff_s) - 1)]
                attempt += 1
                log.warning(
                    "bridge: sending a batch of %d records failed (%s); nothing acknowledged, retry in %.1fs",
                    len(records),
                    exc,
                    delay,
                )
                if self._stop.wait(delay):
                    return False
