"""Crowd density rule: a zone's density (persons/m²) at a warning or critical level, held for `hold_s`.

Defaults follow Fruin's queuing/standing scale: warning from LOS E (3.57 p/m², 0.28 m² each),
critical from 5 p/m² (dangerous for a standing crowd; LOS F proper starts at 5.26). One alert per
zone, level and episode: the episode ends once the density stays below `level x clear_ratio` for
`clear_hold_s`. States under `min_confidence` or `min_coverage` are not evidence either way; under
`critical_min_confidence` they still count for the warning level, never for the critical one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

from pydantic import Field, model_validator

from analytics.rules.zone import (
    Episode,
    EpisodeConfig,
    EpisodeState,
    Levels,
    advance,
    by_key_in_time_order,
    duration,
    hhmmss,
    site_of,
    zone_override,
    zone_subject,
)
from analytics.vision.los import DENSITY_BOUNDS
from beffroi.events import Alert, AlertCategory, Severity, derived_id

if TYPE_CHECKING:
    from beffroi.records import ZoneState

KEY: Final = "crowd_density"

LOS_E_QUEUING: Final = round(DENSITY_BOUNDS["queuing"][3], 2)  # 3.57 p/m²


class CrowdDensityConfig(EpisodeConfig):
    type: Literal["crowd_density"] = "crowd_density"
    name: str = Field(default="zone-density", min_length=1)
    warn: float | None = Field(default=LOS_E_QUEUING, gt=0, description="persons/m²; None: no warning level")
    critical: float | None = Field(default=5.0, gt=0, description="persons/m²; None: no critical level")
    zones: dict[str, Levels] = Field(
        default_factory=dict, description="levels per zone, keyed `SITE/ZONE` or `ZONE` (walkways, stands...)"
    )
    hold_s: float = Field(default=15.0, ge=0)
    min_confidence: float = Field(default=0.3, ge=0, le=1)
    min_coverage: float = Field(default=0.2, ge=0, le=1)
    critical_min_confidence: float = Field(default=0.6, ge=0, le=1)
    warn_severity: Severity = Severity.HIGH
    critical_severity: Severity = Severity.CRITICAL

    @model_validator(mode="after")
    def _levels(self) -> CrowdDensityConfig:
        Levels(warn=self.warn, critical=self.critical)  # same checks as a per-zone override
        return self


class CrowdDensityRule:
    def __init__(self, config: CrowdDensityConfig) -> None:
        self.config = config
        self.name = config.name
        self._default = Levels(warn=config.warn, critical=config.critical)

    def initial(self) -> EpisodeState:
        return EpisodeState()

    def levels_for(self, site_id: str, zone_id: str) -> Levels:
        override: Levels | None = zone_override(self.config.zones, site_id, zone_id)
        return override or self._default

    def step(self, state: EpisodeState, states: Sequence[ZoneState]) -> tuple[EpisodeState, list[Alert]]:
        c = self.config
        episodes, seen = dict(state.episodes), dict(state.seen)
        alerts: list[Alert] = []
        for key, group in by_key_in_time_order(states).items():
            levels = self.levels_for(*key).items()
            for s in group:
                t = s.ts.timestamp()
                if key in seen and t <= seen[key]:
                    continue  # a state seen already (redelivered) or older than one seen
                seen[key] = t
                if s.confidence < c.min_confidence or s.coverage < c.min_coverage:
                    continue
                for level_name, level in levels:
                    if level_name == "critical" and s.confidence < c.critical_min_confidence:
                        continue
                    ek = (*key, level_name)
                    episodes[ek], started = advance(
                        episodes.get(ek, Episode()),
                        t,
                        over=s.density >= level,
                        clear=s.density < level * c.clear_ratio,
                        config=c,
                    )
                    if started is not None:
                        alerts.append(self._alert(s, level_name=level_name, level=level, started=started))
        return EpisodeState(episodes, seen), alerts

    def _alert(self, s: ZoneState, *, level_name: str, level: float, started: float) -> Alert:
        c = self.config
        site = site_of(s)
        critical = level_name == "critical"
        held = s.ts.timestamp() - started
        return Alert(
            alert_id=derived_id(c.name, site, s.zone_id, level_name, f"{started:.3f}"),
            site_id=site,
            zone_id=s.zone_id,
            rule=c.name,
            category=AlertCategory.INCIDENT,
            severity=c.critical_severity if critical else c.warn_severity,
            raised_at=s.ts,
            title=(
                f"Crowd density {'critical' if critical else 'warning'} in zone {s.zone_id}: "
                f"{s.density:.1f} p/m² ≥ {level:g} p/m²"
            ),
            detail=(
                f"Zone {s.zone_id} (site {site}) at {s.density:.2f} persons/m² (LOS {s.los}), "
                f"{'critical' if critical else 'warning'} level {level:g} p/m² held {duration(held)} "
                f"since {hhmmss(started)}; about {s.count:.0f} persons; confidence {s.confidence:.2f}, "
                f"coverage {s.coverage:.0%}, {s.method} from {len(s.cameras)} camera(s)."
            ),
            value=round(s.density, 3),
            source_ids=(zone_subject(s),),
        )
