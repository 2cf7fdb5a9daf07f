"""Simulated camera views for the video tests: a plaza crowd seen from typical CCTV poses."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from analytics.vision.view import CountingView
from beffroi.events import LatLon
from beffroi.geometry import LocalFrame, PinholeCamera
from beffroi.sites import ViewZone
from beffroi.venue import CameraPose, Venue
from simulators.camera.crowd import GroundGate, GroundZone, StaticConditions
from simulators.camera.dataset import plaza_scene
from simulators.camera.render import CameraRenderer, CameraScene, FrameTruth, Image

PLAZA = np.array([[-40.0, 0.0], [40.0, 0.0], [40.0, 12.0], [-40.0, 12.0]])
NORTH = np.array([[-40.0, 12.0], [40.0, 12.0], [40.0, 60.0], [-40.0, 60.0]])


def gate_scene(
    *,
    height_m: float = 9.0,
    tilt_deg: float = 45.0,
    fov_deg: float = 60.0,
    width: int = 320,
    height: int = 180,
    gate: bool = False,
) -> CameraScene:
    """A camera 14 m south of a gate line between zones 'plaza' (south) and 'north'."""
    cam = PinholeCamera.from_pose(
        CameraPose(height_m=height_m, heading_deg=0.0, tilt_deg=tilt_deg, fov_deg=fov_deg),
        x=0.0,
        y=-2.0,
        width=width,
        height=height,
    )
    zones = [GroundZone("plaza", PLAZA, 960.0), GroundZone("north", NORTH, 3840.0)]
    gates = (
        [GroundGate("g1", np.array([4.0, 12.0]), np.array([-4.0, 12.0]), "plaza", "north")] if gate else []
    )
    return CameraScene(camera_id="cam1", camera=cam, zones=zones, gates=gates, max_range_m=40.0)


#: (height m, tilt deg, horizontal fov deg): a mast, a facade and a lamp post
CCTV_POSES = (
    CameraPose(height_m=10.0, heading_deg=0.0, tilt_deg=40.0, fov_deg=55.0),
    CameraPose(height_m=8.0, heading_deg=10.0, tilt_deg=30.0, fov_deg=60.0),
    CameraPose(height_m=6.0, heading_deg=350.0, tilt_deg=25.0, fov_deg=65.0),
)


def cctv_scene(pose: CameraPose, *, width: int = 640, height: int = 360) -> CameraScene:
    return plaza_scene("cctv", pose, width=width, height=height, max_range_m=40.0)


def counting_view_of(scene: CameraScene, *, min_person_px: float = 48.0) -> CountingView:
    zones = [ViewZone(z.id, z.polygon, z.area_m2) for z in scene.zones]
    return CountingView.from_camera(scene.camera_id, scene.camera, zones=zones, min_person_px=min_person_px)


def crowd_frames(
    scene: CameraScene, *, density: float, seeds: range, skip: int = 0
) -> Iterator[tuple[Image, FrameTruth]]:
    """One frame per seed of a crowd at `density` persons/m² (unseen by training: seeds >= 1000)."""
    for seed in seeds:
        r = CameraRenderer(
            scene, conditions=StaticConditions({"west": density, "east": density}), fps=5.0, seed=seed
        )
        r.skip(skip)
        yield r.next_frame()


def truth_in_region(truth: FrameTruth, view: CountingView) -> int:
    feet = np.array([p.foot for p in truth.persons if p.zone is not None]).reshape(-1, 2)
    return int(view.in_region(feet).sum())


def small_venue() -> Venue:
    """One site: a forecourt south of a 6 m gate into a plaza; cam-1 looks north over the gate,
    cam-2 south over the plaza."""
    frame = LocalFrame(LatLon(lat=48.9245, lon=2.3602))

    def poly(x0: float, y0: float, x1: float, y1: float) -> list[LatLon]:
        return [frame.to_latlon(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]

    return Venue.model_validate(
        {
            "id": "test-venue",
            "sites": [
                {
                    "id": "site-a",
                    "kind": "stadium",
                    "center": frame.origin,
                    "zones": [
                        {
                            "id": "forecourt",
                            "kind": "forecourt",
                            "polygon": poly(-30, 0, 30, 12),
                            "capacity": 2000,
                        },
                        {"id": "plaza", "kind": "plaza", "polygon": poly(-30, 12, 30, 60), "capacity": 8000},
                    ],
                    "exits": [
                        {
                            "id": "gate-1",
                            "width_m": 6.0,
                            "from_zone": "forecourt",
                            "to_zone": "plaza",
                            "location": frame.to_latlon(0.0, 12.0),
                        },
                    ],
                    "devices": [
                        {
                            "id": "cam-1",
                            "kind": "camera",
                            "zone": "forecourt",
                            "location": frame.to_latlon(0, -2),
                            "camera": {
                                "height_m": 9.0,
                                "heading_deg": 0.0,
                                "tilt_deg": 40.0,
                                "fov_deg": 60.0,
                                "width_px": 1280,
                                "height_px": 720,
                                "max_range_m": 40.0,
                                "sees": ["forecourt", "plaza"],
                            },
                        },
                        {
                            "id": "cam-2",
                            "kind": "camera",
                            "zone": "plaza",
                            "location": frame.to_latlon(0, 62),
                            "camera": {
                                "height_m": 9.0,
                                "heading_deg": 180.0,
                                "tilt_deg": 40.0,
                                "fov_deg": 60.0,
                                "width_px": 1280,
                                "height_px": 720,
                                "max_range_m": 40.0,
                                "sees": ["plaza"],
                            },
                        },
                    ],
                }
            ],
        }
    )
