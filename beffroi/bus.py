"""The Bus seam: a partitioned, replayable log with consumer groups (Kafka, or in memory).

Delivery contract, shared by every backend and checked by tests/contract/test_bus_contract.py:
- `send` is buffered; `flush` returns only once every record sent before it is durably stored,
  and raises `BusError` if any was not. Callers acknowledge their own input only after `flush`,
  or record by record once the `Delivery` that `send` returns is settled without an error:
  every delivery settles by itself (no `flush` needed) once the bus stored the record or gave up
  on it, and `on_done` callbacks run then, on whichever thread learnt it. Records of one
  partition are settled in send order.
  A bus may be shared by threads: each failure is reported once, by the next `flush` of the thread
  that sent the record. Topics are created by `ensure_topics`, never implicitly: sending to a
  missing topic raises `BusError` (from `send` or `flush`), and so does subscribing to one.
- Records with the same key land on the same partition, in send order; the partition is Kafka's
  (murmur2 of the key modulo the partition count), so both backends place a key alike.
- A subscription is one member of a group; the group's members share the partitions of its topics,
  each partition read by one member. Partitions are (re)assigned as members join and leave; Kafka
  does it during `poll`, so `positions()` may be empty before the first poll.
- A subscription sees records from its group's committed offsets (or the earliest record when
  the group has none). `commit` stores the positions reached by `poll`; records polled but not
  committed are delivered again to the next subscription of the group (at-least-once). `commit`
  raises `BusError` when the group rebalanced since the poll; the records are then redelivered
  to their new owner, and the caller may carry on polling.
- A `Subscription` belongs to one thread; a `Bus` is thread-safe.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

Headers = tuple[tuple[str, bytes], ...]


class BusError(RuntimeError):
    """A bus operation failed; the message names the topic or group concerned.

    `permanent` is true when the bus refused a record for what it is (too large, malformed): sending
    the same record again cannot succeed, while any other failure (an unreachable broker) may pass.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Delivery:
    """What became of one sent record: pending, then stored (`error()` is None) or not (a `BusError`).

    Backends settle it once (`settle`: the first verdict wins); `on_done(fn)` calls `fn(self)` once
    it is settled: at once if it already is, else on the thread that settles it (a client's I/O
    thread: keep `fn` short and never block in it)."""

    __slots__ = ("_callbacks", "_done", "_error", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._error: BusError | None = None
        self._callbacks: list[Callable[[Delivery], None]] | None = None

    @classmethod
    def stored(cls) -> Delivery:
        """A delivery settled as stored (a bus that stores synchronously)."""
        delivery = cls()
        delivery._done = True
        return delivery

    def done(self) -> bool:
        return self._done

    def error(self) -> BusError | None:
        """None while pending or once stored; the reason once the record was not stored."""
        return self._error

    def settle(self, error: BusError | None = None) -> None:
        with self._lock:
            if self._done:
                return
            self._error = error
            self._done = True
            callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            fn(self)

    def on_done(self, fn: Callable[[Delivery], None]) -> None:
        with self._lock:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        fn(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until settled (at most `timeout` seconds); True once it is."""
        if self._done:
            return True
        event = threading.Event()
        self.on_done(lambda _: event.set())
        return event.wait(timeout)


@dataclass(frozen=True)
class Record:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    partition: int = -1
    offset: int = -1
    timestamp_ms: int | None = None

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(frozen=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(eq=False)
class Subscription(ABC):
    """One member of a consumer group (compared by identity: two members are never equal)."""

    group: str
    topics: tuple[str, ...] = field(default=())

    @abstractmethod
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to `max_records` records; an empty list once `timeout` seconds pass with none."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the positions reached by the polls so far."""

    @abstractmethod
    def positions(self) -> dict[TopicPartition, int]:
        """Next offset to be polled, for each assigned partition."""

    @abstractmethod
    def lag(self) -> dict[TopicPartition, int]:
        """Records between the position and the end, for each assigned partition whose end this
        member knows (from its fetches: no round trip, so it may lag itself by one fetch)."""

    @abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next poll of `tp` start at `offset` (for replay after a state snapshot).

        A partition not assigned to this member yet keeps the seek until it is assigned, so a
        restarted worker can seek to its snapshot offsets before its first poll.
        """

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Bus(ABC):
    """A message bus. Implementations: `beffroi.kafka_bus.KafkaBus` (kafka-python),
    `beffroi.confluent_bus.ConfluentBus` (librdkafka), `beffroi.memory_bus.MemoryBus`."""

    @abstractmethod
    def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        """Create missing topics with the given partition counts (existing ones are left alone)."""

    @abstractmethod
    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> Delivery:
        """Buffer one record; its `Delivery` settles once the bus stored it or gave up on it.
        Raises `BusError` when the record cannot even be buffered."""

    @abstractmethod
    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every record sent so far is stored; raise BusError if one this thread sent was not."""

    @abstractmethod
    def subscribe(
        self, group: str, topics: Sequence[str], *, client_id: str | None = None
    ) -> Subscription: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
