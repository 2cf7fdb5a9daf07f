"""The worker: store, rules, publish, commit; nothing doubled when a batch is processed again."""

from __future__ import annotations

import pytest

from analytics.consumer import WorkerError
from analytics.worker import Worker
from beffroi.devices import DeviceKind
from beffroi.events import DeadLetterReason
from beffroi.sqlite_store import SqliteStore
from beffroi.store import StoreError
from tower.testing import alert_on_every_reading, pipeline

DEVICES = {"pb-1": DeviceKind.PANIC_BUTTON, "aq-1": DeviceKind.AIR_QUALITY}


def test_an_analytics_test_reads_in_ten_lines():
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        p.publish("pb-1", {"pressed": 1})
        p.publish("aq-1", {"pm25": 20, "co": 1})
        p.drain()
        [alert] = p.alerts()
        assert (alert.rule, alert.severity, alert.device_id) == ("panic-button", "critical", "pb-1")
        assert p.store.count_readings("site-1") == 2
        assert [r.header("alert_id") for r in p.topic("alerts")] == [alert.alert_id.encode()]


def test_a_batch_processed_twice_is_stored_once():
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        for i in range(50):
            p.publish("aq-1", {"pm25": 100 + i * 2, "co": 1})
        p.drain()
        stored, alerts = p.store.count_readings(), len(p.alerts())
        # a crash after the store write, before the commit: the group reads everything again
        group = p.worker.config.group
        with p.bus.subscribe(group + "-replay", [p.worker.config.readings_topic]) as replay:
            records = replay.poll(1000, timeout=0.1)
        p.worker.process(records)
        assert p.store.count_readings() == stored == 50
        assert len(p.alerts()) == alerts == 24  # pm25 152..198
        assert p.worker.stats.new_readings == 50
        assert p.worker.stats.new_alerts == 24


class FailingStore(SqliteStore):
    failures = 0

    def write_readings(self, readings):
        if self.failures:
            self.failures -= 1
            raise StoreError("readings: disk full (injected)")
        return super().write_readings(readings)


def test_offsets_are_committed_only_after_the_store_write(tmp_path):
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        store = FailingStore(tmp_path / "s.db")
        store.migrate()
        worker = Worker(bus=p.bus, store=store, rules=p.worker.rules, config=p.worker.config)
        for i in range(10):
            p.publish("pb-1", {"pressed": i % 2})
        p.bridge.run_once(timeout_s=0)
        store.failures = 1_000  # the store answers but takes nothing: the batch fails, nothing dead-lettered
        with pytest.raises(WorkerError, match="'store readings'") as err:
            worker.run_once()
        assert err.value.step == "store readings"
        assert store.count_dead_letters() == 0
        store.failures = 0
        worker.close()  # what run() does after a failure: the uncommitted records come again
        assert worker.run_once() == 10
        assert store.count_readings() == 10
        assert len(store.list_alerts("site-1")) == 5
        worker.close()
        store.close()


class RefusingStore(SqliteStore):
    """Refuses the readings of one device, as a constraint would; a transient failure besides."""

    refused_device = "aq-1"
    failures = 0

    def write_readings(self, readings):
        if self.failures:
            self.failures -= 1
            raise StoreError("readings: connection reset (injected)")
        if any(r.device_id == self.refused_device for r in readings):
            raise StoreError("readings: violates check constraint (injected)")
        return super().write_readings(readings)


def test_a_reading_the_store_refuses_alone_is_dead_lettered_and_the_rest_stored(tmp_path):
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        store = RefusingStore(tmp_path / "s.db")
        store.migrate()
        worker = Worker(bus=p.bus, store=store, rules=p.worker.rules, config=p.worker.config)
        for i in range(10):
            p.publish("pb-1", {"pressed": i % 2})
            if i in (0, 5):
                p.publish("aq-1", {"pm25": 10 + i, "co": 1})
        p.bridge.run_once(timeout_s=0)
        store.failures = 2  # the batch, then the first reading alone: tried again, not dead-lettered
        assert worker.run_once() == 12
        assert store.count_readings() == 10
        letters = store.list_dead_letters(limit=10)
        assert len(letters) == 2
        assert {(d.stage, d.reason) for d in letters} == {("worker", DeadLetterReason.INVALID)}
        assert all("the store refused it" in d.detail for d in letters)
        assert worker.stats.failures == 0
        worker.close()
        store.close()


def test_a_record_that_is_not_a_reading_becomes_a_worker_dead_letter():
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        p.bus.send(p.worker.config.readings_topic, b"\x00garbage", key=b"pb-1")
        p.publish("pb-1", {"pressed": 0})
        p.drain()
        [dl] = p.dead_letters()
        assert dl.stage == "worker"
        assert dl.reason is DeadLetterReason.INVALID
        assert dl.payload == b"\x00garbage"
        assert p.store.count_readings() == 1
        assert p.worker.stats.bad_records == 1


def test_dead_letters_of_the_bridge_are_persisted_with_their_reason():
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        p.send_raw("pb-1", b"{not json")
        p.send_raw("nobody", b'{"streamId": "x"}')
        p.drain()
        reasons = sorted(d.reason.value for d in p.dead_letters())
        assert reasons == ["malformed_json", "missing_field"]
        assert p.store.count_dead_letters("malformed_json") == 1
