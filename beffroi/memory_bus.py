"""In-process `Bus` for the embedded mode: the same contract as Kafka, no server.

Thread-safe: the bridge, worker and API threads of `beffroi run --mode embedded` share one instance.
Partitions keep every record (no retention); a group's members share partitions by range
assignment, recomputed whenever a member joins or leaves.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence

from beffroi.bus import Bus, BusError, Delivery, Headers, Record, Subscription, TopicPartition

_STORED = Delivery.stored()  # records are stored as they are sent: one settled delivery serves all

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    base = length - tail
    if tail >= 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._logs: dict[str, list[list[Record]]] = {}
        self._next_keyless: dict[str, int] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        self._members: dict[str, list[MemorySubscription]] = {}
        self._member_ids = itertools.count()
        self._closed = False

    def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        with self._cond:
            self._check_open()
            for topic, count in partitions.items():
                if count < 1:
                    raise BusError(f"topic {topic!r}: partition count must be >= 1, got {count}")
                if topic not in self._logs:
                    self._logs[topic] = [[] for _ in range(count)]

    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> Delivery:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"topic {topic!r}: value must be bytes, got {type(value).__name__}")
        if key is not None and not isinstance(key, bytes | bytearray | memoryview):
            raise TypeError(f"topic {topic!r}: key must be bytes or None, got {type(key).__name__}")
        with self._cond:
            self._check_open()
            log = self._logs.get(topic)
            if log is None:
                raise BusError(f"topic {topic!r} does not exist (create it with ensure_topics)")
            if key is None:
                partition = self._next_keyless.get(topic, 0) % len(log)
                self._next_keyless[topic] = partition + 1
            else:
                key = bytes(key)
                partition = partition_for_key(key, len(log))
            records = log[partition]
            records.append(
                Record(
                    topic=topic,
                    value=bytes(value),
                    key=key,
                    headers=tuple(headers),
                    partition=partition,
                    offset=len(records),
                    timestamp_ms=time.time_ns() // 1_000_000,
                )
            )
            self._cond.notify_all()
        return _STORED

    def flush(self, timeout: float | None = 30.0) -> None:
        with self._cond:
            self._check_open()

    def subscribe(
        self, group: str, topics: Sequence[str], *, client_id: str | None = None
    ) -> MemorySubscription:
        if isinstance(topics, str) or not topics:
            raise ValueError(f"group {group!r}: topics must be a non-empty sequence of names")
        with self._cond:
            self._check_open()
            missing = [t for t in topics if t not in self._logs]
            if missing:
                raise BusError(
                    f"group {group!r}: topics {missing} do not exist (create them with ensure_topics)"
                )
            member = MemorySubscription(
                self,
                group=group,
                topics=tuple(topics),
                member_id=client_id or f"{group}-{next(self._member_ids)}",
            )
            self._members.setdefault(group, []).append(member)
            self._rebalance(group)
            return member

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            for members in self._members.values():
                for member in members:
                    member._closed = True
            self._members.clear()
            self._closed = True
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("memory bus is closed")

    def _leave(self, member: MemorySubscription) -> None:
        with self._cond:
            members = self._members.get(member.group, [])
            if member in members:
                members.remove(member)
                self._rebalance(member.group)

    def _rebalance(self, group: str) -> None:
        """Range assignment per topic over the members subscribed to it, in join order (lock held)."""
        members = self._members.get(group, [])
        assignment: dict[int, list[TopicPartition]] = {id(m): [] for m in members}
        for topic in sorted({t for m in members for t in m.topics}):
            readers = [m for m in members if topic in m.topics]
            share, extra = divmod(len(self._logs[topic]), len(readers))
            start = 0
            for i, member in enumerate(readers):
                count = share + (1 if i < extra else 0)
                assignment[id(member)] += [TopicPartition(topic, p) for p in range(start, start + count)]
                start += count
        committed = self._committed.setdefault(group, {})
        for member in members:
            member._assign(assignment[id(member)], committed)
        self._cond.notify_all()


class MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, *, group: str, topics: tuple[str, ...], member_id: str) -> None:
        super().__init__(group=group, topics=topics)
        self.member_id = member_id
        self._bus = bus
        self._positions: dict[TopicPartition, int] = {}
        self._pending_seeks: dict[TopicPartition, int] = {}
        self._turn = 0
        self._closed = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        if max_records < 1:
            raise ValueError(f"group {self.group!r}: max_records must be >= 1, got {max_records}")
        deadline = time.monotonic() + max(timeout, 0.0)
        cond = self._bus._cond
        with cond:
            while True:
                self._check_open()
                records = self._take(max_records)
                if records:
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                cond.wait(remaining)

    def commit(self) -> None:
        with self._bus._cond:
            self._check_open()
            self._bus._committed.setdefault(self.group, {}).update(self._positions)

    def positions(self) -> dict[TopicPartition, int]:
        with self._bus._cond:
            self._check_open()
            return dict(self._positions)

    def lag(self) -> dict[TopicPartition, int]:
        with self._bus._cond:
            self._check_open()
            logs = self._bus._logs
            return {tp: max(0, len(logs[tp.topic][tp.partition]) - p) for tp, p in self._positions.items()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"{tp.topic}[{tp.partition}]: offset must be >= 0, got {offset}")
        with self._bus._cond:
            self._check_open()
            if tp in self._positions:
                self._positions[tp] = offset
            else:
                self._pending_seeks[tp] = offset

    def close(self) -> None:
        if self._closed:
            return
        self._bus._leave(self)
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"group {self.group!r}: subscription {self.member_id!r} is closed")

    def _assign(self, tps: list[TopicPartition], committed: Mapping[TopicPartition, int]) -> None:
        previous = self._positions
        self._positions = {}
        for tp in tps:
            if tp in self._pending_seeks:
                self._positions[tp] = self._pending_seeks.pop(tp)
            elif tp in previous:
                self._positions[tp] = previous[tp]
            else:
                self._positions[tp] = committed.get(tp, 0)

    def _take(self, max_records: int) -> list[Record]:
        """Records from the current positions, partition after partition, starting one further each call."""
        tps = list(self._positions)
        if not tps:
            return []
        self._turn = (self._turn + 1) % len(tps)
        logs = self._bus._logs
        out: list[Record] = []
        for tp in tps[self._turn :] + tps[: self._turn]:
            log = logs[tp.topic][tp.partition]
            position = self._positions[tp]
            if position < len(log):
                taken = log[position : position + max_records - len(out)]
                out += taken
                self._positions[tp] = position + len(taken)
                if len(out) >= max_records:
                    break
        return out
