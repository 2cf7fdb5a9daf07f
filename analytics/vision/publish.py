"""Publish zone aggregates on the bus topic 'zone_state', keyed by site/zone."""

from __future__ import annotations

from collections.abc import Iterable

from beffroi.bus import Bus
from beffroi.records import ZoneState, zone_state_record


class ZoneStatePublisher:
    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self.sent = 0

    def publish(self, states: Iterable[ZoneState]) -> int:
        n = 0
        for s in states:
            out = zone_state_record(self.topic, s)
            self.bus.send(out.topic, out.value, key=out.key, headers=out.headers)
            n += 1
        self.sent += n
        return n

    def flush(self, timeout: float | None = 30.0) -> None:
        self.bus.flush(timeout)
