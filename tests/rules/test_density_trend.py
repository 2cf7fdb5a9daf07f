"""The density trend rule: time-to-threshold from a robust slope; rising ramps alert, noise does not."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.rules.density_trend import DensityTrendConfig, DensityTrendRule, theil_sen
from beffroi.events import Severity
from tower.testing import T0, run_zone_rule, zone_series


def rule(**kw) -> DensityTrendRule:
    return DensityTrendRule(DensityTrendConfig(**kw))


def ramp(start: float, per_min: float, seconds: int, *, noise: float = 0.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(seconds)
    d = start + per_min * t / 60 + rng.normal(0, noise, seconds)
    return [max(0.0, float(x)) for x in d]


def test_theil_sen_recovers_a_line_and_ignores_outliers():
    ts = list(range(100))
    ds = [1.0 + 0.02 * t for t in ts]
    ds[10] = ds[50] = ds[90] = 9.0
    trend = theil_sen(ts, ds, max_points=100)
    assert trend is not None
    assert trend.slope_per_min == pytest.approx(1.2)
    assert trend.level == pytest.approx(1.0 + 0.02 * 99)
    assert trend.agreement > 0.9
    assert trend.minutes_to(5.0) == pytest.approx((5.0 - trend.level) / 1.2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rising_ramp_alerts_once_with_the_projected_minutes(seed):
    densities = ramp(2.0, 0.5, 300, noise=0.15, seed=seed)  # 2.0 -> 4.5 p/m² in 5 min
    [alert] = run_zone_rule(rule(), zone_series(densities))
    assert alert.severity is Severity.HIGH
    elapsed_min = (alert.raised_at - T0).total_seconds() / 60
    true_minutes = (5.0 - (2.0 + 0.5 * elapsed_min)) / 0.5
    assert true_minutes <= 5.5
    assert alert.value == pytest.approx(true_minutes, abs=1.0)
    assert alert.title == f"Zone zone-1 reaches 5 p/m² in ~{alert.value:.0f} min"
    assert "rising" in alert.detail
    assert "projected to reach 5 p/m²" in alert.detail


def noisy_flat(seed: int) -> list[float]:
    return ramp(4.3, 0.0, 1200, noise=0.5, seed=seed)  # 20 minutes close below 5 p/m², noisy


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_noisy_flat_series_never_alerts(seed):
    assert run_zone_rule(rule(), zone_series(noisy_flat(seed))) == []


def test_without_the_agreement_test_the_same_noise_would_alert():
    naive = rule(min_agreement=0)
    assert sum(len(run_zone_rule(naive, zone_series(noisy_flat(seed)))) for seed in range(1, 6)) >= 5


def test_single_frame_spikes_do_not_make_a_trend():
    densities = [3.5 if i % 30 else 9.0 for i in range(900)]
    assert run_zone_rule(rule(), zone_series(densities)) == []


def test_a_slow_rise_far_from_the_target_does_not_alert_until_it_is_close():
    slow = ramp(2.5, 0.15, 600)  # 17 minutes away at the start, 7 minutes away after 10
    assert run_zone_rule(rule(), zone_series(slow)) == []
    assert len(run_zone_rule(rule(horizon_min=30), zone_series(slow))) == 1


def test_a_zone_already_at_the_target_is_left_to_the_density_rule():
    assert run_zone_rule(rule(), zone_series(ramp(5.2, 1.0, 300))) == []


def test_a_sparse_crowd_is_not_projected():
    # steep, but from 0.5 p/m²: below min_density the projection is not trusted
    assert run_zone_rule(rule(min_density=2.0), zone_series(ramp(0.2, 1.0, 90))) == []


def test_the_episode_clears_when_the_rise_stops_and_a_new_rise_alerts_again():
    rise = ramp(2.0, 0.6, 240)  # up to 4.4
    fall = ramp(4.4, -0.6, 240)  # back down to 2.0
    alerts = run_zone_rule(rule(), zone_series(rise + fall + rise))
    assert len(alerts) == 2
    assert alerts[0].alert_id != alerts[1].alert_id


def test_per_zone_targets():
    densities = ramp(1.0, 0.4, 300)  # 1.0 -> 3.0
    assert run_zone_rule(rule(), zone_series(densities, zone_id="walkway-1")) == []
    [alert] = run_zone_rule(
        rule(zones={"walkway-1": 2.2}, min_density=0.5), zone_series(densities, zone_id="walkway-1")
    )
    assert "reaches 2.2 p/m²" in alert.title
