"""One bad sensor never stops the platform (issue 12), on the real stack, with counts.

- The three messages that crashed the bridge (an integer of 400 digits, `0001-01-01T00:00:00+14:00`,
  a lone surrogate in `tags`) and control characters in `streamId`/`tags`, among 2,000 good
  readings over MQTT: the bridge process keeps running (one start), every good reading is stored
  once, every bad message is dead-lettered once.
- Payloads of 1 to 4 MB reach the bridge (embedded mode has no broker limit): their dead letters
  keep a 1 KiB prefix plus size and SHA-256, fit on Kafka, and nothing behind them waits.
- A reading Kafka itself refuses (over the topic's max.message.bytes) is dead-lettered and the rest
  of its batch is stored.
- A reading PostgreSQL refuses is dead-lettered by the worker (with the store's reason), which stores
  the rest and never fails a batch for it.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta

import pytest

from analytics.worker import Worker
from beffroi.bus_factory import make_bus
from beffroi.clock import utcnow
from beffroi.devices import DeviceKind
from beffroi.events import DeadLetterReason
from beffroi.records import device_of_topic
from beffroi.store_factory import make_store
from ingest.bridge import Bridge, BridgeConfig
from ingest.mqtt_source import end_session, open_session
from ingest.source import QueueSource
from simulators.publish import MqttPublisher
from tests.fixtures.stack import create_topic
from tests.fixtures.store import execute_raw
from tower.testing import (
    ComponentProcess,
    collect,
    isolated,
    payload,
    provision_devices,
    tiny_venue,
    unique,
    write_settings,
    write_venue,
)

pytestmark = [pytest.mark.integration]

R = DeadLetterReason


def crash_messages(device: str) -> list[tuple[bytes, DeadLetterReason]]:
    """The messages of issue 12 that stopped the bridge, and those it accepted but should not have."""
    good = json.loads(payload(device, {"celsius": 20.0}, ts=utcnow()))

    def bent(**fields: object) -> bytes:
        doc = {**good, **fields}
        return json.dumps(doc).encode("utf-8", errors="surrogatepass")

    return [
        (json.dumps(good).replace('"celsius": 20.0', '"celsius": 1' + "0" * 399).encode(), R.INVALID),
        (bent(timestamp="0001-01-01T00:00:00+14:00"), R.TIMESTAMP_PAST),
        (bent(tags=["\ud800"]), R.INVALID),
        (bent(tags=["nul\x00"]), R.INVALID),
        (bent(streamId=good["streamId"] + "\u202e"), R.INVALID),
    ]


def test_the_crash_messages_neither_stop_nor_hold_back_the_bridge(stack_settings, tmp_path):
    site = unique("poison-")
    names = [f"{site}-t{i}" for i in range(10)]
    venue = tiny_venue(dict.fromkeys(names, DeviceKind.TEMPERATURE), site_id=site)
    settings = isolated(stack_settings, name="poison")
    settings = settings.model_copy(update={"venue": write_venue(venue, tmp_path / "venue.yaml")})
    settings_file = write_settings(settings, tmp_path / "settings.yaml")
    provision_devices(settings, names)
    open_session(settings.mqtt)

    good_n = 2_000
    bad = crash_messages(names[0])
    start = utcnow() - timedelta(minutes=5)
    messages: list[tuple[str, bytes]] = []
    for i in range(good_n):
        device = names[i % len(names)]
        ts = start + timedelta(milliseconds=i)
        messages.append((device, payload(device, {"celsius": 20 + i % 50}, ts=ts)))
        if i % 400 == 200:  # each crash message lands mid-stream, readings behind it
            messages.append((names[0], bad[i // 400][0]))
    expected = dict(bad)
    assert len(expected) == 5

    bridge = ComponentProcess("tower.processes.bridge", settings_file=settings_file, log_dir=tmp_path)
    worker = ComponentProcess("tower.processes.worker", settings_file=settings_file, log_dir=tmp_path)
    publisher = MqttPublisher(settings.mqtt)
    store = make_store(settings)
    try:
        bridge.start()
        worker.start()
        for device, raw in messages:
            publisher.publish(device, raw)
        publisher.flush(timeout=60)
        deadline = time.monotonic() + 60
        while store.count_readings(site) < good_n and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # late duplicates, if any, would land now
        letters = [d for d in store.list_dead_letters(limit=100_000) if device_of_topic(d.source) in names]
        alive = bridge.alive
    finally:
        bridge.stop()
        worker.stop()
        publisher.close()
        store.close()
        end_session(settings.mqtt)

    [(rows, distinct)] = execute_raw(
        settings, "SELECT count(*), count(DISTINCT message_id) FROM readings WHERE site_id = %s", (site,)
    )
    counts = {"sent": len(messages), "stored": rows, "dead_lettered": len(letters)}
    counts |= {"lost": good_n - distinct, "doubled": rows - distinct}
    print(f"crash messages on the real stack: {counts}")
    assert alive, bridge.log_tail()
    assert bridge.starts == 1
    assert counts == {"sent": good_n + 5, "stored": good_n, "dead_lettered": 5, "lost": 0, "doubled": 0}, (
        bridge.log_tail()
    )
    assert {d.payload: d.reason for d in letters} == expected


def test_megabyte_payloads_are_dead_lettered_as_a_prefix_and_nothing_waits(stack_settings, tmp_path):
    """Embedded-mode ingress (no broker limit) straight into the real Kafka: before, the dead letter
    carried the whole payload, Kafka refused it, and the bridge retried that batch forever."""
    site = unique("big-")
    names = [f"{site}-t{i}" for i in range(5)]
    venue = tiny_venue(dict.fromkeys(names, DeviceKind.TEMPERATURE), site_id=site)
    settings = isolated(stack_settings, name="big")
    source = QueueSource()
    with make_bus(settings) as bus:
        config = BridgeConfig.from_settings(settings)
        config = BridgeConfig(**{**config.__dict__, "quarantine_dir": tmp_path / "quarantine"})
        bridge = Bridge(source=source, bus=bus, devices=venue.devices, config=config)
        big = {mb: bytes([65 + mb]) * (mb * 1_000_000) for mb in (1, 2, 3, 4)}
        good_n = 1_000
        for i in range(good_n):
            device = names[i % len(names)]
            source.offer(f"dev/{device}/data", payload(device, {"celsius": 21.5}, tags=[f"n:{i}"]))
            if i % 250 == 100:
                source.offer(f"dev/{names[0]}/data", big[1 + i // 250])
        t0 = time.monotonic()
        while source.pending() and time.monotonic() - t0 < 60:
            bridge.run_once(timeout_s=0)
        elapsed = time.monotonic() - t0
        readings = collect(bus, settings.kafka.topic("readings"), expect=good_n)
        letters = collect(bus, settings.kafka.topic("deadletter"), expect=4)

    prefix = settings.ingest.deadletter_prefix_bytes
    counts = {
        "sent": good_n + 4,
        "stored": len({r.header("message_id") for r in readings}),
        "dead_lettered": len(letters),
        "quarantined": bridge.stats.quarantined,
    }
    print(f"1-4 MB payloads into Kafka: {counts} in {elapsed:.1f}s")
    assert counts == {"sent": good_n + 4, "stored": good_n, "dead_lettered": 4, "quarantined": 0}
    assert source.pending() == 0
    assert source.acked == good_n + 4
    for letter in letters:
        assert letter.header("reason") == b"oversized"
        [original] = [raw for raw in big.values() if raw[:prefix] == letter.value]
        detail = (letter.header("detail") or b"").decode()
        assert f"of {len(original)} bytes" in detail
        assert hashlib.sha256(original).hexdigest() in detail


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_reading_kafka_refuses_is_dead_lettered_and_its_batch_is_stored(stack_settings, tmp_path, client):
    """The readings topic takes record batches of at most 100 kB (max.message.bytes) and the ingest
    limit is raised to 256 kB: a valid reading of 150 kB is refused by the broker itself
    (MESSAGE_TOO_LARGE); it must not hold back the readings around it (batches under 100 kB)."""
    site = unique("refused-")
    names = [f"{site}-t{i}" for i in range(5)]
    venue = tiny_venue(dict.fromkeys(names, DeviceKind.TEMPERATURE), site_id=site)
    settings = isolated(stack_settings, name="refused")
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"client": client}),
            "ingest": settings.ingest.model_copy(update={"max_payload_bytes": 262_144}),
        }
    )
    readings_topic = settings.kafka.topic("readings")
    source = QueueSource()
    create_topic(settings, readings_topic, partitions=3, configs={"max.message.bytes": "100000"})
    with make_bus(settings) as bus:
        config = BridgeConfig.from_settings(settings)
        config = BridgeConfig(**{**config.__dict__, "quarantine_dir": tmp_path / "quarantine"})
        bridge = Bridge(source=source, bus=bus, devices=venue.devices, config=config)
        good_n = 500
        poison = payload(names[1], {"celsius": 22.0}, tags=["y" * 150_000])
        for i in range(good_n):
            device = names[i % len(names)]
            source.offer(f"dev/{device}/data", payload(device, {"celsius": 21.5}, tags=[f"n:{i}"]))
            if i == 250:
                source.offer(f"dev/{names[1]}/data", poison)
        t0 = time.monotonic()
        while source.pending() and time.monotonic() - t0 < 60:
            bridge.run_once(timeout_s=0)
        elapsed = time.monotonic() - t0
        readings = collect(bus, readings_topic, expect=good_n)
        letters = collect(bus, settings.kafka.topic("deadletter"), expect=1)

    counts = {
        "sent": good_n + 1,
        "stored": len({r.header("message_id") for r in readings}),
        "dead_lettered": len(letters),
        "refused": bridge.stats.refused,
    }
    print(f"a reading Kafka refuses ({client}): {counts} in {elapsed:.1f}s")
    assert counts == {"sent": good_n + 1, "stored": good_n, "dead_lettered": 1, "refused": 1}
    assert source.acked == good_n + 1
    [letter] = letters
    assert letter.value == poison[: settings.ingest.deadletter_prefix_bytes]
    assert hashlib.sha256(poison).hexdigest().encode() in (letter.header("detail") or b"")


def test_a_reading_the_store_refuses_is_dead_lettered_and_the_worker_moves_on(stack_settings, tmp_path):
    """PostgreSQL refuses the readings of one device (a CHECK constraint added to this test's schema):
    before, the worker failed the whole batch and read it again forever (nothing behind it stored).
    Now each refused reading is dead-lettered with the store's reason and the rest is stored."""
    site = unique("refuse-")
    names = [f"{site}-t{i}" for i in range(5)]
    bad_device = f"{site}-bad"
    venue = tiny_venue(dict.fromkeys([*names, bad_device], DeviceKind.TEMPERATURE), site_id=site)
    settings = isolated(stack_settings, name="refuse")
    good_n, bad_n = 1_000, 3
    source = QueueSource()
    for i in range(good_n):
        device = names[i % len(names)]
        source.offer(f"dev/{device}/data", payload(device, {"celsius": 21.5}, tags=[f"n:{i}"]))
        if i % 300 == 150:
            source.offer(f"dev/{bad_device}/data", payload(bad_device, {"celsius": 22.0}, tags=[f"n:{i}"]))
    with make_bus(settings) as bus, make_store(settings) as store:
        execute_raw(
            settings,
            f"ALTER TABLE readings ADD CONSTRAINT refuse_one_device CHECK (device_id <> '{bad_device}')",
        )
        config = BridgeConfig.from_settings(settings)
        config = BridgeConfig(**{**config.__dict__, "quarantine_dir": tmp_path / "quarantine"})
        bridge = Bridge(source=source, bus=bus, devices=venue.devices, config=config)
        while source.pending():
            bridge.run_once(timeout_s=0)
        worker = Worker.from_settings(settings, bus=bus, store=store)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            store.count_readings(site) < good_n or store.count_dead_letters() < bad_n
        ):
            worker.run_once(timeout_s=0.5)  # a WorkerError here is the wedge this test is about
        worker.close()
        letters = store.list_dead_letters(limit=100)

    [(rows, distinct)] = execute_raw(
        settings, "SELECT count(*), count(DISTINCT message_id) FROM readings WHERE site_id = %s", (site,)
    )
    counts = {"sent": good_n + bad_n, "stored": rows, "dead_lettered": len(letters)}
    counts |= {"lost": good_n - distinct, "doubled": rows - distinct}
    print(f"readings the store refuses: {counts}; {worker.stats.summary()}")
    assert counts == {
        "sent": good_n + bad_n,
        "stored": good_n,
        "dead_lettered": bad_n,
        "lost": 0,
        "doubled": 0,
    }
    assert worker.stats.failures == 0
    assert {(d.stage, d.reason) for d in letters} == {("worker", R.INVALID)}
    assert all("the store refused it" in d.detail and "refuse_one_device" in d.detail for d in letters)
    assert [json.loads(d.payload)["device_id"] for d in letters] == [bad_device] * bad_n
