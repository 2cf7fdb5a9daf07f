"""Publish zone aggregates on the bus topic 'zone_state', keyed by site/zone."""

from __future__ import annotations

from collections.abc import Iterable

from analytics.vision.zone_state import SCHEMA, ZoneState
from beffroi.bus import Bus


class ZoneStatePublisher:
    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self.sent = 0

    def publish(self, states: Iterable[ZoneState]) -> int:
        n = 0
        for s in states:
            self.bus.send(
                self.topic, s.to_bytes(), key=s.key.encode(), headers=(("schema", SCHEMA.encode()),)
            )
            n += 1
        self.sent += n
        return n

    def flush(self, timeout: float | None = 30.0) -> None:
        self.bus.flush(timeout)
