"""What Mosquitto's persistence settings cost, and what a SIGKILL loses under each.

    python -m bench.bench_mqtt_persistence [--messages 5000] [--payload 300]

For each setting, on a broker of its own (deploy/mosquitto's configuration, own port and state
directory; the shared stack is never touched): a bridge session is opened and goes away, one device
publishes `--messages` QoS 1 messages (the broker queues them for the bridge: a backlog), and the
broker is killed with SIGKILL right after the last PUBACK. Once restarted, the bridge session is
drained and counted. Prints the publish throughput (PUBACKed messages/s while the backlog grows)
and how many acknowledged messages the kill lost.

Settings: `autosave_on_changes false` saves every `autosave_interval` seconds (the old deploy: 30 s);
`true` saves after every `autosave_interval` changes (queued messages, subscriptions).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from beffroi.mosquitto_instance import MosquittoInstance

BRIDGE, DEVICE = "beffroi-bridge", "bench-dev-1"
PASSWORD = "bench-password"
SETTINGS: list[tuple[str, bool, int]] = [
    ("every 30 s (before)", False, 30),
    ("every 1000 changes", True, 1000),
    ("every 100 changes", True, 100),
    ("every 10 changes", True, 10),
    ("every change", True, 1),
]


def _client(client_id: str, user: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(user, PASSWORD)
    return client


def bridge_session(port: int, *, drain_s: float = 0.0) -> int:
    """Connect the bridge's persistent session (creating it), receive for `drain_s`; messages received."""
    received = 0
    subscribed = threading.Event()
    client = _client(BRIDGE, BRIDGE)

    def on_connect(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        c.subscribe("dev/+/data", qos=1)

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 86400
    props.ReceiveMaximum = 65535
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    subscribed.wait(10)
    last, deadline = -1, time.monotonic() + drain_s
    while time.monotonic() < deadline and received != last:
        last = received
        time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    return received


def publish(port: int, count: int, size: int) -> float:
    """Publish `count` QoS 1 messages as one device; seconds until the last PUBACK."""
    done = threading.Event()
    acked = 0
    client = _client(DEVICE, DEVICE)

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, p: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            done.set()

    client.on_publish = on_publish
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    body = b"x" * size
    t0 = time.monotonic()
    for _ in range(count):
        client.publish(f"dev/{DEVICE}/data", body, qos=1)
    done.wait(600)
    elapsed = time.monotonic() - t0
    client.disconnect()
    client.loop_stop()
    return elapsed


def run_one(directory: Path, *, on_changes: bool, interval: int, count: int, size: int) -> tuple[float, int]:
    broker = MosquittoInstance(
        directory,
        users={BRIDGE: PASSWORD, DEVICE: PASSWORD},
        bridge_users={BRIDGE: PASSWORD},
        autosave_on_changes=on_changes,
        autosave_interval=interval,
        max_packet_size=size + 1024,
    )
    broker.start()
    try:
        bridge_session(broker.bridge_port)  # the session exists, its owner goes away: a backlog builds
        elapsed = publish(broker.port, count, size)
        broker.kill()  # SIGKILL right after the last PUBACK
        broker.start()
        kept = bridge_session(broker.bridge_port, drain_s=3.0)
    finally:
        broker.stop()
    return elapsed, kept


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_mqtt_persistence", description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--payload", type=int, default=300, help="bytes per message")
    args = parser.parse_args(argv)
    print(f"{args.messages} QoS 1 messages of {args.payload} B into a backlog, then SIGKILL")
    print(f"{'save':<22}{'msgs/s':>10}{'kept':>8}{'lost':>8}")
    for name, on_changes, interval in SETTINGS:
        with tempfile.TemporaryDirectory(prefix="beffroi-bench-mqtt-") as tmp:
            elapsed, kept = run_one(
                Path(tmp), on_changes=on_changes, interval=interval, count=args.messages, size=args.payload
            )
        print(f"{name:<22}{args.messages / elapsed:>10.0f}{kept:>8}{args.messages - kept:>8}", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
