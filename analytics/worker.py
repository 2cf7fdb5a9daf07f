"""The analytics worker: readings (and dead letters) from the bus into the store, rules into alerts.

Per batch, in a consumer group: decode, `store.write_readings` and `write_dead_letters`, evaluate
the rules, `store.write_alerts`, publish the alerts, `bus.flush()`, and only THEN `commit()` the
offsets. Every write is idempotent and alert ids derive from message ids, so a batch processed
twice after a crash stores and raises nothing twice. A record that does not decode is kept as a
dead letter (stage "worker"); it never stops the worker. Errors name the failing step.

`ConsumerLoop` is that loop (poll, process, re-subscribe after a failure), shared with the crowd
worker (analytics/crowd_worker.py), which runs the zone rules over the zone_state topic.

Run alone with `python -m tower.processes.worker --settings FILE`.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar

from analytics.rules.base import Rule
from analytics.rules.registry import build_rules
from analytics.settings import AnalyticsPlatformSettings
from beffroi import metrics
from beffroi.bus import Bus, BusError, Record, Subscription
from beffroi.clock import utcnow
from beffroi.events import Alert, DeadLetter, DeadLetterReason, Reading
from beffroi.records import BadRecord, alert_record, dead_letter_id, decode_dead_letter, decode_reading
from beffroi.store import Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerError(RuntimeError):
    """A batch failed; the message names the step (poll, store readings, publish alerts, commit...)."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"worker step {step!r} failed: {cause}")
        self.step = step


@dataclass(frozen=True)
class WorkerConfig:
    group: str
    readings_topic: str
    deadletter_topic: str
    alerts_topic: str
    batch_size: int = 2000
    poll_timeout_s: float = 0.5
    retry_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)

    @classmethod
    def from_settings(cls, settings: AnalyticsPlatformSettings) -> WorkerConfig:
        return cls(
            group=settings.worker.group,
            readings_topic=settings.kafka.topic("readings"),
            deadletter_topic=settings.kafka.topic("deadletter"),
            alerts_topic=settings.kafka.topic("alerts"),
            batch_size=settings.worker.batch_size,
            poll_timeout_s=settings.worker.poll_timeout_s,
        )


@dataclass
class LoopStats:
    """What every consumer loop counts (`summary` is logged every `summary_every_s`)."""

    alerts: int = 0
    new_alerts: int = 0
    bad_records: int = 0
    batches: int = 0
    failures: int = 0

    def summary(self) -> str:
        return (
            f"{self.alerts} alerts ({self.new_alerts} new), {self.bad_records} bad records, "
            f"{self.batches} batches, {self.failures} failed batches"
        )


@dataclass
class WorkerStats(LoopStats):
    readings: int = 0
    new_readings: int = 0
    dead_letters: int = 0

    def summary(self) -> str:
        return (
            f"worker: {self.readings} readings ({self.new_readings} new), {self.alerts} alerts "
            f"({self.new_alerts} new), {self.dead_letters} dead letters, {self.bad_records} bad records, "
            f"{self.batches} batches, {self.failures} failed batches"
        )


