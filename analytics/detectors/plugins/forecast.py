"""Learned forecaster: scores the error of a tiny shared MLP's one-step forecast.

The model (see `analytics.detectors.forecast_model`) is trained on normal stretches by
`beffroi train` and loaded from `model_path`; nothing is downloaded. Each stream keeps its last
`window` values and its own robust location/scale, so one model serves every stream and kind.
The score is |forecast error| in units of the stream's own typical error.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array, Ops
from analytics.detectors.base import (
    Batch,
    Category,
    Detector,
    StateSpec,
    StreamMeta,
    phase_or_zero,
    warmup_rate,
)
from analytics.detectors.forecast_model import N_KINDS, ForecastWeights, load_weights
from analytics.detectors.robust import SIGMA_PER_SCALE, robust_z

KEY: Final = "forecast"


class ForecastConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["forecast"] = KEY
    model_path: Path = Field(description="a model file written by `beffroi train`")
    alpha: float = Field(default=0.02, gt=0, le=1, description="EW weight of the normalisation")
    err_alpha: float = Field(default=0.02, gt=0, le=1, description="EW weight of the typical error")
    min_extra: int = Field(default=10, ge=0, description="values beyond the window before scoring")
    rel_floor: float = Field(default=0.002, ge=0)
    abs_floor: float = Field(default=1e-6, ge=0)
    max_score: float = Field(default=50.0, gt=0)


class Forecast(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "incident"
    config: ForecastConfig

    def __init__(
        self, config: ForecastConfig, *, ops: Ops, meta: StreamMeta, weights: ForecastWeights | None = None
    ) -> None:
        self.weights = weights if weights is not None else load_weights(config.model_path)
        super().__init__(config, ops=ops, meta=meta)
        wt = self.weights
        self._w_lag = ops.asarray(wt.w_lag)
        self._w_phase = ops.asarray(wt.w_phase)
        self._w_out = ops.asarray(wt.w_out)[:, None]

    def state_spec(self) -> dict[str, StateSpec]:
        return {
            "window": StateSpec(cols=self.weights.window),
            "loc": StateSpec(),
            "scale": StateSpec(),
            "count": StateSpec(),
            "err": StateSpec(),
        }

    def bind(self, meta: StreamMeta) -> None:
        wt, ops = self.weights, self.ops
        kind = np.where(meta.kind >= 0, meta.kind, N_KINDS - 1)
        self._kind_h = ops.asarray(wt.w_kind[kind] + wt.b_hidden[None, :])
        self._floor = ops.asarray(self.config.abs_floor + 0.5 * meta.resolution)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg, wt = self.ops, self.state, self.config, self.weights
        x, w = batch.values, batch.present
        phase = ops.minimum(phase_or_zero(batch, ops, self.n), wt.n_phases - 1)
        s_eff = st["scale"] * SIGMA_PER_SCALE + ops.abs(st["loc"]) * cfg.rel_floor + self._floor
        lags = ops.clip((st["window"] - st["loc"][:, None]) / s_eff[:, None], -wt.clip, wt.clip)
        hidden = ops.maximum(
            ops.matmul(lags, self._w_lag) + self._kind_h + ops.take_rows(self._w_phase, phase), 0.0
        )
        predicted = ops.matmul(hidden, self._w_out)[:, 0] + wt.b_out
        error = ops.abs((x - st["loc"]) / s_eff - predicted)
        err_unit = st["err"] * SIGMA_PER_SCALE + wt.residual_scale * 0.1
        warm = ops.as_float(st["count"] >= wt.window + cfg.min_extra) * w
        score = ops.minimum(error / err_unit, cfg.max_score) * warm
        lim = err_unit * 4.0 + (1.0 - ops.minimum(st["err"] * 1e30, 1.0)) * 1e30
        rate = warmup_rate(st["count"] - wt.window, cfg.err_alpha, ops) * warm
        st["err"] += rate * (ops.minimum(error, lim) - st["err"])
        robust_z(
            x,
            w,
            loc=st["loc"],
            scale=st["scale"],
            count=st["count"],
            floor=ops.abs(st["loc"]) * cfg.rel_floor + self._floor,
            alpha=cfg.alpha,
            clip=2.0,
            min_count=2,
            ops=ops,
        )
        shifted = ops.concat([st["window"][:, 1:], x[:, None]], axis=1)
        st["window"] += w[:, None] * (shifted - st["window"])
        return score
