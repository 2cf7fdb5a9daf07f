"""The analytics worker: readings (and dead letters) from the bus into the store, rules into alerts.

Per batch, in a consumer group: decode, `store.write_readings` and `write_dead_letters`, evaluate
the rules, `store.write_alerts`, publish the alerts, `bus.flush()`, and only THEN `commit()` the
offsets. Every write is idempotent and alert ids derive from message ids, so a batch processed
twice after a crash stores and raises nothing twice. A record that does not decode is kept as a
dead letter (stage "worker"), and so is a reading the store refuses while it stores the others
(`ConsumerLoop.write_isolating`); neither stops the worker. Errors name the failing step.

The loop itself (poll, process, commit, re-subscribe after a failure) is `analytics.consumer.
ConsumerLoop`, which the crowd worker and the detector worker run as well.

Run alone with `python -m tower.processes.worker --settings FILE`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from analytics.consumer import ConsumerLoop, LoopStats, WorkerError
from analytics.provenance import rule_provenance, stamped
from analytics.rules.base import Rule
from analytics.rules.registry import build_rules
from analytics.settings import AnalyticsPlatformSettings
from beffroi import metrics
from beffroi.bus import Bus, Record
from beffroi.events import Alert, DeadLetter, Reading
from beffroi.records import decode_dead_letter, decode_reading
from beffroi.store import Store, StoreError

log = logging.getLogger(__name__)


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
    reading_records: list[Record] = field(default_factory=list)  # each reading's record
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class Worker(ConsumerLoop[Batch]):
    """Consumes readings and dead letters; the same class in both modes."""

    config: WorkerConfig
    stats: WorkerStats

    def __init__(self, *, bus: Bus, store: Store, rules: Sequence[Rule], config: WorkerConfig) -> None:
        super().__init__(bus=bus, store=store)
        self.rules = list(rules)
        self._provenance = [rule_provenance(r) for r in self.rules]
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
        self._step("store readings", lambda: self._store_readings(batch))
        self._step("store dead letters", lambda: self.write_dead_letters(batch.dead_letters))
        batch.alerts = self._step("evaluate rules", lambda: self.evaluate(batch.readings))
        self._step("store alerts", lambda: self._count_new_alerts(batch.alerts))
        self._step("publish alerts", lambda: self._publish(batch.alerts))
        return batch

    def keep(self, batch: Batch) -> None:
        s = self.stats
        s.readings += len(batch.readings)
        s.dead_letters += len(batch.dead_letters)
        s.alerts += len(batch.alerts)
        s.batches += 1

    def decode(self, records: Sequence[Record]) -> Batch:
        batch = Batch(list(records))
        for record in records:
            try:
                if record.topic == self.config.deadletter_topic:
                    batch.dead_letters.append(decode_dead_letter(record))
                else:
                    batch.readings.append(decode_reading(record))
                    batch.reading_records.append(record)
            except Exception as exc:  # whatever a record holds, it never stops the worker
                batch.dead_letters.append(self._worker_dead_letter(record, exc))
        return batch

    def evaluate(self, readings: Sequence[Reading]) -> list[Alert]:
        alerts: list[Alert] = []
        for rule, provenance in zip(self.rules, self._provenance, strict=True):
            try:
                alerts += stamped(provenance, rule.evaluate(readings))
            except Exception as exc:
                raise WorkerError(f"rule {rule.name}", exc) from exc
        return alerts

    def _store_readings(self, batch: Batch) -> None:
        """Store the batch's readings; one the store refuses alone becomes a dead letter and leaves
        the batch (its rules never see it)."""
        refused: set[int] = set()
        records = {id(r): rec for r, rec in zip(batch.readings, batch.reading_records, strict=True)}

        def refuse(reading: Reading, exc: StoreError) -> None:
            refused.add(id(reading))
            batch.dead_letters.append(self.refused_dead_letter(records[id(reading)], exc))

        self.write_isolating(batch.readings, self._count_new_readings, refuse)
        if refused:
            kept = [(r, rec) for r, rec in zip(batch.readings, batch.reading_records, strict=True)]
            kept = [(r, rec) for r, rec in kept if id(r) not in refused]
            batch.readings = [r for r, _ in kept]
            batch.reading_records = [rec for _, rec in kept]

    def _count_new_readings(self, readings: Sequence[Reading]) -> int:
        new = self.store.write_readings(readings) if readings else 0
        metrics.observe_latency(self.component, "stored", (r.ts for r in readings))
        self.stats.new_readings += new
        return new
