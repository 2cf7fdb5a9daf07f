"""The consumer loop every analytics worker runs: poll a batch, process it, checkpoint, repeat.

Per batch: `process` (decode, evaluate, store, publish, flush), then `checkpoint` (commit the
offsets: only now may the group move past the batch), then `keep` (what the batch changed outside
the bus and the store: counts, rule states). A step that fails raises `WorkerError` naming it;
`run` then calls `on_failure`, closes the subscription so that the uncommitted records come again, and
retries after `retry_backoff_s`. Every write is idempotent, so a batch processed twice stores and
raises nothing twice.

A record the store refuses must not wedge the loop (re-read and refused forever): `write_isolating`
writes a batch, and when the store refuses it while it still answers (a lookup), writes it one item
at a time; an item refused alone is dead-lettered with the store's reason (stage "worker") and the
rest is stored. When the store does not answer, the batch fails as before and is read again later.

Hooks for the workers that keep state across batches: `on_subscribe` (the detectors restore a
snapshot and seek to its positions), `checkpoint` (the detectors save a snapshot, then commit the
positions it covers, when one is due), `idle` (after an empty poll: the same, when due),
`on_failure` (the detectors drop their in-memory state).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from beffroi import metrics
from beffroi.bus import Bus, BusError, Record, Subscription
from beffroi.clock import utcnow
from beffroi.events import Alert, DeadLetter, DeadLetterReason, escape_unprintable
from beffroi.records import BadRecord, alert_record, dead_letter_id
from beffroi.store import Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B")
Item = TypeVar("Item")

_PROBE_ALERT_ID = "00000000-0000-0000-0000-000000000000"


class WorkerError(RuntimeError):
    """A batch failed; the message names the step (poll, store readings, publish alerts, commit...)."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"worker step {step!r} failed: {cause}")
        self.step = step


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


