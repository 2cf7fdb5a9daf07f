"""`Bridge.run` pipelined: reading and validating overlap with sending; each message is acknowledged
only after the bus confirmed its record (or its dead letter, or it was kept on disk), in order of
receipt; poison messages are isolated as in `process`, and no failure stops the loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from beffroi.bus import Headers
from beffroi.memory_bus import MemoryBus
from beffroi.mqtt_auth import data_topic
from ingest.bridge import Bridge, BridgeConfig
from ingest.source import Inbound, QueueSource
from tests.pipeline.test_bridge_poison import DEADLETTER, READINGS, SETTINGS, VENUE, SizeLimitedBus, good
from tower.testing import collect


class RecordingSource(QueueSource):
    """A queue source that keeps what it acknowledged, in order, and may fail reading once."""

    def __init__(self, *, fail_reads: int = 0) -> None:
        super().__init__()
        self.acked_msgs: list[Inbound] = []
        self.fail_reads = fail_reads

    def next_batch(self, *, max_items: int, linger_s: float, timeout_s: float) -> list[Inbound]:
        if self.fail_reads:
            self.fail_reads -= 1
            raise OSError("connection reset")
        return super().next_batch(max_items=max_items, linger_s=linger_s, timeout_s=timeout_s)

    def ack(self, batch: Sequence[Inbound]) -> None:
        self.acked_msgs.extend(batch)


class GatedBus(SizeLimitedBus):
    """A bus whose flushes wait for `gate`: a slow Kafka. Keeps the most records one flush covered."""

    def __init__(self) -> None:
        super().__init__({READINGS: 2000})
        self.gate = threading.Event()
        self.since_flush = 0
        self.most_per_flush = 0

    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> None:
        self.since_flush += 1
        super().send(topic, value, key=key, headers=headers)

    def flush(self, timeout: float | None = 30.0) -> None:
        assert self.gate.wait(10)
        super().flush(timeout)
        self.most_per_flush = max(self.most_per_flush, self.since_flush)
        self.since_flush = 0


def start(
    bus: MemoryBus, source: QueueSource, tmp_path: Path, **overrides: object
) -> tuple[Bridge, threading.Thread]:
    bus.ensure_topics(SETTINGS.kafka.partitions())
    config = BridgeConfig.from_settings(SETTINGS)
    config = BridgeConfig(
        **{
            **config.__dict__,
            "quarantine_dir": tmp_path / "q",
            "batch_size": 10,
            "linger_s": 0.0,
            **overrides,
        }
    )
    bridge = Bridge(source=source, bus=bus, devices=VENUE.devices, config=config)
    thread = threading.Thread(target=bridge.run, kwargs={"summary_every_s": 0.1})
    thread.start()
    return bridge, thread


def wait_for(condition, deadline_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_reading_goes_on_while_the_bus_confirms_nothing_and_nothing_is_acknowledged_before(tmp_path):
    source = RecordingSource()
    bus = GatedBus()
    bridge, thread = start(bus, source, tmp_path)
    try:
        sent = [good(i) for i in range(60)]
        sent.insert(33, ("t1", b"\xff not json"))  # invalid: dead-lettered
        sent.append(good(999, tag_bytes=3000))  # refused by the bus: dead-lettered
        for device, raw in sent:
            source.offer(data_topic(device), raw)
        # the first flush hangs; the main thread still reads and validates the batches behind it
        wait_for(lambda: source.pending() == 0)
        assert source.acked_msgs == []
        bus.gate.set()
        wait_for(lambda: len(source.acked_msgs) == len(sent))
    finally:
        bus.gate.set()
        bridge.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert [m.payload for m in source.acked_msgs] == [raw for _, raw in sent]  # in order of receipt
    assert len({r.header("message_id") for r in collect(bus, READINGS)}) == 60
    assert len({r.value for r in collect(bus, DEADLETTER)}) == 2  # at least once: re-sent in isolation
    assert (bridge.stats.accepted, bridge.stats.dead_lettered, bridge.stats.refused) == (60, 2, 1)
    # the batches validated while the first flush hung went in one flush group
    assert bridge.stats.batches == 7
    assert bus.most_per_flush > 4 * 10


def test_a_failing_source_does_not_stop_the_bridge(tmp_path):
    source = RecordingSource(fail_reads=2)
    bus = MemoryBus()
    bridge, thread = start(bus, source, tmp_path, retry_backoff_s=(0.01,))
    try:
        for i in range(25):
            source.offer(data_topic(f"t{i % 5}"), good(i)[1])
        wait_for(lambda: len(source.acked_msgs) == 25)
        assert thread.is_alive()
    finally:
        bridge.stop()
        thread.join(10)
    assert bridge.stats.errors == 2
    assert bridge.stats.accepted == 25
