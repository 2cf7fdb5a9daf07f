"""The gate flow rule: persons per metre of exit width per minute above the planned level of service."""

from __future__ import annotations

from datetime import timedelta

from analytics.rules.gate_flow import GateFlowConfig, GateFlowRule
from analytics.rules.zone import Levels
from beffroi.events import Severity
from tower.testing import T0, run_zone_rule, zone_series


def rule(**kw) -> GateFlowRule:
    return GateFlowRule(GateFlowConfig(**kw))


def flows(values: list[float], *, gate: str = "exit-1", width_m: float = 4.0, **kw):
    return zone_series([2.0] * len(values), gates=[{gate: (width_m, f)} for f in values], **kw)


def test_flow_past_los_e_and_f_held_for_hold_s():
    [warn, critical] = run_zone_rule(rule(), flows([40.0] * 10 + [90.0] * 60))
    assert (warn.severity, critical.severity) == (Severity.MEDIUM, Severity.HIGH)
    assert warn.raised_at == critical.raised_at == T0 + timedelta(seconds=40)
    assert critical.title == "Exit flow critical at gate exit-1 (zone zone-1): 90 p/m/min > 82 p/m/min"
    assert "width 4 m" in critical.detail
    assert "about 360 persons/min" in critical.detail
    assert critical.value == 90.0
    assert critical.zone_id == "zone-1"


def test_los_e_raises_the_warning_only_and_los_d_nothing():
    assert [a.severity for a in run_zone_rule(rule(), flows([70.0] * 60))] == [Severity.MEDIUM]
    assert run_zone_rule(rule(), flows([65.0] * 300)) == []


def test_a_short_surge_raises_nothing():
    assert run_zone_rule(rule(hold_s=30), flows([95.0] * 30 + [40.0] * 60)) == []


def test_one_alert_per_episode_and_another_after_it_clears():
    surge = [90.0] * 60
    calm = [30.0] * 40
    alerts = run_zone_rule(rule(warn=None), flows(surge + calm + surge))
    assert len(alerts) == 2
    assert len(run_zone_rule(rule(warn=None), flows(surge + [80.0] * 40 + surge))) == 1  # 80 > 82 x 0.9


def test_a_gate_between_two_zones_alerts_once():
    inner = flows([90.0] * 60, zone_id="concourse")
    outer = flows([90.0] * 60, zone_id="plaza")
    alerts = run_zone_rule(rule(), inner + outer)
    assert len(alerts) == 2  # warning and critical, not four
    assert {a.zone_id for a in alerts} == {"concourse"}


def test_planned_levels_per_gate_and_low_zone_confidence_still_counts():
    r = rule(gates={"exit-narrow": Levels(warn=49.0)})
    narrow = flows([55.0] * 60, gate="exit-narrow", confidence=0.15)
    wide = flows([55.0] * 60, gate="exit-wide", confidence=0.15)
    [alert] = run_zone_rule(r, narrow + wide)
    assert "gate exit-narrow" in alert.title
    assert "> 49 p/m/min" in alert.title
    assert run_zone_rule(rule(min_confidence=0.5), flows([95.0] * 60, confidence=0.15)) == []
