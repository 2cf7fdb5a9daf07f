"""Surveyed camera reference points: the shipped venues carry them, the vision pipeline fits its
homographies to them, and every camera looks at people it can count."""

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from analytics.vision.homography import GroundHomography
from analytics.vision.service import VisionSettings
from analytics.vision.view import counting_view
from beffroi.devices import DeviceKind
from beffroi.events import LatLon
from beffroi.geometry import LocalFrame, PinholeCamera
from beffroi.sites import placed_camera
from beffroi.venue import CameraPose, Venue, load_venue
from simulators.camera.survey import survey_ground_refs
from tower.vision.live_run import LiveRun

VENUES = Path(__file__).resolve().parents[2] / "scenarios" / "venues"
ORIGIN = LatLon(lat=48.92446, lon=2.36022)
WIDTH = LiveRun.width  # frames as the live run reads them (640 x 360)


@cache
def shipped(name: str) -> Venue:
    return load_venue(VENUES / name)


def cameras(venue: Venue) -> list[str]:
    return [p.device.id for p in venue.devices.values() if p.device.kind is DeviceKind.CAMERA]


def test_surveyed_points_are_pixels_and_the_ground_they_show():
    pose = CameraPose(height_m=8, heading_deg=40, tilt_deg=25, fov_deg=60)
    frame = LocalFrame(ORIGIN)
    location = frame.to_latlon(30.0, -12.0)
    refs = survey_ground_refs(pose, location, origin=ORIGIN, n=6)

    assert len(refs) == 6
    cam = PinholeCamera.from_pose(pose, x=30.0, y=-12.0, width=pose.width_px, height=pose.height_px)
    ground = np.array([frame.to_xy(LatLon(lat=r.lat, lon=r.lon)) for r in refs])
    uv, depth = cam.project_ground(ground)
    assert (depth > 0).all()
    np.testing.assert_allclose(uv, [(r.u, r.v) for r in refs], atol=0.05)
    assert len({r.v for r in refs}) == 2  # two rows across the image: not collinear
    assert all(0 <= r.u < pose.width_px and 0 <= r.v < pose.height_px for r in refs)


def test_a_survey_takes_four_points_or_more_below_the_horizon():
    pose = CameraPose(height_m=8, heading_deg=0, tilt_deg=25, fov_deg=60)
    with pytest.raises(ValueError, match="4 or more"):
        survey_ground_refs(pose, ORIGIN, origin=ORIGIN, n=3)
    level = pose.model_copy(update={"tilt_deg": 0.0, "fov_deg": 10.0})  # a level, narrow camera
    assert len(survey_ground_refs(level, ORIGIN, origin=ORIGIN)) == 8


@pytest.mark.parametrize("name", ["stade-de-france.yaml", "seine.yaml", "fan-zones.yaml"])
def test_shipped_cameras_carry_surveyed_points_that_give_the_pose_homography(name):
    venue = shipped(name)
    min_px = VisionSettings().min_person_px
    ids = cameras(venue)
    assert ids
    for cam_id in ids:
        pose = venue.devices[cam_id].device.camera
        assert pose is not None
        assert pose.ground_refs is not None, cam_id
        assert len(pose.ground_refs) >= 4, cam_id

        view = counting_view(venue, cam_id, width=WIDTH, min_person_px=min_px)
        assert view.homography.rms_error_m < 0.005, cam_id  # millimetre-rounded survey

        pc = placed_camera(venue, cam_id, width=WIDTH)
        from_pose = GroundHomography.fit(cam_id, *pc.camera.reference_points(n=8))
        x0, y0, x1, y1 = view.bounds  # the counting region, where feet are placed on the ground
        us, vs = np.meshgrid(np.linspace(x0, x1, 7), np.linspace(min(y0, y1 - 1), y1, 5))
        pixels = np.column_stack([us.ravel(), vs.ravel()])
        gap = np.hypot(*(view.homography.to_ground(pixels) - from_pose.to_ground(pixels)).T)
        assert gap.max() < 0.01, (cam_id, gap.max())


@pytest.mark.parametrize("name", ["stade-de-france.yaml", "seine.yaml", "fan-zones.yaml"])
def test_every_shipped_camera_counts_people_in_its_own_zone(name):
    venue = shipped(name)
    min_px = VisionSettings().min_person_px
    for cam_id in cameras(venue):
        device = venue.devices[cam_id].device
        assert device.zone is not None
        view = counting_view(venue, cam_id, width=WIDTH, min_person_px=min_px)
        assert view.zone_area[device.zone] >= 15.0, (cam_id, view.zone_area)


def test_stadium_stand_and_forecourt_cameras_count_their_zone_within_the_drawn_range():
    """Over each stand and forecourt, a camera counts a sizeable part of its zone and nothing else,
    with room above for the heads of its farthest people, all within the range the live run draws
    people at (counting farther would count people never drawn)."""
    venue = shipped("stade-de-france.yaml")
    min_px = VisionSettings().min_person_px
    targets = [c for c in cameras(venue) if c.startswith(("sdf-cam-stand-", "sdf-cam-parvis-"))]
    assert len(targets) == 8
    for cam_id in targets:
        device = venue.devices[cam_id].device
        assert device.zone is not None
        view = counting_view(venue, cam_id, width=WIDTH, min_person_px=min_px)
        assert view.zone_area[device.zone] >= 100.0, (cam_id, view.zone_area)
        assert sum(a > 0 for a in view.zone_area.values()) == 1, (cam_id, view.zone_area)
        assert view.top_row >= min_px, cam_id  # the farthest counted people show whole, head included
        pc = placed_camera(venue, cam_id, width=WIDTH)
        reach = np.hypot(view.region[:, 0] - pc.camera.x, view.region[:, 1] - pc.camera.y)
        assert reach.max() <= LiveRun.render_range_m, (cam_id, reach.max())
