"""eval-count, the shared real-data format, its splits, head density targets and causal smoothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from analytics.vision.detectors.base import Detections
from analytics.vision.evaluation import CountMetrics, evaluate, write_report
from analytics.vision.framecount import CausalSmoother, FrameCounter, RegionChoice, SmoothedCounter
from analytics.vision.realdata import (
    DatasetError,
    density_target,
    knn_sigmas,
    load_dataset,
    perspective_sigmas,
    shared_data_root,
)
from analytics.vision.training.density_mix import PointSample, random_crop, real_samples
from tower.cli import main


def _squares(n: int, *, size: tuple[int, int] = (96, 128)) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A black frame with `n` separate white squares (one "head" each)."""
    img = np.zeros((*size, 3), np.uint8)
    heads = []
    for k in range(n):
        x, y = 8 + 20 * (k % 5), 8 + 20 * (k // 5)
        img[y : y + 8, x : x + 8] = 255
        heads.append((x + 4.0, y + 4.0))
    return img, heads


class BlobCounter(FrameCounter):
    """Counts white squares: exact on `_squares` frames, so every error comes from the truth files."""

    name = "blobs"

    def count(self, images: Sequence[np.ndarray]) -> list[float]:
        out = []
        for img in images:
            n, _ = cv2.connectedComponents((img[..., 0] > 128).astype(np.uint8))
            out.append(float(n - 1))
        return out


def _write_dataset(root: Path, drawn: list[int], truth: list[int], *, video: bool = False) -> Path:
    """Frames with `drawn[i]` squares; counts.csv says `truth[i]` (heads.csv lists the drawn ones)."""
    root.mkdir(parents=True)
    frames = [_squares(n) for n in drawn]
    if video:
        vw = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (128, 96))
        for img, _ in frames:
            vw.write(img)
        vw.release()
    else:
        (root / "frames").mkdir()
        for i, (img, _) in enumerate(frames, start=1):
            cv2.imwrite(str(root / "frames" / f"seq_{i:06d}.png"), img)
    with (root / "counts.csv").open("w") as fh:
        fh.write("frame,count\n" + "".join(f"{i},{t}\n" for i, t in enumerate(truth, start=1)))
    with (root / "heads.csv").open("w") as fh:
        fh.write("frame,x,y\n")
        for i, (_, heads) in enumerate(frames, start=1):
            fh.write("".join(f"{i},{x},{y}\n" for x, y in heads))
    return root


def test_eval_count_reports_the_known_error_of_a_known_counter(tmp_path):
    drawn = [1, 2, 3, 4, 5, 6, 7, 8]
    truth = [1, 2, 3, 4, 5, 6, 9, 5]  # val = frames 7-8: errors -2 and +3
    ds = load_dataset(_write_dataset(tmp_path / "seq", drawn, truth))
    (run,) = evaluate(ds, "val", [BlobCounter])
    assert run.keys == ["7", "8"]
    m = run.metrics
    assert m.mae == pytest.approx(2.5)
    assert m.rmse == pytest.approx(np.sqrt((4 + 9) / 2))
    assert m.bias == pytest.approx(0.5)
    assert m.rel_mae == pytest.approx(2.5 / 7)
    paths = write_report(tmp_path / "out", ds, "val", [run])
    blob = json.loads(paths["json"].read_text())
    assert blob["backends"][0]["mae"] == pytest.approx(2.5)
    assert paths["plot"].stat().st_size > 1000
    rows = list(csv.reader(paths["csv"].read_text().splitlines()))
    assert rows == [["key", "true", "blobs"], ["7", "9", "7.00"], ["8", "5", "8.00"]]


def test_eval_count_reads_a_video_and_counts_a_region_against_the_heads_inside_it(tmp_path):
    drawn = [3, 6, 9, 10]
    ds = load_dataset(_write_dataset(tmp_path / "vid", drawn, drawn, video=True))
    assert ds.video is not None
    (run,) = evaluate(ds, "all", [BlobCounter], region=(0, 0, 128, 26))  # first row of squares only
    assert run.true == [3.0, 5.0, 5.0, 5.0]
    assert run.metrics.mae == pytest.approx(0.0)


def test_the_eval_count_command_writes_a_report_with_a_real_backend(tmp_path, capsys):
    root = _write_dataset(tmp_path / "seq", [0, 1, 2, 3], [0, 1, 2, 3])
    out = tmp_path / "report"
    assert (
        main(["eval-count", str(root), "--split", "all", "--backends", "density-sim", "--out", str(out)]) == 0
    )
    blob = json.loads((out / "report.json").read_text())
    (b,) = blob["backends"]
    assert b["backend"] == "density-sim"
    assert b["frames"] == 4
    assert b["fps"] > 0
    pred = [float(r["density-sim"]) for r in csv.DictReader((out / "counts.csv").read_text().splitlines())]
    assert b["mae"] == pytest.approx(np.mean(np.abs(np.array(pred) - [0, 1, 2, 3])), abs=0.01)
    assert "| density-sim | 4 |" in capsys.readouterr().out


