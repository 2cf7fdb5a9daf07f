import csv

import numpy as np
import pydantic
import pytest
import torch

from analytics.vision.detectors.plugins.yolo import YoloConfig, YoloDetector
from analytics.vision.detectors.registry import PLUGINS, create_detector, detector_config
from simulators.camera.crowd import StaticConditions
from simulators.camera.render import CameraRenderer
from tests.vision.scenes import gate_scene
from tower.cli import main


def iou(a, b):
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_registry_lists_each_backend_with_its_config():
    assert set(PLUGINS) == {"hog", "yolo"}
    assert detector_config({"type": "hog", "upscale": 1.5}).upscale == 1.5
    assert isinstance(detector_config({"type": "yolo", "weights": "w.pt"}), YoloConfig)
    with pytest.raises(pydantic.ValidationError, match="ssd"):
        detector_config({"type": "ssd"})
    with pytest.raises(pydantic.ValidationError, match="weights"):
        detector_config({"type": "yolo"})
    with pytest.raises(pydantic.ValidationError, match="colour"):
        detector_config({"type": "hog", "colour": "red"})


def test_yolo_never_downloads_missing_weights(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        create_detector({"type": "yolo", "weights": str(tmp_path / "yolo11n.pt")})
    assert no_network.attempts == []


def scene_frames(*, density, seeds, **pose):
    for seed in seeds:
        r = CameraRenderer(
            gate_scene(width=640, height=360, **pose),
            conditions=StaticConditions({"plaza": density, "north": density}),
            fps=5.0,
            seed=seed,
        )
        yield r.next_frame()


def test_hog_finds_people_and_nothing_on_empty_ground():
    hog = create_detector({"type": "hog"})
    empty = [f for f, _ in scene_frames(density=0.0, seeds=range(2), height_m=4.0, tilt_deg=15.0)]
    assert [len(d) for d in hog.detect(empty)] == [0, 0]
    matched, found = 0, 0
    for frame, truth in scene_frames(density=0.1, seeds=range(4), height_m=4.0, tilt_deg=15.0):
        (det,) = hog.detect([frame])
        found += len(det)
        matched += sum(1 for b in det.boxes if max(iou(b, p.box) for p in truth.persons) >= 0.4)
        assert ((det.boxes >= 0) & (det.boxes[:, [2, 3]] <= [640, 360]).all(axis=1)[:, None]).all()
    assert found >= 4
    assert matched >= 0.75 * found


def test_training_is_offline_and_writes_loadable_weights(tiny_yolo):
    assert tiny_yolo.network_attempts == []
    assert 0 < tiny_yolo.path.stat().st_size < 5_000_000
    det = create_detector({"type": "yolo", "weights": str(tiny_yolo.path), "device": "cpu"})
    assert isinstance(det, YoloDetector)
    assert det.person_class == 0
    assert not det.half


def test_yolo_batched_path_agrees_with_ultralytics_predict(tiny_yolo):
    frames = [f for f, _ in scene_frames(density=0.5, seeds=range(3))]
    cfg = {"type": "yolo", "weights": str(tiny_yolo.path), "imgsz": 320, "conf": 0.01, "device": "cpu"}
    det = create_detector(cfg)
    ours = det.detect(frames)
    one_by_one = [det.detect([f])[0] for f in frames]
    from ultralytics import YOLO

    theirs = YOLO(str(tiny_yolo.path)).predict(
        frames, imgsz=320, conf=0.01, iou=0.5, device="cpu", max_det=1000, verbose=False
    )
    assert sum(len(d) for d in ours) > 10
    for a, b, r in zip(ours, one_by_one, theirs, strict=True):
        assert np.allclose(a.boxes, b.boxes, atol=1e-3)  # batching changes nothing
        ref = r.boxes.xyxy.numpy()
        top = np.argsort(-a.scores)[:20]
        for box in a.boxes[top]:
            assert max(iou(box, rb) for rb in ref) > 0.9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_yolo_on_cuda_in_half_precision_agrees_with_the_cpu(tiny_yolo):
    frames = [f for f, _ in scene_frames(density=0.5, seeds=range(2))]
    cfg = {"type": "yolo", "weights": str(tiny_yolo.path), "imgsz": 320, "conf": 0.05}
    gpu = create_detector(cfg | {"device": "cuda"})
    cpu = create_detector(cfg | {"device": "cpu"})
    assert gpu.half
    for g, c in zip(gpu.detect(frames), cpu.detect(frames), strict=True):
        strong = c.scores > 0.2
        for box in c.boxes[strong]:
            assert max(iou(box, gb) for gb in g.boxes) > 0.8


def test_count_command_writes_one_row_per_frame(sim_video, tmp_path, tiny_yolo):
    video, _ = sim_video
    for backend, extra in (("hog", []), ("yolo", ["--weights", str(tiny_yolo.path), "--imgsz", "320"])):
        out = tmp_path / f"{backend}.csv"
        assert main(["count", str(video), "--backend", backend, "--out", str(out), *extra]) == 0
        rows = list(csv.reader(out.read_text().splitlines()))
        assert rows[0] == ["frame_index", "count"]
        assert [int(r[0]) for r in rows[1:]] == list(range(20))
        assert all(int(r[1]) >= 0 for r in rows[1:])


def test_count_command_reports_a_missing_video(tmp_path, capsys):
    assert main(["count", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "c.csv")]) == 1
    assert "none.mp4" in capsys.readouterr().err


def test_count_command_names_the_backends_it_knows(tmp_path, capsys):
    assert main(["count", "x.avi", "--backend", "sift", "--out", str(tmp_path / "c.csv")]) == 2
    assert "sift" in (err := capsys.readouterr().err)
    assert "hog" in err
    assert "yolo" in err


def test_video_commands_load_no_model_library_until_they_run():
    import subprocess
    import sys

    code = (
        "import argparse, sys\n"
        "from tower.commands import count, train_density, train_detector\n"
        "sub = argparse.ArgumentParser().add_subparsers()\n"
        "for m in (count, train_density, train_detector):\n"
        "    m.register(sub)\n"
        "print(sorted({'torch', 'cv2', 'ultralytics'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
