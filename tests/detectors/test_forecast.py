"""The learned forecaster: `beffroi train` on recorded readings, then scoring forecast errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analytics.detectors.backend import make_ops
from analytics.detectors.base import KIND_ORDER, StreamMeta
from analytics.detectors.forecast_model import ModelFileError, load_weights
from analytics.detectors.plugins.forecast import Forecast, ForecastConfig
from beffroi.devices import DeviceKind
from tests.detectors.synthetic import run_detector
from tower.cli import main
from tower.testing import reading

T0 = datetime(2024, 7, 26, 12, 0, tzinfo=UTC)


def wave(n: int, seed: int, period: float = 60.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values: np.ndarray = 60 + 8 * np.sin(2 * np.pi * t / period + seed) + rng.normal(0, 0.5, n)
    return values


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("recorded")
    with (data / "readings.jsonl").open("w") as f:
        for dev in range(4):
            values = wave(900, dev)
            values[500:520] += 30  # an incident, labelled below: not a normal stretch
            for i, v in enumerate(values):
                r = reading(
                    f"snd-{dev}",
                    {"dba": round(float(v), 2)},
                    kind=DeviceKind.ACOUSTIC,
                    ts=T0 + timedelta(seconds=5 * i),
                )
                f.write(r.model_dump_json() + "\n")
    labels = [
        {
            "id": "i1",
            "type": "sound_spike",
            "site": "site-1",
            "start": (T0 + timedelta(seconds=2490)).isoformat(),
            "end": (T0 + timedelta(seconds=2610)).isoformat(),
        }
    ]
    (data / "labels.json").write_text(json.dumps(labels))
    out: Path = data / "model.pt"
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "3"]) == 0
    return out


def acoustic_meta(n: int) -> StreamMeta:
    meta = StreamMeta.generic(n)
    return StreamMeta(
        meta.low,
        meta.high,
        meta.resolution,
        np.full(n, KIND_ORDER.index(DeviceKind.ACOUSTIC), dtype=np.int64),
        meta.group,
    )


def test_trained_model_beats_no_change_and_flags_a_spike(model, capsys):
    weights = load_weights(model)
    assert float(weights.info["val_mae"]) < float(weights.info["naive_mae"])
    x = np.stack([wave(600, 10 + i) for i in range(3)], axis=1).astype(np.float32)
    x[450, 1] += 12.0
    det = Forecast(ForecastConfig(model_path=model), ops=make_ops("numpy"), meta=acoustic_meta(3))
    scores = run_detector(det, x)
    assert scores[450, 1] > 6.0
    assert np.quantile(np.delete(scores[100:], 350, axis=0), 0.99) < 4.5


def test_numpy_and_torch_agree_on_the_forecaster(model):
    x = np.stack([wave(300, 20 + i) for i in range(4)], axis=1).astype(np.float32)
    present = np.random.default_rng(1).random(x.shape) > 0.1
    outs = [
        run_detector(
            Forecast(ForecastConfig(model_path=model), ops=ops, meta=acoustic_meta(4)), x, present=present
        )
        for ops in (make_ops("numpy"), make_ops("torch", device="cpu"))
    ]
    assert outs[0].max() > 0
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)


def test_missing_or_foreign_model_file_names_the_path(tmp_path, capsys):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_weights(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"junk\.pt"):
        load_weights(tmp_path / "junk.pt")
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "nowhere: not a directory" in capsys.readouterr().err
