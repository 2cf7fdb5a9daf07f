"""The demo's sensors: a few plausible readings per second from every device of a venue, with a
threshold crossing every `incident_every_s` seconds (panic button, smoke, fence, sound) and, now
and then, a malformed message, so that alerts and dead letters show up. Deterministic per seed.

Small on purpose: the scenario simulators (`beffroi simulate`) publish through the same
`Publisher` seam and replace it for anything realistic.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from beffroi.clock import utcnow
from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.venue import Device, Venue
from simulators.publish import Publisher, PublishError, live_objects_payload

log = logging.getLogger(__name__)

# (device kind, field, value) for each incident, in turn
INCIDENTS: tuple[tuple[DeviceKind, str, float], ...] = (
    (DeviceKind.PANIC_BUTTON, "pressed", 1),
    (DeviceKind.AIR_QUALITY, "pm25", 240.0),
    (DeviceKind.PERIMETER, "vibration", 4.5),
    (DeviceKind.ACOUSTIC, "dba", 118.0),
)

_NORMAL: dict[DeviceKind, dict[str, tuple[float, float]]] = {
    DeviceKind.GATE_COUNTER: {"in": (0, 40), "out": (0, 10)},
    DeviceKind.ACOUSTIC: {"dba": (62, 92)},
    DeviceKind.AIR_QUALITY: {"pm25": (8, 35), "co": (0.5, 4)},
    DeviceKind.TEMPERATURE: {"celsius": (17, 24)},
    DeviceKind.PERIMETER: {"vibration": (0.01, 0.3)},
    DeviceKind.DOOR_CONTACT: {"open": (0, 0)},
    DeviceKind.PANIC_BUTTON: {"pressed": (0, 0)},
    DeviceKind.PRESENCE: {"devices": (100, 900)},
    DeviceKind.TELCO_CELL: {"population": (500, 5000), "suppressed": (0, 0)},
    DeviceKind.CAMERA: {"count": (20, 200), "density": (0.5, 2.5)},
}


class DemoFeed:
    """Publishes one reading per device every 1/`rate_hz` seconds until `stop()`."""

    def __init__(
        self,
        *,
        venue: Venue,
        publisher: Publisher,
        rate_hz: float = 1.0,
        incident_every_s: float = 15.0,
        malformed_every_s: float = 40.0,
        seed: int = 2024,
        namespace: str = "beffroi",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.venue = venue
        self.publisher = publisher
        self.period_s = 1.0 / rate_hz
        self.incident_every = max(1, round(incident_every_s * rate_hz))
        self.first_incident = min(self.incident_every, max(1, round(3 * rate_hz)))  # ~3 s after start
        self.malformed_every = max(1, round(malformed_every_s * rate_hz))
        self.namespace = namespace
        self.clock = clock
        self.rng = random.Random(seed)
        self.devices = [
            (site.id, d) for site in venue.sites for d in site.devices if d.kind is not DeviceKind.CAMERA
        ]
        self._incidents: Iterator[tuple[DeviceKind, str, float]] = itertools.cycle(INCIDENTS)
        self._stop = threading.Event()
        self.ticks = 0
        self.published = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except PublishError as exc:
                log.error("demo feed: %s", exc)
            next_tick += self.period_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def tick(self) -> int:
        """Publish one round of readings; returns how many messages went out."""
        self.ticks += 1
        now = self.clock()
        due = (self.ticks - self.first_incident) % self.incident_every == 0
        incident = next(self._incidents) if due else None
        target: Device | None = None
        if incident is not None:
            candidates = [d for _, d in self.devices if d.kind is incident[0]]
            target = self.rng.choice(candidates) if candidates else None
        sent = 0
        for site_id, device in self.devices:
            value = self._normal_value(device)
            if incident is not None and device is target:
                value[incident[1]] = incident[2]
                log.info("demo feed: %s reports %s=%g", device.id, incident[1], incident[2])
            self.publisher.publish(device.id, self._payload(site_id, device, value, now))
            sent += 1
        if self.ticks % self.malformed_every == 0 and self.devices:
            _, device = self.devices[self.ticks % len(self.devices)]
            self.publisher.publish(device.id, b'{"streamId": "broken", "timestamp": ')
            sent += 1
        self.published += sent
        return sent

    def _normal_value(self, device: Device) -> dict[str, float | int]:
        spec = KIND_SPECS[device.kind]
        ranges = _NORMAL.get(device.kind, {})
        value: dict[str, float | int] = {}
        for f in spec.fields:
            lo, hi = ranges.get(f.name, (f.low, f.low))
            x = self.rng.uniform(lo, hi)
            value[f.name] = round(x) if f.integer else round(x, 2)
        return value

    def _payload(self, site_id: str, device: Device, value: dict[str, float | int], now: datetime) -> bytes:
        tags = [f"site:{site_id}"] + ([f"zone:{device.zone}"] if device.zone else [])
        location = (device.location.lat, device.location.lon) if device.location else None
        return live_objects_payload(
            device.id,
            model=KIND_SPECS[device.kind].model,
            value=value,
            ts=now,
            namespace=self.namespace,
            location=location,
            tags=tags,
        )
