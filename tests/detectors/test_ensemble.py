"""The forecast-ensemble core: streaming (no look-ahead), batched = one by one, periods from the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analytics.detectors.backend import make_ops
from analytics.detectors.ensemble import (
    LEVELS,
    EnsembleConfig,
    _rarity,
    dominant_period,
    score_streams,
    state_spec,
)
from analytics.scoring.baselines import rolling_zscore
from analytics.scoring.corpus import load_corpus
from analytics.scoring.series_eval import evaluate

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "anomaly"


def real_corpus() -> Path:
    """The real streams beside the clone (CI lays ../shared there): missing data fails, never skips."""
    if not REAL.is_dir():
        pytest.fail(f"the real anomaly corpus is missing: expected {REAL} (../shared/data/anomaly)")
    return REAL


CONFIG = EnsembleConfig(period_every=64, history=512)  # period searches happen within the test


def seasonal(n: int, period: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10.0 + 3.0 * np.sin(2 * np.pi * t / period) + rng.normal(0.0, 0.3, n)


def test_scores_of_a_prefix_are_the_prefix_of_the_scores() -> None:
    x = seasonal(900, 37, 1)
    x[700] += 6.0
    x[800:] += 4.0
    full = score_streams([x], CONFIG)[0]
    for cut in (65, 300, 701, 805):
        assert np.array_equal(score_streams([x[:cut]], CONFIG)[0], full[:cut])


def test_batched_streams_score_as_each_alone() -> None:
    a, b = seasonal(700, 24, 2), seasonal(400, 50, 3) * 100.0
    b[[120, 333]] = np.nan
    together = score_streams([a, b], CONFIG)
    assert np.array_equal(together[0], score_streams([a], CONFIG)[0])
    assert np.array_equal(together[1], score_streams([b], CONFIG)[1 - 1])
    assert together[1][120] == 0.0


def test_a_spike_and_a_level_shift_score_highest_at_their_onsets() -> None:
    x = seasonal(1200, 48, 4)
    x[700] += 5.0
    x[1000:] -= 3.0
    s = score_streams([x], EnsembleConfig())[0]
    normal = s[200:700]
    assert s[700] > normal.max() + 0.05  # a record for this stream
    assert s[1000:1003].max() > max(np.quantile(normal, 0.99), 0.5)
    assert ((s >= 0.0) & (s <= 1.0)).all()


@pytest.mark.parametrize("period", [12, 37, 96])
def test_dominant_period_is_found_from_the_data(period: int) -> None:
    found = dominant_period(seasonal(8 * period + 50, period, 5), 4, 0.3)
    assert found >= period - 1
    assert min(found % period, period - found % period) <= 1  # the period or a multiple (weekly > daily)
    noise = np.random.default_rng(6).normal(size=600)
    assert dominant_period(noise, 4, 0.3) == 0


def test_a_held_out_real_series_scores_above_the_naive_baseline() -> None:
    files = load_corpus(real_corpus(), keys=["ucr/137_UCR_Anomaly_InternalBleeding18_2300_4485_4587.csv"])
    scores = {"core": score_streams([files[0].values]), "zscore": [rolling_zscore(files[0].values)]}
    result = evaluate(files, scores)
    assert result["core"]["standard"].score > result["zscore"]["standard"].score + 50.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_ladder_counts_each_level_z_reaches_at_the_exact_edges(dtype: str) -> None:
    """The levels reached come from log(z): at, just under and just over every edge, the counts
    raised are exactly those of the levels with z >= level, and the record follows."""
    ops = make_ops("numpy", dtype=dtype)
    cfg = EnsembleConfig(season=False)
    edges = np.array(LEVELS)
    z = np.concatenate([[0.0, 1.0, 1e18], edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])
    z = z.astype(dtype)
    n = len(z)
    st = {k: ops.full((n, s.cols) if s.cols else (n,), s.fill) for k, s in state_spec(cfg).items()}
    _rarity(ops, st, ops.asarray(z), ops.full((n,), 1.0), 1, cfg)
    expected = (z[:, None] >= np.array(LEVELS, dtype=dtype)[None, :]).astype(dtype)
    nl = len(LEVELS)
    np.testing.assert_array_equal(st["tail"][:, nl:], expected)
    np.testing.assert_array_equal(st["tail"][:, :nl], 0.0)
    np.testing.assert_array_equal(st["record"][:, 1], expected.sum(axis=1))


def test_the_count_prior_adds_its_decades_to_detections_of_count_streams_only() -> None:
    """A stream of non-negative integers gets `count_bonus` more decades on each detection, from
    its first row on, until a value that is not a count arrives (row i sees rows <= i)."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(30.0, 1500).astype(np.float64)
    counts[[600, 900]] += 40.0
    other = counts + 0.5
    mixed = counts.copy()
    mixed[1000] = 30.5  # from here on not a count stream
    plain, boosted = EnsembleConfig(count_bonus=0.0), EnsembleConfig(count_bonus=1.5)

    def decades(s: np.ndarray) -> np.ndarray:
        return np.asarray(-plain.rarity_scale * np.log1p(-s))

    r0, r1 = (decades(score_streams([counts], c)[0]) for c in (plain, boosted))
    hit = r0 > 0
    assert hit[[600, 900]].all()
    np.testing.assert_allclose(r1[hit] - r0[hit], 1.5, atol=1e-6)
    assert (r1[~hit] == 0.0).all()
    assert np.array_equal(score_streams([other], plain)[0], score_streams([other], boosted)[0])
    m0, m1 = (decades(score_streams([mixed], c)[0]) for c in (plain, boosted))
    assert (m1[:1000] - m0[:1000] > 1.0).sum() == hit[:1000].sum()
    np.testing.assert_allclose(m1[1000:], m0[1000:])
