"""An incident alert needs its stream to stay wild for a second reading, or another device of the
zone to agree: a failing sensor's first wild value is not an incident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from analytics.detectors.engine import DetectEngine, EngineConfig
from beffroi.devices import DeviceKind
from beffroi.events import Reading
from tower.testing import reading

T0 = datetime(2024, 7, 26, 18, 0, tzinfo=UTC)


def sound(wild: dict[str, set[int]], seconds: int = 420) -> list[Reading]:
    """Six sound meters of one zone, a reading every 5 s; `wild[device]`: seconds read 40 dB high."""
    rng = np.random.default_rng(3)
    out = []
    for s in range(0, seconds, 5):
        for i in range(6):
            dev = f"snd-{i}"
            v = 70.0 + rng.normal(0, 1.5) + (40.0 if s in wild.get(dev, set()) else 0.0)
            out.append(
                reading(
                    dev, {"dba": round(float(v), 1)}, kind=DeviceKind.ACOUSTIC, ts=T0 + timedelta(seconds=s)
                )
            )
    return out


def incident_devices(readings: list[Reading], config: EngineConfig) -> list[tuple[str, float]]:
    engine = DetectEngine(config)
    results = engine.add(readings, watermark=(T0 + timedelta(seconds=3600)).timestamp())
    results += engine.flush()
    return [
        (a.device_id or "", (a.raised_at - T0).total_seconds())
        for res in results
        for a in res.alerts
        if a.category == "incident"
    ]


def test_one_wild_value_alone_raises_nothing_two_in_a_row_do() -> None:
    single = sound({"snd-0": {300}})
    assert incident_devices(single, EngineConfig()) == []
    # with confirmation off, the single wild value is an alert
    assert incident_devices(single, EngineConfig(confirm_readings=1)) == [("snd-0", 301.0)]
    assert incident_devices(sound({"snd-1": {300, 305, 310}}), EngineConfig()) == [("snd-1", 306.0)]


def test_another_device_of_the_zone_corroborates_at_once() -> None:
    raised = incident_devices(sound({"snd-2": {300}, "snd-3": {300}}), EngineConfig())
    assert sorted(raised) == [("snd-2", 301.0), ("snd-3", 301.0)]


def test_a_failing_field_holds_the_other_fields_of_its_device() -> None:
    """aq-0 reads pm2.5 beyond its physical range (a fault) while its CO jumps: no incident on aq-0."""
    rng = np.random.default_rng(5)
    readings = []
    for s in range(0, 3000, 10):
        for i in range(4):
            broken = i == 0 and s >= 2400
            value = {
                "pm25": 5000.0 if broken else round(float(12.0 + rng.normal(0, 0.5)), 1),
                "co": round(float(0.4 + rng.normal(0, 0.02) + (3.0 if broken else 0.0)), 2),
            }
            ts = T0 + timedelta(seconds=s)
            readings.append(reading(f"aq-{i}", value, kind=DeviceKind.AIR_QUALITY, ts=ts))
    engine = DetectEngine(EngineConfig())
    alerts = [
        a for r in engine.add(readings, watermark=T0.timestamp() + 3600) + engine.flush() for a in r.alerts
    ]
    assert ("aq-0", "fault:out_of_range") in [(a.device_id, a.rule) for a in alerts]
    assert not [a.device_id for a in alerts if a.category == "incident"]
