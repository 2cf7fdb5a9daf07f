import json

import numpy as np
import pytest
import torch

from analytics.vision.density.model import DensityEstimator, load_density
from analytics.vision.training.density import target_map
from beffroi.cli import main


def test_targets_put_each_person_whole_on_the_grid(tiny_dataset):
    rec = json.loads((tiny_dataset / "truth.jsonl").read_text().splitlines()[-1])
    t = target_map(rec["persons"], height=rec["height"], width=rec["width"])
    assert t.shape == (rec["height"] // 8, rec["width"] // 8)
    assert t.sum() == pytest.approx(rec["count"], rel=1e-5)
    edge = [{"foot": [1.0, rec["height"] - 1.0], "box": [0, 100, 10, rec["height"]]}]
    assert target_map(edge, height=rec["height"], width=rec["width"]).sum() == pytest.approx(1.0)


def test_train_density_writes_weights_the_estimator_loads(tiny_dataset, tmp_path):
    out = tmp_path / "density.pt"
    args = ["--frames", str(tiny_dataset), "--out", str(out), "--epochs", "2", "--width", "8", "--batch", "4"]
    args += ["--threads", "1"]
    assert main(["train-density", *args]) == 0
    est = DensityEstimator(out, device="cpu")
    frames = [np.zeros((180, 320, 3), np.uint8), np.full((180, 320, 3), 128, np.uint8)]
    maps = est.estimate(frames)
    assert [m.shape for m in maps] == [(23, 40), (23, 40)]  # 180 padded to 184
    assert all((m >= 0).all() for m in maps)


def test_density_weights_must_be_ours(tmp_path):
    bad = tmp_path / "other.pt"
    torch.save({"weights": [1, 2, 3]}, bad)
    with pytest.raises(ValueError, match="beffroi-density"):
        load_density(bad)
    with pytest.raises(FileNotFoundError, match="train-density"):
        load_density(tmp_path / "missing.pt")
