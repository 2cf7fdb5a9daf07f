import numpy as np

from analytics.vision.detectors.base import Detections
from analytics.vision.tracking import LineCrossingCounter, PersonTracker
from beffroi.sites import ViewGate

GATE = ViewGate("g1", a=np.array([0.0, 0.0]), b=np.array([4.0, 0.0]))  # 'in' is towards -y


def walk(counter, tid, ys, *, x=2.0, t0=0.0):
    found = []
    for k, y in enumerate(ys):
        found += counter.update(t0 + k * 0.2, np.array([tid]), np.array([[x, y]]))
    return found


def test_a_walk_through_the_gate_counts_once_in_the_right_direction():
    c = LineCrossingCounter(GATE)
    found = walk(c, 1, np.linspace(3, -3, 20))
    assert [x.direction for x in found] == [1]
    assert (c.crossings_in, c.crossings_out) == (1, 0)
    walk(c, 2, np.linspace(-3, 3, 20), t0=10)
    assert (c.crossings_in, c.crossings_out) == (1, 1)


def test_jitter_inside_the_hysteresis_band_counts_nothing():
    c = LineCrossingCounter(GATE, hysteresis_m=0.4)
    walk(c, 1, [1.0, 0.3, -0.3, 0.2, -0.35, 0.3, 0.9])
    assert (c.crossings_in, c.crossings_out) == (0, 0)


def test_passing_beside_the_gate_is_not_a_crossing():
    c = LineCrossingCounter(GATE)
    walk(c, 1, np.linspace(3, -3, 20), x=7.0)
    assert (c.crossings_in, c.crossings_out) == (0, 0)


def test_id_switch_at_the_line_neither_loses_nor_doubles_a_crossing():
    c = LineCrossingCounter(GATE)
    walk(c, 1, [3.0, 2.0, 1.0, 0.2])  # track 1 reaches the line...
    walk(c, 2, [0.1, -0.6, -1.5, -3.0], t0=1.0)  # ...and carries on as track 2
    assert (c.crossings_in, c.crossings_out) == (1, 0)
    walk(c, 3, [-3.0, -1.0, -0.5], t0=5.0)  # walking back, switching after crossing:
    walk(c, 4, [0.6, 1.5], t0=5.8)
    walk(c, 5, [1.9, 3.0], t0=6.4)
    assert (c.crossings_in, c.crossings_out) == (1, 1)


def test_far_apart_tracks_do_not_inherit_each_other():
    c = LineCrossingCounter(GATE, stitch_radius_m=1.0)
    walk(c, 1, [3.0, 0.3])
    walk(c, 2, [-2.0, -3.0], t0=0.6)  # appears 2.3 m away, already on the far side
    assert (c.crossings_in, c.crossings_out) == (0, 0)


def test_bytetrack_keeps_ids_of_boxes_moving_smoothly():
    tracker = PersonTracker()
    ids = []
    for k in range(8):
        boxes = np.array([[10 + 3 * k, 20, 30 + 3 * k, 80], [100, 20 + 2 * k, 120, 80 + 2 * k]], dtype=float)
        tracks = tracker.update(Detections(boxes=boxes, scores=np.array([0.9, 0.8])))
        ids.append(sorted(tracks.ids.tolist()))
    assert len(ids[-1]) == 2
    assert ids[-1] == ids[2]  # stable once confirmed
