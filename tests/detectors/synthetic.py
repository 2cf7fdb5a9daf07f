"""Labelled synthetic streams for detector tests (small, seeded)."""

from __future__ import annotations

import numpy as np

from analytics.detectors.backend import Ops
from analytics.detectors.base import Batch, Detector, StreamMeta
from analytics.detectors.stack import DetectorStack, StackConfig


def noise(steps: int, streams: int, *, seed: int = 0, level: float = 20.0, sd: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level + sd * rng.standard_normal((steps, streams))).astype(np.float32)


def run_detector(
    det: Detector,
    values: np.ndarray,
    *,
    present: np.ndarray | None = None,
    phase: np.ndarray | None = None,
    dt: float = 1.0,
) -> np.ndarray:
    """Feed `values` [steps, streams] tick by tick; returns the scores [steps, streams] as NumPy."""
    ops: Ops = det.ops
    out = []
    for t, row in enumerate(values):
        w = np.ones(row.shape, np.float32) if present is None else present[t].astype(np.float32)
        ph = None if phase is None else ops.asindex(phase[t])
        score = det.update(
            Batch(now=t * dt, values=ops.asarray(np.nan_to_num(row)), present=ops.asarray(w), phase=ph)
        )
        out.append(ops.to_numpy(score).astype(np.float64))
    return np.array(out)


def run_stack(
    stack: DetectorStack,
    values: np.ndarray,
    *,
    present: np.ndarray | None = None,
    phase: np.ndarray | None = None,
    dt: float = 1.0,
    t0: float = 1.7e9,
) -> dict[str, np.ndarray]:
    ops = stack.ops
    cols: dict[str, list[np.ndarray]] = {
        "raw": [],
        "likelihood": [],
        "score": [],
        "fault": [],
        "fault_kind": [],
    }
    for t, row in enumerate(values):
        out = stack.step(
            t0 + t * dt, row, None if present is None else present[t], None if phase is None else phase[t]
        )
        for name in cols:
            cols[name].append(ops.to_numpy(getattr(out, name)))
    return {k: np.array(v) for k, v in cols.items()}


def stack(n: int, config: StackConfig | None = None, meta: StreamMeta | None = None) -> DetectorStack:
    return DetectorStack(config or StackConfig(), meta=meta or StreamMeta.generic(n))
