"""Where the bridge's messages come from: the `MessageSource` seam and the batching queue.

Sources: `ingest.mqtt_source.MqttSource` (Mosquitto, stack mode) and `QueueSource` (fed in
process by `simulators.publish.InProcessPublisher`, embedded mode and tests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message. `token` is whatever its source needs to acknowledge it."""

    topic: str
    payload: bytes
    token: object = None


class MessageSource(Protocol):
    def next_batch(self, *, max_items: int, linger_s: float, timeout_s: float) -> list[Inbound]:
        """Up to `max_items` messages: waits `timeout_s` for a first one, then `linger_s` for more."""

    def ack(self, batch: Sequence[Inbound]) -> None:
        """Acknowledge messages whose output the bus has confirmed."""

    def close(self) -> None: ...


class BatchQueue(Generic[T]):
    """A thread-safe FIFO drained in batches (many producers, one consumer)."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._cond = threading.Condition()

    def put(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            if len(self._items) == 1:
                self._cond.notify()

    def __len__(self) -> int:
        return len(self._items)

    def take(self, *, max_items: int, linger_s: float, timeout_s: float) -> list[T]:
        out: list[T] = []
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout_s):
                return out
            deadline = time.monotonic() + linger_s
            while True:
                while self._items and len(out) < max_items:
                    out.append(self._items.popleft())
                remaining = deadline - time.monotonic()
                if len(out) >= max_items or remaining <= 0:
                    return out
                self._cond.wait(remaining)


class QueueSource:
    """An in-process source: `offer` plays the broker, acknowledgement is a no-op."""

    def __init__(self) -> None:
        self._queue: BatchQueue[Inbound] = BatchQueue()
        self.acked = 0

    def offer(self, topic: str, payload: bytes) -> None:
        self._queue.put(Inbound(topic, payload))

    def pending(self) -> int:
        return len(self._queue)

    def next_batch(self, *, max_items: int, linger_s: float, timeout_s: float) -> list[Inbound]:
        return self._queue.take(max_items=max_items, linger_s=linger_s, timeout_s=timeout_s)

    def ack(self, batch: Sequence[Inbound]) -> None:
        self.acked += len(batch)

    def close(self) -> None:
        pass
