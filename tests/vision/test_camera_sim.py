import json
import time

import cv2
import numpy as np
import pytest

from simulators.camera.render import LABEL_MIN_VISIBLE
from simulators.camera.sinks import DatasetSink


def frames(renderer, n):
    return [renderer.next_frame() for _ in range(n)]


def test_same_seed_same_frames_and_truth(make_renderer):
    a = frames(make_renderer(density=1.0, seed=7), 3)
    b = frames(make_renderer(density=1.0, seed=7), 3)
    for (fa, ta), (fb, tb) in zip(a, b, strict=True):
        assert np.array_equal(fa, fb)
        assert ta.as_json() == tb.as_json()
    c = frames(make_renderer(density=1.0, seed=8), 1)
    assert not np.array_equal(a[0][0], c[0][0])


def test_truth_matches_the_crowd_density(make_renderer):
    r = make_renderer(density=1.5, seed=2)
    _, truth = r.next_frame()
    for zone_id in ("plaza", "north"):
        z = truth.zones[zone_id]
        assert z.area_m2 > 50
        assert z.density == pytest.approx(1.5, rel=0.2)
        assert z.count == sum(1 for p in truth.persons if p.zone == zone_id)
    assert truth.count == len(truth.persons) > 50
    for p in truth.persons:
        x1, y1, x2, y2 = p.box
        assert 0 <= x1 < x2 <= 320
        assert 0 <= y1 < y2 <= 180
        assert 0 <= p.foot[0] < 320
        assert 0 <= p.foot[1] < 180
        assert p.head[1] < p.foot[1]  # heads above feet


def test_nearer_people_are_bigger_and_hide_farther_ones(make_renderer):
    _, truth = make_renderer(density=2.5, seed=3).next_frame()
    feet = np.array([p.foot for p in truth.persons])
    widths = np.array([p.box[2] - p.box[0] for p in truth.persons])
    inner = (feet[:, 0] > 40) & (feet[:, 0] < 280)  # boxes not cut by the side edges
    near, far = inner & (feet[:, 1] > 140), inner & (feet[:, 1] < 60)
    assert widths[near].mean() > 1.5 * widths[far].mean()
    visible = np.array([p.visible for p in truth.persons])
    assert (visible < 0.25).sum() > 0.2 * len(visible)  # heavy occlusion at 2.5 p/m²
    assert (visible > 0.75).sum() > 10


def test_lighting_changes_over_time(make_renderer):
    r = make_renderer(density=0.2, seed=4, fps=1.0)
    means = []
    for _ in range(40):
        frame, _ = r.next_frame()
        means.append(frame.mean())
    assert max(means) - min(means) > 10  # grey levels


def test_gate_crossings_follow_the_flow(make_renderer):
    r = make_renderer(density=0.3, seed=6, fps=5.0, gate=True, flows={"g1": 0.5})
    crossings = []
    for _ in range(150):  # 30 s
        r.crowd.step(0.2)
        crossings += r.crowd.crossings
    inward = sum(1 for g, _, d in crossings if g == "g1" and d > 0)
    assert 9 <= inward <= 18  # 0.5 persons/s for 30 s, minus those still on their way


def test_video_file_and_truth_lines(sim_video):
    video, truth = sim_video
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    lines = truth.read_text().splitlines()
    assert n == len(lines) == 20
    rec = json.loads(lines[3])
    assert rec["frame"] == 3
    assert rec["camera"] == "cam1"
    assert rec["count"] == len(rec["persons"])
    assert set(rec["zones"]) == {"plaza", "north"}


def test_dataset_labels_are_normalised_boxes_of_visible_people(tmp_path, make_renderer):
    r = make_renderer(density=1.0, seed=9)
    sink = DatasetSink(tmp_path / "ds")
    frame, truth = r.next_frame()
    sink.write(frame, truth)
    sink.close()
    labels = (tmp_path / "ds" / "labels" / "cam1_000000.txt").read_text().split("\n")
    rows = np.array([[float(v) for v in line.split()] for line in labels if line])
    assert (rows[:, 0] == 0).all()
    assert ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all()
    labelled = [
        p
        for p in truth.persons
        if p.visible >= LABEL_MIN_VISIBLE and p.box[2] - p.box[0] >= 2 and p.box[3] - p.box[1] >= 2
    ]
    assert len(rows) == len(labelled) > 50
    assert (tmp_path / "ds" / "images" / "cam1_000000.jpg").is_file()
    assert "images/cam1_000000.jpg" in (tmp_path / "ds" / "truth.jsonl").read_text()


def test_command_line_renders_venue_cameras_to_files(tmp_path):
    from beffroi.venue import dump_venue
    from simulators.camera.__main__ import main
    from tests.vision.scenes import small_venue

    dump_venue(small_venue(), tmp_path / "venue.yaml")
    args = ["--venue", str(tmp_path / "venue.yaml"), "--density", "forecourt=0.5", "--density", "plaza=1.0"]
    args += ["--seconds", "1", "--fps", "4", "--width", "320", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    lines = (tmp_path / "out" / "cam-1.truth.jsonl").read_text().splitlines()
    assert len(lines) == 4
    rec = json.loads(lines[-1])
    assert rec["zones"]["plaza"]["density"] == pytest.approx(1.0, rel=0.25)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "cam-1.avi"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    assert frame.shape == (180, 320, 3)


def test_cameras_render_in_worker_processes(tmp_path):
    from beffroi.venue import dump_venue
    from simulators.camera.__main__ import main
    from tests.vision.scenes import small_venue

    dump_venue(small_venue(), tmp_path / "venue.yaml")
    args = ["--venue", str(tmp_path / "venue.yaml"), "--density", "plaza=0.5", "--processes", "2"]
    args += ["--seconds", "1", "--fps", "2", "--width", "320", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    for cam in ("cam-1", "cam-2"):
        assert len((tmp_path / "out" / f"{cam}.truth.jsonl").read_text().splitlines()) == 2


def test_a_live_run_says_where_its_streams_are_and_the_truth_by_wall_clock(tmp_path):
    import csv
    import json

    from beffroi.clock import parse_iso
    from beffroi.venue import dump_venue
    from simulators.camera.__main__ import main
    from tests.vision.scenes import small_venue

    dump_venue(small_venue(), tmp_path / "venue.yaml")
    args = ["--venue", str(tmp_path / "venue.yaml"), "--density", "plaza=0.5", "--density", "forecourt=0.2"]
    args += ["--seconds", "1", "--fps", "2", "--width", "320"]
    args += ["--serve", "0", "--live", str(tmp_path / "live")]
    before = time.time()
    assert main([*args, "--warmup", "0.2"]) == 0
    streams = json.loads((tmp_path / "live" / "streams.json").read_text())
    assert sorted(streams) == ["cam-1", "cam-2"]
    assert all(u.startswith("http://127.0.0.1:") and u.endswith(f"/{c}.mjpg") for c, u in streams.items())
    rows = list(csv.DictReader((tmp_path / "live" / "zones.csv").read_text().splitlines()))
    assert {(r["site"], r["zone"]) for r in rows} == {("site-a", "plaza"), ("site-a", "forecourt")}
    assert {r["zone"]: float(r["density"]) for r in rows} == {"plaza": 0.5, "forecourt": 0.2}
    first = parse_iso(rows[0]["timestamp"]).timestamp()
    assert before < first < before + 5  # wall-clock time of the first frame
    assert parse_iso(rows[-1]["timestamp"]).timestamp() - first == pytest.approx(1.0)
