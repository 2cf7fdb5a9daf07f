"""The delivery contract of beffroi/bus.py, run against MemoryBus and (integration) KafkaBus."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict

import pytest
from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2

from beffroi.bus import Bus, BusError, Delivery, Record, Subscription, TopicPartition
from beffroi.bus_factory import kafka_bus_for, make_bus
from beffroi.confluent_bus import ConfluentBus
from beffroi.kafka_bus import KafkaBus, _KeyHashCache
from beffroi.memory_bus import MemoryBus, murmur2, partition_for_key
from tests.fixtures.bus import KAFKA_CLIENTS, BusNames
from tests.fixtures.stack import kafka_admin
from tower.settings import Settings

# generous: the first poll of a Kafka member includes joining its group
DEADLINE_S = 30.0


def drain(sub: Subscription, count: int, *, max_records: int = 500) -> list[Record]:
    """Poll until `count` records came (failing after DEADLINE_S), then check that no more come."""
    records: list[Record] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(records) < count:
        assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
        records += sub.poll(max_records=min(max_records, count - len(records)), timeout=0.5)
    assert len(records) == count
    assert sub.poll(timeout=0.5) == [], "more records than expected"
    return records


def poll_exactly(sub: Subscription, count: int) -> list[Record]:
    """Poll `count` records without reading any further (positions end right after them)."""
    records: list[Record] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(records) < count:
        assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
        records += sub.poll(max_records=count - len(records), timeout=0.5)
    assert len(records) == count
    return records


def wait_for_assignment(
    *subs: Subscription, covering: set[TopicPartition], idle: bool = True
) -> list[set[TopicPartition]]:
    """Poll every member until each holds a share and the shares split `covering` between them.

    With `idle` the topics must be empty; without, records polled meanwhile are given back by seeking.
    """
    deadline = time.monotonic() + DEADLINE_S
    while True:
        for sub in subs:
            records = sub.poll(timeout=0.2)
            assert idle is False or records == [], "no record was sent yet"
            first: dict[TopicPartition, int] = {}
            for r in records:
                first.setdefault(TopicPartition(r.topic, r.partition), r.offset)
            for tp, offset in first.items():
                sub.seek(tp, offset)
        shares = [set(sub.positions()) for sub in subs]
        union = set().union(*shares)
        disjoint = sum(len(s) for s in shares) == len(union)
        if all(shares) and disjoint and union == covering:
            return shares
        assert time.monotonic() < deadline, f"assignment never settled: {shares}"


def partitions_of(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(count)}


def test_subscriber_gets_every_record_in_key_order(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("readings")
    bus.ensure_topics({topic: 3})
    sent = [(f"sensor-{i % 7}".encode(), f"{i}".encode()) for i in range(70)]
    for key, value in sent:
        bus.send(topic, value, key=key)
    bus.flush()

    with bus.subscribe(bus_names.group("worker"), [topic]) as sub:
        records = drain(sub, len(sent))

    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for r in records:
        assert r.topic == topic
        assert r.key is not None
        by_key[r.key].append(r.value)
    expected: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in sent:
        expected[key].append(value)
    assert by_key == expected
    by_partition: dict[int, list[int]] = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))


def test_same_key_lands_on_kafkas_partition(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("keys")
    bus.ensure_topics({topic: 4})
    keys = [f"device-{i}".encode() for i in range(24)]
    for _ in range(3):
        for key in keys:
            bus.send(topic, b"v", key=key)
    bus.flush()

    with bus.subscribe(bus_names.group("g"), [topic]) as sub:
        records = drain(sub, 3 * len(keys))
    partitions: dict[bytes | None, set[int]] = defaultdict(set)
    for r in records:
        partitions[r.key].add(r.partition)
    assert partitions == {key: {partition_for_key(key, 4)} for key in keys}
    assert {p for ps in partitions.values() for p in ps} == {0, 1, 2, 3}


def test_values_keys_and_headers_round_trip_exactly(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("deadletter")
    bus.ensure_topics({topic: 1})
    headers = (("reason", "champ manquant: \u00e9".encode()), ("raw", b"\xff\xfe\x00\x80"), ("empty", b""))
    values = [b"", b"\xff\xfe\xfd\x00not utf-8\xc3\x28", bytes(range(256)) * 8, b'{"ok": true}']
    before_ms = time.time_ns() // 1_000_000
    for i, value in enumerate(values):
        bus.send(topic, value, key=b"\x80\x81" + bytes([i]), headers=(*headers, ("seq", bytes([i]))))
    bus.send(topic, b"no key")
    bus.flush()
    after_ms = time.time_ns() // 1_000_000

    with bus.subscribe(bus_names.group("g"), [topic]) as sub:
        records = drain(sub, len(values) + 1)
    assert [r.value for r in records] == [*values, b"no key"]
    assert [r.key for r in records] == [b"\x80\x81" + bytes([i]) for i in range(len(values))] + [None]
    for i, r in enumerate(records[:-1]):
        assert r.headers == (*headers, ("seq", bytes([i])))
        assert r.header("raw") == b"\xff\xfe\x00\x80"
        assert r.header("absent") is None
    assert records[-1].headers == ()
    for r in records:
        assert r.timestamp_ms is not None
        assert before_ms - 1000 <= r.timestamp_ms <= after_ms + 1000


def test_uncommitted_records_are_redelivered_committed_ones_are_not(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("readings")
    group = bus_names.group("worker")
    bus.ensure_topics({topic: 1})
    for i in range(10):
        bus.send(topic, f"{i}".encode(), key=b"k")
    bus.flush()

    with bus.subscribe(group, [topic]) as first:
        assert [r.offset for r in poll_exactly(first, 4)] == [0, 1, 2, 3]
        first.commit()
        assert [r.offset for r in poll_exactly(first, 3)] == [4, 5, 6]
        assert first.positions() == {TopicPartition(topic, 0): 7}

    with bus.subscribe(group, [topic]) as second:
        records = drain(second, 6)
    assert [(r.offset, r.value) for r in records] == [(i, f"{i}".encode()) for i in range(4, 10)]


def test_each_group_sees_every_record(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("alerts")
    bus.ensure_topics({topic: 2})
    for i in range(20):
        bus.send(topic, f"{i}".encode(), key=f"site-{i % 5}".encode())
    bus.flush()

    with (
        bus.subscribe(bus_names.group("api"), [topic]) as api,
        bus.subscribe(bus_names.group("archive"), [topic]) as archive,
    ):
        seen_by_api = sorted(int(r.value) for r in drain(api, 20))
        seen_by_archive = sorted(int(r.value) for r in drain(archive, 20))
    assert seen_by_api == seen_by_archive == list(range(20))


def test_members_of_a_group_split_partitions_and_take_over_on_leave(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("readings")
    group = bus_names.group("worker")
    bus.ensure_topics({topic: 4})
    keys = [f"sensor-{i}".encode() for i in range(40)]
    assert {partition_for_key(k, 4) for k in keys} == {0, 1, 2, 3}

    first = bus.subscribe(group, [topic], client_id="first")
    with bus.subscribe(group, [topic], client_id="second") as second:
        shares = wait_for_assignment(first, second, covering=partitions_of(topic, 4))
        for key in keys:
            bus.send(topic, key, key=key)
        bus.flush()

        got: dict[int, list[Record]] = {0: [], 1: []}
        deadline = time.monotonic() + DEADLINE_S
        while len(got[0]) + len(got[1]) < len(keys):
            assert time.monotonic() < deadline
            for i, sub in enumerate((first, second)):
                got[i] += sub.poll(timeout=0.2)
                sub.commit()
        assert first.poll(timeout=0.3) == []
        assert second.poll(timeout=0.3) == []
        for i in (0, 1):
            assert got[i], "each member reads its share"
            assert {TopicPartition(r.topic, r.partition) for r in got[i]} <= shares[i]
        assert sorted(r.value for r in got[0] + got[1]) == sorted(keys)

        first.close()
        assert wait_for_assignment(second, covering=partitions_of(topic, 4)) == [partitions_of(topic, 4)]
        for key in keys:
            bus.send(topic, b"again:" + key, key=key)
        bus.flush()
        again = drain(second, len(keys))
    assert sorted(r.value for r in again) == sorted(b"again:" + k for k in keys)


def test_seek_replays_from_an_offset_and_positions_follow(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("zone_state")
    bus.ensure_topics({topic: 2})
    k0 = next(k for k in (f"z{i}".encode() for i in range(100)) if partition_for_key(k, 2) == 0)
    k1 = next(k for k in (f"z{i}".encode() for i in range(100)) if partition_for_key(k, 2) == 1)
    for i in range(6):
        bus.send(topic, f"a{i}".encode(), key=k0)
    for i in range(3):
        bus.send(topic, f"b{i}".encode(), key=k1)
    bus.flush()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    with bus.subscribe(bus_names.group("replayer"), [topic]) as sub:
        drain(sub, 9)
        assert sub.positions() == {tp0: 6, tp1: 3}
        sub.seek(tp0, 2)
        assert sub.positions() == {tp0: 2, tp1: 3}
        replayed = drain(sub, 4)
        assert [(r.partition, r.offset, r.value) for r in replayed] == [
            (0, i, f"a{i}".encode()) for i in range(2, 6)
        ]
        assert sub.positions() == {tp0: 6, tp1: 3}

    # a restarted member seeks to its snapshot before its first poll; the seek waits for the assignment
    with bus.subscribe(bus_names.group("restarted"), [topic]) as sub:
        sub.seek(tp1, 2)
        records = drain(sub, 7)
    assert sorted((r.partition, r.offset) for r in records) == [(0, i) for i in range(6)] + [(1, 2)]


def test_a_seek_waits_for_its_partition_to_be_assigned(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("readings")
    group = bus_names.group("worker")
    bus.ensure_topics({topic: 2})
    for i in range(8):
        bus.send(topic, f"{i}".encode(), key=b"same")
    bus.flush()
    tp = TopicPartition(topic, partition_for_key(b"same", 2))

    holder = bus.subscribe(group, [topic], client_id="holder")
    with bus.subscribe(group, [topic], client_id="heir") as heir:
        shares = wait_for_assignment(holder, heir, covering=partitions_of(topic, 2), idle=False)
        if tp in shares[1]:
            holder, heir = heir, holder
        heir.seek(tp, 5)
        assert tp not in heir.positions()
        holder.close()
        records = drain(heir, 3)
    assert [(r.partition, r.offset) for r in records] == [(tp.partition, o) for o in (5, 6, 7)]


def test_memory_partitioner_is_kafkas() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randrange(0, 40)) for _ in range(2000)] + [b"21", b"sensor-0042"]
    for key in keys:
        assert murmur2(key) == kafka_murmur2(key) & 0xFFFFFFFF
        assert partition_for_key(key, 12) == (kafka_murmur2(key) & 0x7FFFFFFF) % 12


def test_kafka_python_key_hash_cache_partitions_as_kafkas_default() -> None:
    class Cluster:
        def topics(self) -> set[str]:
            return {"t"}

        def partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(12))

        def available_partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(12))

    rng = random.Random(11)
    cached, default = _KeyHashCache(), DefaultPartitioner()
    keys = [rng.randbytes(rng.randrange(1, 30)) for _ in range(500)]
    cluster = Cluster()
    for key in keys + keys:  # the second time from the cache
        expected = default.partition("t", key, key, b"v", b"v", cluster)
        assert cached.partition("t", key, key, b"v", b"v", cluster) == expected == partition_for_key(key, 12)


def test_ensure_topics_is_idempotent_and_honours_partition_counts(bus: Bus, bus_names: BusNames) -> None:
    wide, narrow = bus_names.topic("wide"), bus_names.topic("narrow")
    bus.ensure_topics({wide: 5, narrow: 1})
    bus.ensure_topics({wide: 5, narrow: 1})
    bus.ensure_topics({wide: 2})  # existing topics are left alone

    with bus.subscribe(bus_names.group("g"), [wide, narrow]) as sub:
        shares = wait_for_assignment(sub, covering=partitions_of(wide, 5) | partitions_of(narrow, 1))
    assert shares == [partitions_of(wide, 5) | partitions_of(narrow, 1)]


def test_sending_to_or_subscribing_to_a_missing_topic_raises_naming_it(bus: Bus, bus_names: BusNames) -> None:
    missing = bus_names.topic("never-created")
    bus.ensure_topics({bus_names.topic("present"): 1})
    with pytest.raises(BusError, match=re.escape(repr(missing))):
        bus.subscribe(bus_names.group("g"), [bus_names.topic("present"), missing])

    def send_and_flush() -> None:
        bus.send(missing, b"lost?")
        bus.flush(timeout=10)

    with pytest.raises(BusError, match=re.escape(repr(missing))):
        send_and_flush()


def test_poll_returns_nothing_on_an_empty_topic_and_wakes_for_a_new_record(
    bus: Bus, bus_names: BusNames
) -> None:
    topic = bus_names.topic("quiet")
    bus.ensure_topics({topic: 1})
    with bus.subscribe(bus_names.group("g"), [topic]) as sub:
        wait_for_assignment(sub, covering=partitions_of(topic, 1))
        assert sub.poll(timeout=0.3) == []

        def send_later() -> None:
            time.sleep(0.3)
            bus.send(topic, b"late")
            bus.flush()

        sender = threading.Thread(target=send_later)
        sender.start()
        try:
            records = sub.poll(timeout=DEADLINE_S)
        finally:
            sender.join()
    assert [r.value for r in records] == [b"late"]


def test_concurrent_senders_keep_per_key_order(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("readings")
    bus.ensure_topics({topic: 3})
    errors: list[BaseException] = []

    def produce(worker: int) -> None:
        try:
            for i in range(300):
                bus.send(topic, f"{worker}:{i}".encode(), key=f"w{worker}".encode())
            bus.flush()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    with bus.subscribe(bus_names.group("g"), [topic]) as sub:
        records = drain(sub, 1200)
    per_worker: dict[str, list[int]] = defaultdict(list)
    for r in records:
        worker, seq = r.value.decode().split(":")
        per_worker[worker].append(int(seq))
    assert per_worker == {str(w): list(range(300)) for w in range(4)}


def test_a_closed_bus_refuses_work(bus_settings: Settings, bus_names: BusNames) -> None:
    closed = make_bus(bus_settings, ensure_topics=False)
    topic = bus_names.topic("readings")
    closed.ensure_topics({topic: 1})
    sub = closed.subscribe(bus_names.group("g"), [topic])
    closed.close()
    closed.close()
    with pytest.raises(BusError):
        closed.send(topic, b"x")
    with pytest.raises(BusError):
        sub.poll(timeout=0.1)


def test_make_bus_picks_the_backend_of_the_mode_and_creates_its_topics(
    bus_settings: Settings, bus_names: BusNames
) -> None:
    kafka_backends = {"kafka-python": KafkaBus, "confluent-kafka": ConfluentBus}
    expected = MemoryBus if bus_settings.mode == "embedded" else kafka_backends[bus_settings.kafka.client]
    with make_bus(bus_settings) as made:
        assert type(made) is expected
        for name, spec in bus_settings.kafka.topics.all().items():
            made.send(bus_settings.kafka.topic(name), b"hello", key=b"k")
            assert bus_settings.kafka.topic(name) == bus_names.topic(spec.name)
        made.flush()
        readings = bus_settings.kafka.topic("readings")
        with made.subscribe(bus_names.group("g"), [readings]) as sub:
            assert [r.value for r in drain(sub, 1)] == [b"hello"]
            assert set(sub.positions()) == partitions_of(
                readings, bus_settings.kafka.topics.readings.partitions
            )


def test_deliveries_settle_without_a_flush_each_partition_in_send_order(
    bus: Bus, bus_names: BusNames
) -> None:
    topic = bus_names.topic("readings")
    bus.ensure_topics({topic: 3})
    keys = [f"sensor-{i}".encode() for i in range(6)]
    settled: list[tuple[bytes, int]] = []
    lock = threading.Lock()
    all_done = threading.Event()
    count = 300

    def note(key: bytes, seq: int) -> None:
        with lock:
            settled.append((key, seq))
            if len(settled) == count:
                all_done.set()

    deliveries: list[Delivery] = []
    for seq in range(count):
        key = keys[seq % len(keys)]
        delivery = bus.send(topic, f"{seq}".encode(), key=key)
        delivery.on_done(lambda d, key=key, seq=seq: note(key, seq))
        deliveries.append(delivery)
    assert all_done.wait(DEADLINE_S), f"{len(settled)} of {count} deliveries settled without a flush"
    assert all(d.done() and d.error() is None for d in deliveries)
    assert all(d.wait(0) for d in deliveries)
    order: dict[int, list[int]] = defaultdict(list)
    for key, seq in settled:
        order[partition_for_key(key, 3)].append(seq)
    assert all(seqs == sorted(seqs) for seqs in order.values())
    late: list[Delivery] = []
    deliveries[0].on_done(late.append)  # settled already: called at once
    assert late == [deliveries[0]]
    with bus.subscribe(bus_names.group("g"), [topic]) as sub:
        assert sorted(int(r.value) for r in drain(sub, count)) == list(range(count))


def create_strict_topic(settings: Settings, topic: str) -> None:
    """A one-partition topic whose broker refuses records over 512 bytes."""
    admin = kafka_admin(settings)
    try:
        admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1, "configs": {"max.message.bytes": "512"}}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


@pytest.mark.integration
@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_kafka_delivery_of_a_refused_record_fails_without_a_flush(
    stack_settings: Settings, client: str
) -> None:
    names = BusNames(stack_settings.kafka.topic_prefix)
    strict, lenient = names.topic("strict"), names.topic("lenient")
    settings = stack_settings.model_copy(
        update={"kafka": stack_settings.kafka.model_copy(update={"client": client})}
    )
    with kafka_bus_for(settings, client_id=names.prefix + "bus") as bus:
        bus.ensure_topics({lenient: 1})
        create_strict_topic(stack_settings, strict)
        refused = bus.send(strict, b"x" * 4096)
        assert refused.wait(DEADLINE_S)
        error = refused.error()
        assert isinstance(error, BusError)
        assert error.permanent
        assert repr(strict) in str(error)
        with pytest.raises(BusError):
            bus.flush(timeout=20)  # the thread that sent it still hears of it
        stored = bus.send(lenient, b"after")
        assert stored.wait(DEADLINE_S)
        assert stored.error() is None


@pytest.mark.integration
@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_kafka_flush_reports_a_refused_record_to_the_thread_that_sent_it(
    stack_settings: Settings, client: str
) -> None:
    """The broker refuses a record after `send` returned: the sending thread's flush raises, a record
    of another thread in flight is stored or reported to that thread (never lost), and the bus goes on
    working (kafka-python's idempotent producer turns such a refusal into a fatal state)."""
    names = BusNames(stack_settings.kafka.topic_prefix)
    strict, lenient = names.topic("strict"), names.topic("lenient")
    settings = stack_settings.model_copy(
        update={"kafka": stack_settings.kafka.model_copy(update={"client": client})}
    )
    with kafka_bus_for(settings, client_id=names.prefix + "bus") as bus:
        bus.ensure_topics({lenient: 1})
        create_strict_topic(stack_settings, strict)
        outcome: dict[str, BaseException | None] = {}

        def send_and_flush(topic: str, size: int) -> None:
            try:
                bus.send(topic, b"x" * size)
                bus.flush(timeout=20)
                outcome[topic] = None
            except BaseException as exc:
                outcome[topic] = exc

        threads = [
            threading.Thread(target=send_and_flush, args=(strict, 4096)),
            threading.Thread(target=send_and_flush, args=(lenient, 4096)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bus.flush()

        assert isinstance(outcome[strict], BusError)
        assert repr(strict) in str(outcome[strict])
        lenient_stored = outcome[lenient] is None
        if not lenient_stored:
            assert repr(lenient) in str(outcome[lenient])
        bus.send(lenient, b"after")
        bus.flush(timeout=20)
        with bus.subscribe(names.group("g"), [strict, lenient]) as sub:
            records: list[Record] = []
            deadline = time.monotonic() + DEADLINE_S
            while b"after" not in [r.value for r in records]:
                assert time.monotonic() < deadline, f"'after' never came: {records}"
                records += sub.poll(timeout=0.5)
            assert sub.poll(timeout=0.5) == []
        assert [r.topic for r in records] == [lenient] * len(records)
        values = [r.value for r in records]
        # reported as stored: it is there; reported as failed: it may still be there (the broker
        # took it before the answer was lost), and a retry by its sender would double it (at least once)
        expected = [[b"x" * 4096, b"after"]] if lenient_stored else [[b"after"], [b"x" * 4096, b"after"]]
        assert values in expected


def test_lag_counts_the_records_behind_each_polled_partition(bus: Bus, bus_names: BusNames) -> None:
    topic = bus_names.topic("readings")
    bus.ensure_topics({topic: 1})
    for i in range(10):
        bus.send(topic, f"{i}".encode(), key=b"k")
    bus.flush()
    tp = TopicPartition(topic, 0)

    with bus.subscribe(bus_names.group("worker"), [topic]) as sub:
        poll_exactly(sub, 4)
        assert sub.lag() == {tp: 6}
        drain(sub, 6)
        assert sub.lag() == {tp: 0}
        bus.send(topic, b"late", key=b"k")
        bus.flush()
        drain(sub, 1)
        assert sub.lag() == {tp: 0}