def test_eval_count_refuses_what_is_not_a_dataset(tmp_path, capsys):
    assert main(["eval-count", str(tmp_path)]) == 1
    assert "counts.csv" in capsys.readouterr().err
    assert main(["eval-count", str(tmp_path), "--backends", "sift"]) == 2
    (tmp_path / "counts.csv").write_text("when,count\n")
    with pytest.raises(DatasetError, match="header"):
        load_dataset(tmp_path)


def test_splits_are_written_once_and_deterministic():
    m = CountMetrics.of([1, 2], [1, 2])
    assert m.mae == 0
    data = shared_data_root()
    if not data.is_dir():
        pytest.fail(f"real data expected beside the repository at {data} (../shared/data)")
    mall = load_dataset(data / "mall")
    val = mall.split("val")
    assert [val[0].index, val[-1].index, len(val)] == [601, 800, 200]
    assert [i.index for i in mall.split("train")] == list(range(1, 601))
    b = load_dataset(data / "shtech-b")
    ids = [i.index for i in b.split("val")]
    assert ids == [i.index for i in load_dataset(data / "shtech-b").split("val")]
    assert all(i % 5 == 0 for i in ids)
    assert len(ids) == 80
    assert not {i.index for i in b.split("train")} & set(ids)


def test_density_targets_hold_one_person_per_head_inside_the_frame():
    rng = np.random.default_rng(0)
    heads = rng.uniform([0, 0], [320, 240], size=(60, 2))
    heads = np.vstack([heads, [[0.2, 0.3], [319.9, 239.9], [400.0, 10.0], [-3.0, 5.0]]])  # 2 on edges, 2 out
    for sig in (
        knn_sigmas(heads),
        perspective_sigmas(heads, np.linspace(10, 1, 240)[:, None] * np.ones((1, 320))),
    ):
        assert sig.shape == (64,)
        assert (sig >= 1.5).all()
        t = density_target(heads, sig, height=240, width=320)
        assert t.shape == (30, 40)
        assert t.sum() == pytest.approx(62.0, rel=1e-5)


def test_training_crops_keep_the_people_they_show():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    pts = rng.uniform([0, 0], [400, 300], size=(80, 2))
    s = PointSample(img, pts, np.full(80, 4.0), "x")
    for seed in range(5):
        crop, target = random_crop(s, 128, np.random.default_rng(seed), (0.7, 1.4))
        assert crop.shape == (128, 128, 3)
        assert target.shape == (16, 16)
        # mass of whole people only: an integer number of heads landed in the crop
        assert target.sum() == pytest.approx(round(float(target.sum())), abs=1e-3)


def test_a_train_side_hold_out_leaves_out_exactly_its_items(tmp_path):
    root = _write_dataset(tmp_path / "ds", [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8])
    # train split = frames 1-6; hold out every 3rd: frames 3 and 6
    kept = real_samples(root, "train", hold_out_every=3)
    held = real_samples(root, "train", hold_out_every=3, held_out=True)
    assert [len(s.points) for s in kept] == [1, 2, 4, 5]
    assert [len(s.points) for s in held] == [3, 6]


def test_smoothing_uses_the_past_only():
    rng = np.random.default_rng(2)
    prefix = list(rng.integers(20, 30, 30).astype(float))
    a = prefix + [25.0] * 10
    b = prefix + [90.0] * 10
    sa, sb = CausalSmoother(), CausalSmoother()
    out_a = [sa.update(v) for v in a]
    out_b = [sb.update(v) for v in b]
    assert out_a[:30] == out_b[:30]  # a different future changes nothing before it
    assert out_b[30] == 90.0  # a jump is taken at once
    # a frame where one person is hidden is not a frame one person short
    s = CausalSmoother()
    vals = [s.update(v) for v in [10.0, 10.0, 10.0, 9.0, 10.0]]
    assert vals[3] > 9.4


def test_smoothed_counter_resets_between_videos():
    sc = SmoothedCounter(BlobCounter(), CausalSmoother())
    img3, _ = _squares(3)
    img5, _ = _squares(5)
    assert sc.count([img3, img3, img5]) == pytest.approx([3.0, 3.0, 4.0])
    sc.reset()
    assert sc.count([img5]) == [5.0]


