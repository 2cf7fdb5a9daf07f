"""Noise burst: a stretch of sign-alternating steps far rougher than the stream's usual and than its
peers' at the same time.

The roughness is a variance ratio: the short EW of squared steps (each winsorised at `clip` usual
squared steps, so one knock and its return cannot make a stretch rough) over the stream's usual
squared step (learned slowly, four times slower while the stretch is half as rough: it may be the
new normal). A burst needs that ratio above `ratio` for `min_streak` values (a calm value takes two
off the count), the steps to cancel out (a real level shift or ramp moves one way), at least
`min_big` single steps above `big` usual steps, and, where the stream has peers (same site, kind and
field), fewer than `peer_fraction` of them rough at the same time: a crowd that turns bursty shakes
many counters of the site, a failing sensor only its own. From the second rough step, once a big
step has reversed the one before it, the stream is `suspect` (a severity below a fault): a level
shift or a ramp moves one way, a burst goes back and forth, so the engine holds the stream's
incident alerts while the burst builds up to a fault.

Only kinds whose values are smooth by nature are judged (`kinds`): environmental sensors and
aggregated counts. Fence vibration, sound levels and camera counts come in bursts as their normal
signal (a knock, a cheer, people crossing the frame); a burst there is news for the incident
detectors, not a sensor fault.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import (
    KIND_ORDER,
    Batch,
    Category,
    Detector,
    StateSpec,
    StreamMeta,
    warmup_rate,
)
from beffroi.devices import DeviceKind

KEY: Final = "noise_burst"


class NoiseBurstConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["noise_burst"] = KEY
    kinds: list[DeviceKind] = Field(
        default_factory=lambda: [
            DeviceKind.AIR_QUALITY,
            DeviceKind.TEMPERATURE,
            DeviceKind.PRESENCE,
            DeviceKind.TELCO_CELL,
        ],
        description="kinds judged (smooth by nature); streams of unknown kind are judged too",
    )
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
    suspect: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description="severity (below a fault) once a rough stretch has two steps and a big one reversed "
        "the last: enough for the engine to hold the stream's incident alerts while the burst is judged",
    )
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
            "prev": StateSpec(),
            "flips": StateSpec(),
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
        allowed = np.array([k in self.config.kinds for k in KIND_ORDER] + [True])
        judged = allowed[np.where(meta.kind >= 0, meta.kind, len(KIND_ORDER))].astype(np.float64)
        self._judged = ops.asarray(judged)
        # each grouped stream's judged peers (itself left out), fixed by the metadata; none ungrouped
        segment = np.where(meta.group >= 0, meta.group, n_groups)
        grouped = judged * (meta.group >= 0)
        others = np.bincount(segment, weights=grouped, minlength=self._groups)[segment] - grouped
        has_peers = (others >= self.config.min_peers) & (meta.group >= 0)
        self._bar = ops.asarray(np.where(has_peers, self.config.ratio, self.config.ratio_alone))
        # roughness is shared from this many rough peers (never, for a stream without peers)
        self._shared_from = ops.asarray(np.where(has_peers, others * self.config.peer_fraction, 1e30))

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        x, w = batch.values, batch.present
        has_last = ops.minimum(st["seen"], 1.0)
        wm = w * has_last
        step = (x - st["last"]) * has_last
        sq = step * step
        unit = ops.maximum(st["usual"], self._least) + self._floor2
        warm = ops.as_float(st["seen"] >= cfg.min_seen) * self._judged
        cold = (1.0 - warm) * 1e30
        most = unit * cfg.clip
        clipped = ops.minimum(sq, most + cold)
        st["fast"] += wm * cfg.alpha_fast * (clipped - st["fast"])
        # the steps' drift, winsorised alike: on a stream that was flat, a burst's every step is clipped
        cap = ops.sqrt(most) + cold
        st["signed"] += wm * cfg.alpha_fast * (ops.minimum(ops.maximum(step, -cap), cap) - st["signed"])
        ops.assign(st["ratio"], st["ratio"] + wm * (st["fast"] / unit - st["ratio"]))
        # the share of peers rough now (each peer's latest ratio; the stream itself left out)
        over = ops.as_float(st["ratio"] > cfg.ratio) * warm
        rough_peers = ops.take(ops.segment_sum(over, self._segment, self._groups), self._segment) - over
        bar = self._bar + ops.as_float(rough_peers >= self._shared_from) * 1e30
        rough = ops.as_float((st["ratio"] > bar) & (st["signed"] * st["signed"] < st["fast"] * 0.5)) * warm
        streak = rough * (st["streak"] + 1.0) + (1.0 - rough) * ops.maximum(st["streak"] - 2.0, 0.0)
        st["streak"] += wm * (streak - st["streak"])
        big = ops.as_float(sq > unit * (cfg.big * cfg.big))
        going = ops.as_float(streak > 0)
        st["big"] += wm * (going * (st["big"] + big * rough) - st["big"])
        flip = ops.as_float(step * st["prev"] < 0) * big * rough
        st["flips"] += wm * (going * (st["flips"] + flip) - st["flips"])
        st["prev"] += wm * (step - st["prev"])
        calm = wm * (1.0 - ops.as_float(st["ratio"] > cfg.ratio * 0.5) * 0.75)
        lim = unit * 9.0 + cold
        st["usual"] += (
            warmup_rate(st["seen"] - 1.0, cfg.alpha, ops) * calm * (ops.minimum(sq, lim) - st["usual"])
        )
        st["last"] += w * (x - st["last"])
        ops.assign(st["seen"], ops.minimum(st["seen"] + w, 1e6))
        burst = ops.as_float(st["big"] >= cfg.min_big)
        suspect = ops.as_float((st["flips"] >= 1.0) & (st["streak"] >= 2.0)) * cfg.suspect
        return ops.maximum(st["streak"] / cfg.min_streak * burst, suspect)
