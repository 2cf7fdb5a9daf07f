import json
import time

from analytics.vision.service import VisionService, VisionSettings
from beffroi.records import ZoneState
from simulators.camera.crowd import StaticConditions
from simulators.camera.run import CameraRun, render_cameras
from simulators.camera.scene import camera_scene
from tests.vision.scenes import small_venue


def test_camera_files_become_zone_states_on_the_bus(tmp_path, tiny_yolo, bus, bus_names):
    venue = small_venue()
    scene = camera_scene(venue, "cam-1", width=320)
    conditions = StaticConditions({"forecourt": 0.5, "plaza": 1.0}, {"gate-1": 0.5})
    render_cameras([scene], conditions, CameraRun(fps=5.0, seconds=4.0, out=tmp_path))
    video = tmp_path / "cam-1.avi"
    assert video.is_file()
    assert (tmp_path / "cam-1.truth.jsonl").is_file()

    topic = bus_names.topic("zone_state")
    bus.ensure_topics({topic: 3})
    settings = VisionSettings(
        cameras={"cam-1": str(video)},
        detector={"type": "yolo", "weights": str(tiny_yolo.path), "imgsz": 320, "conf": 0.05},
        sample_fps=5.0,
        batch=4,
        min_person_px=10.0,
    )
    service = VisionService(venue=venue, settings=settings, bus=bus, topic=topic).start()
    assert service.wait_sources(timeout=60)
    service.stop()
    assert service.stats.frames == 20

    records = []
    with bus.subscribe(bus_names.group("zs"), [topic]) as sub:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            records += sub.poll(timeout=0.5)
            if len(records) >= service.stats.states and records:
                break
    states = [ZoneState.model_validate(json.loads(r.value)) for r in records]
    assert len(states) == service.stats.states > 0
    assert {(s.site_id, s.zone_id) for s in states} <= {("site-a", "forecourt"), ("site-a", "plaza")}
    assert {r.key for r in records} <= {b"site-a/forecourt", b"site-a/plaza"}
    for s in states:
        assert s.cameras == ["cam-1"]
        assert 0 < s.coverage <= 1
        assert s.window_s == 1.0
    plaza = [s for s in states if s.zone_id == "plaza"]
    assert plaza
    assert [g.gate_id for g in plaza[0].gates] == ["gate-1"]


def test_cameras_missing_from_the_venue_are_refused(bus):
    import pytest

    with pytest.raises(ValueError, match="cam-9"):
        VisionService(
            venue=small_venue(), settings=VisionSettings(cameras={"cam-9": "x.avi"}), bus=bus, topic="t"
        )