@dataclass
class Batch:
    """One poll, decoded."""

    records: list[Record]
    readings: list[Reading] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class LoopConfig(Protocol):
    """What `ConsumerLoop` reads of a worker's config."""

    @property
    def group(self) -> str: ...
    @property
    def alerts_topic(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def poll_timeout_s(self) -> float: ...
    @property
    def retry_backoff_s(self) -> tuple[float, ...]: ...


class ConsumerLoop(ABC):
    """The loop every rule worker shares: poll a batch from its group, `process` it (store, then
    publish, then commit), and after a failure re-subscribe so that the uncommitted records come
    again. Subclasses name their topics and process a batch."""

    config: LoopConfig
    stats: LoopStats
    component: ClassVar[str] = "worker"  # the `component` label of its metrics

    def __init__(self, *, bus: Bus, store: Store) -> None:
        self.bus = bus
        self.store = store
        self._subscription: Subscription | None = None
        self._stop = threading.Event()
        self._in = metrics.MESSAGES_IN.labels(self.component)
        self._out = metrics.MESSAGES_OUT.labels(self.component)
        self._lag: metrics.LagGauge | None = None

    @abstractmethod
    def topics(self) -> list[str]: ...

    @abstractmethod
    def process(self, records: list[Record]) -> object:
        """Store, publish and commit one polled batch; raise `WorkerError` naming the failed step."""

    def stop(self) -> None:
        self._stop.set()

    @property
    def subscription(self) -> Subscription:
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self.config.group, self.topics())
        return self._subscription

    def run_once(self, *, timeout_s: float | None = None) -> int:
        """Poll and process one batch; returns how many records it held. Raises `WorkerError`."""
        cfg = self.config
        try:
            records = self.subscription.poll(
                cfg.batch_size, timeout=cfg.poll_timeout_s if timeout_s is None else timeout_s
            )
        except BusError as exc:
            raise WorkerError("poll", exc) from exc
        self._in.inc(len(records))
        self._update_lag()
        if records:
            self.process(records)
            self._out.inc(len(records))
        return len(records)

    def _update_lag(self) -> None:
        if self._lag is None:
            self._lag = metrics.LagGauge(self.component, self.config.group)
        try:
            self._lag.update(self.subscription.lag())
        except BusError as exc:
            log.debug("%s: consumer lag unavailable: %s", type(self).__name__, exc)

    def run(self, *, summary_every_s: float = 30.0) -> None:
        """Process batches until `stop()`. After a failure, re-subscribe: uncommitted records come again."""
        next_summary = time.monotonic() + summary_every_s
        failures = 0
        while not self._stop.is_set():
            try:
                self.run_once()
                failures = 0
            except WorkerError as exc:
                self.stats.failures += 1
                metrics.FAILURES.labels(self.component, exc.step).inc()
                delay = self.config.retry_backoff_s[min(failures, len(self.config.retry_backoff_s) - 1)]
                failures += 1
                log.error("%s; nothing committed, re-reading from the committed offsets in %.1fs", exc, delay)
                self._resubscribe()
                self._stop.wait(delay)
            if time.monotonic() >= next_summary:
                log.info("%s", self.stats.summary())
                next_summary = time.monotonic() + summary_every_s
        log.info("%s", self.stats.summary())

    def close(self) -> None:
        if self._lag is not None:
            self._lag.clear()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def _resubscribe(self) -> None:
        try:
            self.close()
        except BusError as exc:
            log.warning("%s: closing the subscription failed: %s", type(self).__name__, exc)
            self._subscription = None

    def _step(self, step: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (StoreError, BusError) as exc:
            raise WorkerError(step, exc) from exc

    def _count_new_alerts(self, alerts: Sequence[Alert]) -> int:
        new = self.store.write_alerts(alerts) if alerts else 0
        self.stats.new_alerts += new
        return new

    def _publish(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            r = alert_record(self.config.alerts_topic, alert)
            self.bus.send(r.topic, r.value, key=r.key, headers=r.headers)
        if alerts:
            self.bus.flush()
            metrics.observe_latency(self.component, "alerted", (a.raised_at for a in alerts))
            for alert in alerts:
                metrics.ALERTS_RAISED.labels(alert.rule).inc()

    def _worker_dead_letter(self, record: Record, exc: BadRecord) -> DeadLetter:
        """A record that does not decode, kept (original bytes) as a dead letter of stage "worker"."""
        self.stats.bad_records += 1
        metrics.DEAD_LETTERS.labels(self.component, DeadLetterReason.INVALID.value).inc()
        log.warning("%s", exc)
        return DeadLetter(
            dead_letter_id=dead_letter_id(
                f"{record.topic}[{record.partition}]@{record.offset}", record.value
            ),
            source=record.topic,
            reason=DeadLetterReason.INVALID,
            detail=str(exc)[:500],
            received_at=utcnow(),
            payload=record.value,
            stage="worker",
        )


class Worker(ConsumerLoop):
    """Consumes readings and dead letters; the same class in both modes."""

    config: WorkerConfig
    stats: WorkerStats

    def __init__(self, *, bus: Bus, store: Store, rules: Sequence[Rule], config: WorkerConfig) -> None:
        super().__init__(bus=bus, store=store)
        self.rules = list(rules)
        self.config = config
        self.stats = WorkerStats()

    @classmethod
    def from_settings(cls, settings: AnalyticsPlatformSettings, *, bus: Bus, store: Store) -> Worker:
        return cls(
            bus=bus,
            store=store,
            rules=build_rules(settings.worker.rules),
            config=WorkerConfig.from_settings(settings),
        )

    def topics(self) -> list[str]:
        return [self.config.readings_topic, self.config.deadletter_topic]

    def process(self, records: list[Record]) -> Batch:
        batch = self.decode(records)
        self._step("store readings", lambda: self._count_new_readings(batch.readings))
        self._step("store dead letters", lambda: self.store.write_dead_letters(batch.dead_letters))
        batch.alerts = self._step("evaluate rules", lambda: self.evaluate(batch.readings))
        self._step("store alerts", lambda: self._count_new_alerts(batch.alerts))
        self._step("publish alerts", lambda: self._publish(batch.alerts))
        self._step("commit offsets", self.subscription.commit)
        s = self.stats
        s.readings += len(batch.readings)
        s.dead_letters += len(batch.dead_letters)
        s.alerts += len(batch.alerts)
        s.batches += 1
        return batch

    def decode(self, records: Sequence[Record]) -> Batch:
        batch = Batch(list(records))
        for record in records:
            try:
                if record.topic == self.config.deadletter_topic:
                    batch.dead_letters.append(decode_dead_letter(record))
                else:
                    batch.readings.append(decode_reading(record))
            except BadRecord as exc:
                batch.dead_letters.append(self._worker_dead_letter(record, exc))
        return batch

    def evaluate(self, readings: Sequence[Reading]) -> list[Alert]:
        alerts: list[Alert] = []
        for rule in self.rules:
            try:
                alerts += rule.evaluate(readings)
            except Exception as exc:
                raise WorkerError(f"rule {rule.name}", exc) from exc
        return alerts

    def _count_new_readings(self, readings: Sequence[Reading]) -> int:
        new = self.store.write_readings(readings) if readings else 0
        metrics.observe_latency(self.component, "stored", (r.ts for r in readings))
        self.stats.new_readings += new
        return new
