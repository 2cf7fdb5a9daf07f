"""Parametric layouts of Paris 2024-like sites, written out as the venue files of scenarios/venues/.

The shipped venue YAML files are generated data: `python -m simulators.layouts scenarios/venues`
rewrites them, and a test checks that they match this module. Edit here, not in the YAML.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from beffroi.devices import DeviceKind
from beffroi.events import LatLon
from beffroi.venue import (
    CameraPose,
    CameraView,
    Device,
    Exit,
    ExitKind,
    LocalFrame,
    Site,
    SiteKind,
    Venue,
    Zone,
    ZoneKind,
    polygon_area_m2,
)
from simulators.camera.survey import survey_ground_refs
from simulators.geometry import aim, camera_coverage, ellipse_point, ring_sector

XY = tuple[float, float]

DESIGN_DENSITY: dict[ZoneKind, float] = {
    ZoneKind.STAND: 2.8,
    ZoneKind.CONCOURSE: 2.5,
    ZoneKind.PLAZA: 2.0,
    ZoneKind.FORECOURT: 2.0,
    ZoneKind.STREET: 2.0,
    ZoneKind.PLATFORM: 2.0,
    ZoneKind.HALL: 2.0,
    ZoneKind.VIEWING: 2.0,
    ZoneKind.STAGE_FRONT: 4.0,
    ZoneKind.AMENITY: 2.0,
    ZoneKind.QUAY: 1.5,
    ZoneKind.AREA: 2.0,
}
"""Persons/m2 a zone is planned for: its capacity is area x this."""

MIN_TILT_DEG, MAX_TILT_DEG = 12.0, 45.0
"""Camera tilts: below the least, most of the image is far away; beyond the most, people seen from
above are too foreshortened to count."""


def _r(v: float) -> float:
    return round(v, 6)


class SiteBuilder:
    """Accumulates zones, exits and devices of one site laid out in local metres."""

    def __init__(self, site_id: str, name: str, kind: SiteKind, center: LatLon) -> None:
        self.id, self.name, self.kind, self.center = site_id, name, kind, center
        self.frame = LocalFrame(center)
        self.zones: list[Zone] = []
        self.zone_xy: dict[str, list[XY]] = {}
        self.exits: list[Exit] = []
        self.exit_xy: dict[str, XY] = {}
        self.devices: list[Device] = []
        self._counters: dict[str, int] = {}

    def ll(self, xy: XY) -> LatLon:
        p = self.frame.to_latlon(*xy)
        return LatLon(lat=_r(p.lat), lon=_r(p.lon))

    def zone(
        self, zone_id: str, name: str, kind: ZoneKind, poly: list[XY], capacity: int | None = None
    ) -> str:
        polygon = [self.ll(p) for p in poly]
        area = round(polygon_area_m2(polygon), 1)
        cap = capacity if capacity is not None else int(area * DESIGN_DENSITY[kind])
        self.zones.append(Zone(id=zone_id, name=name, kind=kind, polygon=polygon, area_m2=area, capacity=cap))
        self.zone_xy[zone_id] = poly
        return zone_id

    def centre(self, zone_id: str) -> XY:
        pts = self.zone_xy[zone_id]
        return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)

    def exit(
        self,
        exit_id: str,
        name: str,
        at: XY,
        *,
        width: float,
        outer: str | None,
        inner: str | None,
        kind: ExitKind = ExitKind.WALKWAY,
        max_flow: float | None = None,
        screening: float | None = None,
    ) -> str:
        extra: dict[str, float] = {}
        if max_flow is not None:
            extra["max_specific_flow"] = max_flow
        if screening is not None:
            extra["screening_flow"] = screening
        self.exits.append(
            Exit(
                id=exit_id,
                name=name,
                kind=kind,
                width_m=round(width, 2),
                from_zone=outer,
                to_zone=inner,
                location=self.ll(at),
                **extra,
            )
        )
        self.exit_xy[exit_id] = at
        return exit_id

    def device(
        self,
        kind: DeviceKind,
        at: XY,
        *,
        zone: str | None = None,
        exit: str | None = None,
        tag: str | None = None,
        covers: list[str] | None = None,
        min_count: int | None = None,
        camera: CameraPose | None = None,
    ) -> Device:
        short = {
            DeviceKind.GATE_COUNTER: "gc",
            DeviceKind.ACOUSTIC: "snd",
            DeviceKind.AIR_QUALITY: "aq",
            DeviceKind.TEMPERATURE: "tmp",
            DeviceKind.PERIMETER: "fence",
            DeviceKind.DOOR_CONTACT: "door",
            DeviceKind.PANIC_BUTTON: "sos",
            DeviceKind.PRESENCE: "wifi",
            DeviceKind.TELCO_CELL: "cell",
            DeviceKind.CAMERA: "cam",
        }[kind]
        where = tag or exit or zone or "site"
        key = f"{short}-{where}"
        n = self._counters[key] = self._counters.get(key, 0) + 1
        dev = Device(
            id=f"{self.id}-{key}-{n}",
            kind=kind,
            zone=zone,
            exit=exit,
            location=self.ll(at),
            covers=covers or [],
            min_count=min_count,
            camera=camera,
        )
        self.devices.append(dev)
        return dev

    def camera(
        self,
        at: XY,
        target: XY,
        *,
        zone: str,
        height: float = 12.0,
        fov: float = 70.0,
        reach: float | None = None,
    ) -> Device:
        """A camera at `at` aimed at `target` (or at the point `reach` metres towards it), with the
        reference points a survey of its installation gives (`survey_ground_refs`)."""
        if reach is not None:
            d = math.dist(at, target)
            target = _lerp(at, target, min(1.0, reach / d)) if d > 0 else target
        heading, tilt = aim(at, target, height)
        tilt = min(max(tilt, MIN_TILT_DEG), MAX_TILT_DEG)
        pose = CameraPose(height_m=height, heading_deg=heading, tilt_deg=tilt, fov_deg=fov)
        location = self.ll(at)
        cover = camera_coverage(CameraView(pose, location), self.zones)
        sees = [zone] + [
            z for z, f in sorted(cover.items(), key=lambda kv: -kv[1]) if f >= 0.02 and z != zone
        ]
        refs = survey_ground_refs(pose, location, origin=self.center)
        pose = pose.model_copy(update={"sees": sees, "ground_refs": refs})
        return self.device(DeviceKind.CAMERA, at, zone=zone, camera=pose)

    def counters_on_all_exits(self, skip: Callable[[Exit], bool] = lambda e: False) -> None:
        for e in self.exits:
            if not skip(e):
                self.device(
                    DeviceKind.GATE_COUNTER, self.exit_xy[e.id], zone=e.to_zone or e.from_zone, exit=e.id
                )

    def build(self) -> Site:
        return Site(
            id=self.id,
            name=self.name,
            kind=self.kind,
            center=self.center,
            zones=self.zones,
            exits=self.exits,
            devices=self.devices,
        )


def _lerp(a: XY, b: XY, t: float) -> XY:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


# -- stadium --------------------------------------------------------------------------------------

STAND_NAMES = ("n", "ne", "e", "se", "s", "sw", "w", "nw")
QUARTERS = ("n", "e", "s", "w")
GATE_LETTERS = "abcdefghijkl"


def _overlap(a0: float, a1: float, b0: float, b1: float) -> tuple[float, float]:
    """Angular overlap of two bearing intervals and the bearing of its middle."""
    best, mid = 0.0, 0.0
    for shift in (-360.0, 0.0, 360.0):
        lo, hi = max(a0, b0 + shift), min(a1, b1 + shift)
        if hi - lo > best:
            best, mid = hi - lo, (lo + hi) / 2
    return best, mid % 360.0


def stadium(site_id: str, name: str, center: LatLon, *, seats: int = 78_000) -> Site:
    """A Stade de France-like bowl: 8 stands, 4 concourses, 12 gate plazas (one gate each), 4 forecourts."""
    b = SiteBuilder(site_id, name, SiteKind.STADIUM, center)
    pitch, bowl, ring, fence, outer = (
        (55.0, 80.0),
        (105.0, 130.0),
        (118.0, 143.0),
        (140.0, 165.0),
        (230.0, 255.0),
    )
    for k, s in enumerate(STAND_NAMES):
        b.zone(
            f"stand-{s}",
            f"Tribune {s.upper()}",
            ZoneKind.STAND,
            ring_sector(pitch, bowl, k * 45 - 22.5, k * 45 + 22.5),
            capacity=seats // 8,
        )
    for k, q in enumerate(QUARTERS):
        b.zone(
            f"concourse-{q}",
            f"Coursive {q.upper()}",
            ZoneKind.CONCOURSE,
            ring_sector(bowl, ring, k * 90 - 45, k * 90 + 45),
        )
        b.zone(
            f"parvis-{q}",
            f"Parvis {q.upper()}",
            ZoneKind.FORECOURT,
            ring_sector(fence, outer, k * 90 - 45, k * 90 + 45),
        )
    for k, g in enumerate(GATE_LETTERS):
        b.zone(
            f"plaza-{g}",
            f"Esplanade porte {g.upper()}",
            ZoneKind.PLAZA,
            ring_sector(ring, fence, k * 30 - 15, k * 30 + 15, 4),
        )
    # vomitories: 16 m of exits per stand, shared by angular overlap with the concourses
    for k, s in enumerate(STAND_NAMES):
        a0, a1 = k * 45 - 22.5, k * 45 + 22.5
        for j, q in enumerate(QUARTERS):
            ov, mid = _overlap(a0, a1, j * 90 - 45, j * 90 + 45)
            if ov > 1:
                b.exit(
                    f"vom-{s}-{q}",
                    f"Vomitoires {s.upper()}/{q.upper()}",
                    ellipse_point(*bowl, mid),
                    width=16.0 * ov / 45.0,
                    outer=f"concourse-{q}",
                    inner=f"stand-{s}",
                    kind=ExitKind.VOMITORY,
                )
    for k, g in enumerate(GATE_LETTERS):
        q = QUARTERS[((k * 30 + 45) % 360) // 90]
        b.exit(
            f"gate-{g}",
            f"Porte {g.upper()}",
            ellipse_point(*ring, k * 30),
            width=14.0,
            outer=f"plaza-{g}",
            inner=f"concourse-{q}",
            kind=ExitKind.GATE,
            screening=25.0,
        )
        b.exit(
            f"fence-{g}",
            f"Filtrage {g.upper()}",
            ellipse_point(*fence, k * 30),
            width=30.0,
            outer=f"parvis-{q}",
            inner=f"plaza-{g}",
        )
    for k, q in enumerate(QUARTERS):
        nxt = QUARTERS[(k + 1) % 4]
        b.exit(
            f"ring-{q}{nxt}",
            f"Coursive {q.upper()}/{nxt.upper()}",
            ellipse_point(111.5, 136.5, k * 90 + 45),
            width=10.0,
            outer=f"concourse-{q}",
            inner=f"concourse-{nxt}",
        )
        for side, d in (("1", -22.0), ("2", 22.0)):
            b.exit(
                f"approach-{q}{side}",
                f"Acces {q.upper()}{side}",
                ellipse_point(*outer, k * 90 + d),
                width=30.0,
                outer=None,
                inner=f"parvis-{q}",
            )
        b.exit(
            f"emergency-{q}",
            f"Issue de secours {q.upper()}",
            ellipse_point(*ring, k * 90 + 45 - 7),
            width=8.0,
            outer=f"parvis-{q}",
            inner=f"concourse-{q}",
            kind=ExitKind.EMERGENCY,
        )
    b.counters_on_all_exits(skip=lambda e: e.kind is ExitKind.EMERGENCY)
    for k, s in enumerate(STAND_NAMES):
        z = f"stand-{s}"
        spot = ellipse_point(80.0, 105.0, k * 45)
        b.device(DeviceKind.ACOUSTIC, spot, zone=z)
        b.device(DeviceKind.AIR_QUALITY, spot, zone=z)
        b.device(DeviceKind.TEMPERATURE, spot, zone=z)
        b.device(DeviceKind.PRESENCE, spot, zone=z)
    for k, q in enumerate(QUARTERS):
        cz, pz = f"concourse-{q}", f"parvis-{q}"
        for d in (-25.0, 25.0):
            at = ellipse_point(111.0, 136.0, k * 90 + d)
            b.device(DeviceKind.AIR_QUALITY, at, zone=cz)
            b.device(DeviceKind.PRESENCE, at, zone=cz)
        at = ellipse_point(111.0, 136.0, k * 90)
        b.device(DeviceKind.ACOUSTIC, at, zone=cz)
        b.device(DeviceKind.TEMPERATURE, at, zone=cz)
        b.device(DeviceKind.PANIC_BUTTON, at, zone=cz)
        b.device(
            DeviceKind.DOOR_CONTACT, ellipse_point(*ring, k * 90 + 45 - 7), zone=cz, exit=f"emergency-{q}"
        )
        for d in (-20.0, 20.0):
            b.device(DeviceKind.ACOUSTIC, ellipse_point(185.0, 210.0, k * 90 + d), zone=pz)
        at = ellipse_point(185.0, 210.0, k * 90)
        b.device(DeviceKind.AIR_QUALITY, at, zone=pz)
        b.device(DeviceKind.TEMPERATURE, at, zone=pz)
        b.device(DeviceKind.PRESENCE, at, zone=pz)
        plazas = [f"plaza-{GATE_LETTERS[(k * 3 + i - 1) % 12]}" for i in range(3)]
        b.device(DeviceKind.TELCO_CELL, at, zone=pz, covers=[pz, *plazas], min_count=50)
    for k, g in enumerate(GATE_LETTERS):
        z = f"plaza-{g}"
        spot = ellipse_point(129.0, 154.0, k * 30)
        b.device(DeviceKind.ACOUSTIC, spot, zone=z)
        b.device(DeviceKind.PRESENCE, spot, zone=z)
        b.device(DeviceKind.PANIC_BUTTON, spot, zone=z)
        b.device(DeviceKind.DOOR_CONTACT, ellipse_point(*ring, k * 30 + 4), zone=z, exit=f"gate-{g}")
        if k % 2 == 0:
            b.device(DeviceKind.AIR_QUALITY, spot, zone=z)
    # perimeter fence between the plazas and the forecourts, one sensor every ~40 m
    for i in range(24):
        brg = i * 15 + 7.5
        g = GATE_LETTERS[int(((brg + 15) % 360) // 30)]
        b.device(DeviceKind.PERIMETER, ellipse_point(*fence, brg), zone=f"plaza-{g}")
    # cameras: one on each gate plaza, one over each quarter's stands, concourse and forecourt
    for k, g in enumerate(GATE_LETTERS):
        b.camera(
            ellipse_point(*ring, k * 30 + 9),
            ellipse_point(129.0, 154.0, k * 30),
            zone=f"plaza-{g}",
            height=8.0,
        )
    for k, q in enumerate(QUARTERS):
        # a PTZ on the roof's rear edge over each quarter's main stand, looking down its rows
        b.camera(
            ellipse_point(*bowl, k * 90),
            ellipse_point(92.0, 117.0, k * 90),
            zone=f"stand-{STAND_NAMES[k * 2]}",
            height=8.0,
            fov=55.0,
        )
        b.camera(
            ellipse_point(*bowl, k * 90 + 30),
            ellipse_point(111.0, 136.0, k * 90),
            zone=f"concourse-{q}",
            height=5.0,
            fov=80.0,
        )
        b.camera(
            ellipse_point(*fence, k * 90 + 20),
            ellipse_point(160.0, 185.0, k * 90 + 20),
            zone=f"parvis-{q}",
            height=8.0,
            fov=55.0,
        )
    return b.build()


# -- transit hub ----------------------------------------------------------------------------------


def transit_hub(
    site_id: str, name: str, center: LatLon, *, bearing: float = 0.0, train_width: float = 30.0
) -> Site:
    """A rail station: two platforms, a hall, a forecourt; trains and the street on its boundary."""
    b = SiteBuilder(site_id, name, SiteKind.TRANSIT_HUB, center)
    c, s = math.cos(math.radians(bearing)), math.sin(math.radians(bearing))

    def rot(x: float, y: float) -> XY:
        return x * c + y * s, -x * s + y * c

    def rect(x0: float, y0: float, x1: float, y1: float) -> list[XY]:
        return [rot(x0, y0), rot(x1, y0), rot(x1, y1), rot(x0, y1)]

    b.zone("platform-1", "Quai 1", ZoneKind.PLATFORM, rect(-100, 10, 100, 22))
    b.zone("platform-2", "Quai 2", ZoneKind.PLATFORM, rect(-100, -22, 100, -10))
    b.zone("hall", "Salle d'echanges", ZoneKind.HALL, rect(-25, -10, 25, 10), capacity=2500)
    b.zone("forecourt", "Parvis de la gare", ZoneKind.FORECOURT, rect(25, -30, 85, 30))
    for p, y in (("1", 16.0), ("2", -16.0)):
        b.exit(
            f"train-{p}",
            f"Trains quai {p}",
            rot(0, y + (6 if p == "1" else -6)),
            width=train_width,
            outer=None,
            inner=f"platform-{p}",
            kind=ExitKind.TRAIN,
            max_flow=40.0,
        )
        b.exit(
            f"stairs-{p}",
            f"Escaliers quai {p}",
            rot(0, 10 if p == "1" else -10),
            width=9.0,
            outer="hall",
            inner=f"platform-{p}",
            kind=ExitKind.STAIRS,
            max_flow=56.0,
        )
    b.exit("ticket-gates", "Lignes de controle", rot(25, 0), width=12.0, outer="forecourt", inner="hall")
    b.exit("street", "Rue", rot(85, 0), width=25.0, outer=None, inner="forecourt")
    b.exit(
        "emergency-hall",
        "Issue de secours",
        rot(0, -10),
        width=4.0,
        outer=None,
        inner="hall",
        kind=ExitKind.EMERGENCY,
    )
    b.counters_on_all_exits(skip=lambda e: e.kind is ExitKind.EMERGENCY)
    for z in ("platform-1", "platform-2", "hall", "forecourt"):
        at = b.centre(z)
        b.device(DeviceKind.ACOUSTIC, at, zone=z)
        b.device(DeviceKind.PRESENCE, at, zone=z)
        if z != "forecourt":
            b.device(DeviceKind.AIR_QUALITY, at, zone=z)
            b.device(DeviceKind.PANIC_BUTTON, at, zone=z)
    for z in ("platform-1", "platform-2"):
        x0, y0 = b.centre(z)
        b.device(DeviceKind.PRESENCE, (x0 + 60 * c, y0 - 60 * s), zone=z)
    b.device(DeviceKind.TEMPERATURE, b.centre("hall"), zone="hall")
    b.device(DeviceKind.TEMPERATURE, b.centre("forecourt"), zone="forecourt")
    b.device(DeviceKind.DOOR_CONTACT, rot(0, -10), zone="hall", exit="emergency-hall")
    b.device(
        DeviceKind.TELCO_CELL,
        b.centre("hall"),
        zone="hall",
        covers=["platform-1", "platform-2", "hall", "forecourt"],
        min_count=30,
    )
    b.camera(rot(-95, 16), rot(-20, 16), zone="platform-1", height=4.0, fov=60.0)
    b.camera(rot(-95, -16), rot(-20, -16), zone="platform-2", height=4.0, fov=60.0)
    b.camera(rot(-20, 8), rot(10, -3), zone="hall", height=5.0, fov=80.0)
    b.camera(rot(28, 25), rot(60, -5), zone="forecourt", height=8.0)
    return b.build()


# -- fan zone -------------------------------------------------------------------------------------


def fan_zone(site_id: str, name: str, center: LatLon, *, scale: float = 1.0) -> Site:
    """A fenced park with a giant screen and a stage: two screened entrances, one exit walk."""
    b = SiteBuilder(site_id, name, SiteKind.FAN_ZONE, center)

    def rect(x0: float, y0: float, x1: float, y1: float) -> list[XY]:
        return [
            (x0 * scale, y0 * scale),
            (x1 * scale, y0 * scale),
            (x1 * scale, y1 * scale),
            (x0 * scale, y1 * scale),
        ]

    def p(x: float, y: float) -> XY:
        return x * scale, y * scale

    b.zone("queue-north", "File nord", ZoneKind.PLAZA, rect(-40, 80, 20, 100))
    b.zone("queue-south", "File sud", ZoneKind.PLAZA, rect(-40, -100, 20, -80))
    b.zone("lawn", "Pelouse ecran geant", ZoneKind.VIEWING, rect(-60, -50, 60, 50))
    b.zone("stage-front", "Devant la scene", ZoneKind.STAGE_FRONT, rect(60, -30, 90, 30))
    b.zone("food-court", "Restauration", ZoneKind.AMENITY, rect(-60, 50, 0, 80))
    b.zone("toilets", "Sanitaires", ZoneKind.AMENITY, rect(-60, -80, -30, -50))
    b.zone("exit-walk", "Allee de sortie", ZoneKind.STREET, rect(-110, -50, -60, 50))
    b.exit("entry-north", "Acces nord", p(-10, 100), width=20.0, outer=None, inner="queue-north")
    b.exit("entry-south", "Acces sud", p(-10, -100), width=20.0, outer=None, inner="queue-south")
    b.exit(
        "check-north",
        "Filtrage nord",
        p(10, 80),
        width=16.0 * scale,
        outer="queue-north",
        inner="food-court",
        kind=ExitKind.GATE,
        screening=20.0,
    )
    b.exit(
        "check-south",
        "Filtrage sud",
        p(10, -80),
        width=16.0 * scale,
        outer="queue-south",
        inner="lawn",
        kind=ExitKind.GATE,
        screening=20.0,
    )
    b.exit("food-lawn", "Restauration/pelouse", p(-30, 50), width=30.0, outer="food-court", inner="lawn")
    b.exit("stage-access", "Acces scene", p(60, 0), width=40.0, outer="lawn", inner="stage-front")
    b.exit("toilets-lawn", "Sanitaires/pelouse", p(-45, -50), width=10.0, outer="toilets", inner="lawn")
    b.exit("lawn-exit", "Vers la sortie", p(-60, 0), width=20.0, outer="exit-walk", inner="lawn")
    b.exit("exit-street", "Sortie", p(-110, 0), width=15.0, outer=None, inner="exit-walk")
    b.exit(
        "emergency-east",
        "Secours est",
        p(90, 40),
        width=6.0,
        outer=None,
        inner="stage-front",
        kind=ExitKind.EMERGENCY,
    )
    b.exit(
        "emergency-west",
        "Secours ouest",
        p(-60, 45),
        width=6.0,
        outer=None,
        inner="lawn",
        kind=ExitKind.EMERGENCY,
    )
    b.counters_on_all_exits(skip=lambda e: e.kind is ExitKind.EMERGENCY)
    lawn_spots = [p(-30, -25), p(30, -25), p(-30, 25), p(30, 25)]
    for at in lawn_spots:
        b.device(DeviceKind.ACOUSTIC, at, zone="lawn")
        b.device(DeviceKind.PRESENCE, at, zone="lawn")
    for at in lawn_spots[::2]:
        b.device(DeviceKind.AIR_QUALITY, at, zone="lawn")
        b.device(DeviceKind.PANIC_BUTTON, at, zone="lawn")
    for z in ("queue-north", "queue-south", "stage-front", "food-court", "toilets", "exit-walk"):
        at = b.centre(z)
        b.device(DeviceKind.ACOUSTIC, at, zone=z)
        b.device(DeviceKind.PRESENCE, at, zone=z)
        if z in ("stage-front", "food-court", "queue-north", "queue-south"):
            b.device(DeviceKind.PANIC_BUTTON, at, zone=z)
    b.device(DeviceKind.ACOUSTIC, p(75, 20), zone="stage-front")
    b.device(DeviceKind.AIR_QUALITY, b.centre("stage-front"), zone="stage-front")
    b.device(DeviceKind.AIR_QUALITY, p(-45, 65), zone="food-court")
    b.device(DeviceKind.AIR_QUALITY, p(-15, 65), zone="food-court")
    for z in ("lawn", "food-court", "stage-front"):
        b.device(DeviceKind.TEMPERATURE, b.centre(z), zone=z)
    b.device(DeviceKind.DOOR_CONTACT, p(90, 40), zone="stage-front", exit="emergency-east")
    b.device(DeviceKind.DOOR_CONTACT, p(-60, 45), zone="lawn", exit="emergency-west")
    # fence around the park (outer rectangle -110..90 x -100..100), a sensor every ~35 m
    corners = [p(-110, -100), p(90, -100), p(90, 100), p(-110, 100)]
    for i, (a, c) in enumerate(zip(corners, corners[1:] + corners[:1], strict=True)):
        n = max(2, int(math.dist(a, c) / 35))
        for j in range(n):
            at = _lerp(a, c, (j + 0.5) / n)
            zone = min(b.zone_xy, key=lambda z: math.dist(b.centre(z), at))
            b.device(DeviceKind.PERIMETER, at, zone=zone, tag=f"side{i + 1}")
    b.device(
        DeviceKind.TELCO_CELL, p(0, 0), zone="lawn", covers=["lawn", "stage-front", "exit-walk"], min_count=50
    )
    b.device(
        DeviceKind.TELCO_CELL,
        p(-30, 90),
        zone="food-court",
        covers=["queue-north", "queue-south", "food-court", "toilets"],
        min_count=50,
    )
    # aimed at counting range: a person must stand some 50 px tall in a 640 px wide image
    b.camera(p(-40, 105), p(-10, 90), zone="queue-north", height=8.0, reach=16.0)
    b.camera(p(-40, -105), p(-10, -90), zone="queue-south", height=8.0, reach=16.0)
    b.camera(p(58, -48), p(0, 0), zone="lawn", height=8.0, fov=60.0, reach=16.0)
    b.camera(p(-58, 48), p(0, 0), zone="lawn", height=8.0, fov=60.0, reach=16.0)
    b.camera(p(58, 48), p(-10, 20), zone="lawn", height=8.0, fov=60.0, reach=16.0)
    b.camera(p(-58, -48), p(10, -20), zone="lawn", height=8.0, fov=60.0, reach=16.0)
    b.camera(p(92, -28), p(75, 0), zone="stage-front", height=8.0, fov=60.0, reach=14.0)
    b.camera(p(92, 28), p(75, 0), zone="stage-front", height=8.0, fov=60.0, reach=14.0)
    b.camera(p(-62, 78), p(-30, 65), zone="food-court", height=6.0)
    b.camera(p(-108, -45), p(-85, 0), zone="exit-walk", height=8.0, reach=16.0)
    return b.build()


# -- riverside ceremony segment --------------------------------------------------------------------

SEINE_PATH: tuple[tuple[str, float, float], ...] = (
    ("austerlitz", 48.8434, 2.3655),
    ("sully", 48.8493, 2.3597),
    ("notre-dame", 48.8548, 2.3499),
    ("pont-neuf", 48.8575, 2.3413),
    ("arts", 48.8583, 2.3375),
    ("royal", 48.8602, 2.3297),
    ("concorde", 48.8637, 2.3197),
    ("alexandre-iii", 48.8638, 2.3135),
    ("alma", 48.8626, 2.3017),
    ("iena", 48.8596, 2.2930),
)


def riverside(site_id: str, name: str, path: tuple[tuple[str, float, float], ...] = SEINE_PATH) -> Site:
    """Both banks of a river between bridges: an upper quay (free viewing) and a lower quay (ticketed
    stands) per segment and bank, screened checkpoints from the streets, stairs between the levels."""
    pts = [LatLon(lat=lat, lon=lon) for _, lat, lon in path]
    center = LatLon(lat=_r(sum(p.lat for p in pts) / len(pts)), lon=_r(sum(p.lon for p in pts) / len(pts)))
    b = SiteBuilder(site_id, name, SiteKind.RIVERSIDE, center)
    xy = [b.frame.to_xy(p) for p in pts]
    normals: list[XY] = []
    for i in range(len(xy)):
        a, c = xy[max(i - 1, 0)], xy[min(i + 1, len(xy) - 1)]
        dx, dy = c[0] - a[0], c[1] - a[1]
        n = math.hypot(dx, dy)
        normals.append((-dy / n, dx / n))  # left of the downstream direction

    def off(i: int, d: float) -> XY:
        return xy[i][0] + normals[i][0] * d, xy[i][1] + normals[i][1] * d

    banks = (("l", 1.0, "rive gauche"), ("r", -1.0, "rive droite"))
    lower, upper = (55.0, 70.0), (78.0, 92.0)
    for bank, sign, bank_name in banks:
        for i in range(len(xy) - 1):
            seg = f"{path[i][0]}"
            for level, (o1, o2), kind in (
                ("lower", lower, ZoneKind.QUAY),
                ("upper", upper, ZoneKind.VIEWING),
            ):
                z = f"{level}-{bank}{i + 1:02d}"
                b.zone(
                    z,
                    f"Quai {level} {bank_name} {seg}",
                    kind,
                    [off(i, sign * o1), off(i + 1, sign * o1), off(i + 1, sign * o2), off(i, sign * o2)],
                )
            up, lo = f"upper-{bank}{i + 1:02d}", f"lower-{bank}{i + 1:02d}"
            seg_len = math.dist(xy[i], xy[i + 1])
            for j, t in enumerate((0.25, 0.75)):
                # a queue pen on the street side of each screened checkpoint
                pen = f"pen-{bank}{i + 1:02d}{'ab'[j]}"
                h = 20.0 / seg_len

                def at(tt: float, d: float, i: int = i, sign: float = sign) -> XY:
                    return _lerp(off(i, sign * d), off(i + 1, sign * d), tt)

                b.zone(
                    pen,
                    f"File d'attente {bank}{i + 1}{'AB'[j]}",
                    ZoneKind.PLAZA,
                    [
                        at(t - h, upper[1] + 1),
                        at(t + h, upper[1] + 1),
                        at(t + h, upper[1] + 13),
                        at(t - h, upper[1] + 13),
                    ],
                )
                b.exit(
                    f"street-in-{bank}{i + 1:02d}{'ab'[j]}",
                    f"Acces file {bank}{i + 1}{'AB'[j]}",
                    at(t, upper[1] + 13),
                    width=12.0,
                    outer=None,
                    inner=pen,
                )
                b.exit(
                    f"check-{bank}{i + 1:02d}{'ab'[j]}",
                    f"Point de controle {bank}{i + 1}{'AB'[j]}",
                    at(t, upper[1] + 0.5),
                    width=8.0,
                    outer=pen,
                    inner=up,
                    kind=ExitKind.GATE,
                    screening=22.0,
                )
                stair = _lerp(off(i, sign * 74), off(i + 1, sign * 74), 1 - t)
                b.exit(
                    f"ramp-{bank}{i + 1:02d}{'ab'[j]}",
                    f"Rampe {bank}{i + 1}{'AB'[j]}",
                    stair,
                    width=4.0,
                    outer=up,
                    inner=lo,
                    kind=ExitKind.STAIRS,
                    max_flow=56.0,
                )
            b.exit(
                f"street-{bank}{i + 1:02d}",
                f"Rue transversale {bank}{i + 1}",
                _lerp(off(i, sign * (upper[1] + 4)), off(i + 1, sign * (upper[1] + 4)), 0.5),
                width=6.0,
                outer=None,
                inner=up,
                kind=ExitKind.EMERGENCY,
            )
            if i + 1 < len(xy) - 1:
                nxt_up, nxt_lo = f"upper-{bank}{i + 2:02d}", f"lower-{bank}{i + 2:02d}"
                b.exit(
                    f"along-{up}",
                    f"Quai haut {bank}{i + 1}/{i + 2}",
                    off(i + 1, sign * 85),
                    width=12.0,
                    outer=up,
                    inner=nxt_up,
                )
                b.exit(
                    f"along-{lo}",
                    f"Quai bas {bank}{i + 1}/{i + 2}",
                    off(i + 1, sign * 62),
                    width=10.0,
                    outer=lo,
                    inner=nxt_lo,
                )
    b.counters_on_all_exits(skip=lambda e: e.kind is ExitKind.EMERGENCY or e.id.startswith("along-"))
    for bank, sign, _ in banks:
        for i in range(len(xy) - 1):
            up, lo = f"upper-{bank}{i + 1:02d}", f"lower-{bank}{i + 1:02d}"
            mid_up = _lerp(off(i, sign * 85), off(i + 1, sign * 85), 0.5)
            mid_lo = _lerp(off(i, sign * 62), off(i + 1, sign * 62), 0.5)
            for z, spot in ((up, mid_up), (lo, mid_lo)):
                b.device(DeviceKind.ACOUSTIC, spot, zone=z)
                b.device(DeviceKind.AIR_QUALITY, spot, zone=z)
                b.device(DeviceKind.PRESENCE, spot, zone=z)
                b.device(DeviceKind.PANIC_BUTTON, spot, zone=z)
            b.device(DeviceKind.PRESENCE, _lerp(off(i, sign * 85), off(i + 1, sign * 85), 0.2), zone=up)
            for letter in "ab":
                pen = f"pen-{bank}{i + 1:02d}{letter}"
                b.device(DeviceKind.PRESENCE, b.centre(pen), zone=pen)
                b.device(DeviceKind.ACOUSTIC, b.centre(pen), zone=pen)
            b.device(DeviceKind.TEMPERATURE, mid_up, zone=up)
            b.device(
                DeviceKind.DOOR_CONTACT,
                _lerp(off(i, sign * 96), off(i + 1, sign * 96), 0.5),
                zone=up,
                exit=f"street-{bank}{i + 1:02d}",
            )
            for t in (0.2, 0.3, 0.7, 0.8):
                b.device(DeviceKind.PERIMETER, _lerp(off(i, sign * 93), off(i + 1, sign * 93), t), zone=up)
            b.device(
                DeviceKind.TELCO_CELL,
                _lerp(off(i, sign * 100), off(i + 1, sign * 100), 0.5),
                zone=up,
                covers=[up, lo],
                min_count=50,
            )
            for z, d, h, reach in ((up, 92.0, 8.0, 16.0), (lo, 70.0, 6.0, None)):
                cam = _lerp(off(i, sign * d), off(i + 1, sign * d), 0.1)
                tgt = _lerp(off(i, sign * (d - 8)), off(i + 1, sign * (d - 8)), 0.3)
                b.camera(cam, tgt, zone=z, height=h, reach=reach)
            pen = f"pen-{bank}{i + 1:02d}a"
            px, py = b.centre(pen)
            ux, uy = b.centre(up)
            b.camera((px + (ux - px) * 0.08, py + (uy - py) * 0.08), (px, py), zone=pen, height=8.0)
    return b.build()


# -- the shipped venues ---------------------------------------------------------------------------


def stade_de_france_venue() -> Venue:
    return Venue(
        id="saint-denis",
        name="Stade de France and its stations (Paris 2024-like)",
        sites=[
            stadium("sdf", "Stade de France", LatLon(lat=48.92446, lon=2.36022)),
            transit_hub(
                "rer-d-sdf",
                "Gare RER D Stade de France - Saint-Denis",
                LatLon(lat=48.91790, lon=2.35530),
                bearing=20.0,
            ),
            transit_hub(
                "rer-b-lpsdf",
                "Gare RER B La Plaine - Stade de France",
                LatLon(lat=48.91750, lon=2.36210),
                bearing=-10.0,
                train_width=20.0,
            ),
            transit_hub(
                "m13-sdpp",
                "Metro 13 Saint-Denis - Porte de Paris",
                LatLon(lat=48.92970, lon=2.35660),
                bearing=80.0,
                train_width=15.0,
            ),
        ],
    )


def seine_venue() -> Venue:
    return Venue(
        id="seine",
        name="Seine ceremony segment, Austerlitz to Iena (Paris 2024-like)",
        sites=[
            riverside("seine-ceremony", "Quais de Seine, ceremonie d'ouverture"),
            transit_hub(
                "m1-concorde",
                "Metro Concorde",
                LatLon(lat=48.86560, lon=2.32110),
                bearing=0.0,
                train_width=15.0,
            ),
            transit_hub(
                "rer-c-orsay",
                "RER C Musee d'Orsay",
                LatLon(lat=48.86000, lon=2.32560),
                bearing=-20.0,
                train_width=15.0,
            ),
        ],
    )


def fan_zone_venue() -> Venue:
    return Venue(
        id="fan-zones",
        name="Fan zones: Hotel de Ville and La Villette (Paris 2024-like)",
        sites=[
            fan_zone("fz-hdv", "Fan zone Hotel de Ville", LatLon(lat=48.85660, lon=2.35220)),
            fan_zone(
                "fz-villette", "Parc des nations, La Villette", LatLon(lat=48.89380, lon=2.39060), scale=1.3
            ),
            transit_hub(
                "m1-hdv",
                "Metro Hotel de Ville",
                LatLon(lat=48.85740, lon=2.35130),
                bearing=90.0,
                train_width=15.0,
            ),
        ],
    )


VENUES: dict[str, Callable[[], Venue]] = {
    "stade-de-france.yaml": stade_de_france_venue,
    "seine.yaml": seine_venue,
    "fan-zones.yaml": fan_zone_venue,
}

HEADER = (
    "# Generated by `python -m simulators.layouts scenarios/venues`: edit simulators/layouts.py instead.\n"
)


def render(name: str) -> str:
    return HEADER + VENUES[name]().to_yaml()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the shipped venue files")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in VENUES:
        (args.out_dir / name).write_text(render(name), encoding="utf-8")
        print(args.out_dir / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
