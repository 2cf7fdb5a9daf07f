"""NumPy (CPU) and PyTorch agree: the same inputs through both backends give the same scores.

PyTorch runs on the CPU here; on a machine with CUDA the same code runs with device='cuda'
(see bench/bench_detectors.py), and `test_cuda_agrees` checks it there.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics.detectors.backend import cuda_available, make_ops
from analytics.detectors.base import KIND_ORDER, StreamMeta
from analytics.detectors.registry import DETECTORS, build_detector
from analytics.detectors.stack import DetectorStack, StackConfig
from beffroi.devices import DeviceKind
from tests.detectors.synthetic import run_detector, run_stack

N, STEPS = 48, 300


def mixed_meta() -> StreamMeta:
    kinds = [
        KIND_ORDER.index(k) for k in (DeviceKind.TEMPERATURE, DeviceKind.AIR_QUALITY, DeviceKind.GATE_COUNTER)
    ]
    kind = np.array([kinds[i % 3] for i in range(N)], dtype=np.int64)
    return StreamMeta(
        low=np.where(kind == kinds[2], 0.0, -30.0),
        high=np.full(N, 80.0),
        resolution=np.where(kind == kinds[2], 1.0, 0.0),
        kind=kind,
        group=(np.arange(N) % 6).astype(np.int64),
    )


def mixed_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise with spikes, a stuck run, drift, dropouts, out-of-range values and phase changes."""
    rng = np.random.default_rng(seed)
    x = (20 + rng.standard_normal((STEPS, N))).astype(np.float32)
    x[150, ::5] += 15  # spikes
    x[100:160, 7] = x[99, 7]  # stuck
    x[120:, 9] += np.linspace(0, 8, STEPS - 120)  # drift of a temperature sensor
    x[200:230, 10] += rng.normal(0, 10, 30).astype(np.float32)  # noise burst
    x[200, 13] = 120.0  # out of range
    present = rng.random((STEPS, N)) > 0.15
    present[:, 9:11] = True
    present[200, 13] = True
    present[180:, 17] = False  # dropout
    phase = np.repeat((np.arange(STEPS) // 70 % 5)[:, None], N, axis=1)
    phase[:, ::2] = (phase[:, ::2] + 1) % 5
    return x, present, phase


@pytest.mark.parametrize("key", sorted(k for k in DETECTORS if k != "forecast"))
def test_each_detector_agrees(key):
    meta = mixed_meta()
    config_cls, _ = DETECTORS[key]
    x, present, phase = mixed_inputs()
    results = []
    states = []
    for ops in (make_ops("numpy"), make_ops("torch", device="cpu")):
        det = build_detector(config_cls(), ops=ops, meta=meta)
        results.append(run_detector(det, x, present=present, phase=phase))
        states.append(det.export_state())
    assert results[0].max() > 0  # the inputs exercise the detector
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-4)
    for name in states[0]:
        np.testing.assert_allclose(states[0][name], states[1][name], rtol=1e-4, atol=1e-3, err_msg=name)


def test_whole_stack_agrees():
    meta = mixed_meta()
    x, present, phase = mixed_inputs(seed=1)
    outs = [
        run_stack(
            DetectorStack(StackConfig(backend=b, device="cpu"), meta=meta), x, present=present, phase=phase
        )
        for b in ("numpy", "torch")
    ]
    assert outs[0]["score"].max() > 0.5
    assert outs[0]["fault"].max() >= 1.0
    for name in ("raw", "likelihood", "score", "fault"):
        np.testing.assert_allclose(outs[0][name], outs[1][name], rtol=1e-4, atol=2e-4, err_msg=name)
    np.testing.assert_array_equal(
        outs[0]["fault_kind"][outs[0]["fault"] >= 1], outs[1]["fault_kind"][outs[0]["fault"] >= 1]
    )


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (runs where one is lent)")
def test_cuda_agrees():
    meta = mixed_meta()
    x, present, phase = mixed_inputs(seed=2)
    outs = [
        run_stack(DetectorStack(StackConfig(backend=b, device=d), meta=meta), x, present=present, phase=phase)
        for b, d in (("numpy", "cpu"), ("torch", "cuda"))
    ]
    for name in ("raw", "likelihood", "score", "fault"):
        np.testing.assert_allclose(outs[0][name], outs[1][name], rtol=1e-3, atol=1e-3, err_msg=name)
