"""A stack of detectors over the same streams, plus the likelihood step: what a worker runs.

Incident detectors' raw scores are combined (largest z) and turned into a calibrated score by
`AnomalyLikelihood`; fault detectors' severities are combined (largest, >= 1 = fault) and kept
apart. While a stream has a hard fault (stuck, out of range, stale, noise burst), its incident
score is held at 0 and its likelihood statistics are not updated: a broken sensor is not an
incident and must not teach the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array, BackendName, DTypeName, Ops, make_ops
from analytics.detectors.base import Batch, Detector, DetectorError, NDArray, StreamMeta
from analytics.detectors.plugins.drift import DriftConfig
from analytics.detectors.plugins.noise_burst import NoiseBurstConfig
from analytics.detectors.plugins.out_of_range import OutOfRangeConfig
from analytics.detectors.plugins.phase_baseline import PhaseBaselineConfig
from analytics.detectors.plugins.stale import StaleConfig
from analytics.detectors.plugins.stuck import StuckConfig
from analytics.detectors.registry import DetectorConfig, build_detector
from analytics.likelihood import AnomalyLikelihood, LikelihoodConfig

REBASE_AFTER_S = 1e6
SUPPRESSING_FAULTS = frozenset({"stuck", "out_of_range", "stale", "noise_burst"})


def default_detectors() -> list[DetectorConfig]:
    return [
        PhaseBaselineConfig(),
        StuckConfig(),
        StaleConfig(),
        DriftConfig(),
        OutOfRangeConfig(),
        NoiseBurstConfig(),
    ]


class StackConfig(BaseModel):
    """Settings of a detector stack (`worker.detectors` in the settings tree)."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = "numpy"
    device: str = Field(
        default="auto", description="torch device: 'auto' (CUDA when present), 'cpu', 'cuda:0'"
    )
    dtype: DTypeName = "float32"
    detectors: list[DetectorConfig] = Field(default_factory=default_detectors)
    likelihood: LikelihoodConfig = LikelihoodConfig()
    combine: Literal["max", "min"] = Field(
        default="max",
        description="incident raw score: the largest z (any detector alarmed), or the smallest z among "
        "warmed-up detectors (all must agree: a seasonal and a plain baseline veto each other's FPs)",
    )
    suppress_on_fault: bool = Field(
        default=True, description="hold incident scores while a hard fault is active"
    )
    count_transform: bool = Field(default=True, description="score count streams in square-root units")


@dataclass(frozen=True)
class StackOutput:
    """Per-stream results of one tick (backend arrays, shape [n]).

    `fault` is the worst fault severity; which fault detector it came from (`fault_kind`, an index
    into `DetectorStack.fault_keys`) is worked out only when asked for.
    """

    raw: Array
    likelihood: Array
    score: Array
    fault: Array
    incident_kind: Array
    severities: tuple[Array, ...]
    ops: Ops

    @property
    def fault_kind(self) -> Array:
        if not self.severities:
            return self.ops.to_index(self.ops.zeros(*self.fault.shape))
        _, kind = self.ops.max_of(list(self.severities))
        return kind


