"""The control tower of `make demo`, stepped instead of timed: the demo's scenario, its plaza camera
rendered from the running crowd model, the real video pipeline and the crowd rules of the demo's
settings. Plaza D turns to level E, and the crowd rules raise a density alert and a time-to-threshold
forecast for it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.vision.service import build_pipeline
from beffroi.events import Alert
from beffroi.records import ZoneState
from ingest.video.source import FrameSample
from simulators.camera.following import FollowingConditions
from simulators.camera.render import CameraRenderer
from simulators.camera.scene import camera_scene
from tower.demo.control_tower import ControlTower, TowerDemo
from tower.runtime import DEMO_SETTINGS
from tower.settings import load_settings
from tower.testing import pipeline

CAMERA = "sdf-cam-plaza-d-1"


@pytest.mark.slow
def test_plaza_d_turns_to_level_e_with_a_density_alert_and_a_forecast() -> None:
    spec = TowerDemo(from_time="20:27")
    tower = ControlTower(spec)
    sim = tower.sim
    while sim.model.t < tower.from_s:
        sim.advance()
    scene = camera_scene(tower.venue, CAMERA, width=spec.width, render_range_m=spec.render_range_m)
    camera = CameraRenderer(scene, conditions=FollowingConditions(sim, "sdf"), fps=spec.fps, seed=1)
    vision, counters = build_pipeline(tower.venue, tower.vision_settings({CAMERA: "demo"}))
    frame_every = round(spec.speed / spec.fps)  # simulated seconds between two frames, as in the demo
    settings = load_settings(DEMO_SETTINGS).model_copy(update={"venue": None})
    states: list[ZoneState] = []
    with pipeline(tower.venue, settings=settings) as p:
        for k in range(round(9 * 60 / frame_every)):  # 20:27 to 20:36
            for _ in range(frame_every):
                sim.advance()
            image, _ = camera.next_frame()
            sample = FrameSample(CAMERA, k, k / spec.fps, tower.clock(), image)
            counters.prepare(sample)
            new = vision.process([sample])
            states += new
            p.publish_zone_states(new)
            p.drain()
        alerts = p.alerts("sdf")
    plaza = [s for s in states if s.zone_id == "plaza-d"]
    assert plaza[0].los in "BCD"
    assert plaza[0].density < 3.0
    level_e = next(s for s in plaza if s.los == "E")  # ...and the camera sees it reach E
    assert level_e.ts - plaza[0].ts < timedelta(minutes=9)
    by_rule: dict[str, list[Alert]] = {}
    for a in alerts:
        by_rule.setdefault(a.rule, []).append(a)
    [density] = by_rule["zone-density"]
    assert density.zone_id == "plaza-d"
    assert density.severity == "high"
    assert density.raised_at >= level_e.ts - timedelta(seconds=spec.speed)
    forecast = by_rule["density-trend"][0]  # the first forecast (later episodes may follow)
    assert forecast.zone_id == "plaza-d"
    assert "reaches 5 p/m²" in forecast.title
    assert forecast.value is not None
    assert 0 < forecast.value <= 5


def test_the_cameras_follow_the_running_crowd_model() -> None:
    tower = ControlTower(TowerDemo(from_time="18:40"))
    sim = tower.sim
    conditions = FollowingConditions(sim, "sdf")
    zones = [z.id for z in tower.venue.sites[0].zones]
    before = {z: conditions.density(z, 0.0) for z in zones}
    while sim.model.t < tower.from_s:
        sim.advance()
    after = {z: conditions.density(z, 0.0) for z in zones}
    assert after["stand-n"] > before["stand-n"]  # the stands fill from 18:30
    assert after == {z: conditions.density(z, 1e6) for z in zones}  # now, whatever time is asked
    assert conditions.density("no-such-zone", 0.0) == 0.0
    assert tower.clock() - tower.sim.start == timedelta(seconds=sim.model.t)
    with pytest.raises(KeyError):
        FollowingConditions(sim, "no-such-site")
