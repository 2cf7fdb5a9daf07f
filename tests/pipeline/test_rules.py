"""Rule plugins: the threshold rule, its config and the explicit registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from analytics.rules.registry import RULES, build_rule, build_rules
from analytics.rules.threshold import KEY, ThresholdConfig, ThresholdRule
from beffroi.devices import DeviceKind
from beffroi.events import Severity, derived_id
from tower.settings import Settings
from tower.testing import reading


def smoke(**kw) -> ThresholdRule:
    return ThresholdRule(
        ThresholdConfig(name="smoke", model="beffroi.air_quality.v1", field="pm25", above=150, **kw)
    )


def test_only_readings_past_the_level_raise_an_alert():
    low, high = reading("aq-1", {"pm25": 150.0, "co": 1}), reading("aq-1", {"pm25": 150.5, "co": 1})
    [alert] = smoke(hold_s=0).evaluate([low, high])
    assert alert.alert_id == derived_id("smoke", high.message_id)
    assert (alert.site_id, alert.zone_id, alert.device_id) == ("site-1", "zone-1", "aq-1")
    assert alert.value == 150.5
    assert alert.raised_at == high.ts
    assert alert.source_ids == (high.message_id,)


def test_other_models_and_fields_are_ignored():
    rule = smoke()
    assert rule.evaluate([reading("pb-1", {"pressed": 1}), reading("t-1", {"celsius": 999.0})]) == []


def test_below_levels_and_severity():
    rule = ThresholdRule(
        ThresholdConfig(name="cold", model="beffroi.temperature.v1", field="celsius", below=0, severity="low")
    )
    [alert] = rule.evaluate([reading("t-1", {"celsius": -3.0}), reading("t-1", {"celsius": 4.0})])
    assert alert.severity is Severity.LOW
    assert "below 0" in alert.title


def test_a_sensor_that_stays_over_the_level_raises_one_alert_per_hold_window():
    start = datetime(2026, 7, 26, 19, 0, tzinfo=UTC)
    over = [
        reading("aq-1", {"pm25": 300.0, "co": 1}, ts=start + timedelta(seconds=20 * i)) for i in range(30)
    ]
    other = reading("aq-2", {"pm25": 300.0, "co": 1}, ts=start)
    alerts = smoke(hold_s=300).evaluate([*over, other])
    by_device = {d: {a.alert_id for a in alerts if a.device_id == d} for d in ("aq-1", "aq-2")}
    assert len(by_device["aq-1"]) == 2  # 10 minutes of readings, two 5-minute windows
    assert len(by_device["aq-2"]) == 1
    assert by_device["aq-1"].isdisjoint(by_device["aq-2"])
    assert len(smoke(hold_s=0).evaluate(over)) == 30


def test_evaluating_again_gives_the_same_alerts():
    batch = [reading("aq-1", {"pm25": 200.0 + i, "co": 1}) for i in range(5)]
    assert smoke().evaluate(batch) == smoke().evaluate(batch)


def test_a_rule_needs_a_level_and_a_known_type():
    with pytest.raises(ValidationError, match="above` or `below"):
        ThresholdConfig(name="x", model="m", field="f")
    with pytest.raises(ValueError, match="unknown rule type 'zscore'"):
        build_rule({"type": "zscore", "name": "x"})


def test_the_registry_builds_the_default_rules_of_the_settings():
    assert KEY in RULES
    rules = build_rules(Settings().worker.rules)
    assert [r.name for r in rules] == [r.name for r in Settings().worker.rules]
    panic = next(r for r in rules if r.name == "panic-button")
    [alert] = panic.evaluate([reading("pb-1", {"pressed": 1}, kind=DeviceKind.PANIC_BUTTON)])
    assert alert.severity is Severity.CRITICAL
