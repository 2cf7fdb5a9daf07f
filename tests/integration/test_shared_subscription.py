"""Several bridges share the sensor topics: with `mqtt.share_group`, Mosquitto hands each message to
one of the bridges' sessions (MQTT v5 shared subscription), so N bridges split the load."""

from __future__ import annotations

import time

import pytest

from ingest.mqtt_source import MqttSource, end_session, open_session
from ingest.source import Inbound
from simulators.publish import MqttPublisher
from tower.testing import provision_devices, unique

pytestmark = [pytest.mark.integration]

N = 200


def test_two_bridges_in_a_share_group_split_the_messages_between_them(stack_settings):
    device = unique("share-")
    provision_devices(stack_settings, [device])
    mqtt = stack_settings.mqtt.model_copy(update={"share_group": device})
    assert mqtt.subscription == f"$share/{device}/{mqtt.data_topic}"
    ids = [f"{device}-a", f"{device}-b"]
    sources = [MqttSource(mqtt, client_id=i) for i in ids]
    got: list[list[Inbound]] = [[], []]
    try:
        for client_id, source in zip(ids, sources, strict=True):
            open_session(mqtt, client_id=client_id)
            source.start()
            assert source.wait_connected(10), source.last_error
        publisher = MqttPublisher(mqtt)
        try:
            for i in range(N):
                publisher.publish(device, f"{i}".encode())
            publisher.flush(timeout=30)
        finally:
            publisher.close()
        deadline = time.monotonic() + 30
        while sum(len(g) for g in got) < N and time.monotonic() < deadline:
            for mine, source in zip(got, sources, strict=True):
                batch = source.next_batch(max_items=1000, linger_s=0, timeout_s=0.1)
                source.ack(batch)
                mine += [m for m in batch if m.topic == f"dev/{device}/data"]
    finally:
        for client_id, source in zip(ids, sources, strict=True):
            source.close()
            end_session(mqtt, client_id=client_id)

    assert all(got), "each bridge takes a share"
    payloads = sorted(int(m.payload) for g in got for m in g)
    assert payloads == list(range(N)), "every message once, to one bridge"
