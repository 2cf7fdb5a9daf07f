"""Stale stream or dropout: no value for much longer than this stream's usual interval.

Learns each stream's typical gap between values (EW, gaps clipped so an outage does not teach
it that outages are normal). Severity = current silence / (`factor` x typical gap + `min_gap_s`),
evaluated every tick for every stream, including those without a new value.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import Batch, Category, Detector, StateSpec, warmup_rate

KEY: Final = "stale"


class StaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["stale"] = KEY
    factor: float = Field(default=6.0, gt=1, description="silence, in typical gaps, that means stale")
    min_gap_s: float = Field(default=5.0, ge=0, description="added to the limit: tolerate short jitter")
    alpha: float = Field(default=0.05, gt=0, le=1)
    min_seen: int = Field(default=4, ge=2, description="values seen before the stream is judged")


class Stale(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "fault"
    config: StaleConfig

    def state_spec(self) -> dict[str, StateSpec]:
        return {"last_seen": StateSpec(is_time=True), "interval": StateSpec(), "seen": StateSpec()}

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        w = batch.present
        gap = ops.maximum(batch.now - st["last_seen"], 0.0)
        seen = st["seen"]
        # the first gap is learned as is; later ones are clipped at the stale limit
        limit = st["interval"] * cfg.factor + cfg.min_gap_s
        learned_gap = ops.minimum(gap, limit + ops.as_float(seen < 2.0) * 1e30)
        rate = warmup_rate(seen, cfg.alpha, ops) * w * ops.minimum(seen, 1.0)
        st["interval"] += rate * (learned_gap - st["interval"])
        st["last_seen"] += w * gap
        ops.assign(seen, ops.minimum(seen + w, 1e6))
        silence = ops.maximum(batch.now - st["last_seen"], 0.0)
        judged = ops.as_float(seen >= cfg.min_seen)
        return silence / (st["interval"] * cfg.factor + cfg.min_gap_s) * judged
