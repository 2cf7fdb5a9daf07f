"""`Bus` on Apache Kafka through confluent-kafka (librdkafka): the fast client, same contract.

Chosen with `kafka.client: confluent-kafka` (kafka-python stays the default). The producer is
idempotent with acks=all and Kafka's murmur2 partitioner (so a key lands where kafka-python and
`MemoryBus` put it); topics are never created implicitly. Each delivery report settles the record's
`Delivery` and a failure is also filed under the thread that sent the record, so that thread's
next `flush` raises it. A thread of the bus serves the delivery reports (librdkafka hands them
over only in `poll`), so deliveries settle without anyone flushing. Consumers
commit by hand the positions their polls reached (tracked here: librdkafka's own position of a
partition only moves once a record of it was consumed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka._types import HeadersType
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from beffroi.bus import Bus, BusError, Delivery, Headers, Record, Subscription, TopicPartition
from beffroi.settings import PlatformSettings

KEY: Final = "confluent-kafka"

log = logging.getLogger(__name__)

_REPORT_POLL_S: Final = 0.05

# librdkafka's "no offset": a partition not consumed yet, or a group with no commit for it
_OFFSET_INVALID: Final = -1001

_RECORD_REFUSED: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
    }
)
"""Errors that refuse a record for what it is: sending it again cannot succeed."""


def _refuses_record(error: object) -> bool:
    return isinstance(error, KafkaError) and error.code() in _RECORD_REFUSED


class ConfluentBus(Bus):
    def __init__(
        self,
        *,
        bootstrap_servers: str = "127.0.0.1:9092",
        client_id: str = "beffroi",
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
        max_block_ms: int = 10_000,
        batch_size: int = 1024 * 1024,
        session_timeout_ms: int = 6_000,
        heartbeat_interval_ms: int = 1_000,
        delivery_timeout_ms: int = 120_000,
        security: Mapping[str, str] | None = None,
    ) -> None:
        """`max_block_ms` bounds how long a record for a topic the broker does not know waits
        before it fails, and how long `send` waits for buffer space; the session settings bound
        how long a crashed member keeps its partitions (6 s, the broker's least: after a Kafka
        restart the group waits that long for the member's earlier self; librdkafka heartbeats from
        its own native thread, which the GIL does not hold back). `security` holds librdkafka's
        `security.protocol` / `sasl.*` properties."""
        self._common: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "socket.timeout.ms": request_timeout_ms,
            "reconnect.backoff.max.ms": 1_000,  # back within a second of a broker restart
            **(security or {}),
        }
        self._client_id = client_id
        self._request_timeout_s = request_timeout_ms / 1000
        self._close_timeout_s = min(self._request_timeout_s, 5.0)
        self._max_block_s = max_block_ms / 1000
        self._producer_config: dict[str, Any] = {
            **self._common,
            "client.id": f"{client_id}-producer",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
            "batch.size": batch_size,
            "partitioner": "murmur2_random",
            "allow.auto.create.topics": False,
            "topic.metadata.propagation.max.ms": max_block_ms,
            "request.timeout.ms": request_timeout_ms,
            "message.timeout.ms": delivery_timeout_ms,
        }
        self._consumer_config: dict[str, Any] = {
            **self._common,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat_interval_ms,
            "fetch.wait.max.ms": 100,
            # after a broker restart: find the group's coordinator and the partitions' leaders again
            # within a second or so (defaults: 10 min and 5 min between queries)
            "coordinator.query.interval.ms": 1_000,
            "topic.metadata.refresh.interval.ms": 5_000,
        }
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._failures: dict[int, list[tuple[str, KafkaError]]] = {}
        self._sent: dict[int, set[str]] = {}
        self._subscriptions: list[ConfluentSubscription] = []
        self._poller: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: PlatformSettings, **overrides: Any) -> Self:
        kafka = settings.kafka
        options: dict[str, Any] = {
            "bootstrap_servers": kafka.bootstrap_servers,
            "linger_ms": kafka.linger_ms,
            "request_timeout_ms": kafka.request_timeout_ms,
            "security": kafka.librdkafka_security(),
        }
        return cls(**{**options, **overrides})

    # -- topics -----------------------------------------------------------------------------------

    def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        if not partitions:
            return
        for topic, count in partitions.items():
            if count < 1:
                raise BusError(f"topic {topic!r}: partition count must be >= 1, got {count}")
        admin = AdminClient({**self._common, "client.id": f"{self._client_id}-admin"})
        try:
            existing = set(admin.list_topics(timeout=self._request_timeout_s).topics)
            missing = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in partitions.items()]
            missing = [t for t in missing if t.topic not in existing]
            if missing:
                futures = admin.create_topics(missing, request_timeout=self._request_timeout_s)
                for topic, future in futures.items():
                    try:
                        future.result()
                    except KafkaException as exc:
                        error = exc.args[0]
                        if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                            raise BusError(f"topic {topic!r}: creation failed: {error.str()}") from exc
            self._wait_for_topics(admin, partitions)
        except KafkaException as exc:
            raise BusError(f"topics {sorted(partitions)}: {exc.args[0]!r}") from exc
        finally:
            del admin

    def _wait_for_topics(self, admin: AdminClient, partitions: Mapping[str, int]) -> None:
        deadline = time.monotonic() + self._request_timeout_s
        while True:
            topics = admin.list_topics(timeout=self._request_timeout_s).topics
            ready = [
                t for t in partitions if t in topics and topics[t].error is None and topics[t].partitions
            ]
            if len(ready) == len(partitions):
                return
            if time.monotonic() > deadline:
                raise BusError(f"topics {sorted(set(partitions) - set(ready))}: not ready after creation")
            time.sleep(0.1)

    # -- producing --------------------------------------------------------------------------------

    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> Delivery:
        producer = self._get_producer()
        thread = threading.get_ident()
        delivery = Delivery()

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is None:
                delivery.settle()
                return
            # no lock in librdkafka's callbacks: one may run with the client's exception pending
            # (after a fatal error), and a lock taken then is never released (these calls are atomic)
            self._failures.setdefault(thread, []).append((topic, error))
            permanent = _refuses_record(error)
            delivery.settle(BusError(f"topic {topic!r}: not stored: {error.str()}", permanent=permanent))

        deadline = time.monotonic() + self._max_block_s
        while True:
            try:
                producer.produce(topic, value, key, headers=list(headers) or None, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: serve delivery reports, wait for room
                if time.monotonic() > deadline:
                    raise BusError(f"topic {topic!r}: send failed: the producer queue stayed full") from None
                self._serve(producer, 0.05, f"topic {topic!r}: send failed")
            except KafkaException as exc:
                self._drop_if_fatal(producer, exc)
                raise BusError(
                    f"topic {topic!r}: send failed: {exc.args[0]!r}", permanent=_refuses_record(exc.args[0])
                ) from exc
        with self._lock:
            self._sent.setdefault(thread, set()).add(topic)
        return delivery

    def flush(self, timeout: float | None = 30.0) -> None:
        thread = threading.get_ident()
        with self._lock:
            producer = self._producer
            topics = sorted(self._sent.pop(thread, ()))
        if producer is not None:
            try:
                remaining = producer.flush(-1 if timeout is None else timeout)
            except (KafkaException, SystemError) as exc:  # fatal: the producer is closed, its records purged
                self._drop_if_fatal(producer, exc)
                self._failures.pop(thread, None)
                raise BusError(f"topics {topics}: not stored: {_kafka_error(exc)!r}") from exc
            with self._lock:
                dropped = not self._closed and self._producer is not producer
            if dropped:  # a fatal error closed it meanwhile (seen by the report thread)
                self._failures.pop(thread, None)
                raise BusError(f"topics {topics}: not stored: the producer hit a fatal error")
            if remaining:
                raise BusError(
                    f"topics {topics}: flush failed after {timeout}s: {remaining} records unconfirmed"
                )
        failed = self._failures.pop(thread, [])
        if failed:
            names = sorted({t for t, _ in failed})
            raise BusError(
                f"topics {names}: {len(failed)} records not stored: {failed[0][1].str()}",
                permanent=all(_refuses_record(error) for _, error in failed),
            )

    def _get_producer(self) -> Producer:
        with self._lock:
            self._check_open()
            if self._producer is None:
                try:
                    self._producer = Producer(self._producer_config)
                except KafkaException as exc:
                    raise BusError(f"producer: cannot start: {exc.args[0]!r}") from exc
                if self._poller is None:
                    self._poller = threading.Thread(
                        target=self._serve_reports, name="confluent-bus-reports", daemon=True
                    )
                    self._poller.start()
            return self._producer

    def _serve_reports(self) -> None:
        """Serve the delivery reports of the current producer until the bus closes."""
        while not self._closed:
            producer = self._producer
            if producer is None:
                time.sleep(_REPORT_POLL_S)
                continue
            try:
                self._serve(producer, _REPORT_POLL_S, "serving delivery reports")
            except BusError as exc:
                log.warning("kafka producer: %s", exc)

    def _serve(self, producer: Producer, timeout_s: float, what: str) -> None:
        """Serve delivery reports; a fatal error raised meanwhile closes the producer."""
        try:
            producer.poll(timeout_s)
        except (KafkaException, SystemError) as exc:
            self._drop_if_fatal(producer, exc)
            raise BusError(f"{what}: {_kafka_error(exc)!r}") from exc

    def _drop_if_fatal(self, producer: Producer, exc: BaseException) -> None:
        """Close a producer that a fatal error left unusable (e.g. refused a producer id: a login
        without write rights); the next send starts a new one. Its records are not stored."""
        error = _kafka_error(exc)
        if error is None or not error.fatal():
            return
        log.warning("kafka producer hit a fatal error (%s); a new one takes over", error.str())
        with self._lock:
            if self._producer is not producer:
                return
            self._producer = None
        _dispose(producer, self._close_timeout_s)

    # -- consuming --------------------------------------------------------------------------------

    def subscribe(
        self, group: str, topics: Sequence[str], *, client_id: str | None = None
    ) -> ConfluentSubscription:
        if isinstance(topics, str) or not topics:
            raise ValueError(f"group {group!r}: topics must be a non-empty sequence of names")
        with self._lock:
            self._check_open()
        try:
            consumer = Consumer(
                {
                    **self._consumer_config,
                    "group.id": group,
                    "client.id": client_id or f"{self._client_id}-{group}",
                }
            )
        except KafkaException as exc:
            raise BusError(f"group {group!r}: cannot start a consumer: {exc.args[0]!r}") from exc
        try:
            known = consumer.list_topics(timeout=self._request_timeout_s).topics
        except KafkaException as exc:
            consumer.close()
            raise BusError(
                f"group {group!r}: metadata for {list(topics)} unavailable: {exc.args[0]!r}"
            ) from exc
        missing = [t for t in topics if t not in known or known[t].error is not None]
        if missing:
            consumer.close()
            raise BusError(f"group {group!r}: topics {missing} do not exist (create them with ensure_topics)")
        subscription = ConfluentSubscription(
            consumer, group=group, topics=tuple(topics), bus=self, timeout_s=self._request_timeout_s
        )
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, self._producer = self._producer, None
            subscriptions, self._subscriptions = self._subscriptions, []
            poller, self._poller = self._poller, None
        for subscription in subscriptions:
            subscription.close()
        if poller is not None:
            poller.join()
        if producer is not None:
            try:
                producer.flush(self._close_timeout_s)
            except (KafkaException, SystemError) as exc:
                log.warning("kafka producer: flushing before close failed: %s", _kafka_error(exc))
            _dispose(producer, self._close_timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("kafka bus is closed")

    def _forget(self, subscription: ConfluentSubscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)


class ConfluentSubscription(Subscription):
    def __init__(
        self,
        consumer: Consumer,
        *,
        group: str,
        topics: tuple[str, ...],
        bus: ConfluentBus,
        timeout_s: float,
    ) -> None:
        super().__init__(group=group, topics=topics)
        self._consumer = consumer
        self._bus = bus
        self._timeout_s = timeout_s
        self._assigned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}  # moved by polls and seeks since assignment
        self._pending_seeks: dict[TopicPartition, int] = {}
        self._closed = False
        consumer.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke)

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        if max_records < 1:
            raise ValueError(f"group {self.group!r}: max_records must be >= 1, got {max_records}")
        self._check_open()
        try:
            # consume() alone waits for a full batch until the timeout: wait for the first record
            # only, then take what has arrived meanwhile without waiting
            first = self._consumer.poll(timeout=max(0.0, timeout))
            messages = [] if first is None else [first]
            if first is not None and max_records > 1:
                messages += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        except KafkaException as exc:
            raise BusError(
                f"group {self.group!r} on {list(self.topics)}: poll failed: {exc.args[0]!r}"
            ) from exc
        records: list[Record] = []
        for m in messages:
            error = m.error()
            if error is not None:
                raise BusError(f"group {self.group!r} on {list(self.topics)}: poll failed: {error.str()}")
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None
            assert partition is not None
            assert offset is not None
            _, ts = m.timestamp()
            value = m.value()
            records.append(
                Record(
                    topic=topic,
                    value=value if isinstance(value, bytes) else b"",
                    key=_bytes_or_none(m.key()),
                    headers=_headers(m.headers()),
                    partition=partition,
                    offset=offset,
                    timestamp_ms=ts if ts >= 0 else None,
                )
            )
            self._positions[TopicPartition(topic, partition)] = offset + 1
        return records

    def commit(self) -> None:
        self._check_open()
        offsets = [
            KafkaTopicPartition(tp.topic, tp.partition, offset)
            for tp, offset in sorted(
                self._positions.items(), key=lambda item: (item[0].topic, item[0].partition)
            )
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise BusError(f"group {self.group!r}: commit failed: {exc.args[0]!r}") from exc

    def positions(self) -> dict[TopicPartition, int]:
        self._check_open()
        unknown = [tp for tp in self._assigned if tp not in self._positions]
        if unknown:
            try:
                self._resolve(unknown)
            except KafkaException as exc:
                raise BusError(f"group {self.group!r}: positions unavailable: {exc.args[0]!r}") from exc
        return {
            tp: self._positions[tp] for tp in sorted(self._assigned, key=lambda t: (t.topic, t.partition))
        }

    def lag(self) -> dict[TopicPartition, int]:
        """Records behind the end of each assigned partition (from the last fetch, no round trip)."""
        self._check_open()
        out: dict[TopicPartition, int] = {}
        for tp, position in self._positions.items():
            try:
                _, high = self._consumer.get_watermark_offsets(
                    KafkaTopicPartition(tp.topic, tp.partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                out[tp] = max(0, high - position)
        return out

    def _resolve(self, tps: list[TopicPartition]) -> None:
        """Where an unread partition starts: the group's commit, else (earliest) its first offset."""
        ktps = [KafkaTopicPartition(tp.topic, tp.partition) for tp in tps]
        for tp, committed in zip(tps, self._consumer.committed(ktps, timeout=self._timeout_s), strict=True):
            if committed.offset >= 0:
                self._positions[tp] = committed.offset
            else:
                low, _ = self._consumer.get_watermark_offsets(
                    KafkaTopicPartition(tp.topic, tp.partition), timeout=self._timeout_s
                )
                self._positions[tp] = low

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"{tp.topic}[{tp.partition}]: offset must be >= 0, got {offset}")
        self._check_open()
        if tp not in self._assigned:
            self._pending_seeks[tp] = offset
            return
        try:
            self._consumer.seek(KafkaTopicPartition(tp.topic, tp.partition, offset))
        except KafkaException as exc:
            raise BusError(f"{tp.topic}[{tp.partition}]: seek to {offset} failed: {exc.args[0]!r}") from exc
        self._positions[tp] = offset

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("group %r: closing the consumer: %s", self.group, exc)
        self._bus._forget(self)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"group {self.group!r}: subscription is closed")

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        for ktp in partitions:
            tp = TopicPartition(ktp.topic, ktp.partition)
            self._assigned.add(tp)
            self._positions.pop(tp, None)
            offset = self._pending_seeks.pop(tp, None)
            if offset is not None:
                ktp.offset = offset
                self._positions[tp] = offset
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        for ktp in partitions:
            tp = TopicPartition(ktp.topic, ktp.partition)
            self._assigned.discard(tp)
            self._positions.pop(tp, None)
        consumer.unassign()


