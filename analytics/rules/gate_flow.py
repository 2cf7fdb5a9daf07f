"""Gate flow rule: flow through an exit, in persons per metre of width per minute, above the planned
level of service, held for `hold_s`.

Defaults follow Fruin's flow scale: warning above 66 p/m/min (past LOS D, into E), critical above
82 (LOS F: queues form, the exit is at capacity). One alert per gate, level and episode; a gate
between two zones appears in both zones' states and counts once. Zone confidence does not gate
flows by default (`min_confidence` 0): a gate camera sees a small share of its zone, yet counts
crossings well.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

from pydantic import Field, model_validator

from analytics.rules.zone import (
    Episode,
    EpisodeConfig,
    EpisodeState,
    Levels,
    advance,
    duration,
    hhmmss,
    site_of,
    zone_override,
)
from analytics.vision.los import FLOW_BOUNDS
from beffroi.events import Alert, AlertCategory, Severity, derived_id

if TYPE_CHECKING:
    from beffroi.records import GateFlow, ZoneState

KEY: Final = "gate_flow"


class GateFlowConfig(EpisodeConfig):
    type: Literal["gate_flow"] = "gate_flow"
    name: str = Field(default="gate-flow", min_length=1)
    warn: float | None = Field(default=FLOW_BOUNDS[3], gt=0, description="persons/m/min; LOS E above 66")
    critical: float | None = Field(default=FLOW_BOUNDS[4], gt=0, description="persons/m/min; LOS F above 82")
    gates: dict[str, Levels] = Field(
        default_factory=dict, description="levels per gate, `SITE/GATE` or `GATE`"
    )
    hold_s: float = Field(default=30.0, ge=0)
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    warn_severity: Severity = Severity.MEDIUM
    critical_severity: Severity = Severity.HIGH

    @model_validator(mode="after")
    def _levels(self) -> GateFlowConfig:
        Levels(warn=self.warn, critical=self.critical)
        return self


class GateFlowRule:
    def __init__(self, config: GateFlowConfig) -> None:
        self.config = config
        self.name = config.name
        self._default = Levels(warn=config.warn, critical=config.critical)

    def initial(self) -> EpisodeState:
        return EpisodeState()

    def levels_for(self, site_id: str, gate_id: str) -> Levels:
        override: Levels | None = zone_override(self.config.gates, site_id, gate_id)
        return override or self._default

    def step(self, state: EpisodeState, states: Sequence[ZoneState]) -> tuple[EpisodeState, list[Alert]]:
        c = self.config
        episodes, seen = dict(state.episodes), dict(state.seen)
        alerts: list[Alert] = []
        by_gate: dict[tuple[str, str], list[tuple[ZoneState, GateFlow]]] = defaultdict(list)
        for s in states:
            if s.confidence >= c.min_confidence:
                for g in s.gates:
                    by_gate[(site_of(s), g.gate_id)].append((s, g))
        for key, group in by_gate.items():
            group.sort(key=lambda sg: (sg[0].ts, sg[0].zone_id))
            levels = self.levels_for(*key).items()
            for s, g in group:
                t = s.ts.timestamp()
                if key in seen and t <= seen[key]:
                    continue  # redelivered, or the same gate in its other zone's state
                seen[key] = t
                for level_name, level in levels:
                    ek = (*key, level_name)
                    episodes[ek], started = advance(
                        episodes.get(ek, Episode()),
                        t,
                        over=g.flow_ppm_per_m > level,
                        clear=g.flow_ppm_per_m < level * c.clear_ratio,
                        config=c,
                    )
                    if started is not None:
                        alerts.append(self._alert(s, g, level_name=level_name, level=level, started=started))
        return EpisodeState(episodes, seen), alerts

    def _alert(self, s: ZoneState, g: GateFlow, *, level_name: str, level: float, started: float) -> Alert:
        c = self.config
        site = site_of(s)
        critical = level_name == "critical"
        label = "critical" if critical else "warning"
        held = s.ts.timestamp() - started
        return Alert(
            alert_id=derived_id(c.name, site, g.gate_id, level_name, f"{started:.3f}"),
            site_id=site,
            zone_id=s.zone_id,
            rule=c.name,
            category=AlertCategory.INCIDENT,
            severity=c.critical_severity if critical else c.warn_severity,
            raised_at=s.ts,
            title=(
                f"Exit flow {label} at gate {g.gate_id} (zone {s.zone_id}): "
                f"{g.flow_ppm_per_m:.0f} p/m/min > {level:g} p/m/min"
            ),
            detail=(
                f"Gate {g.gate_id} (width {g.width_m:g} m, zone {s.zone_id}, site {site}) carries "
                f"{g.flow_ppm_per_m:.1f} persons per metre per minute (LOS {g.los}, about "
                f"{g.flow_ppm_per_m * g.width_m:.0f} persons/min), above the {label} level {level:g} "
                f"for {duration(held)} since {hhmmss(started)}; last window {g.entered} in, {g.left} out."
            ),
            value=round(g.flow_ppm_per_m, 2),
            source_ids=(f"gate:{site}/{g.gate_id}",),
        )
