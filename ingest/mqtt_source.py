"""The bridge's MQTT side: a persistent MQTT v5 session on `dev/+/data` at QoS 1, acked by hand.

Several bridges share the topics through a shared subscription (`mqtt.share_group`), each with a
client id of its own: the broker hands each message to one of them. It connects to the broker's
bridge port (`mqtt.bridge_port`), where only bridge logins exist, so no device can take over its
client id and session (deploy/mosquitto/mosquitto.conf.in).

Nothing is acknowledged on receipt (`manual_ack=True`): the bridge calls `ack` once Kafka has
confirmed a message's record (in order of receipt), so a crash leaves the messages not confirmed
yet unacknowledged in the broker's session (fixed client id, `clean_start=False`, a session
expiry) and they are delivered again.
`ReceiveMaximum` lifts the broker's default cap of 20 unacknowledged messages in flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from beffroi.settings import MqttSettings
from ingest.source import BatchQueue, Inbound

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400
RECEIVE_MAXIMUM = 65535


@dataclass(frozen=True, slots=True)
class _AckToken:
    generation: int
    mid: int
    qos: int


class MqttSource:
    """Receives `settings.data_topic` for the bridge; `start()` connects in a background thread."""

    def __init__(self, settings: MqttSettings, *, client_id: str | None = None) -> None:
        self._settings = settings
        self._queue: BatchQueue[Inbound] = BatchQueue()
        self._generation = 0
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or settings.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if settings.password is not None:
            self._client.username_pw_set(settings.username, settings.password.get_secret_value())
        else:
            self._client.username_pw_set(settings.username)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(
            self._settings.host,
            self._settings.bridge_port,
            keepalive=self._settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = (
                f"MQTT connect to {self._settings.host}:{self._settings.bridge_port} refused: {reason}"
            )
            log.error("%s", self.last_error)
            return
        with self._lock:
            self._generation += 1
        client.subscribe(self._settings.subscription, qos=1)
        self.connected.set()
        log.info(
            "bridge connected to MQTT %s:%s as %s (session present: %s)",
            self._settings.host,
            self._settings.bridge_port,
            self._settings.client_id,
            getattr(flags, "session_present", "?"),
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("bridge lost its MQTT connection (%s); unacked messages will be redelivered", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        token = _AckToken(self._generation, message.mid, message.qos)
        self._queue.put(Inbound(message.topic, bytes(message.payload), token))

    def next_batch(self, *, max_items: int, linger_s: float, timeout_s: float) -> list[Inbound]:
        return self._queue.take(max_items=max_items, linger_s=linger_s, timeout_s=timeout_s)

    def ack(self, batch: Sequence[Inbound]) -> None:
        """Acknowledge on the connection that delivered them; older ones the broker sends again."""
        with self._lock:
            generation = self._generation
        for msg in batch:
            token = msg.token
            if isinstance(token, _AckToken) and token.qos > 0 and token.generation == generation:
                self._client.ack(token.mid, token.qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _session_call(settings: MqttSettings, client_id: str, *, keep: bool, timeout_s: float) -> None:
    done = threading.Event()
    failure: list[str] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    if settings.password is not None:
        client.username_pw_set(settings.username, settings.password.get_secret_value())

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            failure.append(str(reason))
            done.set()
        elif keep:
            c.subscribe(settings.subscription, qos=1)
        else:
            done.set()

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S if keep else 0
    client.connect(
        settings.host,
        settings.bridge_port,
        keepalive=settings.keepalive_s,
        clean_start=not keep,
        properties=props,
    )
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise TimeoutError(f"MQTT {settings.host}:{settings.bridge_port} did not answer {client_id!r}")
        if failure:
            raise ConnectionError(f"MQTT refused {client_id!r}: {failure[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


def open_session(settings: MqttSettings, *, client_id: str | None = None, timeout_s: float = 10.0) -> None:
    """Create the bridge's persistent session now, so the broker queues messages for it before
    the bridge first runs (tests and benchmarks start publishing right away)."""
    _session_call(settings, client_id or settings.client_id, keep=True, timeout_s=timeout_s)


def end_session(settings: MqttSettings, *, client_id: str | None = None, timeout_s: float = 10.0) -> None:
    """Discard a bridge session and the messages queued for it (a test's bridge, once done)."""
    _session_call(settings, client_id or settings.client_id, keep=False, timeout_s=timeout_s)
