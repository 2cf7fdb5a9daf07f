"""`Bus` on Apache Kafka (kafka-python): idempotent producer with acks=all, manual offset commits.

Topics are never created implicitly (the clients ask the broker not to): `ensure_topics` creates
them. One producer per bus, created on first send and shared by threads; one consumer per
subscription.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

from beffroi.bus import Bus, BusError, Delivery, Headers, Record, Subscription, TopicPartition
from beffroi.settings import PlatformSettings

with warnings.catch_warnings():
    # kafka-python 3.0 loads its protocol schemas at import with importlib.resources.read_text (deprecated)
    warnings.filterwarnings("ignore", message="(read|open)_text is deprecated", category=DeprecationWarning)
    from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KafkaTopicPartition
    from kafka.errors import (
        CorruptRecordError,
        InvalidRecordError,
        KafkaError,
        MessageSizeTooLargeError,
        RecordListTooLargeError,
        TopicAlreadyExistsError,
        for_code,
    )
    from kafka.partitioner import DefaultPartitioner
    from kafka.partitioner.default import murmur2

KEY: Final = "kafka-python"

log = logging.getLogger(__name__)

_PRUNE_EVERY = 10_000
_RECORD_REFUSED = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError, CorruptRecordError)
"""Errors that refuse a record for what it is: sending it again cannot succeed."""


def _refuses_record(exc: object) -> bool:
    return isinstance(exc, _RECORD_REFUSED)


_KNOWN_KEYS = 100_000


class _KeyHashCache(DefaultPartitioner):  # type: ignore[misc]
    """Kafka's default partitioner, remembering the murmur2 hash of each key: keys are device ids, few
    and sent again and again, and kafka-python hashes in pure Python (the bridge's costliest step
    per record after validation)."""

    def __init__(self) -> None:
        super().__init__()
        self._hashes: dict[bytes, int] = {}

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        if serialized_key is None or topic not in cluster.topics():
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        h = self._hashes.get(serialized_key)
        if h is None:
            if len(self._hashes) >= _KNOWN_KEYS:
                self._hashes.clear()
            h = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        partitions = sorted(cluster.partitions_for_topic(topic))
        return int(partitions[h % len(partitions)])


class KafkaBus(Bus):
    def __init__(
        self,
        *,
        bootstrap_servers: str = "127.0.0.1:9092",
        client_id: str = "beffroi",
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
        max_block_ms: int = 10_000,
        batch_size: int = 256 * 1024,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        security: Mapping[str, str] | None = None,
        bootstrap_timeout_ms: int | None = None,
    ) -> None:
        """`max_block_ms` bounds how long `send` waits for a topic's metadata (a missing topic
        fails after it) or for buffer space; the session settings bound how long a crashed
        member keeps its partitions. `security` holds kafka-python's `security_protocol` /
        `sasl_*` options (`KafkaSettings.kafka_python_security`). `bootstrap_timeout_ms` bounds the
        producer's first contact with the cluster, a refused login included (None: kafka-python's 30 s)."""
        self._common: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers.split(","),
            "request_timeout_ms": request_timeout_ms,
            # after a broker restart, reconnect within a second (the default backs off up to 30 s,
            # which stalled the path for 20-55 s after Kafka was back)
            "reconnect_backoff_max_ms": 1_000,
            **(security or {}),
        }
        self._client_id = client_id
        self._producer_config: dict[str, Any] = {
            "client_id": f"{client_id}-producer",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "max_block_ms": max_block_ms,
            "allow_auto_create_topics": False,
            "partitioner": _KeyHashCache(),
        }
        if bootstrap_timeout_ms is not None:
            self._producer_config["bootstrap_timeout_ms"] = bootstrap_timeout_ms
        self._consumer_config: dict[str, Any] = {
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
        }
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._unconfirmed: dict[int, list[tuple[str, Any]]] = {}
        self._subscriptions: list[KafkaSubscription] = []
        self._closed = False

    @classmethod
    def from_settings(cls, settings: PlatformSettings, **overrides: Any) -> Self:
        kafka = settings.kafka
        options: dict[str, Any] = {
            "bootstrap_servers": kafka.bootstrap_servers,
            "linger_ms": kafka.linger_ms,
            "request_timeout_ms": kafka.request_timeout_ms,
            "security": kafka.kafka_python_security(),
        }
        return cls(**{**options, **overrides})

    def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        if not partitions:
            return
        for topic, count in partitions.items():
            if count < 1:
                raise BusError(f"topic {topic!r}: partition count must be >= 1, got {count}")
        try:
            admin = KafkaAdminClient(client_id=f"{self._client_id}-admin", **self._common)
        except KafkaError as exc:
            raise BusError(f"topics {sorted(partitions)}: cannot reach Kafka: {exc!r}") from exc
        try:
            existing = set(admin.list_topics())
            missing = {t: n for t, n in partitions.items() if t not in existing}
            if missing:
                response = admin.create_topics(
                    {t: {"num_partitions": n, "replication_factor": 1} for t, n in missing.items()},
                    raise_errors=False,
                )
                for result in response["topics"]:
                    error = for_code(result["error_code"])
                    if result["error_code"] != 0 and error is not TopicAlreadyExistsError:
                        raise BusError(
                            f"topic {result['name']!r}: creation failed: {error.__name__} "
                            f"{result.get('error_message') or ''}".rstrip()
                        )
            admin.wait_for_topics(list(partitions), timeout_ms=self._common["request_timeout_ms"])
        except KafkaError as exc:
            raise BusError(f"topics {sorted(partitions)}: {exc!r}") from exc
        finally:
            admin.close()

    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> Delivery:
        producer = self._get_producer()
        try:
            future = producer.send(topic, value=value, key=key, headers=list(headers))
        except KafkaError as exc:
            self._discard_if_fatal(producer)
            raise BusError(f"topic {topic!r}: send failed: {exc!r}", permanent=_refuses_record(exc)) from exc
        delivery = Delivery()

        def settled(outcome: object) -> None:
            if isinstance(outcome, BaseException):
                permanent = _refuses_record(outcome)
                delivery.settle(BusError(f"topic {topic!r}: not stored: {outcome!r}", permanent=permanent))
            else:
                delivery.settle()

        future.add_both(settled)
        with self._lock:
            unconfirmed = self._unconfirmed.setdefault(threading.get_ident(), [])
            unconfirmed.append((topic, future))
            if len(unconfirmed) % _PRUNE_EVERY == 0:  # a thread that never flushes keeps only its failures
                unconfirmed[:] = [(t, f) for t, f in unconfirmed if not f.succeeded()]
        return delivery

    def flush(self, timeout: float | None = 30.0) -> None:
        with self._lock:
            mine = self._unconfirmed.pop(threading.get_ident(), [])
            producer = self._producer
        if producer is None:
            return
        try:
            producer.flush(timeout=timeout)
        except KafkaError as exc:
            topics = sorted({topic for topic, _ in mine})
            raise BusError(f"topics {topics}: flush failed after {timeout}s: {exc!r}") from exc
        failed = [(topic, future) for topic, future in mine if not future.succeeded()]
        self._discard_if_fatal(producer)
        if failed:
            topics = sorted({topic for topic, _ in failed})
            first = failed[0][1].exception
            raise BusError(
                f"topics {topics}: {len(failed)} of {len(mine)} records not stored: {first!r}",
                permanent=all(_refuses_record(f.exception) for _, f in failed),
            )

    def subscribe(
        self, group: str, topics: Sequence[str], *, client_id: str | None = None
    ) -> KafkaSubscription:
        if isinstance(topics, str) or not topics:
            raise ValueError(f"group {group!r}: topics must be a non-empty sequence of names")
        with self._lock:
            self._check_open()
        try:
            consumer = KafkaConsumer(
                group_id=group,
                client_id=client_id or f"{self._client_id}-{group}",
                **self._consumer_config,
                **self._common,
            )
        except KafkaError as exc:
            raise BusError(f"group {group!r}: cannot reach Kafka: {exc!r}") from exc
        _forbid_auto_create(getattr(consumer, "_cluster", None))
        try:
            # the group leader assigns only partitions it has metadata for: fetch it before joining
            missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        except KafkaError as exc:
            consumer.close(autocommit=False)
            raise BusError(f"group {group!r}: metadata for {list(topics)} unavailable: {exc!r}") from exc
        if missing:
            consumer.close(autocommit=False)
            raise BusError(f"group {group!r}: topics {missing} do not exist (create them with ensure_topics)")
        subscription = KafkaSubscription(consumer, group=group, topics=tuple(topics), bus=self)
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
        for subscription in subscriptions:
            subscription.close()
        if producer is not None:
            producer.close(timeout=self._common["request_timeout_ms"] / 1000)

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            self._check_open()
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(**self._producer_config, **self._common)
                except KafkaError as exc:
                    raise BusError(f"producer: cannot reach Kafka: {exc!r}") from exc
                _forbid_auto_create(getattr(self._producer, "_metadata", None))
            return self._producer

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("kafka bus is closed")

    def _discard_if_fatal(self, producer: KafkaProducer) -> None:
        """Drop a producer that an error left unusable, so that the next `send` starts a new one.

        kafka-python's idempotent producer treats some per-record refusals (a record over the topic's
        `max.message.bytes`) as fatal: it then fails every record it holds and every later one. The
        records it failed are reported by the flush of the threads that sent them; none is lost.
        """
        manager = getattr(producer, "_transaction_manager", None)
        if manager is None or not manager.has_fatal_error():
            return
        with self._lock:
            if self._producer is producer:
                self._producer = None
        log.warning("kafka producer hit a fatal error; a new one takes over")
        producer.close(timeout=0)

    def _forget(self, subscription: KafkaSubscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)


def _forbid_auto_create(cluster: Any) -> None:
    """kafka-python 3.0 drops `allow_auto_create_topics` on its way to the cluster metadata: set it there,
    so that a broker with auto.create.topics.enable never creates a topic behind `ensure_topics`."""
    config = getattr(cluster, "config", None)
    if isinstance(config, dict) and "allow_auto_create_topics" in config:
        config["allow_auto_create_topics"] = False


class KafkaSubscription(Subscription):
    def __init__(
        self, consumer: KafkaConsumer, *, group: str, topics: tuple[str, ...], bus: KafkaBus
    ) -> None:
        super().__init__(group=group, topics=topics)
        self._consumer = consumer
        self._bus = bus
        self._seek_lock = threading.Lock()
        self._pending_seeks: dict[KafkaTopicPartition, int] = {}
        self._polled: dict[KafkaTopicPartition, int] = {}  # for `lag`: the next offset after the polls
        self._closed = False
        consumer.subscribe(topics=list(topics), listener=_ApplyPendingSeeks(self))

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        if max_records < 1:
            raise ValueError(f"group {self.group!r}: max_records must be >= 1, got {max_records}")
        self._check_open()
        try:
            batches = self._consumer.poll(timeout_ms=max(0, int(timeout * 1000)), max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"group {self.group!r} on {list(self.topics)}: poll failed: {exc!r}") from exc
        records: list[Record] = []
        for tp in sorted(batches):
            if batches[tp]:
                self._polled[tp] = batches[tp][-1].offset + 1
            for r in batches[tp]:
                records.append(
                    Record(
                        topic=r.topic,
                        value=r.value if r.value is not None else b"",
                        key=r.key,
                        headers=tuple((k, v if v is not None else b"") for k, v in r.headers),
                        partition=r.partition,
                        offset=r.offset,
                        timestamp_ms=r.timestamp if r.timestamp >= 0 else None,
                    )
                )
        return records

    def commit(self) -> None:
        self._check_open()
        try:
            self._consumer.commit()
        except KafkaError as exc:
            raise BusError(f"group {self.group!r}: commit failed: {exc!r}") from exc

    def positions(self) -> dict[TopicPartition, int]:
        self._check_open()
        try:
            out: dict[TopicPartition, int] = {}
            for tp in sorted(self._consumer.assignment()):
                position = self._consumer.position(tp, timeout_ms=self._consumer.config["request_timeout_ms"])
                if position is not None:
                    out[TopicPartition(tp.topic, tp.partition)] = position
            return out
        except KafkaError as exc:
            raise BusError(f"group {self.group!r}: positions unavailable: {exc!r}") from exc

    def lag(self) -> dict[TopicPartition, int]:
        self._check_open()
        out: dict[TopicPartition, int] = {}
        assigned = self._consumer.assignment()
        for ktp, position in list(self._polled.items()):
            high = self._consumer.highwater(ktp) if ktp in assigned else None
            if high is not None:
                out[TopicPartition(ktp.topic, ktp.partition)] = max(0, high - position)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"{tp.topic}[{tp.partition}]: offset must be >= 0, got {offset}")
        self._check_open()
        ktp = KafkaTopicPartition(tp.topic, tp.partition)
        with self._seek_lock:
            if ktp in self._consumer.assignment():
                self._consumer.seek(ktp, offset)
                self._polled.pop(ktp, None)
            else:
                self._pending_seeks[ktp] = offset

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._consumer.close(autocommit=False)
        self._bus._forget(self)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"group {self.group!r}: subscription is closed")

    def _on_assigned(self, assigned: set[KafkaTopicPartition]) -> None:
        with self._seek_lock:
            for tp in assigned:
                offset = self._pending_seeks.pop(tp, None)
                if offset is not None:
                    self._consumer.seek(tp, offset)


class _ApplyPendingSeeks(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    def on_partitions_revoked(self, revoked: set[KafkaTopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[KafkaTopicPartition]) -> None:
        self._subscription._on_assigned(assigned)
