"""The forecast-ensemble core as a detector plugin: the same `core_step` that `beffroi detect` runs.

The event phase is the season here: a per-phase EW level joins the forecasters (the core picks it
where it forecasts best), so phase is a prior on top of the core, not another code path. Count
streams arrive in square-root units (the stack transforms them); the stream kind's count flag
(`StreamMeta.counts`) is the core's count prior. The raw score is z-like:
sqrt(2 ln 10 r) for the core's gated rarity r (decades), so the stack's likelihood reads it as it
reads every other incident detector's z.
"""

from __future__ import annotations

import math
from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import (
    N_PHASES,
    Batch,
    Category,
    Detector,
    StateSpec,
    StreamMeta,
    phase_or_zero,
)
from analytics.detectors.ensemble import EnsembleConfig, core_step, state_spec

KEY: Final = "ensemble"


def _platform_core() -> EnsembleConfig:
    return EnsembleConfig(season=False)  # the season is the event phase (below), no period search


class EnsembleDetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ensemble"] = KEY
    core: EnsembleConfig = Field(default_factory=_platform_core)
    n_phases: int = Field(default=N_PHASES, ge=1, le=64, description="phases with a level of their own")
    phase_span: float = Field(default=64.0, ge=2, description="EW span of each phase's level")
    phase_min: int = Field(default=8, ge=1, description="values seen in a phase before it forecasts")
    max_score: float = Field(default=50.0, gt=0)


class EnsembleDetector(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "incident"
    config: EnsembleDetectorConfig

    def state_spec(self) -> dict[str, StateSpec]:
        p = self.config.n_phases
        return {
            **state_spec(self.config.core),
            "phase_level": StateSpec(cols=p),
            "phase_n": StateSpec(cols=p),
        }

    def bind(self, meta: StreamMeta) -> None:
        self._row0 = self.ops.arange(meta.n) * self.config.n_phases
        self._counts = self.ops.asarray(meta.count_mask.astype(np.float64)) if meta.count_mask.any() else None

    def warm(self) -> Array:
        return self.ops.as_float(self.state["count"] >= self.config.core.warmup)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        phase = ops.minimum(phase_or_zero(batch, ops, self.n), cfg.n_phases - 1)
        idx = self._row0 + phase
        level = ops.take(st["phase_level"], idx)
        seen = ops.take(st["phase_n"], idx)
        ok = ops.as_float(seen >= cfg.phase_min)
        r = core_step(ops, st, batch.values, batch.present, cfg.core, level, ok, self._counts)
        w = batch.present
        rate = ops.maximum(1.0 / (seen + 1.0), 2.0 / (cfg.phase_span + 1.0)) * w
        ops.put(st["phase_level"], idx, level + rate * (batch.values - level))
        ops.put(st["phase_n"], idx, seen + w)
        return ops.minimum(ops.sqrt(r * (2.0 * math.log(10.0))), cfg.max_score)
