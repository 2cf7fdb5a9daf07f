"""Nothing lost, nothing doubled: 20,000 readings over real MQTT (QoS 1) while the bridge and the
worker run as separate processes, each killed with SIGKILL partway (twice) and restarted. Exactly
20,000 distinct readings must end in PostgreSQL: MQTT acks wait for Kafka, offsets wait for the
store, and the writes are idempotent on message ids."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from beffroi.clock import utcnow
from beffroi.devices import DeviceKind
from beffroi.store_factory import make_store
from ingest.mqtt_source import end_session, open_session
from simulators.publish import MqttPublisher
from tests.fixtures.store import execute_raw
from tower.testing import (
    ComponentProcess,
    isolated,
    payload,
    provision_devices,
    tiny_venue,
    unique,
    write_settings,
    write_venue,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 20_000
DEVICES = 40
RATE_PER_S = 2_000
LEAD = 4_000  # the sensors run at most this far ahead of the store, so every kill lands mid-stream


def test_kill_9_of_bridge_and_worker_loses_and_doubles_nothing(stack_settings, tmp_path):
    site = unique("crash-")
    names = [f"{site}-t{i}" for i in range(DEVICES)]
    venue = tiny_venue(dict.fromkeys(names, DeviceKind.TEMPERATURE), site_id=site)
    settings = isolated(stack_settings, name="crash")
    settings = settings.model_copy(update={"venue": write_venue(venue, tmp_path / "venue.yaml")})
    settings_file = write_settings(settings, tmp_path / "settings.yaml")
    provision_devices(settings, names)
    open_session(settings.mqtt)  # the broker queues for the bridge from the first message on

    bridge = ComponentProcess("tower.processes.bridge", settings_file=settings_file, log_dir=tmp_path)
    worker = ComponentProcess("tower.processes.worker", settings_file=settings_file, log_dir=tmp_path)
    publisher = MqttPublisher(settings.mqtt)
    store = make_store(settings)
    published = 0
    failure: list[BaseException] = []

    def publish_all() -> None:
        nonlocal published
        start, t0 = utcnow() - timedelta(minutes=10), time.monotonic()
        try:
            for i in range(N):
                device = names[i % DEVICES]
                publisher.publish(
                    device,
                    payload(device, {"celsius": 20 + (i % 100) / 10}, ts=start + timedelta(milliseconds=i)),
                )
                published = i + 1
                if i % 200 == 0:
                    time.sleep(max(0.0, t0 + i / RATE_PER_S - time.monotonic()))
                    while i - store.count_readings(site) > LEAD:
                        time.sleep(0.05)
            publisher.flush(timeout=120)
        except BaseException as exc:
            failure.append(exc)

    def wait_stored(count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while store.count_readings(site) < count and not failure:
            assert time.monotonic() < deadline, (
                f"{count} never stored\n{bridge.log_tail()}\n{worker.log_tail()}"
            )
            time.sleep(0.05)

    kills: list[tuple[str, int, int]] = []

    def kill_and_restart(proc: ComponentProcess) -> None:
        proc.kill()
        kills.append((proc.module, published, store.count_readings(site)))
        time.sleep(0.5)
        proc.start()

    feeder = threading.Thread(target=publish_all)
    try:
        bridge.start()
        worker.start()
        feeder.start()
        # each kill lands mid-stream: the store holds some readings, the publisher is still going
        for stored, proc in ((2_000, bridge), (5_000, worker), (9_000, bridge), (12_000, worker)):
            wait_stored(stored)
            kill_and_restart(proc)
        feeder.join(timeout=180)
        assert not failure, failure
        deadline = time.monotonic() + 120
        while store.count_readings(site) < N and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2.0)  # late duplicates, if any, would land now
    finally:
        bridge.stop()
        worker.stop()
        publisher.close()
        store.close()
        end_session(settings.mqtt)

    [(rows, distinct)] = execute_raw(
        settings, "SELECT count(*), count(DISTINCT message_id) FROM readings WHERE site_id = %s", (site,)
    )
    assert (rows, distinct) == (N, N), f"kills at {kills}\n{bridge.log_tail()}\n{worker.log_tail()}"
    assert bridge.starts == 3
    assert worker.starts == 3
    # (component, published, stored) at each kill: every one mid-stream, sensors still publishing
    assert all(0 < stored < sent < N for _, sent, stored in kills), kills
