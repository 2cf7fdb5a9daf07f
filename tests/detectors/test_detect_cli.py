"""`beffroi detect --csv IN --out OUT`: one row out per row in, scores in [0, 1], no look-ahead."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from analytics.detectors.series import SeriesConfig
from tower.cli import main


def write_series(path: Path, values, *, step_s: float = 300.0, stamps=None) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for i, v in enumerate(values):
            ts = (
                stamps[i]
                if stamps is not None
                else f"2015-02-{1 + int(i * step_s // 86400):02d} "
                + (f"{int(i * step_s % 86400 // 3600):02d}:{int(i * step_s % 3600 // 60):02d}:00")
            )
            w.writerow([ts, "" if v is None else v])
    return path


def detect(tmp_path: Path, name: str, values, **kw) -> list[dict[str, str]]:
    src = write_series(tmp_path / f"{name}.csv", values, **kw)
    out = tmp_path / f"{name}.scored.csv"
    assert main(["detect", "--csv", str(src), "--out", str(out)]) == 0
    with out.open() as f:
        return list(csv.DictReader(f))


def noisy(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(v), 3) for v in 50 + rng.normal(0, 2, n)]


def test_one_row_per_row_scores_in_range_and_a_spike_stands_out(tmp_path):
    values = noisy(600)
    values[450] = 85.0
    rows = detect(tmp_path, "spike", values)
    assert len(rows) == 600
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert [r["value"] for r in rows[:3]] == [str(v) for v in values[:3]]
    assert scores[450] == scores.max()
    assert scores[450] > 0.5
    assert np.all(scores[: SeriesConfig().core.warmup] == 0.0)  # warm-up
    assert np.quantile(np.delete(scores, range(450, 456)), 0.99) < 0.5


def test_no_look_ahead_appending_rows_leaves_earlier_scores_unchanged(tmp_path):
    values = noisy(500, seed=1)
    values[420] = 90.0
    full = detect(tmp_path, "full", values)
    head = detect(tmp_path, "head", values[:400])
    assert [r["anomaly_score"] for r in full[:400]] == [r["anomaly_score"] for r in head]


def test_gaps_irregular_stamps_and_constant_series(tmp_path):
    values: list[float | str | None] = list(noisy(400, seed=2))
    values[200] = None
    values[201] = "NaN"
    rng = np.random.default_rng(3)
    stamps = np.cumsum(rng.integers(30, 900, 400)) + 1_420_070_400
    rows = detect(tmp_path, "gappy", values, stamps=[str(s) for s in stamps])
    assert len(rows) == 400
    assert rows[200]["anomaly_score"] == rows[201]["anomaly_score"] == "0.000000"
    flat = detect(tmp_path, "flat", [7.0] * 400)
    assert max(float(r["anomaly_score"]) for r in flat) < 0.1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "flat.csv:1: empty file"),
        ("time,val\n1,2\n", "flat.csv:1: header must name"),
        ("timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,abc\n", "flat.csv:3: value 'abc'"),
        ("timestamp,value\nyesterday,1\n", "flat.csv:2: timestamp 'yesterday'"),
        ("timestamp,value\n2015-01-01 00:00:00\n", "flat.csv:2: expected 2 columns"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, capsys, content, message):
    src = tmp_path / "flat.csv"
    src.write_text(content)
    assert main(["detect", "--csv", str(src), "--out", str(tmp_path / "out.csv")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
