"""The kernel's geometry (shared by the camera renderer and the counter) against figures worked out by
hand, so that a bug there cannot cancel out between the simulator and the vision pipeline.

The camera used below stands at the origin, 10 m up, facing north (heading 0) and tilted 45° down,
with a 90° horizontal field of view over 640 x 480 pixels: focal length 320 px (= 320 / tan 45°),
principal point (320, 240), horizon 320 * tan 45° = 320 px above the centre row.
"""

import math

import numpy as np
import pytest

from beffroi.events import LatLon
from beffroi.geometry import LocalFrame, PinholeCamera, overlap_area, points_in_polygon, polygon_area

SQRT2 = math.sqrt(2.0)


def north_camera(heading_deg: float = 0.0) -> PinholeCamera:
    return PinholeCamera(
        x=0.0,
        y=0.0,
        height_m=10.0,
        heading_deg=heading_deg,
        tilt_deg=45.0,
        fov_deg=90.0,
        width=640,
        height=480,
    )


@pytest.mark.parametrize(
    ("ground", "uv", "depth"),
    [
        # where the optical axis meets the ground: 10 m ahead (45° down from 10 m up), image centre
        ((0.0, 10.0), (320.0, 240.0), 10.0 * SQRT2),
        # 10 m to the right of that point: same depth, 320 * 10 / (10√2) = 160√2 px right
        ((10.0, 10.0), (320.0 + 160.0 * SQRT2, 240.0), 10.0 * SQRT2),
        # the camera's foot: 45° below the axis, 320 * tan 45° = 320 px below the centre, depth 10/√2
        ((0.0, 0.0), (320.0, 560.0), 10.0 / SQRT2),
        # 20 m ahead: depth along the axis (20, -10)·(1, -1)/√2 = 30/√2; 45° - atan(1/2) above
        # the axis: v = 240 - 320 * tan(45° - atan(0.5)) = 240 - 320/3
        ((0.0, 20.0), (320.0, 240.0 - 320.0 / 3.0), 30.0 / SQRT2),
    ],
)
def test_pinhole_projection_matches_hand_computed_figures(ground, uv, depth):
    cam = north_camera()
    got_uv, got_depth = cam.project_ground([ground])
    assert got_uv[0] == pytest.approx(uv, abs=1e-9)
    assert got_depth[0] == pytest.approx(depth, abs=1e-9)
    # and back: the pixel's ray meets the ground at the same point
    assert cam.ground_of_pixels([uv])[0] == pytest.approx(ground, abs=1e-9)


def test_focal_length_and_horizon_by_hand():
    cam = north_camera()
    assert cam.focal_px == pytest.approx(320.0)
    assert cam.horizon_v() == pytest.approx(240.0 - 320.0)


def test_heading_turns_clockwise_from_north():
    east = north_camera(heading_deg=90.0)
    uv, _ = east.project_ground([[10.0, 0.0]])  # 10 m east lies on the axis
    assert uv[0] == pytest.approx((320.0, 240.0), abs=1e-9)
    uv, _ = east.project_ground([[10.0, -10.0]])  # south is on the right when facing east
    assert uv[0] == pytest.approx((320.0 + 160.0 * SQRT2, 240.0), abs=1e-9)


def test_the_ground_to_image_map_is_the_homography_of_the_pose():
    """Independently of the class: H = K [r1 r2 t] built from the pose by hand for the camera above
    (right = (1, 0, 0), down = (0, -1, -1)/√2, forward = (0, 1, -1)/√2 as rows of R; t = -R c)."""
    f, cx, cy = 320.0, 320.0, 240.0
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
    r = np.array([[1, 0, 0], [0, -1 / SQRT2, -1 / SQRT2], [0, 1 / SQRT2, -1 / SQRT2]])
    t = -r @ np.array([0.0, 0.0, 10.0])
    h = k @ np.column_stack([r[:, 0], r[:, 1], t])
    rng = np.random.default_rng(7)
    ground = np.column_stack([rng.uniform(-20, 20, 40), rng.uniform(1, 60, 40)])
    hom = (h @ np.column_stack([ground, np.ones(len(ground))]).T).T
    expected = hom[:, :2] / hom[:, 2:]
    got, _ = north_camera().project_ground(ground)
    assert np.allclose(got, expected, atol=1e-9)


def test_local_frame_against_the_nautical_mile():
    """One minute of latitude is about one nautical mile (1852 m; 1853.2 m on the mean sphere); one
    minute of longitude at 60° N is half of it."""
    frame = LocalFrame(LatLon(lat=60.0, lon=5.0))
    x, y = frame.to_xy(LatLon(lat=60.0 + 1 / 60, lon=5.0 + 1 / 60))
    assert y == pytest.approx(1852.0, rel=1e-3)
    assert x == pytest.approx(926.0, rel=1e-3)


def test_polygon_figures():
    triangle = [[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]  # legs 4 and 3: 6 m²
    assert polygon_area(triangle) == pytest.approx(6.0)
    assert points_in_polygon([[1.0, 1.0], [3.0, 2.0]], triangle).tolist() == [True, False]
    a = [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]]
    b = [[2.0, 1.0], [6.0, 1.0], [6.0, 3.0], [2.0, 3.0]]  # overlap 2 m x 2 m
    assert overlap_area(a, b) == pytest.approx(4.0, rel=0.02)