def _kafka_error(exc: BaseException | None) -> KafkaError | None:
    """The KafkaError behind `exc`. A Python callback that librdkafka runs while the client's own
    exception is pending fails with a SystemError caused by it (delivery reports after a fatal error)."""
    while exc is not None:
        if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
            return exc.args[0]
        exc = exc.__cause__ or exc.__context__
    return None


def _dispose(producer: Producer, timeout_s: float) -> None:
    """Close `producer` without waiting on it more than `timeout_s`. What it still holds is purged
    (reported as not stored). librdkafka's close can hang after a fatal error: it runs in a daemon
    thread, which then holds the last reference, so that the destructor cannot hang the caller."""
    try:
        producer.purge(in_queue=True, in_flight=True, blocking=False)
    except (KafkaException, RuntimeError) as exc:
        log.warning("kafka producer: purging before close failed: %s", exc)
    holder = [producer]
    done = threading.Event()

    def close() -> None:
        try:
            holder[0].close()
        except (KafkaException, RuntimeError, SystemError) as exc:
            log.warning("kafka producer: close failed: %s", _kafka_error(exc) or exc)
        finally:
            done.set()

    threading.Thread(target=close, name="kafka-producer-close", daemon=True).start()
    if done.wait(timeout_s):
        holder.clear()
    else:
        log.warning("kafka producer: not closed after %.1fs; left to a background thread", timeout_s)


def _order(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition


def _headers(headers: HeadersType | None) -> Headers:
    """librdkafka's consumed headers are a list of pairs; a header without a value reads as b""."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    return tuple((k, _bytes_or_none(v) or b"") for k, v in pairs)


def _bytes_or_none(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data
