"""The ingest bridge: MQTT messages in, readings and dead letters out to the bus.

Per batch: validate every message, send readings (keyed by device id) and dead letters (original
bytes, reason headers), `bus.flush()`, and only THEN acknowledge the batch to its source. When the
flush fails nothing is acknowledged: the batch is sent again until the bus takes it, and a crash
in between leaves the messages unacknowledged in the broker, which delivers them again.

No message can stop the bridge or hold back the ones behind it:
- a message whose conversion fails for any reason becomes a dead letter (reason `invalid`);
- a record the bus refuses for what it is (`BusError.permanent`), or that fails alone while the
  records around it are stored (found by sending the batch one record at a time after
  `isolate_after` failed attempts), is replaced by a dead letter of its message (payload prefix,
  size, SHA-256); if the bus refuses that too, the message is kept on disk (`ingest.quarantine`),
  counted and logged, and acknowledged with the rest.
Rejections are counted per reason.

`run` pipelines this: this thread reads and validates batches while a sender thread sends them
as they come, without flushing, and acknowledges each message as soon as the bus has confirmed its
record (its `Delivery`), in order of receipt: up to the first message not confirmed yet. The
source's own thread (paho's network loop) keeps receiving and answering the broker meanwhile.
A record that failed, could not be sent, is overdue (`flush_timeout_s`), or went to a bus whose
`send` confirms nothing (confirmed by `flush` only) makes the sender settle everything in flight
as `process` does: flush, deliver again what the flush did not confirm, acknowledge in order.
At most `pipeline_depth` batches' worth of messages are in flight; past that the sender waits.

Run alone with `python -m tower.processes.bridge --settings FILE` (stack mode: Mosquitto -> Kafka).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from beffroi import metrics
from beffroi.bus import Bus, BusError, Delivery
from beffroi.clock import utcnow
from beffroi.events import DeadLetter, DeadLetterReason, escape_unprintable
from beffroi.records import Outgoing, dead_letter_record, reading_record
from beffroi.venue import PlacedDevice
from ingest.quarantine import Quarantine, default_state_dir
from ingest.settings import IngestPlatformSettings
from ingest.source import Inbound, MessageSource
from ingest.validate import Limits, make_dead_letter, validate_message

log = logging.getLogger(__name__)

RETRIES_ONCE_UP = 2


@dataclass(frozen=True)
class BridgeConfig:
    readings_topic: str
    deadletter_topic: str
    limits: Limits = field(default_factory=Limits)
    namespace: str = "beffroi"
    batch_size: int = 1000
    linger_s: float = 0.02
    poll_timeout_s: float = 0.2
    pipeline_depth: int = 8  # validated batches waiting for the sender, at most
    retry_backoff_s: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
    flush_timeout_s: float = 5.0
    isolate_after: int = 3
    quarantine_dir: Path = field(default_factory=lambda: default_state_dir() / "quarantine")

    @classmethod
    def from_settings(cls, settings: IngestPlatformSettings) -> BridgeConfig:
        ingest = settings.ingest
        return cls(
            readings_topic=settings.kafka.topic("readings"),
            deadletter_topic=settings.kafka.topic("deadletter"),
            limits=Limits.from_settings(ingest),
            namespace=settings.mqtt.namespace,
            batch_size=ingest.batch_size,
            linger_s=ingest.batch_linger_ms / 1000.0,
            flush_timeout_s=ingest.flush_timeout_s,
            quarantine_dir=ingest.quarantine_dir or default_state_dir() / "quarantine",
        )


@dataclass
class BridgeStats:
    """Counters since start: readings forwarded, dead letters per reason, records the bus refused
    (re-sent as dead letters), messages kept on disk, failed flushes."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    quarantined: int = 0
    batches: int = 0
    flush_failures: int = 0
    errors: int = 0

    @property
    def dead_lettered(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items())) or "none"
        return (
            f"bridge: {self.accepted} readings forwarded, {self.dead_lettered} dead-lettered ({reasons}), "
            f"{self.refused} refused by the bus, {self.quarantined} quarantined, "
            f"{self.batches} batches, {self.flush_failures} failed flushes"
        )