def test_region_choice_counts_boxes_where_sparse_and_density_where_dense():
    density = np.zeros((16, 16), np.float32)  # 128 x 128 px, tiles of 64 px
    density[0:8, 0:8] = 6.0 / 64  # dense tile: 6 people
    density[8:16, 8:16] = 0.5 / 64  # sparse tile: half a person by density
    boxes = np.array([[70, 70, 80, 100], [100, 80, 110, 120], [10, 10, 20, 40]], float)  # 2 sparse, 1 dense
    det = Detections(boxes=boxes, scores=np.ones(3))
    choice = RegionChoice(tile=64, sparse_below=1.0)
    assert choice.combine(density, det) == pytest.approx(6.0 + 2.0)
    assert choice.combine(density, None) == pytest.approx(6.5)


def test_person_scale_from_a_calibrated_camera_matches_projected_people():
    from analytics.vision.scale import PersonScale
    from beffroi.geometry import PinholeCamera

    cam = PinholeCamera(x=0, y=0, height_m=8.0, heading_deg=0, tilt_deg=35, fov_deg=60, width=640, height=480)
    scale = PersonScale.from_camera(cam)
    for y in (12.0, 18.0, 30.0):
        for x in (-3.0, 0.0, 3.0):
            (foot,), _ = cam.project([[x, y, 0.0]])
            (head,), _ = cam.project([[x, y, 1.7]])
            if 0 <= foot[1] < 480:
                assert scale.height_px([foot[1]])[0] == pytest.approx(foot[1] - head[1], rel=0.08)
    near, far = scale.height_px([470.0, 200.0])
    assert near > far
    assert scale.detector_upscale([200.0]) > scale.detector_upscale([470.0]) >= 1.0
    sig = scale.head_sigmas(np.array([[320.0, 150.0], [320.0, 400.0]]))
    assert sig[1] > sig[0]


def test_person_scale_is_estimated_from_boxes_despite_outliers():
    from analytics.vision.scale import PersonScale

    rng = np.random.default_rng(3)
    feet = rng.uniform(150, 470, 60)
    heights = 0.4 * feet - 20 + rng.normal(0, 2, 60)
    heights[:8] = rng.uniform(5, 300, 8)  # false boxes
    boxes = np.column_stack([np.zeros(60), feet - heights, np.full(60, 20.0), feet])
    frames = [Detections(boxes=boxes[i::3], scores=np.ones(len(boxes[i::3]))) for i in range(3)]
    scale = PersonScale.from_detections(frames)
    assert scale.slope == pytest.approx(0.4, abs=0.05)
    assert scale.height_px([400.0])[0] == pytest.approx(140.0, rel=0.06)
    with pytest.raises(ValueError, match="too few"):
        PersonScale.from_detections([Detections.empty()])


def test_train_density_on_real_format_data_writes_head_weights_and_resumes(tmp_path, tiny_dataset):
    import torch

    from analytics.vision.density.model import DensityEstimator

    root = _write_dataset(tmp_path / "seq", [2, 3, 4, 5, 6, 7, 8, 9], [2, 3, 4, 5, 6, 7, 8, 9])
    out = tmp_path / "heads.pt"
    args = ["train-density", "--real", str(root), "--frames", str(tiny_dataset), "--out", str(out)]
    args += ["--epochs", "2", "--steps-per-epoch", "2", "--batch", "2", "--crop", "64", "--width", "8"]
    args += ["--dilated", "1", "--threads", "1"]
    assert main(args) == 0
    blob = torch.load(out, weights_only=True)
    assert blob["meta"]["anchor"] == "head"
    assert blob["meta"]["trained_on"] == {"seq": 6, "simulator": 8}  # train split: frames 1-6
    assert blob["meta"]["epochs_done"] == 2
    assert main([*args[:-2], "--epochs", "3", "--resume", "--threads", "1"]) == 0
    assert torch.load(out, weights_only=True)["meta"]["epochs_done"] == 3
    (m,) = DensityEstimator(out, device="cpu").estimate([np.zeros((96, 128, 3), np.uint8)])
    assert m.shape == (12, 16)


def test_count_with_no_flag_uses_the_default_choice(sim_video, tmp_path, capsys):
    video, _ = sim_video
    out = tmp_path / "counts.csv"
    assert main(["count", str(video), "--out", str(out)]) == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["frame_index", "count"]
    assert [int(r[0]) for r in rows[1:]] == list(range(20))
    assert all(float(r[1]) >= 0 for r in rows[1:])
    hog = tmp_path / "hog.csv"
    assert main(["count", str(video), "--backend", "hog", "--upscale", "auto", "--out", str(hog)]) == 0
    assert "scale from the footage" in capsys.readouterr().err
    assert len(hog.read_text().splitlines()) == 21


