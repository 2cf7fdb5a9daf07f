"""The publishing seam of the simulators: where a device's payload goes.

- `MqttPublisher`: over Mosquitto, as each device itself, at QoS 1 (stack mode).
- `InProcessPublisher`: straight into the embedded bridge's source (embedded mode, tests).

The broker's ACL lets a device write only `dev/{its id}/...`, with username = device id, so one
connection cannot publish for several devices: `MqttPublisher` keeps one paho client per device.
To scale to thousands of devices in one process it never starts a thread per client: every
client is connected lazily, on its device's first message, and ONE network thread drives all their
sockets through a selector (epoll) with paho's external-loop API (`loop_read`, `loop_write`,
`loop_misc` and the socket callbacks). `publish` only enqueues and wakes that thread, and blocks
once `max_in_flight` messages await their PUBACK (back-pressure). `flush` waits for every PUBACK.
The soft limit on open files is raised to the hard one (a socket per device).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from beffroi.clock import ensure_aware
from beffroi.mqtt_auth import data_topic, device_client_id, device_password
from beffroi.settings import MqttSettings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """A device could not publish (connection refused, broker gone); names the device."""


class Publisher(Protocol):
    def publish(self, device_id: str, payload: bytes) -> None:
        """Send one payload as `device_id` on `dev/{device_id}/data`."""

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything published so far is confirmed by the receiver."""

    def close(self) -> None: ...


class InProcessPublisher:
    """Hands payloads to an in-process receiver, e.g. `ingest.source.QueueSource.offer`."""

    def __init__(self, deliver: Callable[[str, bytes], None]) -> None:
        self._deliver = deliver
        self.published = 0

    def publish(self, device_id: str, payload: bytes) -> None:
        self._deliver(data_topic(device_id), payload)
        self.published += 1

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Device:
    device_id: str
    client: mqtt.Client
    pending: int = 0
    connected: bool = False
    failed: str | None = None
    retry_at: float = 0.0


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-files limit (soft %d, hard %d)", soft, hard)


