"""Sensor drift: a slow, smooth departure from comparable peers (same site, kind and field).

The residual r = value - mean of the peers' latest values (net of their usual offsets; the stream
itself and peers in an excursion left out) removes what the whole site sees (weather, the crowd).
The peers are those in the same kind of zone (`StreamMeta.peer`) when there are `min_peers` of them:
a forecourt thermometer follows other forecourts, not the stands that warm up as the crowd fills
them. A fast EW of r is compared with a slow reference; the departure is measured against both the
residual's noise and its usual wander (sensors in different places differ slowly on their own). A
drift builds up gradually: an excursion that began with a jump (an incident: smoke, a crowd surge)
is vetoed, so incidents are not reported as drift. Only kinds where drift is a sensor fault are
judged (environmental sensors by default); counters legitimately differ from their peers. The
severity is the smooth departure over the threshold: a drift building up reads below 1 (the engine
holds the stream's incident alerts from its `fault_gate`), a drift 1 and more.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import KIND_ORDER, Batch, Category, Detector, StateSpec, StreamMeta, warmup_rate
from analytics.detectors.robust import SIGMA_PER_SCALE
from beffroi.devices import DeviceKind

KEY: Final = "drift"


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["drift"] = KEY
    kinds: list[DeviceKind] = Field(default_factory=lambda: [DeviceKind.TEMPERATURE, DeviceKind.AIR_QUALITY])
    alpha_fast: float = Field(default=0.05, gt=0, le=1)
    alpha_ref: float = Field(default=0.002, gt=0, le=1)
    alpha_wander: float = Field(default=0.005, gt=0, le=1)
    threshold: float = Field(
        default=4.0,
        gt=0,
        description="departure, in units of the residual's noise and usual wander, that is drift",
    )
    jump_limit: float = Field(
        default=5.0, gt=0, description="an excursion starting with a jump this big is no drift"
    )
    min_peers: int = Field(default=2, ge=1)
    min_count: int = Field(default=30, ge=2)
    abs_floor: float = Field(default=1e-6, ge=0)


class Drift(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "fault"
    config: DriftConfig

    def state_spec(self) -> dict[str, StateSpec]:
        return {
            "last": StateSpec(),
            "has": StateSpec(),
            "fast": StateSpec(),
            "ref": StateSpec(),
            "noise": StateSpec(),
            "count": StateSpec(),
            "jump": StateSpec(),
            "out": StateSpec(),
            "wander": StateSpec(),
        }

    def bind(self, meta: StreamMeta) -> None:
        allowed = np.array([k in self.config.kinds for k in KIND_ORDER] + [False])
        kind = np.where(meta.kind >= 0, meta.kind, len(KIND_ORDER))
        eligible = (meta.group >= 0) & allowed[kind]
        n_groups = int(meta.group.max()) + 1 if meta.n and meta.group.max() >= 0 else 0
        self._groups = n_groups + 1
        self._segment = self.ops.asindex(np.where(meta.group >= 0, meta.group, n_groups))
        self._eligible = self.ops.asarray(eligible.astype(np.float64))
        peer = meta.peer_group
        if (peer >= 0).any():
            n_peer = int(peer.max()) + 1
            self._peers: int | None = n_peer + 1
            self._peer_segment = self.ops.asindex(np.where(peer >= 0, peer, n_peer))
        else:
            self._peers = None
        self._floor = self.ops.asarray(self.config.abs_floor + 0.5 * meta.resolution)

    def update(self, batch: Batch) -> Array:
        ops, st, cfg = self.ops, self.state, self.config
        x, w = batch.values, batch.present
        st["last"] += w * (x - st["last"])
        ops.assign(st["has"], ops.maximum(st["has"], w))
        # peers' values net of their own usual offset; streams in an excursion are left out
        weight = st["has"] * (1.0 - st["out"])
        peer = (st["last"] - st["ref"]) * weight
        total = ops.take(ops.segment_sum(peer, self._segment, self._groups), self._segment) - peer
        peers = ops.take(ops.segment_sum(weight, self._segment, self._groups), self._segment) - weight
        if self._peers is not None:
            seg = self._peer_segment
            near_total = ops.take(ops.segment_sum(peer, seg, self._peers), seg) - peer
            near = ops.take(ops.segment_sum(weight, seg, self._peers), seg) - weight
            use = ops.as_float(near >= cfg.min_peers)
            total = total + use * (near_total - total)
            peers = peers + use * (near - peers)
        r = x - total / ops.maximum(peers, 1.0)
        valid = w * self._eligible * ops.as_float(peers >= cfg.min_peers)

        count = st["count"]
        noise_unit = st["noise"] * SIGMA_PER_SCALE + self._floor
        warm = ops.as_float(count >= cfg.min_count)
        innovation = ops.abs(r - st["fast"])
        a = warmup_rate(count, cfg.alpha_fast, ops) * valid
        st["noise"] += (
            a
            * ops.minimum(count, 1.0)
            * (ops.minimum(innovation, noise_unit * 4.0 + (1 - warm) * 1e30) - st["noise"])
        )
        st["fast"] += a * (r - st["fast"])
        gap = ops.abs(st["fast"] - st["ref"])
        unit = ops.maximum(noise_unit * 0.75, st["wander"] * SIGMA_PER_SCALE + self._floor)
        departure = gap / unit
        # the largest recent innovation: held during an excursion, fading outside one
        excursion = ops.as_float(departure > 1.5) * warm
        ops.assign(st["out"], excursion)
        fade = 1.0 - (1.0 - excursion) * valid * (cfg.alpha_fast * 0.5)
        ops.assign(st["jump"], ops.maximum(st["jump"] * fade, innovation / noise_unit * valid * warm))
        smooth = ops.as_float(st["jump"] < cfg.jump_limit) * warm
        drifting = ops.as_float(departure >= cfg.threshold) * smooth
        calm = valid * (1.0 - drifting)
        st["ref"] += warmup_rate(count, cfg.alpha_ref, ops) * calm * (st["fast"] - st["ref"])
        # the usual wander is learned outside excursions only, so a drift cannot teach it
        lim = unit * 2.0 + (1.0 - warm) * 1e30
        quiet = valid * (1.0 - excursion)
        st["wander"] += (
            warmup_rate(count, cfg.alpha_wander, ops) * quiet * (ops.minimum(gap, lim) - st["wander"])
        )
        ops.assign(count, ops.minimum(count + valid, 1e6))
        # below the threshold a smooth departure is a drift building up: a severity short of a fault
        return departure / cfg.threshold * smooth
