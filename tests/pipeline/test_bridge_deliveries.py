"""`Bridge.run` acknowledges each message as soon as the bus confirmed its record (its `Delivery`),
in order of receipt, without a flush and without waiting for the rest of its batch; a failed
delivery is delivered again before anything behind it is acknowledged; at most `pipeline_depth`
batches' worth of messages are in flight."""

from __future__ import annotations

import threading
from pathlib import Path

from beffroi.bus import BusError, Delivery, Headers
from beffroi.memory_bus import MemoryBus
from beffroi.mqtt_auth import data_topic
from ingest.bridge import Bridge
from tests.pipeline.test_bridge_pipelined import RecordingSource, start, wait_for
from tests.pipeline.test_bridge_poison import READINGS, good
from tower.testing import collect


class HeldBus(MemoryBus):
    """A memory bus whose deliveries stay pending until the test settles them (a slow Kafka that
    confirms out of order). Counts flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[Delivery] = []
        self.flushes = 0
        self._lock = threading.Lock()

    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> Delivery:
        super().send(topic, value, key=key, headers=headers)
        delivery = Delivery()
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def flush(self, timeout: float | None = 30.0) -> None:
        self.flushes += 1
        super().flush(timeout)

    def sent(self) -> int:
        with self._lock:
            return len(self.deliveries)


def run_with(
    bus: HeldBus, tmp_path: Path, count: int, **overrides: object
) -> tuple[RecordingSource, Bridge, threading.Thread, list[bytes]]:
    """A running bridge reading `count` good messages; returns them too."""
    source = RecordingSource()
    bridge, thread = start(bus, source, tmp_path, **overrides)
    payloads = []
    for i in range(count):
        device, raw = good(i)
        source.offer(data_topic(device), raw)
        payloads.append(raw)
    return source, bridge, thread, payloads


def acked(source: RecordingSource) -> list[bytes]:
    return [m.payload for m in source.acked_msgs]


def test_each_message_is_acknowledged_once_its_record_is_confirmed_in_order(tmp_path):
    bus = HeldBus()
    source, bridge, thread, payloads = run_with(bus, tmp_path, 30)
    try:
        wait_for(lambda: bus.sent() == 30)
        assert source.acked_msgs == []
        for d in bus.deliveries[:5]:
            d.settle()
        wait_for(lambda: len(source.acked_msgs) == 5)
        bus.deliveries[7].settle()  # confirmed out of order: waits for 5 and 6
        bus.deliveries[12].settle()
        for d in bus.deliveries[5:7]:
            d.settle()
        wait_for(lambda: len(source.acked_msgs) == 8)
        assert acked(source) == payloads[:8]  # within the first batch of 10, none of the second
        assert bridge.stats.batches == 0
        for d in bus.deliveries[8:]:
            d.settle()
        wait_for(lambda: len(source.acked_msgs) == 30)
        assert bus.flushes == 0  # confirmed record by record, never by a flush
    finally:
        bridge.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert acked(source) == payloads
    assert (bridge.stats.batches, bridge.stats.accepted) == (3, 30)


def test_a_failed_delivery_is_delivered_again_before_anything_behind_it_is_acknowledged(tmp_path):
    bus = HeldBus()
    source, bridge, thread, payloads = run_with(bus, tmp_path, 20, retry_backoff_s=(0.01,))
    try:
        wait_for(lambda: bus.sent() == 20)
        for d in bus.deliveries[:3]:
            d.settle()
        for d in bus.deliveries[4:20]:
            d.settle()
        wait_for(lambda: len(source.acked_msgs) == 3)
        bus.deliveries[3].settle(BusError("readings: broker unreachable (injected)"))
        # settled again through a flush: the record is sent once more, then all is acknowledged
        wait_for(lambda: len(source.acked_msgs) == 20)
    finally:
        bridge.stop()
        thread.join(10)
    assert acked(source) == payloads
    assert bus.sent() == 21
    assert bus.flushes >= 1
    assert bridge.stats.flush_failures == 0
    readings = collect(bus, READINGS)
    assert len(readings) == 21  # at least once: the failed record went out a second time
    assert len({r.header("message_id") for r in readings}) == 20


def test_no_more_than_pipeline_depth_batches_are_in_flight(tmp_path):
    bus = HeldBus()
    source, bridge, thread, _ = run_with(bus, tmp_path, 50, pipeline_depth=2)
    try:
        wait_for(lambda: bus.sent() == 20)
        wait_for(lambda: source.pending() == 0)  # read and validated meanwhile; not sent
        assert bus.sent() == 20
        for d in bus.deliveries[:10]:
            d.settle()
        wait_for(lambda: bus.sent() == 30)
        wait_for(lambda: len(source.acked_msgs) == 10)

        def confirm_all_sent() -> bool:
            for d in list(bus.deliveries):
                d.settle()
            return len(source.acked_msgs) == 50

        wait_for(confirm_all_sent)
    finally:
        bridge.stop()
        thread.join(10)
    assert bridge.stats.accepted == 50