class MqttPublisher:
    """Publishes as many devices over one process's worth of connections. See the module doc."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        max_in_flight: int = 10_000,
        per_client_inflight: int = 1000,
        reconnect_delay_s: float = 1.0,
    ) -> None:
        if settings.device_secret is None:
            raise PublishError("mqtt.device_secret is not set (BEFFROI_MQTT__DEVICE_SECRET)")
        self._settings = settings
        self._secret = settings.device_secret.get_secret_value()
        self._per_client_inflight = per_client_inflight
        self._reconnect_delay_s = reconnect_delay_s
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._commands: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._devices: dict[str, _Device] = {}
        self._failed: dict[str, str] = {}
        self._pending = 0
        self._cond = threading.Condition()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._closing = False
        self.published = 0
        self.confirmed = 0
        _raise_open_files_limit()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------------
    def publish(self, device_id: str, payload: bytes) -> None:
        if device_id in self._failed:
            raise PublishError(f"device {device_id!r}: {self._failed[device_id]}")
        if self._closing:
            raise PublishError("publisher is closed")
        self._slots.acquire()
        with self._cond:
            self._pending += 1
            self.published += 1
        self._commands.put((device_id, payload))
        self._wake()

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                if self._failed:
                    device, why = next(iter(self._failed.items()))
                    raise PublishError(f"device {device!r}: {why}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{self._pending} messages still await their PUBACK")
                self._cond.wait(0.2 if remaining is None else min(remaining, 0.2))

    def close(self) -> None:
        self._closing = True
        self._commands.put(None)
        self._wake()
        self._thread.join(timeout=10)
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\0")

    # -- network thread ------------------------------------------------------------------------
    def _run(self) -> None:
        next_misc = time.monotonic() + 1.0
        while True:
            for key, events in self._selector.select(timeout=0.5):
                device: _Device | None = key.data
                if device is None:
                    self._drain_wake()
                    continue
                if events & selectors.EVENT_READ:
                    device.client.loop_read(max_packets=100)
                if events & selectors.EVENT_WRITE:
                    device.client.loop_write()
            if not self._run_commands():
                break
            if time.monotonic() >= next_misc:
                self._misc()
                next_misc = time.monotonic() + 1.0
        for dev in self._devices.values():
            dev.client.disconnect()
            dev.client.loop_write()
        self._selector.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _run_commands(self) -> bool:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return True
            if cmd is None:
                return False
            device_id, payload = cmd
            dev = self._device(device_id)
            if dev.failed is not None:
                self._settle(dev, 1, failed=True)
                continue
            dev.pending += 1
            dev.client.publish(data_topic(device_id), payload, qos=1)

    def _misc(self) -> None:
        now = time.monotonic()
        for device_id, dev in self._devices.items():
            if dev.failed is not None:
                continue
            if dev.client.socket() is None:
                if now >= dev.retry_at:
                    dev.retry_at = now + self._reconnect_delay_s
                    self._connect(device_id, dev, first=False)
            else:
                dev.client.loop_misc()

    def _device(self, device_id: str) -> _Device:
        dev = self._devices.get(device_id)
        if dev is None:
            dev = self._devices[device_id] = self._new_client(device_id)
            self._connect(device_id, dev, first=True)
        return dev

    def _new_client(self, device_id: str) -> _Device:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_client_id(self._settings.namespace, device_id),
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(device_id, device_password(self._secret, device_id))
        client.max_inflight_messages_set(self._per_client_inflight)
        client.max_queued_messages_set(0)
        dev = _Device(device_id, client)
        client.user_data_set(dev)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return dev

    def _connect(self, device_id: str, dev: _Device, *, first: bool) -> None:
        try:
            if first:
                dev.client.connect(self._settings.host, self._settings.port, self._settings.keepalive_s)
            else:
                dev.client.reconnect()
        except OSError as exc:
            dev.retry_at = time.monotonic() + self._reconnect_delay_s
            log.warning(
                "device %s: cannot reach MQTT %s:%s (%s); retrying",
                device_id,
                self._settings.host,
                self._settings.port,
                exc,
            )

    def _settle(self, dev: _Device, n: int, *, failed: bool = False) -> None:
        with self._cond:
            self._pending -= n
            if not failed:
                self.confirmed += n
            self._cond.notify_all()
        for _ in range(n):
            self._slots.release()

    def _on_connect(
        self, client: mqtt.Client, dev: _Device, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            device_id = dev.device_id
            dev.failed = f"MQTT connection refused: {reason}"
            self._failed[device_id] = dev.failed
            log.error("device %s: %s", device_id, dev.failed)
            lost, dev.pending = dev.pending, 0
            self._settle(dev, lost, failed=True)
            client.disconnect()
            return
        dev.connected = True

    def _on_disconnect(
        self, client: mqtt.Client, dev: _Device, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        dev.connected = False
        dev.retry_at = time.monotonic() + self._reconnect_delay_s

    def _on_publish(
        self, client: mqtt.Client, dev: _Device, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        dev.pending -= 1
        self._settle(dev, 1)

    def _on_socket_open(self, client: mqtt.Client, dev: _Device, sock: Any) -> None:
        self._selector.register(sock, selectors.EVENT_READ, dev)

    def _on_socket_close(self, client: mqtt.Client, dev: _Device, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)

    def _on_register_write(self, client: mqtt.Client, dev: _Device, sock: Any) -> None:
        self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, dev)

    def _on_unregister_write(self, client: mqtt.Client, dev: _Device, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(sock, selectors.EVENT_READ, dev)


def live_objects_payload(
    device_id: str,
    *,
    model: str,
    value: Mapping[str, float | int | bool],
    ts: datetime,
    namespace: str = "beffroi",
    stream: str = "data",
    location: tuple[float, float] | None = None,
    tags: Sequence[str] = (),
) -> bytes:
    """A device's message in the Orange Live Objects style, as published on `dev/{id}/data`."""
    doc: dict[str, Any] = {
        "streamId": f"urn:lo:nsid:{namespace}:{device_id}!{stream}",
        "timestamp": ensure_aware(ts).isoformat(),
        "model": model,
        "value": dict(value),
        "tags": list(tags),
    }
    if location is not None:
        doc["location"] = {"lat": location[0], "lon": location[1]}
    return json.dumps(doc, separators=(",", ":")).encode()