class DetectorStack:
    def __init__(self, config: StackConfig, *, meta: StreamMeta, ops: Ops | None = None) -> None:
        self.config = config
        self.ops = (
            ops if ops is not None else make_ops(config.backend, device=config.device, dtype=config.dtype)
        )
        self.meta = meta
        self._bind_transform(meta)
        meta = self._seen_meta
        self.detectors: list[Detector] = [
            build_detector(c, ops=self.ops, meta=meta) for c in config.detectors
        ]
        keys = [d.KEY for d in self.detectors]
        if len(set(keys)) != len(keys):
            raise DetectorError(f"detector stack lists a detector twice: {keys}")
        self.incident = [d for d in self.detectors if d.CATEGORY == "incident"]
        self.faults = [d for d in self.detectors if d.CATEGORY == "fault"]
        self.incident_keys = tuple(d.KEY for d in self.incident)
        self.fault_keys = tuple(d.KEY for d in self.faults)
        self.likelihood = AnomalyLikelihood(config.likelihood, ops=self.ops, n=meta.n)
        self.likelihood.bind_groups(meta.group)
        self._phase_limit = min(
            (getattr(d.config, "n_phases", math.inf) for d in self.detectors), default=math.inf
        )
        self.origin: float | None = None
        self._last_rel = 0.0

    @property
    def n(self) -> int:
        return self.meta.n

    def _bind_transform(self, meta: StreamMeta) -> None:
        use = self.config.count_transform and bool(meta.count_mask.any())
        self._seen_meta = meta.transformed() if use else meta
        self._sqrt = self.ops.asarray(meta.count_mask.astype(np.float64)) if use else None

    def transform(self, x: Array) -> Array:
        """Values as the detectors see them (count streams in square-root units)."""
        if self._sqrt is None:
            return x
        ops = self.ops
        root = ops.sqrt(ops.abs(x)) * (ops.as_float(x >= 0) * 2.0 - 1.0)
        return x + self._sqrt * (root - x)

    def grow(self, meta: StreamMeta) -> None:
        """Add streams (meta lists the old streams first, then the new ones)."""
        self._bind_transform(meta)
        for d in self.detectors:
            d.grow(self._seen_meta)
        self.likelihood.grow(meta.n)
        self.likelihood.bind_groups(meta.group)
        self.meta = meta

    def clock(self, now: float) -> float:
        """Seconds since the stack's origin (float32-safe); moves the origin forward when needed."""
        if self.origin is None:
            self.origin = now
        now = max(now, self.origin + self._last_rel)
        rel = now - self.origin
        self._last_rel = rel
        if rel > REBASE_AFTER_S:
            for d in self.detectors:
                d.rebase_time(rel)
            self.origin = now
            rel = self._last_rel = 0.0
        return rel

    def step(
        self,
        now: float,
        values: Any,
        present: Any = None,
        phase: Any = None,
    ) -> StackOutput:
        """Score one tick. `now`: epoch seconds; `values`: [n] (NaN = no value); `present`: [n] 0/1
        or bool (default: every finite value); `phase`: [n] ints (default: phase 0)."""
        ops = self.ops
        x = ops.asarray(values)
        if x.shape != (self.n,):
            raise DetectorError(f"values have shape {tuple(x.shape)}, the stack has {self.n} streams")
        finite = ops.isfinite(x)
        w = ops.as_float(finite)
        if present is not None:
            w = w * ops.asarray(present)
        if ops.any(~finite):
            x = ops.where(finite, x, 0.0)
        x = self.transform(x)
        ph = None
        if phase is not None:
            if (
                isinstance(phase, np.ndarray)
                and phase.size
                and (phase.min() < 0 or phase.max() >= self._phase_limit)
            ):
                raise DetectorError(
                    f"phase values must lie in [0, {self._phase_limit}), got {phase.min()}..{phase.max()}"
                )
            ph = ops.asindex(phase)
        return self.update(Batch(now=self.clock(now), values=x, present=w, phase=ph))

    def update(self, batch: Batch) -> StackOutput:
        ops = self.ops
        n = self.n
        zeros = ops.zeros(n)
        if self.incident:
            raw, incident_kind = self._combine([d.update(batch) for d in self.incident])
        else:
            raw, incident_kind = zeros, ops.to_index(zeros)
        severities = [d.update(batch) for d in self.faults]
        hard = soft = None
        for sev, d in zip(severities, self.faults, strict=True):
            if d.KEY in SUPPRESSING_FAULTS:
                hard = sev if hard is None else ops.maximum(hard, sev)
            else:
                soft = sev if soft is None else ops.maximum(soft, sev)
        fault = (
            zeros
            if hard is None and soft is None
            else (soft if hard is None else hard if soft is None else ops.maximum(hard, soft))
        )
        w = batch.present
        if self.config.suppress_on_fault and hard is not None:
            healthy = ops.as_float(hard < 1.0)
            raw = raw * healthy
            w = w * healthy
        out = self.likelihood.update(raw, w)
        return StackOutput(
            raw=raw,
            likelihood=out.likelihood,
            score=out.score * w,
            fault=fault,
            incident_kind=incident_kind,
            severities=tuple(severities),
            ops=ops,
        )

    def _combine(self, raws: list[Array]) -> tuple[Array, Array]:
        ops = self.ops
        if len(raws) == 1:
            return raws[0], ops.to_index(ops.zeros(self.n))
        if self.config.combine == "max":
            best, kind = ops.max_of(raws)
            return best, kind
        # min over the detectors that have an opinion; none warmed up -> 0
        big = 1e30
        masked = []
        for d, r in zip(self.incident, raws, strict=True):
            warm = d.warm()
            masked.append(-r if warm is None else -(r + (1.0 - warm) * big))
        neg, kind = ops.max_of(masked)
        low = -neg
        return low * ops.as_float(low < big * 0.5), kind

    # state -----------------------------------------------------------------
    def export_state(self) -> dict[str, NDArray]:
        arrays: dict[str, NDArray] = {}
        for i, d in enumerate(self.detectors):
            for name, a in d.export_state().items():
                arrays[f"{i}.{d.KEY}.{name}"] = a
        for name, a in self.likelihood.export_state().items():
            arrays[f"likelihood.{name}"] = a
        arrays["origin"] = np.array([np.nan if self.origin is None else self.origin, self._last_rel])
        return arrays

    def load_state(self, arrays: Mapping[str, NDArray]) -> None:
        for i, d in enumerate(self.detectors):
            prefix = f"{i}.{d.KEY}."
            d.load_state({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
        self.likelihood.load_state(
            {k[len("likelihood.") :]: v for k, v in arrays.items() if k.startswith("likelihood.")}
        )
        origin, last_rel = (float(v) for v in np.asarray(arrays["origin"]))
        self.origin = None if math.isnan(origin) else origin
        self._last_rel = last_rel

    def bytes_per_stream(self) -> int:
        return sum(d.state_bytes_per_stream() for d in self.detectors) + self.likelihood.bytes_per_stream()
