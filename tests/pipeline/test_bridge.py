"""The bridge acknowledges its source only once the bus has confirmed the batch."""

from __future__ import annotations

import hashlib
import threading

from beffroi.bus import BusError
from beffroi.devices import DeviceKind
from beffroi.memory_bus import MemoryBus
from ingest.bridge import Bridge, BridgeConfig
from tower.settings import Settings
from tower.testing import ListSource, collect, payload, tiny_venue

VENUE = tiny_venue({"pb-1": DeviceKind.PANIC_BUTTON})
SETTINGS = Settings()


class FlakyBus(MemoryBus):
    """A memory bus whose next `fail` flushes raise, as Kafka's do when the broker is away."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.calls: list[str] = []

    def flush(self, timeout=30.0):
        self.calls.append("flush")
        if self.fail:
            self.fail -= 1
            raise BusError("readings: broker unreachable (injected)")
        super().flush(timeout)


def make_bridge(bus, source) -> Bridge:
    bus.ensure_topics(SETTINGS.kafka.partitions())
    config = BridgeConfig.from_settings(SETTINGS)
    config = BridgeConfig(**{**config.__dict__, "retry_backoff_s": (0.0,)})
    return Bridge(source=source, bus=bus, devices=VENUE.devices, config=config)


def test_a_failed_flush_is_retried_and_the_batch_acked_only_after_it_succeeds():
    bus = FlakyBus(fail=2)
    source = ListSource([("pb-1", payload("pb-1", {"pressed": 0})), ("pb-1", b"junk")])
    bridge = make_bridge(bus, source)
    acked_at_flush: list[int] = []
    original = source.ack

    def ack(batch):
        acked_at_flush.append(len(bus.calls))
        original(batch)

    source.ack = ack  # type: ignore[method-assign]
    assert bridge.run_once() == 2
    assert bus.calls == ["flush"] * 3
    assert acked_at_flush == [3]
    assert len(source.acked) == 2
    assert bridge.stats.flush_failures == 2
    assert bridge.stats.accepted == 1
    assert bridge.stats.rejected == {"malformed_json": 1}
    # the retried sends may duplicate records on the bus: idempotent writes downstream absorb them
    assert len(collect(bus, SETTINGS.kafka.topic("readings"))) >= 1


def test_a_stopped_bridge_acknowledges_nothing_it_could_not_deliver():
    bus = FlakyBus(fail=10**6)
    source = ListSource([("pb-1", payload("pb-1", {"pressed": 1}))])
    bridge = make_bridge(bus, source)
    bridge.config = BridgeConfig(**{**bridge.config.__dict__, "retry_backoff_s": (0.01,)})
    threading.Timer(0.2, bridge.stop).start()
    bridge.run_once()
    assert source.acked == []
    assert bridge.stats.accepted == 0
    assert bridge.stats.flush_failures > 1


def test_bad_input_never_stops_the_bridge():
    source = ListSource([("pb-1", b"\x00" * 10_000), ("pb-1", b"[]"), ("dev/pb-1/cfg", b"{}")])
    source.add("pb-1", payload("pb-1", {"pressed": 1}))
    bus = MemoryBus()
    bridge = make_bridge(bus, source)
    assert bridge.run_once() == 4
    assert bridge.stats.accepted == 1
    assert bridge.stats.rejected == {"oversized": 1, "wrong_type": 1, "invalid": 1}
    letters = collect(bus, SETTINGS.kafka.topic("deadletter"))
    assert sorted(r.header("reason") or b"" for r in letters) == [b"invalid", b"oversized", b"wrong_type"]
    # an oversized message keeps only its first bytes; the detail names its size and SHA-256
    assert {r.value for r in letters} == {b"\x00" * 1024, b"[]", b"{}"}
    [big] = [r for r in letters if r.header("reason") == b"oversized"]
    assert hashlib.sha256(b"\x00" * 10_000).hexdigest().encode() in (big.header("detail") or b"")


def test_a_bus_back_during_isolation_takes_the_rest_of_the_batch_at_once():
    """Kafka restarts: the batch failed `isolate_after` times, so the bridge sends it one record at a
    time; the bus takes the first record. It is back: the rest goes in one flush, not one flush per
    record (which held a large backlog for minutes once the broker was back)."""
    n = 200
    bus = FlakyBus(fail=3)  # the three attempts before isolation
    source = ListSource([("pb-1", payload("pb-1", {"pressed": i % 2}, tags=[f"n:{i}"])) for i in range(n)])
    bridge = make_bridge(bus, source)
    assert bridge.run_once() == n
    assert bus.calls == ["flush"] * 5  # 3 failed, the first record alone, then the other 199
    assert len(source.acked) == n
    assert bridge.stats.accepted == n
    assert bridge.stats.refused == 0
    assert len({r.header("message_id") for r in collect(bus, SETTINGS.kafka.topic("readings"))}) == n