class ConsumerLoop(ABC, Generic[B]):
    """Poll, `process`, `checkpoint`, `keep`; after a failure re-subscribe and read again.
    Subclasses name their topics and process a batch (of type B, what `process` returns)."""

    config: LoopConfig
    stats: LoopStats
    RESUME_FROM: ClassVar[str] = "the committed offsets"  # where a failed batch is read again from
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
    def process(self, records: list[Record]) -> B:
        """Decode, evaluate, store and publish one polled batch; raise `WorkerError` naming the
        failed step. Nothing is committed yet."""

    def checkpoint(self) -> None:
        """After a processed batch: commit the subscription's offsets. A commit the group refuses
        now (its coordinator away while Kafka restarts, or a rebalance) is left to the next batch's,
        which covers these positions too: the batch is done and every write idempotent, and closing
        the subscription to read it again would make the member leave and rejoin the group, which
        held the path a session timeout (~11 s) after Kafka was back. Records a rebalance moved
        come again to their new owner (the `Bus` contract)."""
        try:
            self.subscription.commit()
        except BusError as exc:
            metrics.FAILURES.labels(self.component, "commit offsets").inc()
            log.warning("%s: commit failed (%s); the next batch's commit covers it", type(self).__name__, exc)

    def keep(self, batch: B) -> None:
        """After the checkpoint: keep what the batch changed (counts, rule states)."""

    def idle(self) -> None:
        """A poll that returned nothing (a checkpoint due by time can happen here)."""

    def on_subscribe(self, subscription: Subscription) -> None:
        """A new subscription, before its first poll (seek it to restored positions)."""

    def on_failure(self) -> None:
        """A batch failed; the subscription is closed next and its uncommitted records come again."""

    def stop(self) -> None:
        self._stop.set()

    @property
    def subscription(self) -> Subscription:
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self.config.group, self.topics())
            self.on_subscribe(self._subscription)
        return self._subscription

    def run_once(self, *, timeout_s: float | None = None) -> int:
        """Poll and handle one batch; returns how many records it held. Raises `WorkerError`."""
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
            batch = self.process(records)
            self.checkpoint()
            self.keep(batch)
            self._out.inc(len(records))
        else:
            self.idle()
        return len(records)

    def _update_lag(self) -> None:
        if self._lag is None:
            self._lag = metrics.LagGauge(self.component, self.config.group)
        try:
            self._lag.update(self.subscription.lag())
        except BusError as exc:
            log.debug("%s: consumer lag unavailable: %s", type(self).__name__, exc)

    def run(self, *, summary_every_s: float = 30.0) -> None:
        """Handle batches until `stop()`. After a failure, re-subscribe: uncommitted records come again."""
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
                log.error("%s; nothing committed, re-reading from %s in %.1fs", exc, self.RESUME_FROM, delay)
                self.on_failure()
                self.close()
                self._stop.wait(delay)
            if time.monotonic() >= next_summary:
                log.info("%s", self.stats.summary())
                next_summary = time.monotonic() + summary_every_s
        log.info("%s", self.stats.summary())

    def close(self) -> None:
        """Close the subscription (a failure to is only logged: its records come again anyway)."""
        if self._lag is not None:
            self._lag.clear()
        if self._subscription is not None:
            try:
                self._subscription.close()
            except BusError as exc:
                log.warning("%s: closing the subscription failed: %s", type(self).__name__, exc)
            self._subscription = None

    def _step(self, step: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (StoreError, BusError) as exc:
            raise WorkerError(step, exc) from exc

    def store_answers(self) -> bool:
        """Whether the store answers at all (a lookup): a write it refuses then refused the data."""
        try:
            self.store.get_alert(_PROBE_ALERT_ID)
        except Exception as exc:
            log.warning("%s: the store does not answer: %s", type(self).__name__, exc)
            return False
        return True

    def write_isolating(
        self,
        items: Sequence[Item],
        write: Callable[[Sequence[Item]], int],
        refused: Callable[[Item, StoreError], None],
    ) -> int:
        """`write(items)`; if the store refuses them while it answers, each item alone, then each one
        refused alone once more, and `refused(item, error)` for each one still refused while others
        were stored (what `write` returned, summed). Raises the store's error when it does not answer
        or stores none of them (not the data's fault): the batch is read again later."""
        if not items:
            return 0
        try:
            return write(items)
        except StoreError as exc:
            if not self.store_answers():
                raise
            error = exc
        stored, stored_any = 0, False
        failed: list[Item] = []
        for item in items:
            try:
                stored += write([item])
                stored_any = True
            except StoreError:
                failed.append(item)
        if not stored_any:
            raise error
        for item in failed:  # once more: a transient failure passes now
            try:
                stored += write([item])
            except StoreError as exc:
                if not self.store_answers():
                    raise
                refused(item, exc)
        return stored

    def refused_dead_letter(self, record: Record, exc: StoreError) -> DeadLetter:
        """The dead letter of a record whose content the store refused (stage "worker")."""
        return self._worker_dead_letter(record, BadRecord(f"the store refused it: {exc}"))

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Store `letters`; one the store refuses is stored again as a minimal letter (its reason and
        the size and SHA-256 of its payload); if even that is refused, it is logged and counted (the
        record stays on the bus)."""

        def minimal(letter: DeadLetter, exc: StoreError) -> None:
            digest = hashlib.sha256(letter.payload).hexdigest()
            small = letter.model_copy(
                update={
                    "detail": escape_unprintable(
                        f"{letter.detail}; the store refused it ({exc}): payload of "
                        f"{len(letter.payload)} bytes, sha256 {digest}",
                        500,
                    ),
                    "payload": b"",
                }
            )
            try:
                self.store.write_dead_letters([small])
            except StoreError as again:
                self.stats.bad_records += 1
                name, letter_id = type(self).__name__, letter.dead_letter_id
                log.error("%s: dead letter %s not stored: %s", name, letter_id, again)

        return self.write_isolating(letters, self.store.write_dead_letters, minimal)

    def _count_new_alerts(self, alerts: Sequence[Alert]) -> int:
        new = self.store.write_alerts(alerts) if alerts else 0
        self.stats.new_alerts += new
        return new

    def _send_alerts(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            r = alert_record(self.config.alerts_topic, alert)
            self.bus.send(r.topic, r.value, key=r.key, headers=r.headers)

    def _publish(self, alerts: Sequence[Alert]) -> None:
        self._send_alerts(alerts)
        if alerts:
            self.bus.flush()
            self._published(alerts)

    def _published(self, alerts: Sequence[Alert]) -> None:
        """Alerts stored, sent and flushed: their latency and counts."""
        metrics.observe_latency(self.component, "alerted", (a.raised_at for a in alerts))
        for alert in alerts:
            metrics.ALERTS_RAISED.labels(alert.rule).inc()

    def _worker_dead_letter(self, record: Record, exc: Exception) -> DeadLetter:
        """A record that does not decode (whatever the error), kept (original bytes) as a dead letter
        of stage "worker"; its detail and source are printable text (what a store can hold)."""
        self.stats.bad_records += 1
        metrics.DEAD_LETTERS.labels(self.component, DeadLetterReason.INVALID.value).inc()
        log.warning("%s", exc)
        detail = str(exc) if isinstance(exc, BadRecord) else f"cannot process: {type(exc).__name__}: {exc}"
        return DeadLetter(
            dead_letter_id=dead_letter_id(
                f"{record.topic}[{record.partition}]@{record.offset}", record.value
            ),
            source=escape_unprintable(record.topic, 1024),
            reason=DeadLetterReason.INVALID,
            detail=escape_unprintable(detail, 500),
            received_at=utcnow(),
            payload=record.value,
            stage="worker",
        )
