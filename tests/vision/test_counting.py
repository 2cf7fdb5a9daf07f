"""Counting on the ground with perfect boxes (the simulator's truth): the geometry, not the detector."""

import numpy as np
import pytest

from analytics.vision.counting import CameraCounter, FusionConfig
from analytics.vision.detectors.base import Detections
from analytics.vision.view import CountingView
from beffroi.sites import ViewGate, ViewZone


def view_of(renderer, **kw):
    scene = renderer.scene
    zones = [ViewZone(z.id, z.polygon, z.area_m2) for z in scene.zones]
    gates = [ViewGate(g.id, g.a, g.b, zone_in=g.to_zone, zone_out=g.from_zone) for g in scene.gates]
    return CountingView.from_camera(scene.camera_id, scene.camera, zones=zones, gates=gates, **kw)


def truth_boxes(truth):
    """Perfect boxes: each person's height, centred on their feet (even where the image clips them)."""
    rows = [(p.foot[0], p.foot[1], p.box[3] - p.box[1]) for p in truth.persons]
    boxes = np.array([(u - 0.2 * h, v - h, u + 0.2 * h, v) for u, v, h in rows]).reshape(-1, 4)
    return Detections(boxes=boxes, scores=np.full(len(boxes), 0.9))


def test_feet_land_in_the_right_zone_and_density_matches(make_renderer):
    r = make_renderer(density=1.2, seed=4, width=640, height=360)
    cv = view_of(r, min_person_px=30)
    counter = CameraCounter.for_view(cv, track=False)
    _, truth = r.next_frame()
    obs = counter.observe(0.0, truth_boxes(truth))
    for zone_id in ("plaza", "north"):
        feet = np.array([p.foot for p in truth.persons if p.zone == zone_id])
        in_region = int(cv.in_region(feet).sum())
        assert obs.zones[zone_id].detected == pytest.approx(in_region, abs=2)
        assert obs.zones[zone_id].density == pytest.approx(1.2, rel=0.2)
    strict = view_of(r, min_person_px=60)  # far, small people are left out of the counting region
    assert strict.top_row > cv.top_row
    assert strict.region_area < cv.region_area


def test_density_map_takes_over_as_the_crowd_gets_dense(make_renderer):
    r = make_renderer(density=1.0, seed=4, width=640, height=360)
    cv = view_of(r)
    fusion = FusionConfig(detect_below=0.5, density_above=1.5)
    counter = CameraCounter.for_view(cv, fusion=fusion, track=False)
    _, truth = r.next_frame()
    det = truth_boxes(truth)
    empty = np.zeros((45, 80), np.float32)
    doubled = np.zeros((45, 80), np.float32)
    for p in truth.persons:  # a density map that counts everyone twice
        doubled[min(44, int(p.foot[1] / 8)), min(79, int(p.foot[0] / 8))] += 2.0
    plain = counter.observe(0.0, det)
    with_empty = counter.observe(0.0, det, empty)
    with_double = counter.observe(0.0, det, doubled)
    assert plain.zones["north"].density_weight == 0.0
    w = with_empty.zones["north"].density_weight
    assert 0.0 < w < 1.0  # 1 p/m² of boxes: halfway
    assert with_double.zones["north"].density_weight == w  # the boxes found set the weight, not the map
    assert with_empty.count < plain.count < with_double.count
    n = plain.zones["north"].count
    assert with_double.zones["north"].count == pytest.approx((1 - w) * n + w * 2 * n, rel=0.05)


def test_a_density_map_smeared_into_a_sparse_zone_leaves_its_count_to_the_boxes():
    from simulators.camera.crowd import StaticConditions
    from simulators.camera.render import CameraRenderer
    from tests.vision.scenes import gate_scene

    r = CameraRenderer(
        gate_scene(width=640, height=360),
        conditions=StaticConditions({"plaza": 0.2, "north": 2.0}),
        fps=5.0,
        seed=4,
    )
    counter = CameraCounter.for_view(view_of(r), fusion=FusionConfig(detect_below=0.5), track=False)
    _, truth = r.next_frame()
    dmap = np.zeros((45, 80), np.float32)
    for p in truth.persons:  # a map right about the dense zone...
        dmap[min(44, int(p.foot[1] / 8)), min(79, int(p.foot[0] / 8))] += 1.0
    plaza = counter.view.zone_cells(45, 80)["plaza"]
    dmap[plaza] += 0.5  # ... and with mass all over the sparse one
    obs = counter.observe(0.0, truth_boxes(truth), dmap)
    assert obs.zones["north"].density_weight == 1.0
    assert obs.zones["plaza"].density_weight == 0.0
    assert obs.zones["plaza"].count == obs.zones["plaza"].detected
    assert obs.zones["north"].count == pytest.approx(
        float(dmap[counter.view.zone_cells(45, 80)["north"]].sum())
    )


def test_tracks_of_people_walking_through_the_gate_are_counted(make_renderer):
    r = make_renderer(density=0.05, seed=8, fps=5.0, gate=True, flows={"g1": 0.4}, width=640, height=360)
    counter = CameraCounter.for_view(view_of(r))
    seen_in = true_in = 0
    for k in range(150):  # 30 s
        _, truth = r.next_frame()
        true_in += sum(1 for g, d in truth.crossings if g == "g1" and d > 0)
        obs = counter.observe(k / 5.0, truth_boxes(truth))
        seen_in += sum(1 for c in obs.crossings if c.direction > 0)
    assert true_in >= 8
    assert seen_in == pytest.approx(true_in, abs=max(2, 0.2 * true_in))


def test_a_camera_that_never_sees_people_big_enough_counts_nowhere(make_renderer):
    r = make_renderer(density=1.0, seed=4, width=640, height=360)
    cv = view_of(r, min_person_px=400)  # taller than the image
    assert cv.region_area == 0.0
    counter = CameraCounter.for_view(cv, track=False)
    _, truth = r.next_frame()
    obs = counter.observe(0.0, truth_boxes(truth))
    assert all(z.area_m2 == 0 and z.count == 0 for z in obs.zones.values())
