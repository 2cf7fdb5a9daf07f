"""`beffroi eval-series` on a tiny corpus in NAB's layout, the fixed split, and NAB's sweeper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analytics.scoring.corpus import (
    committed_holdout,
    corpus_keys,
    holdout_keys,
    load_corpus,
    select,
)
from analytics.scoring.nab import PROFILES, optimise, sweep_file, threshold_curve
from analytics.scoring.series_eval import evaluate
from tower.cli import main

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "anomaly"


def real_corpus() -> Path:
    """The real streams beside the clone (CI lays ../shared there): missing data fails, never skips."""
    if not REAL.is_dir():
        pytest.fail(f"the real anomaly corpus is missing: expected {REAL} (../shared/data/anomaly)")
    return REAL


N = 400
WINDOWS = {"a/one.csv": [(200, 209)], "a/two.csv": [(150, 151), (300, 319)], "b/three.csv": [(250, 259)]}


def write_corpus(root: Path) -> None:
    rng = np.random.default_rng(3)
    labels = {}
    for key, windows in WINDOWS.items():
        path = root / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        stamps = [f"2024-01-01 {h:02d}:{m:02d}:00" for h in range(24) for m in range(60)][:N]
        values = rng.normal(10.0, 1.0, N)
        for lo, _ in windows:
            values[lo] += 25.0
        path.write_text(
            "timestamp,value\n" + "".join(f"{t},{v:.4f}\n" for t, v in zip(stamps, values, strict=True))
        )
        labels[key] = [[stamps[lo] + ".000000", stamps[hi] + ".000000"] for lo, hi in windows]
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    write_corpus(tmp_path)
    return tmp_path


@pytest.mark.parametrize("profile", list(PROFILES))
def test_perfect_detector_scores_100_and_never_0(corpus: Path, profile: str) -> None:
    files = load_corpus(corpus)
    assert [f.windows for f in files] == [tuple(WINDOWS[f.key]) for f in files]
    perfect = []
    for f in files:
        s = np.zeros(len(f.values))
        s[[lo for lo, _ in f.windows]] = 1.0
        perfect.append(s)
    result = evaluate(files, {"perfect": perfect, "never": [np.zeros(N)] * len(files)})
    assert result["perfect"][profile].score == pytest.approx(100.0)
    assert result["perfect"][profile].nab_score == pytest.approx(100.0)
    assert result["perfect"][profile].per_source == pytest.approx({"a": 100.0, "b": 100.0})
    assert result["perfect"][profile].false_alarms_per_1000 == 0.0
    assert result["never"][profile].score == pytest.approx(0.0)
    assert result["never"][profile].nab_score == pytest.approx(0.0)


def test_sweeper_matches_nab_by_hand() -> None:
    std = PROFILES["standard"]
    scores = np.zeros(100)
    scores[[5, 22, 24, 60]] = [0.9, 0.8, 0.7, 0.6]  # probation = 15 rows: row 5 is not scored
    swept = sweep_file(scores, [(20, 23), (40, 49)], std)
    assert len(swept.scores) == 85
    curve = threshold_curve([swept], std)
    # window [20, 23]: row 22 is at -(23 - 22 + 1)/4 = -0.5 -> tanh(1.25)/tanh(2.5); window [40, 49]
    # is missed (-1); row 24 is 1/(4 - 1) past [20, 23] -> fp x sigmoid(1/3) = -fp tanh(5/6); row 60
    # is 11/9 past [40, 49] -> -fp tanh(55/18)
    tp = np.tanh(1.25) / np.tanh(2.5)
    fp24 = -np.tanh(5 / 6) * std.fp
    fp60 = -np.tanh(55 / 18) * std.fp
    assert curve.at(0.8)[0] == pytest.approx(tp - 1.0)
    assert curve.at(0.7)[0] == pytest.approx(tp - 1.0 + fp24)
    assert curve.at(0.6) == (pytest.approx(tp - 1.0 + fp24 + fp60), 2)
    assert curve.null == -2.0
    assert curve.perfect == 2.0
    threshold, score = optimise(curve)
    assert threshold == 0.8
    assert score == pytest.approx(100 * (tp - 1.0 + 2.0) / 4.0)


def test_window_inside_probation_is_neither_found_nor_missed() -> None:
    std = PROFILES["standard"]
    swept = sweep_file(np.zeros(100), [(2, 4), (50, 51)], std)
    curve = threshold_curve([swept], std)
    assert (swept.scorable_windows, swept.n_windows) == (1, 2)
    assert curve.null == -1.0  # as NAB's runner normalises
    assert curve.perfect == 2.0


def test_split_is_deterministic_and_keeps_every_source_in_both_parts() -> None:
    keys = [f"s{k}/f{i:02d}.csv" for k in range(4) for i in range(k + 1)] + [
        "big/x.csv",
        "big/y.csv",
        "big/z.csv",
    ]
    held = holdout_keys(keys)
    assert held == holdout_keys(list(reversed(keys)))
    assert held == ["big/z.csv", "s1/f01.csv", "s2/f02.csv", "s3/f02.csv"]
    assert set(select(keys, "dev")) | set(held) == set(keys)
    assert not set(select(keys, "dev")) & set(held)


def test_committed_holdout_list_is_what_the_split_gives_on_the_real_corpus() -> None:
    keys = corpus_keys(real_corpus())
    assert committed_holdout() == holdout_keys(keys)
    for part in ("dev", "holdout"):
        assert {k.split("/")[0] for k in select(keys, part)} == {k.split("/")[0] for k in keys}


def test_eval_series_command_writes_report_and_plots(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["eval-series", str(corpus), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    for needle in ("| standard | detect |", "| standard | zscore |", "reward_low_FN_rate", "b/three.csv"):
        assert needle in text
    assert (out / "per_source.png").stat().st_size > 0
    assert (out / "file_a.png").exists()
    printed = capsys.readouterr().out
    assert "standard" in printed
    assert "zscore" in printed


def test_eval_series_bad_corpus_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-series", str(tmp_path)]) == 2
    assert "no data/ folder" in capsys.readouterr().err
