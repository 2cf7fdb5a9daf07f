"""A generic synthetic suite for `beffroi detect` (not our simulator): spikes, level shifts,
variance changes and trend changes on a seasonal series, at very different scales and offsets.
The anomaly_score must separate the anomaly from the normal stretch, without look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.detectors.series import Row, score_rows

N, ONSET, WINDOW = 1200, 800, 60


def series(kind: str, *, scale: float, offset: float, seed: int = 1) -> list[Row]:
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    x = 2.0 * np.sin(2 * np.pi * t / 96) + rng.normal(0.0, 1.0, N)  # a daily cycle at 15 min
    if kind == "spike":
        x[ONSET] += 12.0
    elif kind == "level_shift":
        x[ONSET:] += 6.0
    elif kind == "variance":
        x[ONSET:] += rng.normal(0.0, 4.0, N - ONSET)
    elif kind == "trend":
        x[ONSET:] += 0.15 * (t[ONSET:] - ONSET)
    values = offset + scale * x
    return [
        Row(line=i + 2, timestamp=str(i), t=1.4e9 + 900.0 * i, value=float(v), value_text=repr(float(v)))
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize("kind", ["spike", "level_shift", "variance", "trend"])
@pytest.mark.parametrize(("scale", "offset"), [(1e-3, 0.0), (1.0, 50.0), (1e4, 1e6), (0.5, -20.0)])
def test_anomaly_stands_out_of_the_normal_stretch(kind: str, scale: float, offset: float) -> None:
    rows = series(kind, scale=scale, offset=offset)
    scores = np.array(score_rows(rows))
    assert ((scores >= 0.0) & (scores <= 1.0)).all()
    normal = scores[300:ONSET]  # after warm-up, before the anomaly
    # a 0.15 sd/row ramp is out of the recent distribution after about 90 rows (13 sd)
    anomaly = scores[ONSET : ONSET + (90 if kind == "trend" else WINDOW)]
    # scores are calibrated rarities: the normal stretch's largest is "once in its length", the
    # anomaly's is rarer than anything this stream has had
    assert anomaly.max() > normal.max() + 0.05
    assert anomaly.max() > 0.5


@pytest.mark.parametrize("kind", ["spike", "level_shift"])
def test_scores_do_not_look_ahead(kind: str) -> None:
    rows = series(kind, scale=3.0, offset=10.0)
    full = score_rows(rows)
    cut = ONSET + 5
    assert score_rows(rows[:cut]) == full[:cut]
