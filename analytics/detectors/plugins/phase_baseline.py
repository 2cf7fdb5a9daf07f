"""Robust baseline per stream and per event phase (ingress, play, interval, egress, idle).

Each stream keeps one robust location/scale per phase; the current phase's pair lives in flat
working arrays and is swapped with the bank when the stream's phase changes, so an ordinary tick
costs the same as a phase-less baseline. Scores |robust z| of the new value, or only its rise
for streams where only a rise is an incident (`StreamMeta.upward`).
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import (
    N_PHASES,
    Batch,
    Category,
    Detector,
    NDArray,
    StateSpec,
    StreamMeta,
    phase_or_zero,
)
from analytics.detectors.robust import robust_z

KEY: Final = "phase_baseline"
_BANKED = ("loc", "trend", "scale", "count")


class PhaseBaselineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["phase_baseline"] = KEY
    n_phases: int = Field(
        default=N_PHASES, ge=1, le=64, description="phases (or seasonal buckets) per stream"
    )
    alpha: float = Field(default=0.02, gt=0, le=1, description="EW weight once warm")
    clip: float = Field(default=2.0, gt=0, description="Huber clip, in robust scales")
    min_count: int = Field(default=12, ge=2, description="values seen in a phase before it scores")
    rel_floor: float = Field(default=0.002, ge=0, description="scale floor, relative to |location|")
    abs_floor: float = Field(default=1e-6, ge=0)
    max_score: float = Field(default=50.0, gt=0)
    beta: float = Field(default=0.1, ge=0, le=1, description="trend weight (Holt); 0 = level only")
    damping: float = Field(default=0.98, gt=0, le=1, description="trend damping per value")


class PhaseBaseline(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "incident"
    config: PhaseBaselineConfig

    def state_spec(self) -> dict[str, StateSpec]:
        p = self.config.n_phases
        return {
            "loc": StateSpec(),
            "trend": StateSpec(),
            "scale": StateSpec(),
            "count": StateSpec(),
            "phase": StateSpec(),
            "bank_loc": StateSpec(cols=p),
            "bank_trend": StateSpec(cols=p),
            "bank_scale": StateSpec(cols=p),
            "bank_count": StateSpec(cols=p),
        }

    def bind(self, meta: StreamMeta) -> None:
        ops = self.ops
        self._row0 = ops.arange(meta.n) * self.config.n_phases
        self._floor = ops.asarray(self.config.abs_floor + 0.5 * meta.resolution)
        self._min_sd = ops.asarray(meta.noise_floor) if meta.noise_floor.any() else None
        self._upward = ops.asarray(meta.upward_mask.astype(np.float64)) if meta.upward_mask.any() else None

    def _switch_phase(self, phase: Array) -> None:
        ops, st = self.ops, self.state
        if not ops.any(ops.as_float(phase) != st["phase"]):
            return
        old = self._row0 + ops.to_index(st["phase"])
        new = self._row0 + phase
        for name in _BANKED:
            ops.put(st["bank_" + name], old, st[name])
            ops.assign(st[name], ops.take(st["bank_" + name], new))
        ops.assign(st["phase"], ops.as_float(phase))

    def export_state(self) -> dict[str, NDArray]:
        # the bank slot of the working phase is refreshed lazily; fold the working values in
        ops, st = self.ops, self.state
        current = self._row0 + ops.to_index(st["phase"])
        for name in _BANKED:
            ops.put(st["bank_" + name], current, st[name])
        return super().export_state()

    def warm(self) -> Array:
        return self.ops.as_float(self.state["count"] > self.config.min_count)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        phase = phase_or_zero(batch, ops, self.n)
        self._switch_phase(phase)
        z = robust_z(
            batch.values,
            batch.present,
            loc=st["loc"],
            scale=st["scale"],
            count=st["count"],
            floor=ops.abs(st["loc"]) * cfg.rel_floor + self._floor,
            alpha=cfg.alpha,
            clip=cfg.clip,
            min_count=cfg.min_count,
            ops=ops,
            trend=st["trend"] if cfg.beta > 0 else None,
            beta=cfg.beta,
            damping=cfg.damping,
            min_sd=self._min_sd,
        )
        if self._upward is not None:
            z = z + self._upward * (ops.maximum(z, 0.0) - z)
        return ops.minimum(ops.abs(z), cfg.max_score)

    def phase_location(self) -> NDArray:
        """Location per stream x phase, with the working phase folded in (for reports)."""
        st = {k: self.ops.to_numpy(v) for k, v in self.state.items()}
        bank = st["bank_loc"].astype(np.float64)
        rows = np.arange(self.n)
        bank[rows, st["phase"].astype(np.int64)] = st["loc"]
        return bank
