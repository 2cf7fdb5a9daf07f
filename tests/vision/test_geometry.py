import numpy as np
import pytest

from analytics.vision.homography import GroundHomography, HomographyError
from beffroi.events import LatLon
from beffroi.geometry import LocalFrame, PinholeCamera, overlap_area, points_in_polygon, polygon_area
from beffroi.venue import CameraPose


def camera(**kw):
    pose = dict(height_m=10.0, heading_deg=30.0, tilt_deg=40.0, fov_deg=60.0) | kw
    return PinholeCamera.from_pose(CameraPose(**pose), x=5.0, y=-3.0, width=640, height=360)


def test_ground_points_project_and_back():
    cam = camera()
    ground = np.array([[10.0, 12.0], [0.0, 20.0], [14.0, 8.0]])
    uv, depth = cam.project_ground(ground)
    assert (depth > 0).all()
    assert np.allclose(cam.ground_of_pixels(uv), ground, atol=1e-6)


def test_camera_looks_along_its_heading():
    cam = camera(heading_deg=90.0, tilt_deg=30.0)  # facing east
    uv, _ = cam.project_ground([[cam.x + 10.0, cam.y]])
    assert abs(uv[0, 0] - 320) < 1e-6  # straight ahead lands on the centre column
    _, behind = cam.project_ground([[cam.x - 10.0, cam.y]])
    assert behind[0] < 0


def test_pixels_above_the_horizon_have_no_ground_point():
    cam = camera(tilt_deg=5.0)
    assert cam.horizon_v() > 0
    g = cam.ground_of_pixels([[320, 1.0], [320, 359.0]])
    assert np.isnan(g[0]).all()
    assert np.isfinite(g[1]).all()


def test_homography_from_pose_reference_points_places_feet_to_the_centimetre():
    cam = camera()
    img, gnd = cam.reference_points(n=6)
    h = GroundHomography.fit("cam", img, gnd)
    assert h.rms_error_m < 1e-6
    rng = np.random.default_rng(0)
    uv = np.column_stack([rng.uniform(0, 640, 50), rng.uniform(200, 360, 50)])
    assert np.allclose(h.to_ground(uv), cam.ground_of_pixels(uv), atol=0.01)
    assert np.allclose(h.to_image(h.to_ground(uv)), uv, atol=1e-6)


def test_homography_needs_four_non_collinear_points():
    with pytest.raises(HomographyError, match=r"'cam7'.*4 or more"):
        GroundHomography.fit("cam7", [[0, 0], [1, 1], [2, 2]], [[0, 0], [1, 1], [2, 2]])
    line = [[0, 0], [1, 1], [2, 2], [3, 3]]
    with pytest.raises(HomographyError, match="'cam7'"):
        GroundHomography.fit("cam7", line, line)


def test_polygons():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    inside = points_in_polygon([[5, 5], [11, 5], [0.5, 9.5], [-1, -1]], square)
    assert inside.tolist() == [True, False, True, False]
    assert polygon_area(square) == 100.0
    shifted = square + 5.0
    assert overlap_area(square, shifted) == pytest.approx(25.0, rel=0.02)
    assert overlap_area(square, square + 20.0) == 0.0


def test_local_frame_round_trip():
    frame = LocalFrame(LatLon(lat=48.924, lon=2.360))
    p = LatLon(lat=48.925, lon=2.362)
    x, y = frame.to_xy(p)
    assert 140 < x < 150
    assert 105 < y < 115
    back = frame.to_latlon(x, y)
    assert back.lat == pytest.approx(p.lat, abs=1e-9)
    assert back.lon == pytest.approx(p.lon, abs=1e-9)


def test_exit_lines_are_crossed_inwards_from_their_from_zone():
    from beffroi.sites import site_gates
    from tests.vision.scenes import small_venue

    (gate,) = site_gates(small_venue().sites[0])
    assert gate.width_m == pytest.approx(6.0)
    south, north = np.array([[0.0, 10.0]]), np.array([[0.0, 14.0]])  # forecourt, plaza
    assert gate.signed_distance(south)[0] < 0 < gate.signed_distance(north)[0]
    assert (gate.zone_out, gate.zone_in) == ("forecourt", "plaza")
