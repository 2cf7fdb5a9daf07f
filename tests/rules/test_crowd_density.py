"""The crowd density rule: levels held for hold_s, one alert per episode, hysteresis, confidence gating."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from analytics.rules.crowd_density import CrowdDensityConfig, CrowdDensityRule
from analytics.rules.zone import Levels
from beffroi.events import Severity, derived_id
from tower.testing import SITE, T0, ZONE, run_zone_rule, zone_series


def rule(**kw) -> CrowdDensityRule:
    return CrowdDensityRule(CrowdDensityConfig(**kw))


def levels(alerts) -> list[str]:
    return [a.severity.value for a in alerts]


def test_a_level_held_for_hold_s_raises_one_alert_naming_zone_value_and_threshold():
    states = zone_series([2.0] * 10 + [5.4] * 40)  # critical from t=10 s
    [alert] = run_zone_rule(rule(warn=None, hold_s=15), states)
    assert alert.severity is Severity.CRITICAL
    assert alert.raised_at == T0 + timedelta(seconds=25)
    start = (T0 + timedelta(seconds=10)).timestamp()
    assert alert.alert_id == derived_id("zone-density", SITE, ZONE, "critical", f"{start:.3f}")
    assert (alert.site_id, alert.zone_id, alert.value) == (SITE, ZONE, 5.4)
    assert "zone-1" in alert.title
    assert "5.4 p/m²" in alert.title
    assert "≥ 5 p/m²" in alert.title
    assert "held 15 s" in alert.detail
    assert "LOS F" in alert.detail


def test_shorter_than_hold_s_raises_nothing():
    assert run_zone_rule(rule(hold_s=15), zone_series([6.0] * 15 + [1.0] * 30)) == []
    assert len(run_zone_rule(rule(hold_s=15), zone_series([6.0] * 16 + [1.0] * 30))) == 2


def test_warning_then_critical_each_once_however_long_the_episode():
    states = zone_series([3.0] * 5 + [4.0] * 30 + [5.5] * 600)
    alerts = run_zone_rule(rule(), states)
    assert levels(alerts) == ["high", "critical"]
    assert [a.raised_at - T0 for a in alerts] == [timedelta(seconds=20), timedelta(seconds=50)]


def test_hysteresis_a_dip_above_the_clearing_level_continues_the_episode():
    # 5.5, then 4.7 (under 5 but above 5 x 0.9) for a minute, then 5.5 again: one episode
    states = zone_series([5.5] * 30 + [4.7] * 60 + [5.5] * 60)
    assert len(run_zone_rule(rule(warn=None), states)) == 1
    # under the clearing level, but shorter than clear_hold_s: still one episode
    states = zone_series([5.5] * 30 + [4.0] * 20 + [5.5] * 60)
    assert len(run_zone_rule(rule(warn=None, clear_hold_s=30), states)) == 1
    # under it for clear_hold_s: the episode is over, the next one alerts again, with another id
    states = zone_series([5.5] * 30 + [4.0] * 31 + [5.5] * 60)
    first, second = run_zone_rule(rule(warn=None, clear_hold_s=30), states)
    assert first.alert_id != second.alert_id
    assert second.raised_at == T0 + timedelta(seconds=61 + 15)


def test_a_pending_hold_restarts_after_a_gap_in_the_data():
    before = zone_series([6.0] * 10)
    after = zone_series([6.0] * 10, start=T0 + timedelta(seconds=40))
    assert run_zone_rule(rule(warn=None, hold_s=15, max_gap_s=10), before + after) == []
    assert len(run_zone_rule(rule(warn=None, hold_s=15, max_gap_s=60), before + after)) == 1


def test_low_confidence_states_never_raise_a_critical_alert():
    dense = [6.0] * 60
    # confidence 0.5: enough for the warning level, not for the critical one
    assert levels(run_zone_rule(rule(), zone_series(dense, confidence=0.5))) == ["high"]
    # under min_confidence or min_coverage: no evidence at all
    assert run_zone_rule(rule(), zone_series(dense, confidence=0.2)) == []
    assert run_zone_rule(rule(), zone_series(dense, coverage=0.1)) == []
    assert levels(run_zone_rule(rule(), zone_series(dense, confidence=0.9))) == ["high", "critical"]


def test_low_confidence_states_do_not_clear_an_episode():
    # a minute of near-empty readings from an untrusted view (a camera knocked askew) in the middle
    densities = [5.5] * 40 + [1.0] * 60 + [5.5] * 60
    untrusted = [0.9] * 40 + [0.1] * 60 + [0.9] * 60
    assert len(run_zone_rule(rule(warn=None), zone_series(densities, confidence=untrusted))) == 1
    assert len(run_zone_rule(rule(warn=None), zone_series(densities, confidence=0.9))) == 2


def test_per_zone_levels_for_walkways():
    r = rule(zones={"walkway-1": Levels(warn=1.08, critical=2.17)})
    walkway = zone_series([2.5] * 30, zone_id="walkway-1")
    stand = zone_series([2.5] * 30, zone_id="stand-1")
    alerts = run_zone_rule(r, walkway + stand)
    assert {(a.zone_id, a.severity.value) for a in alerts} == {
        ("walkway-1", "high"),
        ("walkway-1", "critical"),
    }
    assert r.levels_for("other-site", "walkway-1").critical == 2.17


def test_zones_are_independent_and_the_batch_split_does_not_matter():
    a = zone_series([5.5] * 40, zone_id="a")
    b = zone_series([1.0] * 10 + [5.5] * 40, zone_id="b")
    interleaved = [s for pair in zip(a, b, strict=False) for s in pair] + b[len(a) :]
    ids = {n: [x.alert_id for x in run_zone_rule(rule(), interleaved, batch=n)] for n in (1, 7, 1000)}
    assert len(ids[1]) == 4
    assert ids[1] == ids[7] == ids[1000]


def test_step_is_pure_and_redelivered_states_raise_nothing_more():
    r = rule()
    states = zone_series([5.5] * 40)
    s0 = r.initial()
    s1, alerts = r.step(s0, states)
    again, alerts_again = r.step(s0, states)  # the batch evaluated again from the same state
    assert [a.alert_id for a in alerts_again] == [a.alert_id for a in alerts]
    assert s0.episodes == {}
    assert again == s1
    _, duplicates = r.step(s1, states)  # the same states delivered a second time
    assert duplicates == []


def test_levels_must_be_ordered():
    with pytest.raises(ValidationError, match="must be below critical"):
        CrowdDensityConfig(warn=6.0, critical=5.0)
    with pytest.raises(ValidationError, match="needs `warn` or `critical`"):
        CrowdDensityConfig(warn=None, critical=None)