_CONFIRMED = Delivery.stored()


@dataclass(slots=True)
class _Item:
    """One message of a batch and what it became: a reading, a dead letter, or (None) kept on disk;
    once sent by `run`, its record's delivery, or why sending it failed."""

    msg: Inbound
    record: Outgoing | None
    reason: str | None = None  # the dead letter's reason; None for a reading
    sensor_ts: datetime | None = None  # a reading's own timestamp (for the latency histogram)
    delivery: Delivery | None = None
    failure: Exception | None = None

    def confirmed(self) -> bool:
        """Nothing left to wait for: kept on disk, or the bus stored its record."""
        if self.record is None:
            return True
        delivery = self.delivery
        return delivery is not None and delivery.done() and delivery.error() is None


@dataclass
class _Batch:
    """A batch as received, what each of its messages became, and (in `run`) how many of its messages
    are acknowledged so far."""

    msgs: Sequence[Inbound]
    items: list[_Item]
    acked: int = 0
    sent_at: float = 0.0


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
        self.quarantine = Quarantine(config.quarantine_dir)
        self._stop = threading.Event()
        self._wake = threading.Event()  # the sender has something to do: a batch, a delivery
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
        validated = self._validate(batch)
        try:
            return self._complete([validated])
        finally:
            self._pending.dec(len(batch))

    def run(self, *, summary_every_s: float = 30.0) -> None:
        """Read and validate batches in this thread while a sender thread sends, flushes and
        acknowledges them in order, until `stop()`; logs a summary of the counters periodically.
        Never raises: an unexpected failure (of the source or the bus) is logged, and what it held
        is left unacknowledged for the broker to deliver again."""
        cfg = self.config
        handoff: queue.Queue[_Batch] = queue.Queue(maxsize=cfg.pipeline_depth)
        sender = threading.Thread(target=self._send_loop, args=(handoff,), name="bridge-sender", daemon=True)
        sender.start()
        next_summary = time.monotonic() + summary_every_s
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    batch = self.source.next_batch(
                        max_items=cfg.batch_size, linger_s=cfg.linger_s, timeout_s=cfg.poll_timeout_s
                    )
                    if batch:
                        self._hand_over(handoff, self._validate(batch))
                    failures = 0
                except Exception:
                    self.stats.errors += 1
                    delay = self._backoff(failures)
                    failures += 1
                    log.exception("bridge: reading a batch failed unexpectedly; retry in %.1fs", delay)
                    self._stop.wait(delay)
                if time.monotonic() >= next_summary:
                    log.info("%s", self.stats.summary())
                    next_summary = time.monotonic() + summary_every_s
        finally:
            self._stop.set()
            sender.join()
        log.info("%s", self.stats.summary())

    def _hand_over(self, handoff: queue.Queue[_Batch], validated: _Batch) -> None:
        """Queue `validated` for the sender (waiting while it is `pipeline_depth` behind)."""
        while not self._stop.is_set():
            try:
                handoff.put(validated, timeout=self.config.poll_timeout_s)
                self._wake.set()
                return
            except queue.Full:
                continue
        self._pending.dec(len(validated.msgs))  # stopped: left unacknowledged

    def _send_loop(self, handoff: queue.Queue[_Batch]) -> None:
        """The sender: sends each batch as it is handed over and acknowledges messages in order of
        receipt as the bus confirms their records; a failed, unconfirmed or unconfirmable (by `flush`
        only) record settles everything in flight the way `process` does. After `stop()` it still
        tries what was validated (once: nothing is acknowledged unconfirmed)."""
        cfg = self.config
        most_in_flight = cfg.pipeline_depth * cfg.batch_size
        in_flight: deque[_Batch] = deque()
        failures = 0
        while True:
            self._wake.clear()  # before looking: a wake-up from now on is not lost
            stopping = self._stop.is_set()
            try:
                progress = False
                while stopping or sum(len(b.items) - b.acked for b in in_flight) < most_in_flight:
                    try:
                        validated = handoff.get_nowait()
                    except queue.Empty:
                        break
                    in_flight.append(validated)
                    progress = True
                    if not self._dispatch(validated):
                        break  # the bus looks down: settle what is in flight first
                progress |= self._ack_confirmed(in_flight)
                if in_flight and (stopping or self._stuck(in_flight[0])):
                    self._settle(in_flight)
                    progress = True
                failures = 0
            except Exception:
                self.stats.errors += 1
                delay = self._backoff(failures)
                failures += 1
                log.exception(
                    "bridge: sending %d batches failed unexpectedly; they are left unacknowledged, "
                    "next in %.1fs",
                    len(in_flight),
                    delay,
                )
                while in_flight:
                    dropped = in_flight.popleft()
                    self._pending.dec(len(dropped.msgs) - dropped.acked)
                self._stop.wait(delay)
                continue
            if stopping:
                for left in in_flight:  # not confirmed: left unacknowledged
                    self._pending.dec(len(left.msgs) - left.acked)
                while True:
                    try:
                        self._pending.dec(len(handoff.get_nowait().msgs))
                    except queue.Empty:
                        return
            if not progress:
                self._wake.wait(cfg.poll_timeout_s)

    def _dispatch(self, validated: _Batch) -> bool:
        """Send the records of `validated`, keeping each one's delivery, or why it was not sent.
        False, with the records after it left unsent, once the bus failed one for another reason
        than what it is (a bus down may take `max_block` per send to say so)."""
        send = self.bus.send
        wake = self._on_delivery
        validated.sent_at = time.monotonic()
        items = validated.items
        for n, item in enumerate(items):
            record = item.record
            if record is None:
                continue
            try:
                delivery = send(record.topic, record.value, key=record.key, headers=record.headers)
            except Exception as exc:
                if _refused(exc):
                    item.failure = exc
                    continue
                for unsent in items[n:]:
                    unsent.failure = exc
                return False
            if isinstance(delivery, Delivery):  # else (a bus that predates deliveries): by flush
                item.delivery = delivery
                delivery.on_done(wake)
        return True

    def _on_delivery(self, delivery: Delivery) -> None:
        if not self._wake.is_set():  # a produce batch settles its records together: wake once
            self._wake.set()

    def _ack_confirmed(self, in_flight: deque[_Batch]) -> bool:
        """Acknowledge the messages whose records are confirmed, in order, up to the first one that
        is not; account for each batch once it is acknowledged in full. True when any was."""
        progress = False
        while in_flight:
            validated = in_flight[0]
            items = validated.items
            start = end = validated.acked
            while end < len(items) and items[end].confirmed():
                end += 1
            if end > start:
                self.source.ack(validated.msgs[start:end])
                validated.acked = end
                self._pending.dec(end - start)
                progress = True
            if end < len(items):
                return progress
            in_flight.popleft()
            self._account(validated)
        return progress

    def _stuck(self, validated: _Batch) -> bool:
        """The first unacknowledged message of `validated` waits for something that will not come by
        itself: its record failed, was not sent, is confirmed only by `flush`, or is overdue."""
        item = validated.items[validated.acked]
        delivery = item.delivery
        if delivery is None:
            return True
        if delivery.done():
            return delivery.error() is not None
        return time.monotonic() - validated.sent_at > self.config.flush_timeout_s

    def _settle(self, in_flight: deque[_Batch]) -> None:
        """Flush, deliver again (as `process` does) each record in flight that the flush did not
        confirm, then acknowledge in order what is confirmed: everything, unless stopped meanwhile.
        A flush that succeeds confirms every record sent before it but those whose delivery failed.
        A record whose delivery is still pending after a failed flush (the broker is away: the
        producer keeps it and retries) is not sent again: each failed flush of a broker restart
        added a copy of everything in flight, and the pile took tens of seconds to drain once the
        broker was back. It settles by its delivery, or is sent again once that fails."""
        try:
            self.bus.flush(timeout=self.config.flush_timeout_s)
            flushed = True
        except Exception:
            flushed = False
        again: list[_Item] = []
        for validated in in_flight:
            for item in validated.items[validated.acked :]:
                if item.confirmed():
                    continue
                delivery = item.delivery
                failed = item.failure is not None or (delivery is not None and delivery.error() is not None)
                if flushed and not failed:
                    item.delivery = _CONFIRMED
                elif not failed and delivery is not None and not delivery.done():
                    continue  # on its way (the producer retries it): sent again, it would pile up
                else:
                    again.append(item)
        if again and self._deliver(again):
            for item in again:
                item.delivery, item.failure = _CONFIRMED, None
        self._ack_confirmed(in_flight)

    def _validate(self, batch: Sequence[Inbound]) -> _Batch:
        self._in.inc(len(batch))
        self._pending.inc(len(batch))
        now = self.clock()
        return _Batch(batch, [self._convert(msg, now) for msg in batch])

    def _complete(self, group: list[_Batch]) -> bool:
        """Send and flush the records of `group`, then acknowledge its batches in order (each one
        leaves `group` once acknowledged). False when stopped before the bus confirmed."""
        if not self._deliver([item for b in group for item in b.items]):
            return False
        while group:
            validated = group[0]
            self.source.ack(validated.msgs)
            group.pop(0)
            self._account(validated)
        return True

    def _account(self, validated: _Batch) -> None:
        items = validated.items
        metrics.observe_latency(
            "bridge", "forwarded", [i.sensor_ts for i in items if i.sensor_ts is not None]
        )
        self._out.inc(len(items))
        for item in items:
            if item.record is None:
                self.stats.quarantined += 1
            elif item.reason is None:
                self.stats.accepted += 1
            else:
                self.stats.rejected[item.reason] += 1
                metrics.DEAD_LETTERS.labels("bridge", item.reason).inc()
        self.stats.batches += 1

    # -- conversion ------------------------------------------------------------------------------

    def _convert(self, msg: Inbound, now: datetime) -> _Item:
        cfg = self.config
        try:
            result = validate_message(
                msg.payload,
                topic=msg.topic,
                devices=self.devices,
                now=now,
                limits=cfg.limits,
                namespace=cfg.namespace,
            )
            if isinstance(result, DeadLetter):
                log.debug("dead letter from %s: %s (%s)", result.source, result.reason.value, result.detail)
                return _Item(msg, dead_letter_record(cfg.deadletter_topic, result), result.reason.value)
            return _Item(msg, reading_record(cfg.readings_topic, result), sensor_ts=result.ts)
        except Exception as exc:
            log.exception("bridge: converting a message from %s failed", escape_unprintable(msg.topic, 200))
            return self._fallback(msg, f"conversion failed: {type(exc).__name__}: {exc}", now)

    def _fallback(self, msg: Inbound, why: str, now: datetime) -> _Item:
        """A minimal dead letter (reason `invalid`, at most `deadletter_prefix_bytes` of the payload
        plus its size and SHA-256), or the disk if even that cannot be built."""
        limits = self.config.limits
        try:
            letter = make_dead_letter(
                msg.payload,
                topic=msg.topic,
                reason=DeadLetterReason.INVALID,
                detail=why,
                now=now,
                limits=limits,
                cut_above=limits.deadletter_prefix_bytes,
            )
            return _Item(msg, dead_letter_record(self.config.deadletter_topic, letter), letter.reason.value)
        except Exception as exc:
            return self._keep_on_disk(
                msg, f"{why}; its dead letter failed too: {type(exc).__name__}: {exc}", now
            )

    def _keep_on_disk(self, msg: Inbound, why: str, now: datetime) -> _Item:
        self.quarantine.keep(msg.topic, msg.payload, why=why, now=now)
        return _Item(msg, None)

    # -- delivery --------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        delays = self.config.retry_backoff_s
        return delays[min(attempt, len(delays) - 1)]

    def _send(self, records: Sequence[Outgoing]) -> Exception | None:
        """Send and flush; the failure (of any kind) or None once the bus confirmed every record."""
        try:
            for r in records:
                self.bus.send(r.topic, r.value, key=r.key, headers=r.headers)
        except Exception as exc:
            # the records sent before the failure are reported by the next flush: take that verdict
            # now, so that it is not blamed on the records sent after
            with contextlib.suppress(Exception):
                self.bus.flush(timeout=self.config.flush_timeout_s)
            return exc
        try:
            self.bus.flush(timeout=self.config.flush_timeout_s)
        except Exception as exc:
            return exc
        return None

    def _deliver(self, items: list[_Item]) -> bool:
        attempt = 0
        while True:
            error = self._send([i.record for i in items if i.record is not None])
            if error is None:
                return True
            self.stats.flush_failures += 1
            metrics.FAILURES.labels("bridge", "send").inc()
            isolate = _refused(error) or attempt + 1 >= self.config.isolate_after
            if isolate and self._isolate(items, refused=_refused(error)):
                return True
            delay = self._backoff(attempt)
            attempt += 1
            log.warning(
                "bridge: sending a batch of %d records failed (%s); nothing acknowledged, retry in %.1fs",
                len(items),
                error,
                delay,
            )
            if self._stop.wait(delay):
                return False

    def _isolate(self, items: list[_Item], *, refused: bool = False) -> bool:
        """Send the batch one record at a time, replacing each record the bus will not take (see the
        module docstring). False, with nothing decided, when the bus looks down: two records failed
        in a row, neither refused for what it is, before any was stored. When the first record is
        stored with no failure before it and the batch was not `refused` for what a record is (the
        bus looked down, and came back meanwhile), the rest is sent at once and only taken one at a
        time if that fails. Once the bus stored one,
        a record failing for another reason is tried `RETRIES_ONCE_UP` more times before it is
        replaced (a producer that restarts after a refusal may fail the next record once)."""
        stored_any = False
        suspect: _Item | None = None
        for index, item in enumerate(items):
            if item.record is None:
                continue
            error = self._send_once_up(item.record) if stored_any else self._send([item.record])
            if error is None:
                first = not stored_any and suspect is None
                stored_any = True
                if suspect is not None and suspect.record is not None:  # the bus works: try it again
                    if (again := self._send_once_up(suspect.record)) is not None:
                        self._replace(suspect, f"the bus would not store it while it stored others: {again}")
                    suspect = None
                elif first and not refused:  # nothing failed alone: the bus is back (a broker restart)
                    rest = [i.record for i in items[index + 1 :] if i.record is not None]
                    if not rest or self._send(rest) is None:
                        return True  # the rest at once, not one record per flush
                continue
            if _refused(error) or stored_any:
                self._replace(item, f"the bus refused it: {error}")
            elif suspect is None:
                suspect = item
            else:
                log.warning("bridge: the bus stores nothing (%s); the batch waits", error)
                return False
        if suspect is not None:
            log.warning("bridge: the only remaining record of the batch could not be stored; the batch waits")
            return False
        return True

    def _send_once_up(self, record: Outgoing) -> Exception | None:
        """Send one record to a bus known to work: retried unless refused for what it is."""
        error = self._send([record])
        for attempt in range(RETRIES_ONCE_UP):
            if error is None or _refused(error) or self._stop.wait(self._backoff(attempt)):
                break
            error = self._send([record])
        return error

    def _replace(self, item: _Item, why: str) -> None:
        """Re-send `item`'s message as a minimal dead letter; keep it on disk if that fails too."""
        self.stats.refused += 1
        now = self.clock()
        log.error(
            "bridge: a record from %s was not stored (%s)", escape_unprintable(item.msg.topic, 200), why
        )
        replacement = self._fallback(item.msg, f"not stored: {why}", now)
        if replacement.record is not None and self._send([replacement.record]) is not None:
            replacement = self._keep_on_disk(item.msg, f"not stored, nor its dead letter: {why}", now)
        item.record, item.reason, item.sensor_ts = replacement.record, replacement.reason, None


def _refused(error: Exception) -> bool:
    """The bus refused a record for what it is, or the failure came from the record itself."""
    return not isinstance(error, BusError) or error.permanent
