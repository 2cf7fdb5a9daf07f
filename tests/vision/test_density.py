import json

import numpy as np
import pytest
import torch

from analytics.vision.density.model import DensityEstimator, load_density
from analytics.vision.training.density import target_map
from tower.cli import main


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


def test_the_estimator_folds_batch_norm_without_changing_the_maps():
    from analytics.vision.service import WEIGHTS

    est = DensityEstimator(WEIGHTS / "density.pt", device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in est.net.modules())
    frames = [np.random.default_rng(s).integers(0, 255, (64, 96, 3), dtype=np.uint8) for s in range(2)]
    raw = load_density(WEIGHTS / "density.pt")
    with torch.inference_mode():
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
        want = (raw(x)[:, 0].clamp(min=0.0) / 100.0).numpy()
    for got, w in zip(est.estimate(frames), want, strict=True):
        np.testing.assert_allclose(got, w, atol=1e-4)


def test_the_density_model_can_skip_the_rows_above_the_counting_region():
    from analytics.vision.service import WEIGHTS
    from tests.vision.scenes import CCTV_POSES, cctv_scene, crowd_frames

    est = DensityEstimator(WEIGHTS / "density.pt", device="cpu")
    frame, _ = next(iter(crowd_frames(cctv_scene(CCTV_POSES[0]), density=2.0, seeds=range(1000, 1001))))
    (full,) = est.estimate([frame])
    (cut,) = est.estimate([frame], from_rows=[160])
    assert cut.shape == full.shape
    assert (cut[: 160 // 8] == 0).all()
    below = slice((160 + 64) // 8, None)  # away from the cut, the network sees the same pixels
    assert cut[below].sum() == pytest.approx(full[below].sum(), rel=0.02)
    with pytest.raises(ValueError, match="multiples of 8"):
        est.estimate([frame], from_rows=[100])
