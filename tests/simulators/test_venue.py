"""The venue model: camera geometry for the camera simulator, areas, and the venue export."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from beffroi.devices import DeviceKind
from beffroi.events import LatLon
from beffroi.venue import CameraPose, CameraView, Device, load_venue, polygon_area_m2
from simulators.scenario_file import load_scenario
from simulators.world import build_world
from tower.cli import main

from .conftest import REPO

STADIUM = REPO / "scenarios" / "stadium.yaml"


def test_camera_projection_round_trips_between_pixels_and_ground() -> None:
    pose = CameraPose(height_m=10, heading_deg=30, tilt_deg=25, fov_deg=70, width_px=1280, height_px=720)
    view = CameraView(pose, LatLon(lat=48.9, lon=2.36))
    for u, v in ((640, 360), (100, 700), (1200, 500), (640, 600)):
        ground = view.ground(u, v)
        assert ground is not None
        back = view.project(ground)
        assert back is not None
        assert math.dist(back, (u, v)) < 1e-6
    # the image centre is on the optical axis: straight ahead at height / tan(tilt)
    x, y = view.ground_xy(640, 360) or (0, 0)
    assert math.hypot(x, y) == pytest.approx(10 / math.tan(math.radians(25)))
    assert math.degrees(math.atan2(x, y)) == pytest.approx(30)
    level = CameraView(pose.model_copy(update={"tilt_deg": 10.0}), LatLon(lat=48.9, lon=2.36))
    assert level.ground(640, 0) is None  # the top row looks above the horizon
    assert level.ground(640, 719) is not None


def test_every_shipped_camera_has_ground_references_and_sees_its_zone() -> None:
    venue = load_scenario(STADIUM).venue
    cameras = [p.device for p in venue.devices.values() if p.device.kind is DeviceKind.CAMERA]
    assert len(cameras) >= 8
    for cam in cameras:
        view = CameraView.of(cam)
        refs = view.ground_refs()
        assert len(refs) >= 4
        for r in refs:
            uv = view.project(LatLon(lat=r.lat, lon=r.lon))
            assert uv is not None
            assert math.dist(uv, (r.u, r.v)) < 0.5
        assert cam.camera is not None
        assert cam.camera.sees[0] == cam.zone


def test_a_camera_needs_a_pose_and_a_location() -> None:
    with pytest.raises(ValueError, match="location"):
        Device(
            id="c",
            kind=DeviceKind.CAMERA,
            camera=CameraPose(height_m=5, heading_deg=0, tilt_deg=20, fov_deg=60),
        )


def test_zone_areas_match_their_polygons() -> None:
    for site in load_scenario(STADIUM).venue.sites:
        for z in site.zones:
            assert z.area == pytest.approx(polygon_area_m2(z.polygon), rel=1e-3)
            assert z.capacity > 0


def test_export_venue_at_scale_writes_a_valid_venue_with_every_device(tmp_path: Path) -> None:
    out = tmp_path / "venue.yaml"
    assert main(["simulate", str(STADIUM), "--scale", "0.2", "--export-venue", str(out)]) == 0
    venue = load_venue(out)
    world = build_world(load_scenario(STADIUM), scale=0.2)
    assert len(venue.sites) == 10
    assert set(venue.devices) == set(world.venue.devices)
    assert main(["validate", str(out)]) == 0
