"""A poison message cannot wedge the bridge: what the bus refuses is dead-lettered (or kept on disk),
the rest of the batch is delivered, and the whole batch is acknowledged."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path

from beffroi.bus import BusError, Headers
from beffroi.devices import DeviceKind
from beffroi.memory_bus import MemoryBus
from beffroi.venue import PlacedDevice
from ingest.bridge import Bridge, BridgeConfig
from tower.settings import Settings
from tower.testing import ListSource, collect, payload, tiny_venue

VENUE = tiny_venue({f"t{i}": DeviceKind.TEMPERATURE for i in range(5)})
SETTINGS = Settings()
READINGS, DEADLETTER = SETTINGS.kafka.topic("readings"), SETTINGS.kafka.topic("deadletter")


class SizeLimitedBus(MemoryBus):
    """Refuses records over `max_bytes` on a topic for what they are, as Kafka's max.message.bytes."""

    def __init__(self, max_bytes: Mapping[str, int]) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.refusals = 0

    def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> None:
        size = len(value) + sum(len(k) + len(v) for k, v in headers)
        if size > self.max_bytes.get(topic, 1 << 30):
            self.refusals += 1
            raise BusError(f"topic {topic!r}: record of {size} bytes too large", permanent=True)
        super().send(topic, value, key=key, headers=headers)


def make_bridge(
    bus: MemoryBus, source: ListSource, tmp_path: Path, devices: Mapping[str, PlacedDevice] | None = None
) -> Bridge:
    bus.ensure_topics(SETTINGS.kafka.partitions())
    config = BridgeConfig.from_settings(SETTINGS)
    config = BridgeConfig(**{**config.__dict__, "quarantine_dir": tmp_path / "quarantine"})
    return Bridge(
        source=source, bus=bus, devices=VENUE.devices if devices is None else devices, config=config
    )


def good(i: int, *, tag_bytes: int = 0) -> tuple[str, bytes]:
    device = f"t{i % 5}"
    tags = [f"n:{i}"] + (["x" * tag_bytes] if tag_bytes else [])
    return device, payload(device, {"celsius": 20.0 + i / 100}, tags=tags)


def test_a_reading_the_bus_refuses_becomes_a_dead_letter_and_the_batch_moves_on(tmp_path):
    messages = [good(i) for i in range(50)]
    messages.insert(20, good(999, tag_bytes=3000))  # a valid reading, over the readings topic's limit
    source = ListSource(messages)
    bus = SizeLimitedBus({READINGS: 2000})
    bridge = make_bridge(bus, source, tmp_path)

    assert bridge.run_once() == 51
    assert len(source.acked) == 51
    readings = collect(bus, READINGS)
    assert len({r.header("message_id") for r in readings}) == 50
    [letter] = collect(bus, DEADLETTER)
    assert letter.header("reason") == b"invalid"
    assert b"refused" in (letter.header("detail") or b"")
    assert letter.value == messages[20][1][: SETTINGS.ingest.deadletter_prefix_bytes]
    assert (bridge.stats.accepted, bridge.stats.dead_lettered, bridge.stats.refused) == (50, 1, 1)
    assert bridge.stats.quarantined == 0


def test_a_message_refused_even_as_a_dead_letter_is_kept_on_disk_and_acknowledged(tmp_path):
    messages = [good(i) for i in range(10)]
    messages.insert(5, good(999, tag_bytes=3000))
    source = ListSource(messages)
    bus = SizeLimitedBus({READINGS: 2000, DEADLETTER: 100})
    bridge = make_bridge(bus, source, tmp_path)

    assert bridge.run_once() == 11
    assert len(source.acked) == 11
    assert len(collect(bus, READINGS)) >= 10
    assert collect(bus, DEADLETTER) == []
    assert (bridge.stats.accepted, bridge.stats.quarantined) == (10, 1)
    [kept] = (tmp_path / "quarantine").glob("*.bin")
    assert kept.read_bytes() == messages[5][1]
    meta = json.loads(kept.with_suffix(".json").read_text())
    assert meta["topic"] == "dev/t4/data"
    assert meta["size"] == len(messages[5][1])


class FaultyRegistry(dict[str, PlacedDevice]):
    """A device registry that fails on one device: a gap no check foresaw."""

    def get(self, key, default=None):
        if key == "t3":
            raise RuntimeError("registry lookup failed")
        return super().get(key, default)


def test_a_message_whose_conversion_fails_is_dead_lettered(tmp_path):
    source = ListSource([good(i) for i in range(10)])
    bus = MemoryBus()
    bridge = make_bridge(bus, source, tmp_path, FaultyRegistry(VENUE.devices))
    assert bridge.run_once() == 10
    assert len(source.acked) == 10
    assert bridge.stats.accepted == 8
    letters = collect(bus, DEADLETTER)
    assert len(letters) == 2
    assert all(b"RuntimeError" in (r.header("detail") or b"") for r in letters)


def test_a_bus_that_stores_nothing_gets_the_batch_again_and_nothing_is_acknowledged(tmp_path):
    """Isolation must not mistake an outage for poison: nothing is dead-lettered, nothing acked."""
    source = ListSource([good(i) for i in range(10)])
    bus = SizeLimitedBus({READINGS: 0, DEADLETTER: 0})  # refuses all, but say it is an outage

    def outage(topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> None:
        raise BusError("broker not available")

    bus.send = outage  # type: ignore[method-assign]
    bridge = make_bridge(bus, source, tmp_path)
    bridge.config = BridgeConfig(**{**bridge.config.__dict__, "retry_backoff_s": (0.01,)})
    threading.Timer(0.5, bridge.stop).start()  # many attempts, each followed by an isolation round
    assert bridge.run_once() == 10
    assert source.acked == []
    assert bridge.stats.flush_failures > 2  # tried again and again (few times on a loaded machine)
    assert bridge.stats.refused == 0
    assert bridge.stats.quarantined == 0
    assert not (tmp_path / "quarantine").exists()
