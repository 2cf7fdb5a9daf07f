"""Each detector on synthetic series: what it must flag, and what it must leave alone."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.detectors.backend import make_ops
from analytics.detectors.base import KIND_ORDER, StreamMeta
from analytics.detectors.plugins.drift import Drift, DriftConfig
from analytics.detectors.plugins.multiscale import Multiscale, MultiscaleConfig
from analytics.detectors.plugins.noise_burst import NoiseBurst, NoiseBurstConfig
from analytics.detectors.plugins.out_of_range import OutOfRange, OutOfRangeConfig
from analytics.detectors.plugins.phase_baseline import PhaseBaseline, PhaseBaselineConfig
from analytics.detectors.plugins.stale import Stale, StaleConfig
from analytics.detectors.plugins.stuck import Stuck, StuckConfig
from beffroi.devices import DeviceKind
from tests.detectors.synthetic import noise, run_detector

OPS = make_ops("numpy")


def meta_of(
    n: int, *, kind: DeviceKind | None = None, group: int = -1, low: float = -np.inf, high: float = np.inf
) -> StreamMeta:
    return StreamMeta(
        low=np.full(n, low),
        high=np.full(n, high),
        resolution=np.zeros(n),
        kind=np.full(n, -1 if kind is None else KIND_ORDER.index(kind), dtype=np.int64),
        group=np.full(n, group, dtype=np.int64),
    )


def test_phase_baseline_flags_a_spike_and_not_the_noise():
    x = noise(400, 4, seed=1)
    x[300, 2] += 12.0
    scores = run_detector(PhaseBaseline(PhaseBaselineConfig(), ops=OPS, meta=meta_of(4)), x)
    assert scores[300, 2] > 8.0
    normal = np.delete(scores[50:], 250, axis=0)
    assert np.quantile(normal, 0.99) < 4.0
    assert scores[:12].max() == 0.0  # warm-up scores nothing


def test_phase_baseline_knows_each_phase_level():
    """Levels differ per phase (ingress busy, play quiet): a phase change is no anomaly, and a spike
    that a phase-blind baseline drowns in the between-phase spread still stands out."""
    steps = 600
    phase = (np.arange(steps) // 50 % 2 + 1)[:, None].repeat(3, axis=1)
    level = np.where(phase == 1, 100.0, 20.0)
    x = (level + noise(steps, 3, seed=2, level=0.0)).astype(np.float32)
    x[455, 1] += 15.0  # within a play phase
    aware = run_detector(PhaseBaseline(PhaseBaselineConfig(), ops=OPS, meta=meta_of(3)), x, phase=phase)
    blind = run_detector(PhaseBaseline(PhaseBaselineConfig(), ops=OPS, meta=meta_of(3)), x)
    switches = np.arange(200, steps, 50)
    assert aware[switches].max() < 5.0
    assert aware[455, 1] > 8.0
    assert blind[455, 1] < 3.0


def test_stuck_sensor_is_a_fault_and_a_quiet_binary_sensor_is_not():
    x = noise(300, 3, seed=3)
    x[200:260, 0] = x[199, 0]  # stuck continuous sensor
    x[:, 1] = 0.0  # door contact: closed ...
    x[::37, 1] = 1.0  # ... opened now and then
    scores = run_detector(Stuck(StuckConfig(), ops=OPS, meta=meta_of(3)), x)
    assert scores[:200].max() < 1.0
    assert scores[210:260, 0].min() >= 1.0
    assert scores[:, 1].max() < 1.0
    assert scores[:, 2].max() < 1.0
    assert scores[262:, 0].max() < 1.0  # recovers with the first fresh value


def test_stale_stream_is_a_fault_once_silent_for_several_intervals():
    steps = 400
    present = np.zeros((steps, 2), bool)
    present[::10, :] = True  # both report every 10 s
    present[200:, 0] = False  # stream 0 drops out at t=200
    scores = run_detector(Stale(StaleConfig(), ops=OPS, meta=meta_of(2)), noise(steps, 2), present=present)
    assert scores[:, 1].max() < 1.0
    assert scores[:250, 0].max() < 1.0
    first = int(np.argmax(scores[:, 0] >= 1.0))
    assert 250 <= first <= 280
    assert scores[first:, 0].min() >= 1.0


def test_drift_against_peers_is_a_fault_but_a_jump_is_not():
    steps, n = 1200, 6
    common = 20 + np.cumsum(np.random.default_rng(4).normal(0, 0.05, steps))[:, None]  # weather
    x = (common + noise(steps, n, seed=5, level=0.0, sd=0.3)).astype(np.float32)
    x[600:, 1] += np.linspace(0, 6.0, steps - 600)  # slow calibration drift
    x[700:, 3] += 5.0  # a sudden jump (an incident, not drift)
    meta = meta_of(n, kind=DeviceKind.TEMPERATURE, group=0)
    scores = run_detector(Drift(DriftConfig(), ops=OPS, meta=meta), x)
    assert scores[:600].max() < 1.0
    assert scores[900:, 1].min() >= 1.0
    assert scores[:, 3].max() < 1.0
    assert scores[:, [0, 2, 4, 5]].max() < 1.0


def test_drift_ignores_kinds_whose_peers_differ_legitimately():
    x = noise(800, 4, seed=6)
    x[300:, 0] += np.linspace(0, 20, 500)
    meta = meta_of(4, kind=DeviceKind.GATE_COUNTER, group=0)
    assert run_detector(Drift(DriftConfig(), ops=OPS, meta=meta), x).max() == 0.0


def test_out_of_range_uses_the_physical_range_and_holds_until_a_valid_value():
    x = np.full((6, 2), 25.0, np.float32)
    x[2, 0] = 95.0  # above the 80 degC top of a temperature sensor
    present = np.ones((6, 2), bool)
    present[3, 0] = False
    meta = meta_of(2, low=-30, high=80)
    scores = run_detector(OutOfRange(OutOfRangeConfig(), ops=OPS, meta=meta), x, present=present)
    assert scores[:, 0].tolist() == [0.0, 0.0, 2.0, 2.0, 0.0, 0.0]
    assert scores[:, 1].max() == 0.0


def test_noise_burst_is_a_fault_a_single_spike_is_not():
    x = noise(400, 3, seed=7)
    rng = np.random.default_rng(8)
    x[250:290, 0] += rng.normal(0, 8.0, 40).astype(np.float32)
    x[250, 1] += 30.0
    scores = run_detector(NoiseBurst(NoiseBurstConfig(), ops=OPS, meta=meta_of(3)), x)
    assert scores[:250].max() < 1.0
    assert scores[260:290, 0].max() >= 1.0
    assert scores[:, 1].max() < 1.0
    assert scores[:, 2].max() < 1.0


def test_noise_burst_is_suspect_early_and_a_ramp_or_a_shift_never_is():
    x = noise(400, 3, seed=7)
    rng = np.random.default_rng(9)
    x[250:290, 0] += rng.normal(0, 8.0, 40).astype(np.float32)
    x[250:, 1] += np.minimum(np.arange(150), 20).astype(np.float32) * 3.0  # a fast ramp, then a plateau
    x[250:, 2] += 25.0  # a level shift
    scores = run_detector(NoiseBurst(NoiseBurstConfig(), ops=OPS, meta=meta_of(3)), x)
    suspect = NoiseBurstConfig().suspect
    assert scores[250:256, 0].max() >= suspect  # held within a few readings
    assert scores[250:256, 0].max() < 1.0  # not yet a fault
    assert scores[:, 1:].max() < suspect


def test_noise_burst_leaves_kinds_bursty_by_nature_alone():
    x = noise(400, 2, seed=7)
    x[250:290] += np.random.default_rng(8).normal(0, 8.0, (40, 2)).astype(np.float32)
    fence = run_detector(
        NoiseBurst(NoiseBurstConfig(), ops=OPS, meta=meta_of(2, kind=DeviceKind.PERIMETER)), x
    )
    assert fence.max() == 0.0
    air = run_detector(
        NoiseBurst(NoiseBurstConfig(), ops=OPS, meta=meta_of(2, kind=DeviceKind.AIR_QUALITY)), x
    )
    assert air[260:290].max() >= 1.0


@pytest.mark.parametrize("kind", ["spike", "level_shift", "volatility"])
def test_multiscale_flags_generic_anomalies(kind):
    x = noise(600, 2, seed=9)
    if kind == "spike":
        x[400, 0] += 10.0
    elif kind == "level_shift":
        x[400:, 0] += 4.0
    else:
        x[400:, 0] = 20.0 + (x[400:, 0] - 20.0) * 5.0
    scores = run_detector(Multiscale(MultiscaleConfig(), ops=OPS, meta=meta_of(2)), x)
    assert scores[400:410, 0].max() > 6.0
    assert np.quantile(scores[100:, 1], 0.99) < 5.0
