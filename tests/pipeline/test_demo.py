"""The demo sensors of `make demo`: plausible readings, periodic alerts, the odd malformed message."""

from __future__ import annotations

from datetime import timedelta

from beffroi.clock import parse_iso
from beffroi.venue import load_venue
from simulators.publish import InProcessPublisher
from tower.demo.generator import DemoFeed
from tower.runtime import DEMO_VENUE
from tower.testing import pipeline


def test_the_demo_venue_raises_alerts_of_several_rules_and_a_dead_letter():
    venue = load_venue(DEMO_VENUE)
    start = parse_iso("2024-07-26T19:00:00+00:00")
    ticks = iter(range(10_000))
    with pipeline(venue) as p:
        feed = DemoFeed(
            venue=venue,
            publisher=InProcessPublisher(p.source.offer),
            rate_hz=1.0,
            incident_every_s=5,
            malformed_every_s=20,
            clock=lambda: start + timedelta(seconds=next(ticks)),
        )
        p.bridge.clock = lambda: start + timedelta(seconds=30)
        sent = sum(feed.tick() for _ in range(21))
        p.drain()
        assert sent == 21 * len(venue.devices) + 1
        assert p.store.count_readings("stade-demo") == 21 * len(venue.devices)
        rules = {a.rule for a in p.alerts("stade-demo")}
        assert rules == {"panic-button", "smoke-pm25", "fence-vibration", "sound-spike"}
        [dl] = p.dead_letters()
        assert dl.reason == "malformed_json"
