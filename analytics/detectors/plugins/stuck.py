"""Stuck or flat-lined sensor: the same value repeated far longer than this stream ever repeats.

Each stream remembers the longest run of repeated values it has shown lately (a slowly fading
maximum over completed runs). A run becomes a fault once it lasts `factor` times that, and at
least `min_run` values. Quantised, slowly varying signals repeat a lot and learn long runs;
streams that are normally constant (door contacts, idle counters) never fire; and a run at the
bottom of the physical range (a counter near 0, an empty zone) is not a stuck sensor.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import Batch, Category, Detector, StateSpec, StreamMeta

KEY: Final = "stuck"


class StuckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["stuck"] = KEY
    min_run: int = Field(default=8, ge=2, description="repeats before a stuck fault can be raised")
    factor: float = Field(
        default=3.0, gt=1, description="fault when a run lasts this many times the longest usual run"
    )
    forget: float = Field(default=0.001, gt=0, lt=1, description="per value: how fast the longest run fades")
    min_seen: int = Field(default=30, ge=2, description="values seen before the stream is judged")
    min_changes: int = Field(
        default=5,
        ge=1,
        description="value changes seen before (a stream constant "
        "from the start cannot be told from a stuck one)",
    )
    rel_tol: float = Field(default=0.0, ge=0, description="values closer than this (relative) are equal")


class Stuck(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "fault"
    config: StuckConfig

    def state_spec(self) -> dict[str, StateSpec]:
        return {
            "last": StateSpec(),
            "run": StateSpec(),
            "longest": StateSpec(),
            "seen": StateSpec(),
            "changes": StateSpec(),
        }

    def bind(self, meta: StreamMeta) -> None:
        # small counts and values a few quanta above the floor repeat by nature (counts are in
        # square-root units here: a count of 5 or less is not judged)
        low = np.where(np.isfinite(meta.low), meta.low, -3e38)
        floor = np.where(
            meta.count_mask, np.sqrt(np.maximum(low, 0.0) ** 2 + 5.5), low + 5.5 * meta.resolution + 1e-9
        )
        self._floor = self.ops.asarray(floor)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        x, w = batch.values, batch.present
        has_last = ops.minimum(st["seen"], 1.0)
        tol = ops.abs(st["last"]) * cfg.rel_tol
        same = ops.as_float(ops.abs(x - st["last"]) <= tol) * has_last
        ended = w * (1.0 - same)
        ops.assign(st["changes"], ops.minimum(st["changes"] + ended * has_last, 1e6))
        faded = st["longest"] * (1.0 - w * cfg.forget)
        ops.assign(st["longest"], faded + ended * ops.maximum(st["run"] - faded, 0.0))
        st["run"] += w * (same * (st["run"] + 1.0) - st["run"])
        st["last"] += w * (x - st["last"])
        ops.assign(st["seen"], ops.minimum(st["seen"] + w, 1e6))
        limit = ops.maximum(st["longest"] * cfg.factor, float(cfg.min_run))
        judged = (
            ops.as_float(st["seen"] >= cfg.min_seen)
            * ops.as_float(st["changes"] >= cfg.min_changes)
            * ops.as_float(st["last"] > self._floor)
        )
        return st["run"] / limit * judged
