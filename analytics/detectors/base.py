"""What every detector shares: per-stream metadata, the batch it scores, and its state arrays.

A detector is pure state plus `update(batch)`. State is a dict of arrays with one row per stream
(float arrays of the backend's dtype), so a snapshot is just those arrays. `update` scores the
latest value of every stream at once; streams without a new value have `present == 0` and keep
their state (time-driven detectors, such as staleness, still score them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel

from analytics.detectors.backend import Array, Ops
from beffroi.devices import DeviceKind

Category = Literal["incident", "fault"]
NDArray = np.ndarray[Any, Any]

KIND_ORDER: tuple[DeviceKind, ...] = tuple(DeviceKind)


class Phase(IntEnum):
    """Event phase, the 'season' of the phase-aware baseline."""

    IDLE = 0
    INGRESS = 1
    PLAY = 2
    INTERVAL = 3
    EGRESS = 4


N_PHASES = len(Phase)
COUNT_QUANTUM = 0.2  # the resolution of a count in square-root units, for the scale floors
# a count's shot noise in square-root units is 0.5 (Anscombe); a little less allows for counts
# steadier than Poisson. A count usually 0 that reads 1 is then z = 2.5, not an incident.
COUNT_SD = 0.4


class DetectorError(RuntimeError):
    """A detector step failed; the message names the detector and the array or stream."""


@dataclass(frozen=True)
class StreamMeta:
    """Per-stream constants (host NumPy arrays, one row per stream).

    `low`/`high`: physical range (±inf when unknown); `resolution`: value quantum (1 for counts,
    0 for continuous values); `kind`: index in `KIND_ORDER` (-1 unknown); `group`: peer group for
    cross-stream checks (-1 when the stream has no comparable peers); `counts`: the values are
    counts of people or devices, whose noise grows with the count (the stack scores their square
    root, which steadies the noise); `upward`: only a rise is an incident (loud sound, smoke, a
    shaken fence; a quiet or clean reading never is); `peer`: a narrower peer group than `group`
    (same kind of zone: stands with stands, forecourts with forecourts; -1 when unknown), used
    where it has enough members; `min_sd`: the value's irreducible noise (a count's shot noise),
    the least spread a baseline may assume.
    """

    low: NDArray
    high: NDArray
    resolution: NDArray
    kind: NDArray
    group: NDArray
    counts: NDArray | None = None
    upward: NDArray | None = None
    peer: NDArray | None = None
    min_sd: NDArray | None = None

    def __post_init__(self) -> None:
        n = len(self.low)
        if self.counts is None:
            object.__setattr__(self, "counts", np.zeros(n, dtype=bool))
        if self.upward is None:
            object.__setattr__(self, "upward", np.zeros(n, dtype=bool))
        if self.peer is None:
            object.__setattr__(self, "peer", np.full(n, -1, dtype=np.int64))
        if self.min_sd is None:
            object.__setattr__(self, "min_sd", np.zeros(n))
        for name in ("high", "resolution", "kind", "group", "counts", "upward", "peer", "min_sd"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"StreamMeta.{name} has {len(getattr(self, name))} rows, expected {n}")

    @property
    def n(self) -> int:
        return len(self.low)

    @classmethod
    def generic(cls, n: int) -> StreamMeta:
        """`n` streams with no known range, kind or peers (a bare CSV series, a benchmark)."""
        return cls(
            low=np.full(n, -np.inf),
            high=np.full(n, np.inf),
            resolution=np.zeros(n),
            kind=np.full(n, -1, dtype=np.int64),
            group=np.full(n, -1, dtype=np.int64),
        )

    @classmethod
    def empty(cls) -> StreamMeta:
        return cls.generic(0)

    def extend(self, other: StreamMeta) -> StreamMeta:
        return StreamMeta(
            low=np.concatenate([self.low, other.low]),
            high=np.concatenate([self.high, other.high]),
            resolution=np.concatenate([self.resolution, other.resolution]),
            kind=np.concatenate([self.kind, other.kind]).astype(np.int64),
            group=np.concatenate([self.group, other.group]).astype(np.int64),
            counts=np.concatenate([self.count_mask, other.count_mask]),
            upward=np.concatenate([self.upward_mask, other.upward_mask]),
            peer=np.concatenate([self.peer_group, other.peer_group]).astype(np.int64),
            min_sd=np.concatenate([self.noise_floor, other.noise_floor]),
        )

    @property
    def count_mask(self) -> NDArray:
        assert self.counts is not None
        return self.counts

    @property
    def upward_mask(self) -> NDArray:
        assert self.upward is not None
        return self.upward

    @property
    def peer_group(self) -> NDArray:
        assert self.peer is not None
        return self.peer

    @property
    def noise_floor(self) -> NDArray:
        assert self.min_sd is not None
        return self.min_sd

    def transformed(self) -> StreamMeta:
        """The metadata as detectors see it: count streams in square-root units, where a count's
        Poisson shot noise is 0.5 whatever the count (`COUNT_SD`)."""
        c = self.count_mask
        if not c.any():
            return self
        root = np.sign(self.low) * np.sqrt(np.abs(self.low))
        top = np.sign(self.high) * np.sqrt(np.abs(self.high))
        return StreamMeta(
            low=np.where(c, root, self.low),
            high=np.where(c, top, self.high),
            resolution=np.where(c, COUNT_QUANTUM, self.resolution),
            kind=self.kind,
            group=self.group,
            counts=c,
            upward=self.upward,
            peer=self.peer,
            min_sd=np.where(c, np.maximum(self.noise_floor, COUNT_SD), self.noise_floor),
        )


@dataclass(frozen=True)
class Batch:
    """One tick: the latest value of every stream.

    `now` is seconds on the stack's relative clock; `values` are finite (anything where absent);
    `present` is 1.0 where the stream has a new value this tick, else 0.0; `phase` holds each
    stream's event phase (int64), or None for phase 0 everywhere.
    """

    now: float | Array  # a 0-d device tensor lets a captured CUDA graph see the clock move
    values: Array
    present: Array
    phase: Array | None = None


@dataclass(frozen=True)
class StateSpec:
    fill: float = 0.0
    cols: int = 0
    is_time: bool = False


@dataclass
class StateArrays:
    specs: dict[str, StateSpec]
    arrays: dict[str, Array] = field(default_factory=dict)


class Detector(ABC):
    """Base of every detector plugin. Subclasses set KEY and CATEGORY and implement the hooks."""

    KEY: ClassVar[str]
    CATEGORY: ClassVar[Category]

    def __init__(self, config: BaseModel, *, ops: Ops, meta: StreamMeta) -> None:
        self.config = config
        self.ops = ops
        self.n = meta.n
        self._specs = self.state_spec()
        self.state: dict[str, Array] = {
            name: ops.full(self._shape(meta.n, spec), spec.fill) for name, spec in self._specs.items()
        }
        self.bind(meta)

    @staticmethod
    def _shape(n: int, spec: StateSpec) -> tuple[int, ...]:
        return (n, spec.cols) if spec.cols else (n,)

    @abstractmethod
    def state_spec(self) -> dict[str, StateSpec]:
        """Name -> (initial fill, columns) of every state array."""

    def bind(self, meta: StreamMeta) -> None:  # noqa: B027 - optional hook
        """Derive per-stream constants from `meta` (called at start and after `grow`)."""

    @abstractmethod
    def update(self, batch: Batch) -> Array:
        """Score every stream for this tick (shape [n]).

        Incident detectors return a z-like raw score (>= 0, in standard deviations); fault
        detectors return a severity where >= 1 means the fault is active.
        """

    def warm(self) -> Array | None:
        """1.0 where the last update had an opinion (the stream is warmed up), or None for always."""
        return None

    def grow(self, meta: StreamMeta) -> None:
        """Add rows for new streams (meta covers old and new streams, old ones first)."""
        if meta.n < self.n:
            raise DetectorError(f"{self.KEY}: cannot shrink from {self.n} to {meta.n} streams")
        extra = meta.n - self.n
        if extra:
            for name, spec in self._specs.items():
                fresh = self.ops.full(self._shape(extra, spec), spec.fill)
                self.state[name] = self.ops.concat([self.state[name], fresh])
        self.n = meta.n
        self.bind(meta)

    def rebase_time(self, delta: float) -> None:
        """The stack's clock origin moved forward by `delta` seconds."""
        for name, spec in self._specs.items():
            if spec.is_time:
                self.state[name] -= delta

    def export_state(self) -> dict[str, NDArray]:
        return {name: self.ops.to_numpy(a).copy() for name, a in self.state.items()}

    def load_state(self, arrays: Mapping[str, NDArray]) -> None:
        missing = set(self._specs) - set(arrays)
        if missing:
            raise DetectorError(f"{self.KEY}: snapshot lacks state arrays {sorted(missing)}")
        for name, spec in self._specs.items():
            a = np.asarray(arrays[name])
            want = self._shape(self.n, spec)
            if a.shape != want:
                raise DetectorError(f"{self.KEY}: state array {name!r} has shape {a.shape}, expected {want}")
            self.state[name] = self.ops.asarray(a)

    def state_bytes_per_stream(self) -> int:
        size = 8 if self.ops.dtype_name == "float64" else 4
        return sum(size * max(spec.cols, 1) for spec in self._specs.values())


def warmup_rate(count: Array, alpha: float, ops: Ops) -> Array:
    """EW weight that starts as a running mean (1/count) and settles at `alpha`."""
    return ops.maximum(1.0 / ops.maximum(count, 1.0), alpha)


def phase_or_zero(batch: Batch, ops: Ops, n: int) -> Array:
    if batch.phase is None:
        return ops.asindex(np.zeros(n, dtype=np.int64))
    return batch.phase
