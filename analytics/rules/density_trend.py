"""Density trend rule: time-to-threshold. Alerts when a zone's density, rising, is projected to reach
the critical density within `horizon_min` minutes ("zone X reaches 5 p/m² in ~4 min").

The slope is Theil-Sen's (the median of pairwise slopes) over the last `window_s` seconds, robust to
outliers from a miscounted frame; the current level is the median residual-corrected density. A
noisy flat series does not alert: the pairs must agree (Kendall's tau, `min_agreement`) and the
slope must exceed `min_slope_per_min`. One alert per zone and episode, held for `hold_s`; the episode
clears after `clear_hold_s` without a projection within `horizon_min / clear_ratio`.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from pydantic import Field

from analytics.rules.zone import (
    Episode,
    EpisodeConfig,
    advance,
    by_key_in_time_order,
    hhmmss,
    site_of,
    zone_override,
    zone_subject,
)
from beffroi.events import Alert, AlertCategory, Severity, derived_id

if TYPE_CHECKING:
    from beffroi.records import ZoneState

KEY: Final = "density_trend"


class DensityTrendConfig(EpisodeConfig):
    type: Literal["density_trend"] = "density_trend"
    name: str = Field(default="density-trend", min_length=1)
    target: float = Field(default=5.0, gt=0, description="the critical density projected to (persons/m²)")
    zones: dict[str, float] = Field(
        default_factory=dict, description="target per zone, `SITE/ZONE` or `ZONE`"
    )
    horizon_min: float = Field(default=5.0, gt=0, description="alert when the target is this close (minutes)")
    window_s: float = Field(default=120.0, gt=0, description="the slope's window")
    min_points: int = Field(default=30, ge=3, description="usable states in the window before projecting")
    max_points: int = Field(default=60, ge=3, description="the window is binned (medians) to at most this")
    every_s: float = Field(default=2.0, ge=0, description="project at most this often per zone")
    min_density: float = Field(default=2.0, ge=0, description="no projection from a sparser crowd")
    min_slope_per_min: float = Field(default=0.1, ge=0, description="persons/m² per minute")
    min_agreement: float = Field(default=0.4, ge=0, le=1, description="Kendall's tau of the window")
    hold_s: float = Field(default=10.0, ge=0)
    min_confidence: float = Field(default=0.3, ge=0, le=1)
    min_coverage: float = Field(default=0.2, ge=0, le=1)
    severity: Severity = Severity.HIGH


@dataclass(frozen=True, slots=True)
class Trend:
    slope_per_min: float
    level: float  # the density now, robustly
    agreement: float  # Kendall's tau: +1 every pair rises, 0 no trend
    span_s: float

    def minutes_to(self, target: float) -> float | None:
        """Projected minutes until `target`; None when not rising."""
        if self.slope_per_min <= 0:
            return None
        return max(0.0, (target - self.level) / self.slope_per_min)


@functools.lru_cache(maxsize=64)
def _pairs(n: int) -> tuple[np.ndarray[Any, np.dtype[np.intp]], np.ndarray[Any, np.dtype[np.intp]]]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def theil_sen(ts: Sequence[float], ds: Sequence[float], *, max_points: int) -> Trend | None:
    """The robust trend of (time s, density) points; None if fewer than 3. More than `max_points`
    points are binned first (medians of runs of k, the oldest points dropped to fit)."""
    t, d = np.asarray(ts, dtype=np.float64), np.asarray(ds, dtype=np.float64)
    if len(t) > max_points:
        k = -(-len(t) // max_points)
        m = len(t) // k
        t = np.median(t[len(t) - m * k :].reshape(m, k), axis=1)
        d = np.median(d[len(d) - m * k :].reshape(m, k), axis=1)
    if len(t) < 3:
        return None
    i, j = _pairs(len(t))
    dt, dd = t[j] - t[i], d[j] - d[i]
    keep = dt > 0
    if not keep.any():
        return None
    slope = float(np.median(dd[keep] / dt[keep]))
    level = float(np.median(d - slope * (t - t[-1])))
    return Trend(
        slope_per_min=slope * 60.0,
        level=level,
        agreement=float(np.mean(np.sign(dd[keep]))),
        span_s=float(t[-1] - t[0]),
    )


@dataclass(frozen=True, slots=True)
class ZoneTrend:
    ts: tuple[float, ...] = ()
    ds: tuple[float, ...] = ()
    seen: float | None = None
    projected: float | None = None
    episode: Episode = field(default_factory=Episode)


@dataclass(frozen=True)
class DensityTrendState:
    zones: Mapping[tuple[str, str], ZoneTrend] = field(default_factory=dict)


class DensityTrendRule:
    def __init__(self, config: DensityTrendConfig) -> None:
        self.config = config
        self.name = config.name

    def initial(self) -> DensityTrendState:
        return DensityTrendState()

    def target_for(self, site_id: str, zone_id: str) -> float:
        override: float | None = zone_override(self.config.zones, site_id, zone_id)
        return self.config.target if override is None else override

    def step(
        self, state: DensityTrendState, states: Sequence[ZoneState]
    ) -> tuple[DensityTrendState, list[Alert]]:
        c = self.config
        zones = dict(state.zones)
        alerts: list[Alert] = []
        for key, group in by_key_in_time_order(states).items():
            target = self.target_for(*key)
            z = zones.get(key, ZoneTrend())
            ts, ds, seen, projected, episode = list(z.ts), list(z.ds), z.seen, z.projected, z.episode
            for s in group:
                t = s.ts.timestamp()
                if seen is not None and t <= seen:
                    continue
                seen = t
                if s.confidence < c.min_confidence or s.coverage < c.min_coverage:
                    continue
                ts.append(t)
                ds.append(s.density)
                old = bisect.bisect_right(ts, t - c.window_s)
                del ts[:old], ds[:old]
                if projected is not None and t - projected < c.every_s:
                    continue
                trend = self._trend(ts, ds)
                if trend is None:
                    continue
                projected = t
                minutes = trend.minutes_to(target)
                rising = trend.agreement >= c.min_agreement and trend.slope_per_min >= c.min_slope_per_min
                reached = trend.level >= target
                over = (
                    rising
                    and not reached
                    and trend.level >= c.min_density
                    and minutes is not None
                    and minutes <= c.horizon_min
                )
                clear = not reached and not (
                    rising and minutes is not None and minutes <= c.horizon_min / c.clear_ratio
                )
                episode, started = advance(episode, t, over=over, clear=clear, config=c)
                if started is not None and minutes is not None:
                    alerts.append(
                        self._alert(s, trend=trend, target=target, minutes=minutes, started=started)
                    )
            zones[key] = ZoneTrend(tuple(ts), tuple(ds), seen, projected, episode)
        return DensityTrendState(zones), alerts

    def _trend(self, ts: list[float], ds: list[float]) -> Trend | None:
        c = self.config
        if len(ts) < c.min_points or ts[-1] - ts[0] < c.window_s / 2:
            return None
        return theil_sen(ts, ds, max_points=c.max_points)

    def _alert(self, s: ZoneState, *, trend: Trend, target: float, minutes: float, started: float) -> Alert:
        c = self.config
        site = site_of(s)
        when = "in under 1 min" if minutes < 1 else f"in ~{minutes:.0f} min"
        return Alert(
            alert_id=derived_id(c.name, site, s.zone_id, "trend", f"{started:.3f}"),
            site_id=site,
            zone_id=s.zone_id,
            rule=c.name,
            category=AlertCategory.INCIDENT,
            severity=c.severity,
            raised_at=s.ts,
            title=f"Zone {s.zone_id} reaches {target:g} p/m² {when}",
            detail=(
                f"Zone {s.zone_id} (site {site}) at {trend.level:.2f} persons/m², rising "
                f"{trend.slope_per_min:.2f} p/m² per minute (robust slope over the last "
                f"{trend.span_s:.0f} s, Kendall tau {trend.agreement:.2f}); projected to reach {target:g} "
                f"p/m² at ~{hhmmss(s.ts.timestamp() + minutes * 60)} ({minutes:.1f} min, horizon "
                f"{c.horizon_min:g} min); "
                f"about {s.count:.0f} persons, confidence {s.confidence:.2f}."
            ),
            value=round(minutes, 2),
            source_ids=(zone_subject(s),),
        )
