"""A few simulated minutes of the stadium scenario at high speed, in stack mode, into Kafka.

The test-sized version of "an hour of the stadium at JO scale runs in stack mode into Kafka":
`beffroi simulate --mode stack --processes 2` publishes over Mosquitto, each device logging in as
itself at QoS 1, through the bridge into Kafka. Every payload of a dry run with the same seed and
start must arrive, once per publish, as a reading with the same message id.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from beffroi.bus_factory import make_bus
from beffroi.clock import utcnow
from beffroi.events import message_id_for
from ingest.mqtt_source import end_session, open_session
from simulators.engine import Simulation
from simulators.scenario_file import load_scenario
from tower.cli import main
from tower.runner import CountingSink
from tower.runtime import compose
from tower.testing import collect, isolated, provision_devices

pytestmark = [pytest.mark.integration]

STADIUM = Path(__file__).resolve().parents[2] / "scenarios" / "stadium.yaml"
SCALE, MINUTES, SPEED = "0.01", 3, "30"


class Keep(CountingSink):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def publish(self, device_id: str, payload: bytes) -> None:
        super().publish(device_id, payload)
        self.ids.append(message_id_for(device_id, payload))


def test_minutes_of_the_stadium_scenario_reach_kafka_through_mqtt(stack_settings, tmp_path: Path) -> None:
    scenario = load_scenario(STADIUM)
    from_s = scenario.at("kick_off-45m")
    start = (utcnow() - timedelta(seconds=from_s + MINUTES * 60 + 60)).replace(microsecond=0)
    # what the run must publish: the same seed and start, in dry mode
    dry = Simulation(scenario, scale=float(SCALE), start=start)
    expected = Keep()
    dry.run(expected, from_s=from_s, duration_s=MINUTES * 60)
    venue = dry.world.venue
    assert expected.count > 3000

    settings = isolated(stack_settings, name="simulate")
    provision_devices(settings, venue.devices)
    open_session(settings.mqtt)
    rt = compose(settings, venue=venue, api=False)
    try:
        with rt:
            args = ["simulate", str(STADIUM), "--mode", "stack", "--scale", SCALE, "--speed", SPEED]
            args += ["--from", "kick_off-45m", "--duration", f"{MINUTES}m", "--processes", "2"]
            args += ["--start", start.isoformat(), "--out", str(tmp_path / "truth")]
            assert main(args) == 0
            deadline = time.monotonic() + 60
            while rt.bridge.stats.accepted < expected.count and time.monotonic() < deadline:
                time.sleep(0.5)
            accepted, rejected = rt.bridge.stats.accepted, dict(rt.bridge.stats.rejected)
    finally:
        end_session(settings.mqtt)

    assert rejected == {}
    assert accepted >= expected.count
    with make_bus(settings) as bus:
        records = collect(bus, settings.kafka.topic("readings"), expect=expected.count, deadline_s=120)
    got = Counter(json.loads(r.value)["message_id"] for r in records)
    # at least once: every publish arrived (a redelivery may add a copy of the same message id)
    missing = Counter(expected.ids) - got
    assert not missing, f"{sum(missing.values())} payloads never reached Kafka"
    assert set(got) == set(expected.ids)
    manifest = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert manifest["sites"] == 4
    assert manifest["readings"] > 3000
