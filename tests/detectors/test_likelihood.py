"""The anomaly-likelihood step: calibrated on normal data, decisive on anomalies, per stream."""

from __future__ import annotations

import numpy as np

from analytics.detectors.backend import make_ops
from analytics.likelihood import AnomalyLikelihood, LikelihoodConfig

OPS = make_ops("numpy")


def feed(raw: np.ndarray, present: np.ndarray | None = None, config: LikelihoodConfig | None = None):
    lk = AnomalyLikelihood(config or LikelihoodConfig(), ops=OPS, n=raw.shape[1])
    lik, score = [], []
    for t, row in enumerate(raw):
        w = np.ones(raw.shape[1], np.float32) if present is None else present[t].astype(np.float32)
        out = lk.update(row.astype(np.float32), w)
        lik.append(out.likelihood)
        score.append(out.score)
    return np.array(lik), np.array(score), lk


def test_uniform_ish_under_the_null_whatever_the_raw_scale():
    rng = np.random.default_rng(0)
    scale = np.repeat([0.5, 5.0], 60)  # two families of streams whose raw scores differ 10x
    raw = np.abs(rng.standard_normal((3000, 120))) * scale
    lik, score, _ = feed(raw)
    for family in (slice(0, 60), slice(60, 120)):
        settled = lik[800:, family]
        deciles = np.histogram(settled, bins=10, range=(0, 1))[0] / settled.size
        assert deciles.min() > 0.045
        assert deciles.max() < 0.145
        assert (settled > 0.99).mean() < 0.02
    assert np.quantile(score[800:], 0.999) < 0.4


def test_a_sustained_anomaly_becomes_near_certain():
    rng = np.random.default_rng(1)
    raw = np.abs(rng.standard_normal((800, 4)))
    raw[700:710, 1] = 12.0
    lik, score, _ = feed(raw)
    assert lik[703, 1] > 0.9999
    assert score[703, 1] > 0.4
    assert score[703, [0, 2, 3]].max() < 0.3


def test_warm_up_and_absent_streams():
    raw = np.ones((60, 2))
    present = np.ones((60, 2), bool)
    present[:, 1] = False
    lik, score, lk = feed(raw, present, LikelihoodConfig(min_count=50))
    assert np.all(lik[:49] == 0.5)
    assert np.all(score[:49] == 0.0)
    assert lk.state["count"][1] == 0.0  # nothing learned from a stream that sent nothing
    assert np.all(lik[:, 1] == 0.5)
