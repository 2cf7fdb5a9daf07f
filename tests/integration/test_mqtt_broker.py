"""The MQTT broker as deploy/mosquitto configures it, on an instance of its own (own ports, own state
directory under tmp_path: these tests kill and borrow identities, never on the shared stack).

- Identities cannot be borrowed: a device that connects with the bridge's client id (on the
  devices' port, with a clean start) gets its own user name as client id instead, and is refused
  on the bridge's port; the bridge's session and its 1,000 queued readings are untouched.
- Durability is a setting: killed with SIGKILL mid-backlog, the broker loses at most
  `autosave_interval` of the messages it acknowledged (0 of 5,000 kept before: it saved every 30 s).
- The packet limit agrees with the ingest limit: a payload over it is refused by the broker and
  the device's other readings still arrive.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from beffroi.mosquitto_instance import DEFAULT_AUTOSAVE_INTERVAL, MosquittoInstance
from beffroi.mqtt_auth import device_password
from beffroi.settings import MqttSettings
from ingest.mqtt_source import MqttSource, open_session
from ingest.settings import IngestSettings
from simulators.publish import MqttPublisher
from tower.commands.mqtt_provision import _try_login, logins, passwd_path
from tower.testing import payload, provision_devices, remove_test_logins, unique

pytestmark = [pytest.mark.integration]

SECRET = "device-secret-of-this-test"
BRIDGE_PASSWORD = "bridge-password-of-this-test"


def broker_for(tmp_path, devices: list[str], **options: Any) -> tuple[MosquittoInstance, MqttSettings]:
    broker = MosquittoInstance(
        tmp_path / "mosquitto",
        users={d: device_password(SECRET, d) for d in devices},
        bridge_users={"beffroi-bridge": BRIDGE_PASSWORD},
        max_packet_size=IngestSettings().mqtt_max_packet_size(),
        **options,
    )
    mqtt_settings = broker.apply(
        MqttSettings(
            password=SecretStr(BRIDGE_PASSWORD),
            device_secret=SecretStr(SECRET),
            client_id=unique("beffroi-bridge-test-"),
        )
    )
    return broker, mqtt_settings


def publish_all(mqtt_settings: MqttSettings, messages: list[tuple[str, bytes]]) -> None:
    publisher = MqttPublisher(mqtt_settings)
    try:
        for device, raw in messages:
            publisher.publish(device, raw)
        publisher.flush(timeout=120)
    finally:
        publisher.close()


def drain(mqtt_settings: MqttSettings, *, quiet_s: float = 2.0, timeout_s: float = 60.0) -> list[bytes]:
    """Everything the bridge's session delivers until it is quiet for `quiet_s` (acknowledged)."""
    source = MqttSource(mqtt_settings)
    source.start()
    got: list[bytes] = []
    try:
        assert source.wait_connected(15), source.last_error
        deadline, last = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            batch = source.next_batch(max_items=10_000, linger_s=0.05, timeout_s=0.2)
            if batch:
                got += [m.payload for m in batch]
                source.ack(batch)
                last = time.monotonic()
    finally:
        source.close()
    return got


def connect_as(port: int, *, user: str, password: str, client_id: str, clean_start: bool) -> str:
    """One MQTT v5 CONNECT; the CONNACK's reason and the client id the broker assigned, if any."""
    answered = threading.Event()
    outcome: list[str] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(user, password)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.append(str(reason))
        answered.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", port, keepalive=10, clean_start=clean_start, properties=props)
    client.loop_start()
    answered.wait(5)
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()
    return outcome[0] if outcome else "no CONNACK"


def test_a_device_taking_the_bridge_client_id_is_refused_and_loses_nothing(tmp_path):
    device = "dev-intruder"
    broker, mqtt_settings = broker_for(tmp_path, [device, "dev-1"])
    with broker:
        open_session(mqtt_settings)  # the bridge's session; the bridge goes away, readings queue up
        sent = [("dev-1", payload("dev-1", {"celsius": 20.0}, tags=[f"n:{i}"])) for i in range(1_000)]
        publish_all(mqtt_settings, sent)

        password = device_password(SECRET, device)
        # on the devices' port the broker renames it to its user name: the bridge's session is not touched
        renamed = connect_as(
            broker.port, user=device, password=password, client_id=mqtt_settings.client_id, clean_start=True
        )
        # on the bridge's port a device login does not exist
        refused = connect_as(
            broker.bridge_port,
            user=device,
            password=password,
            client_id=mqtt_settings.client_id,
            clean_start=True,
        )
        got = drain(mqtt_settings)

    counts = {"sent": len(sent), "received": len(set(got)), "lost": len({r for _, r in sent} - set(got))}
    print(
        f"device with the bridge's client id: {renamed} (devices' port), {refused} (bridge's port); {counts}"
    )
    assert renamed == "Success"
    assert refused == "Not authorized"
    assert counts == {"sent": 1_000, "received": 1_000, "lost": 0}


