"""Generic multi-horizon robust z-scores for a series of unknown nature (the `beffroi detect` default).

Per stream it tracks four features, each against its own robust EW baseline:
the value, its step change, a short EW mean (a sustained level shift) and the short EW of
|step| (a change of volatility). The raw score is the largest |z|. Each feature's baseline learns
its own spread, so autocorrelated or trending series are not over-flagged; the likelihood step
that follows turns the raw score into a calibrated probability.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import Batch, Category, Detector, StateSpec, StreamMeta
from analytics.detectors.robust import robust_z

KEY: Final = "multiscale"
N_FEATURES = 4


class MultiscaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["multiscale"] = KEY
    alpha: float = Field(default=0.01, gt=0, le=1, description="EW weight of the feature baselines")
    short_alpha: float = Field(default=0.25, gt=0, le=1, description="EW weight of the short mean")
    vol_alpha: float = Field(default=0.15, gt=0, le=1, description="EW weight of the volatility")
    clip: float = Field(default=2.5, gt=0)
    min_count: int = Field(default=30, ge=2, description="values before the stream scores")
    rel_floor: float = Field(default=1e-3, ge=0)
    abs_floor: float = Field(default=1e-9, ge=0)
    max_score: float = Field(default=50.0, gt=0)
    weights: tuple[float, float, float, float] = Field(
        default=(1.0, 1.0, 1.0, 0.8), description="weights of the level, step, shift and volatility z"
    )


class Multiscale(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "incident"
    config: MultiscaleConfig

    def state_spec(self) -> dict[str, StateSpec]:
        return {
            "last": StateSpec(),
            "short": StateSpec(),
            "vol": StateSpec(),
            "seen": StateSpec(),
            "loc": StateSpec(cols=N_FEATURES),
            "scale": StateSpec(cols=N_FEATURES),
            "count": StateSpec(cols=N_FEATURES),
        }

    def bind(self, meta: StreamMeta) -> None:
        ops = self.ops
        self._floor = ops.asarray(self.config.abs_floor + 0.5 * meta.resolution)[:, None]
        self._weights = ops.asarray(list(self.config.weights))

    def warm(self) -> Array:
        return self.ops.as_float(self.state["seen"] > self.config.min_count)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        x, w = batch.values, batch.present
        has_last = ops.minimum(st["seen"], 1.0)
        step = (x - st["last"]) * has_last
        first = 1.0 - has_last
        st["short"] += w * (ops.maximum(first, cfg.short_alpha)) * (x - st["short"])
        st["vol"] += w * has_last * cfg.vol_alpha * (ops.abs(step) - st["vol"])
        st["last"] += w * (x - st["last"])
        ops.assign(st["seen"], ops.minimum(st["seen"] + w, 1e6))
        features = ops.stack([x, step, st["short"], st["vol"]], axis=1)
        # step and volatility exist from the second value on
        wf = ops.stack([w, w * has_last, w, w * has_last], axis=1)
        z = robust_z(
            features,
            wf,
            loc=st["loc"],
            scale=st["scale"],
            count=st["count"],
            floor=ops.abs(st["loc"]) * cfg.rel_floor + self._floor,
            alpha=cfg.alpha,
            clip=cfg.clip,
            min_count=cfg.min_count,
            ops=ops,
        )
        z = ops.abs(z) * self._weights
        best, _ = ops.max_rows(z.T)
        return ops.minimum(best, cfg.max_score)
