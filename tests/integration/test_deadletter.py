"""Bad input on the real stack: 1,000 bad payloads of every kind mixed into 10,000 good ones give
exactly 10,000 readings stored and 1,000 dead letters, each on the dead-letter topic with its
reason header and its exact original bytes, and each persisted in the store."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import timedelta

import pytest

from beffroi.bus_factory import make_bus
from beffroi.clock import utcnow
from beffroi.devices import DeviceKind
from beffroi.events import DeadLetterReason
from beffroi.records import device_of_topic
from ingest.mqtt_source import end_session, open_session
from simulators.publish import MqttPublisher
from tower.runtime import compose
from tower.testing import collect, isolated, payload, provision_devices, tiny_venue, unique

pytestmark = [pytest.mark.integration]

GOOD, BAD = 10_000, 1_000
R = DeadLetterReason


def bad_payload(i: int, device: str, ghost: str, limit: int) -> tuple[str, bytes, DeadLetterReason]:
    """The i-th bad message: (publishing device, bytes, expected reason); every one is distinct.

    An oversized one is over the ingest limit but under the broker's packet limit (limit + 1 KiB):
    the broker refuses larger packets outright (tests/integration/test_poison.py), the bridge
    dead-letters these."""
    now = utcnow()
    good = json.loads(payload(device, {"pm25": 10.0, "co": 1.0}, ts=now, tags=[f"n:{i}"]))
    kind = i % 10
    if kind == 0:
        return (
            device,
            f'{{"streamId": "urn:lo:nsid:beffroi:{device}!data", "n": {i}'.encode(),
            R.MALFORMED_JSON,
        )
    if kind == 1:
        del good["timestamp"]
        return device, json.dumps(good).encode(), R.MISSING_FIELD
    if kind == 2:
        good["value"]["pm25"] = f"{i}"
        return device, json.dumps(good).encode(), R.WRONG_TYPE
    if kind == 3:
        good["streamId"] = f"urn:lo:nsid:beffroi:{ghost}!data"
        return ghost, json.dumps(good).encode(), R.UNKNOWN_SENSOR
    if kind == 4:
        good["model"] = "acme.smoke.v2"
        return device, json.dumps(good).encode(), R.UNKNOWN_MODEL
    if kind == 5:
        good["timestamp"] = (now + timedelta(hours=2, seconds=i)).isoformat()
        return device, json.dumps(good).encode(), R.TIMESTAMP_FUTURE
    if kind == 6:
        good["timestamp"] = (now - timedelta(days=30, seconds=i)).isoformat()
        return device, json.dumps(good).encode(), R.TIMESTAMP_PAST
    if kind == 7:
        good["tags"] = []
        while len(json.dumps(good)) <= limit + 64:
            good["tags"].append(f"pad:{i}:" + "x" * 300)
        return device, json.dumps(good).encode(), R.OVERSIZED
    if kind == 8:
        good["value"]["pm25"] = 5000.0 + i
        return device, json.dumps(good).encode(), R.INVALID
    return device, b"\x00\xff binary junk " + str(i).encode(), R.MALFORMED_JSON


def test_bad_payloads_are_dead_lettered_and_good_ones_all_stored(stack_settings):
    site = unique("dl-")
    devices = {f"{site}-aq{i}": DeviceKind.AIR_QUALITY for i in range(10)}
    ghosts = [f"{site}-ghost{i}" for i in range(3)]  # may log in to MQTT, but are not in the venue
    venue = tiny_venue(devices, site_id=site)
    settings = isolated(stack_settings, name="deadletter")
    provision_devices(settings, [*devices, *ghosts])
    open_session(settings.mqtt)

    rng = random.Random(7)
    start = utcnow() - timedelta(minutes=5)
    names = list(devices)
    messages: list[tuple[str, bytes, DeadLetterReason | None]] = [
        (d, payload(d, {"pm25": rng.uniform(5, 60), "co": 1.0}, ts=start + timedelta(milliseconds=i)), None)
        for i, d in enumerate(names[i % len(names)] for i in range(GOOD))
    ]
    limit, prefix = settings.ingest.max_payload_bytes, settings.ingest.deadletter_prefix_bytes
    messages += [bad_payload(i, names[i % len(names)], ghosts[i % len(ghosts)], limit) for i in range(BAD)]
    rng.shuffle(messages)
    assert all(len(raw) < settings.ingest.mqtt_max_packet_size() - 512 for _, raw, _ in messages)
    # a dead letter keeps the exact bytes; of an oversized message, only its first bytes
    expected: dict[bytes, DeadLetterReason] = {
        (raw if len(raw) <= limit else raw[:prefix]): reason
        for _, raw, reason in messages
        if reason is not None
    }
    assert len(expected) == BAD

    rt = compose(settings, venue=venue, api=False)
    publisher = MqttPublisher(settings.mqtt)
    try:
        with rt:
            for device, raw, _ in messages:
                publisher.publish(device, raw)
            publisher.flush(timeout=60)
            store = rt.worker.store
            deadline = time.monotonic() + 90
            while store.count_readings(site) < GOOD and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(1.0)  # anything extra would have landed by now
            stored = store.count_readings(site)
            ours = set(devices) | set(ghosts)
            persisted = [
                d for d in store.list_dead_letters(limit=100_000) if device_of_topic(d.source) in ours
            ]
    finally:
        publisher.close()
        end_session(settings.mqtt)

    assert stored == GOOD
    assert rt.bridge.stats.accepted >= GOOD

    with make_bus(settings) as bus:
        records = collect(bus, settings.kafka.topic("deadletter"), expect=BAD)
    # every test bridge sees every device's data: keep ours (another run's binary junk is the same bytes)
    mine = [r for r in records if r.value in expected and (r.key or b"").decode() in ours]
    assert len({r.header("dead_letter_id") for r in mine}) == BAD
    for r in mine:
        assert r.header("reason") == expected[r.value].value.encode(), (r.value[:80], r.header("detail"))
        assert r.header("detail")
        assert r.header("received_at")
        assert r.header("source") == f"dev/{(r.key or b'').decode()}/data".encode()
    assert Counter((r.header("reason") or b"").decode() for r in mine) == Counter(
        v.value for v in expected.values()
    )

    assert len(persisted) == BAD
    assert {d.payload: d.reason for d in persisted} == expected
