"""A venue's cameras as scenes, with crowd conditions from a scenario run or fixed per zone.

`VenueCameras` is a picklable recipe, so that worker processes can rebuild them (`render_in_processes`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from beffroi.devices import DeviceKind
from beffroi.venue import Venue
from beffroi.yamlconf import load_yaml, validate_doc
from simulators.camera.crowd import CrowdConditions, StaticConditions
from simulators.camera.render import CameraScene
from simulators.camera.run import Shifted
from simulators.camera.scene import RENDER_RANGE_M, camera_scene


def load_venue(path: Path) -> Venue:
    return validate_doc(Venue, load_yaml(path), path)


def camera_ids(venue: Venue, site: str | None, choice: str) -> list[str]:
    cams = [
        d.id
        for s in venue.sites
        if site is None or s.id == site
        for d in s.devices
        if d.kind is DeviceKind.CAMERA
    ]
    if choice == "all":
        return cams
    if choice.isdigit():
        return cams[: int(choice)]
    wanted = choice.split(",")
    unknown = [c for c in wanted if c not in cams]
    if unknown:
        raise SystemExit(f"unknown camera(s): {', '.join(unknown)}")
    return wanted


@dataclass(frozen=True)
class CameraSet:
    scenes: list[CameraScene]
    conditions: CrowdConditions
    site_id: str  # the site whose conditions drive the crowd

    def zones(self) -> list[str]:
        """Ids of the zones that show in at least one camera, in order of first appearance."""
        return list(dict.fromkeys(z.id for s in self.scenes for z in s.zones))


@dataclass(frozen=True)
class VenueCameras:
    """Which cameras of which venue to render, and the crowd they see: a scenario run's ground truth
    (`truth`, read `t0_s` seconds in, `speed` scenario seconds per second) or fixed `densities`."""

    venue_path: Path
    truth: Path | None = None
    site: str | None = None
    cameras: str = "all"  # 'all', the first N, or ids separated by commas
    densities: tuple[tuple[str, float], ...] = ()
    width: int = 640
    t0_s: float = 0.0
    speed: float = 1.0
    render_range_m: float = RENDER_RANGE_M

    def load(self) -> CameraSet:
        venue = load_venue(self.venue_path)
        ids = camera_ids(venue, self.site, self.cameras)
        if not ids:
            raise SystemExit("no cameras to simulate")
        scenes = [camera_scene(venue, i, width=self.width, render_range_m=self.render_range_m) for i in ids]
        site_id = self.site or venue.devices[ids[0]].site_id
        conditions: CrowdConditions
        if self.truth is not None:
            from simulators.truth import SiteConditions

            conditions = Shifted(SiteConditions(self.truth, site_id), self.t0_s, self.speed)
        else:
            conditions = StaticConditions(dict(self.densities))
        return CameraSet(scenes=scenes, conditions=conditions, site_id=site_id)

    def __call__(self) -> tuple[list[CameraScene], CrowdConditions]:
        built = self.load()
        return built.scenes, built.conditions
