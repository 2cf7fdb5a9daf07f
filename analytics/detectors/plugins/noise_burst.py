"""Noise burst: a stretch of large, sign-alternating steps, far rougher than the stream's usual.

The stream's usual step size is learned (EW of |step|, four times slower during a rough stretch,
which may be the new normal). A burst needs the
short EW of |step| to stay above `ratio` x usual for `min_streak` consecutive values, the steps
to cancel out (a real level shift or ramp moves one way), and at least `min_big` individual
steps above `big` x usual (a single spike and its return make only two).
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import Batch, Category, Detector, StateSpec, StreamMeta, warmup_rate
from analytics.detectors.robust import SIGMA_PER_SCALE

KEY: Final = "noise_burst"


class NoiseBurstConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["noise_burst"] = KEY
    alpha_fast: float = Field(default=0.2, gt=0, le=1)
    alpha: float = Field(default=0.01, gt=0, le=1)
    ratio: float = Field(default=3.5, gt=1)
    big: float = Field(default=4.0, gt=1)
    min_streak: int = Field(default=8, ge=2)
    min_big: int = Field(default=3, ge=1)
    min_seen: int = Field(default=30, ge=2)
    abs_floor: float = Field(default=1e-6, ge=0)


class NoiseBurst(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "fault"
    config: NoiseBurstConfig

    def state_spec(self) -> dict[str, StateSpec]:
        return {
            "last": StateSpec(),
            "seen": StateSpec(),
            "fast": StateSpec(),
            "signed": StateSpec(),
            "usual": StateSpec(),
            "streak": StateSpec(),
            "big": StateSpec(),
        }

    def bind(self, meta: StreamMeta) -> None:
        self._floor = self.ops.asarray(self.config.abs_floor + 0.5 * meta.resolution)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        x, w = batch.values, batch.present
        has_last = ops.minimum(st["seen"], 1.0)
        wm = w * has_last
        step = (x - st["last"]) * has_last
        size = ops.abs(step)
        st["fast"] += wm * cfg.alpha_fast * (size - st["fast"])
        st["signed"] += wm * cfg.alpha_fast * (step - st["signed"])
        unit = st["usual"] * SIGMA_PER_SCALE + self._floor
        warm = ops.as_float(st["seen"] >= cfg.min_seen)
        rough = (
            ops.as_float(st["fast"] > unit * cfg.ratio)
            * ops.as_float(ops.abs(st["signed"]) < st["fast"] * 0.5)
            * warm
        )
        st["streak"] += wm * (rough * (st["streak"] + 1.0) - st["streak"])
        st["big"] += wm * (rough * (st["big"] + ops.as_float(size > unit * cfg.big)) - st["big"])
        calm = wm * (1.0 - rough * 0.75)
        lim = unit * 3.0 + (1.0 - warm) * 1e30
        st["usual"] += (
            warmup_rate(st["seen"] - 1.0, cfg.alpha, ops) * calm * (ops.minimum(size, lim) - st["usual"])
        )
        st["last"] += w * (x - st["last"])
        ops.assign(st["seen"], ops.minimum(st["seen"] + w, 1e6))
        burst = ops.as_float(st["big"] >= cfg.min_big)
        return st["streak"] / cfg.min_streak * burst
