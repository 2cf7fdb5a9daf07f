"""Noise burst: a stretch of sign-alternating steps far rougher than the stream's usual and than its
peers' at the same time.

The roughness is a variance ratio: the short EW of squared steps (each winsorised at `clip` usual
squared steps, so one knock and its return cannot make a stretch rough) over the stream's usual
squared step (learned slowly, four times slower while the stretch is half as rough: it may be the
new normal). A burst needs that ratio above `ratio` for `min_streak` values (a calm value takes two
off the count), the steps to cancel out (a real level shift or ramp moves one way), at least
`min_big` single steps above `big` usual steps, and, where the stream has peers (same site, kind and
field), fewer than `peer_fraction` of them rough at the same time: a crowd that turns bursty shakes
many counters of the site, a failing sensor only its own.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import Batch, Category, Detector, StateSpec, StreamMeta, warmup_rate

KEY: Final = "noise_burst"


class NoiseBurstConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["noise_burst"] = KEY
    alpha_fast: float = Field(default=0.2, gt=0, le=1, description="EW weight of the short roughness")
    alpha: float = Field(default=0.01, gt=0, le=1, description="EW weight of the usual roughness")
    ratio: float = Field(default=3.0, gt=1, description="variance ratio (short / usual) that is rough")
    ratio_alone: float = Field(
        default=9.0, gt=1, description="the same for a stream without peers to compare with"
    )
    peer_fraction: float = Field(
        default=0.5, gt=0, le=1, description="share of rough peers from which roughness is shared"
    )
    clip: float = Field(default=16.0, gt=1, description="winsorising of a squared step, in usual ones")
    big: float = Field(default=3.0, gt=1, description="a big step, in usual step sizes")
    min_streak: int = Field(default=8, ge=2)
    min_big: int = Field(default=3, ge=1)
    min_peers: int = Field(default=2, ge=1)
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
            "ratio": StateSpec(),
            "streak": StateSpec(),
            "big": StateSpec(),
        }

    def bind(self, meta: StreamMeta) -> None:
        ops = self.ops
        # a step's least variance: the value's quantum, and twice a count's shot noise
        floor = self.config.abs_floor + 0.5 * meta.resolution
        self._floor2 = ops.asarray(floor * floor)
        self._least = ops.asarray(2.0 * meta.noise_floor**2)
        n_groups = int(meta.group.max()) + 1 if meta.n and meta.group.max() >= 0 else 0
        self._groups = n_groups + 1
        self._segment = ops.asindex(np.where(meta.group >= 0, meta.group, n_groups))
        self._grouped = ops.asarray((meta.group >= 0).astype(np.float64))

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        x, w = batch.values, batch.present
        has_last = ops.minimum(st["seen"], 1.0)
        wm = w * has_last
        step = (x - st["last"]) * has_last
        sq = step * step
        unit = ops.maximum(st["usual"], self._least) + self._floor2
        warm = ops.as_float(st["seen"] >= cfg.min_seen)
        clipped = ops.minimum(sq, unit * cfg.clip + (1.0 - warm) * 1e30)
        st["fast"] += wm * cfg.alpha_fast * (clipped - st["fast"])
        st["signed"] += wm * cfg.alpha_fast * (step - st["signed"])
        ops.assign(st["ratio"], st["ratio"] + wm * (st["fast"] / unit - st["ratio"]))
        # the share of peers rough now (each peer's latest ratio; the stream itself left out)
        judged = warm * self._grouped
        over = ops.as_float(st["ratio"] > cfg.ratio) * judged
        rough_peers = ops.take(ops.segment_sum(over, self._segment, self._groups), self._segment) - over
        count = ops.take(ops.segment_sum(judged, self._segment, self._groups), self._segment)
        others = count - judged
        has_peers = ops.as_float(others >= cfg.min_peers)
        shared = ops.as_float(rough_peers >= others * cfg.peer_fraction) * has_peers
        bar = has_peers * cfg.ratio + (1.0 - has_peers) * cfg.ratio_alone + shared * 1e30
        rough = (
            ops.as_float(st["ratio"] > bar)
            * ops.as_float(st["signed"] * st["signed"] < st["fast"] * 0.5)
            * warm
        )
        streak = rough * (st["streak"] + 1.0) + (1.0 - rough) * ops.maximum(st["streak"] - 2.0, 0.0)
        st["streak"] += wm * (streak - st["streak"])
        big = ops.as_float(sq > unit * (cfg.big * cfg.big))
        st["big"] += wm * (ops.as_float(streak > 0) * (st["big"] + big * rough) - st["big"])
        calm = wm * (1.0 - ops.as_float(st["ratio"] > cfg.ratio * 0.5) * 0.75)
        lim = unit * 9.0 + (1.0 - warm) * 1e30
        st["usual"] += (
            warmup_rate(st["seen"] - 1.0, cfg.alpha, ops) * calm * (ops.minimum(sq, lim) - st["usual"])
        )
        st["last"] += w * (x - st["last"])
        ops.assign(st["seen"], ops.minimum(st["seen"] + w, 1e6))
        burst = ops.as_float(st["big"] >= cfg.min_big)
        return st["streak"] / cfg.min_streak * burst