def test_discrete_count_counts_apart_people_whole_and_crowds_by_mass():
    from analytics.vision.framecount import discrete_count

    m = np.full((30, 40), 0.01, np.float32)  # noise on an empty floor: dropped
    m[2:4, 2:4] = 0.9 / 4  # one person, under-estimated
    m[10:12, 20:22] = 1.2 / 4  # one person, over-estimated
    m[20:26, 5:15] = 7.3 / 60  # a crowd
    assert discrete_count(m) == pytest.approx(1 + 1 + 7.3, abs=1e-4)
    assert discrete_count(np.zeros((5, 5), np.float32)) == 0.0


#: the shipped model's MAE on those frames is 8.8 (bench_count, 06:48 UTC 2 Dec): a regression beyond
#: 12 fails
MALL_REGRESSION_MAE = 12.0


def test_the_shipped_default_holds_on_a_few_real_validation_frames():
    """Regression check on real footage (../shared/data beside the clone): 8 Mall validation frames.

    The bound is the shipped model's error on these frames (MALL_REGRESSION_MAE) with a margin."""
    from analytics.vision.evaluation import run_backend
    from analytics.vision.framecount import make_counter

    data = shared_data_root()
    if not (data / "mall").is_dir():
        pytest.fail(f"real data expected beside the repository at {data} (../shared/data)")
    ds = load_dataset(data / "mall")
    got = run_backend(ds, ds.split("val")[::25], make_counter("auto", sequence=False))
    assert got.metrics.frames == 8
    assert got.metrics.mae <= MALL_REGRESSION_MAE


def test_training_frames_are_blacked_out_of_the_counting_region_as_eval_count_sees_them(tmp_path):
    root = _write_dataset(tmp_path / "ds", [5, 5, 5, 5], [5, 5, 5, 5])
    roi = np.zeros((96, 128), np.uint8)
    roi[:, :64] = 255  # the left half counts
    cv2.imwrite(str(root / "roi_mask.png"), roi)
    (frames, _), (sample,) = _squares(5), real_samples(root, "train")[:1]
    assert frames[:, 64:].any()  # the frame shows white squares on the right...
    assert not sample.image[:, 64:].any()  # ...which training never sees
    assert (sample.image[:, :64] == frames[:, :64]).all()


def test_training_keeps_the_averaged_weights_of_the_best_hold_out_epoch(tmp_path, tiny_dataset):
    import torch

    from analytics.vision.density.model import load_density
    from analytics.vision.training.density_mix import holdout_error

    root = _write_dataset(tmp_path / "seq", list(range(2, 14)), list(range(2, 14)))
    out = tmp_path / "heads.pt"
    args = ["train-density", "--real", str(root), "--out", str(out), "--epochs", "3"]
    args += ["--steps-per-epoch", "2", "--batch", "2", "--crop", "64", "--width", "8", "--dilated", "1"]
    args += ["--threads", "1", "--hold-out-every", "3", "--select-on-hold-out", "4", "--ema", "0.9"]
    args += ["--local-loss", "1", "--balance"]
    assert main(args) == 0
    meta = torch.load(out, weights_only=True)["meta"]
    ckpt = torch.load(out.with_suffix(".pt.ckpt"), weights_only=False)
    assert ckpt["epoch"] == 3
    assert meta["trained_on"] == {"seq": 6}  # train split frames 1-9, less 3, 6 and 9
    # OUT holds the epoch of the lowest hold-out score, and that score is the best one seen
    assert meta["holdout_score"] == pytest.approx(ckpt["best"])
    held = real_samples(root, "train", hold_out_every=3, held_out=True)
    assert holdout_error(load_density(out), held)["score"] == pytest.approx(ckpt["best"], rel=1e-4)
    # the averaged weights are not the last optimiser step's
    last = ckpt["model"]
    assert any(not torch.equal(v, last[k]) for k, v in ckpt["ema"].items() if v.is_floating_point())


def test_a_head_map_lands_on_the_feet_row_of_its_people():
    from analytics.vision.scale import PersonScale

    scale = PersonScale((0.5, -40.0))  # a person whose feet are at row v is 0.5 v - 40 px tall
    m = np.zeros((60, 80), np.float32)  # 480 x 640 px
    m[20, 10] = 1.0  # a head at row 164: feet at v = 164 + 0.9 (0.5 v - 40) = 232.7 -> cell 29
    m[58, 40] = 2.0  # heads near the bottom: feet below the frame, outside every zone
    out = scale.heads_to_feet(m)
    assert scale.feet_rows([164.0])[0] == pytest.approx(232.7, abs=0.1)
    assert out[29, 10] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(1.0)