def test_a_broker_killed_mid_backlog_loses_at_most_what_the_settings_allow(tmp_path):
    """5,000 acknowledged readings queued for the bridge, then SIGKILL: at most autosave_interval lost."""
    broker, mqtt_settings = broker_for(tmp_path, ["dev-1", "dev-2"])
    with broker:
        open_session(mqtt_settings)
        sent = [
            (f"dev-{1 + i % 2}", payload(f"dev-{1 + i % 2}", {"celsius": 20.0}, tags=[f"n:{i}"]))
            for i in range(5_000)
        ]
        t0 = time.monotonic()
        publish_all(mqtt_settings, sent)  # every one PUBACKed: the broker answers for it
        elapsed = time.monotonic() - t0
        broker.kill()
        broker.start()
        got = drain(mqtt_settings)
    kept = len(set(got) & {r for _, r in sent})
    counts = {"sent": len(sent), "kept": kept, "lost": len(sent) - kept, "doubled": len(got) - len(set(got))}
    rate = len(sent) / elapsed
    print(f"SIGKILL mid-backlog (autosave {DEFAULT_AUTOSAVE_INTERVAL} changes): {counts}, {rate:.0f} msgs/s")
    assert counts["lost"] <= DEFAULT_AUTOSAVE_INTERVAL
    assert counts["doubled"] == 0


def test_a_payload_over_the_packet_limit_is_refused_by_the_broker_and_the_rest_arrives(tmp_path):
    limit = IngestSettings().mqtt_max_packet_size()
    broker, mqtt_settings = broker_for(tmp_path, ["dev-1", "dev-2"])
    with broker:
        open_session(mqtt_settings)
        big = payload("dev-2", {"celsius": 20.0}, tags=["x" * 1_000_000])  # 1 MB
        just_over = payload("dev-1", {"celsius": 20.0}, tags=["y" * (IngestSettings().max_payload_bytes)])
        good = [("dev-1", payload("dev-1", {"celsius": 20.0}, tags=[f"n:{i}"])) for i in range(200)]
        refused = connect_and_publish(broker.port, "dev-2", big)
        publish_all(mqtt_settings, [*good[:100], ("dev-1", just_over), *good[100:]])
        got = drain(mqtt_settings)
    print(f"packet limit {limit} B: 1 MB payload -> {refused}; {len(got)} of {len(good) + 1} others arrived")
    assert refused.startswith("disconnected")
    assert big not in got
    assert just_over in got  # over the ingest limit but within the packet limit: the bridge dead-letters it
    assert sorted(got) == sorted([raw for _, raw in good] + [just_over])


def connect_and_publish(port: int, device: str, raw: bytes) -> str:
    """Publish one QoS 1 message as `device`; how the broker answered."""
    done = threading.Event()
    outcome: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(device, device_password(SECRET, device))
    client.on_publish = lambda c, u, mid, reason, props: (outcome.append(f"acked {reason}"), done.set())
    client.on_disconnect = lambda c, u, flags, reason, props: (
        outcome.append(f"disconnected: {reason}"),
        done.set(),
    )
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    client.publish(f"dev/{device}/data", raw, qos=1)
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return outcome[0] if outcome else "no answer"


def test_the_logins_a_test_gives_its_devices_are_removed_after_it(stack_settings):
    """On the shared broker: `provision_devices` logins are removed by `stack_settings`' teardown
    (`remove_test_logins`), so the password file keeps no logins of tests and benchmarks (it held
    about 600, then tens of thousands)."""
    names = [unique("login-") for _ in range(3)]
    provision_devices(stack_settings, names)
    password = device_password(stack_settings.mqtt.device_secret.get_secret_value(), names[0])
    assert set(names) <= logins(passwd_path())
    assert _try_login(stack_settings, names[0], password, client_id=unique("login-check-")) == "Success"
    assert remove_test_logins() == 3  # what the fixture's teardown does
    assert not set(names) & logins(passwd_path())
    assert _try_login(stack_settings, names[0], password, client_id=unique("login-check-")) != "Success"
    assert remove_test_logins() == 0
