"""The NAB-style scorer on hand-made windows, against values worked out by hand.

NAB's scaled sigmoid 2/(1+exp(5p)) - 1 equals tanh(-5p/2): the expected values below use tanh.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.scoring.nab import (
    PROFILES,
    best_threshold,
    probation_rows,
    score_corpus,
    score_file,
    window_rows,
)

STD = PROFILES["standard"]
WINDOWS = [(10, 19), (40, 49)]  # two windows of 10 rows in a 60-row file


def detections(*rows: int, n: int = 60) -> np.ndarray:
    d = np.zeros(n, bool)
    d[list(rows)] = True
    return d


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_null_detector_scores_0_and_perfect_scores_100(profile):
    assert score_corpus([(detections(), WINDOWS)], profile, probation=0).score == pytest.approx(0.0)
    assert score_corpus([(detections(10, 40), WINDOWS)], profile, probation=0).score == pytest.approx(100.0)


def test_detection_mid_window_earns_the_sigmoid_value():
    # row 14 in [10, 19]: position -(19 - 14 + 1)/10 = -0.6 -> tanh(1.5), scaled by the max tanh(2.5)
    result = score_file(detections(14), WINDOWS, STD, probation=0)
    assert result.raw == pytest.approx(math.tanh(1.5) / math.tanh(2.5) - 1.0)
    assert result.detected == 1
    assert result.first_detection == (14, None)


def test_only_the_best_detection_of_a_window_counts():
    once = score_file(detections(12), WINDOWS, STD, probation=0).raw
    assert score_file(detections(12, 13, 18), WINDOWS, STD, probation=0).raw == pytest.approx(once)


def test_false_positives_cost_fp_weight_less_just_after_a_window():
    # before any window: -fp; row 22 after [10, 19]: position |19 - 22| / 9 -> -tanh(5/6) * fp
    result = score_file(detections(5, 22), WINDOWS, STD, probation=0)
    expected_fp = -STD.fp - math.tanh(5 / 6) * STD.fp
    assert result.raw == pytest.approx(-2 * STD.fn + expected_fp)
    assert result.false_positives == 2
    low_fp = score_file(detections(5, 22), WINDOWS, PROFILES["reward_low_FP_rate"], probation=0)
    assert low_fp.raw < result.raw


def test_missed_windows_cost_more_under_reward_low_fn():
    low_fn = score_corpus([(detections(10), WINDOWS)], PROFILES["reward_low_FN_rate"], probation=0)
    std = score_corpus([(detections(10), WINDOWS)], STD, probation=0)
    # one of two windows found at once: raw = 1 - fn; normalised (raw + 2 fn) / (2 + 2 fn)
    assert std.score == pytest.approx(100 * (1 - 1 + 2) / 4)
    assert low_fn.score == pytest.approx(100 * (1 - 2 + 4) / 6)


def test_probationary_rows_are_not_scored():
    assert probation_rows(1000) == 150
    assert probation_rows(100_000) == 750
    result = score_file(detections(3, n=60), WINDOWS, STD)  # 15 % of 60 rows = 9 rows of probation
    assert result.false_positives == 0


def test_window_rows_maps_times_to_rows_and_best_threshold_finds_the_gap():
    ts = np.arange(60) * 60.0
    assert window_rows(ts, [(600.0, 1140.0), (2400.0, 2940.0)]) == WINDOWS
    scores = np.full(60, 0.1)
    scores[[10, 40]] = 0.9
    scores[30] = 0.5
    threshold, result = best_threshold([(scores, WINDOWS)], STD, probation=0)
    assert 0.5 < threshold <= 0.9
    assert result.score == pytest.approx(100.0)
