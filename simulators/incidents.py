"""Incidents placed in the world (core sites and, when replicated, their clones), their labels, and
what they do to the sensors besides moving the crowd (that part is compiled into the crowd model)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from beffroi.devices import DeviceKind
from beffroi.venue import LocalFrame, Site, distance_m
from simulators.crowd import Network
from simulators.scenario import (
    CrowdCrush,
    Incident,
    IncidentType,
    PerimeterBreach,
    Smoke,
    SoundSpike,
    SuddenDispersal,
)
from simulators.world import World

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PlacedIncident:
    """One labelled incident window, in seconds after the scenario start."""

    id: str
    spec: Incident
    site_index: int
    site_id: str
    zone: str
    zone_index: int
    exit: str | None
    start: float
    end: float
    devices: tuple[str, ...]
    neighbours: tuple[int, ...] = ()
    fence: tuple[str, ...] = ()
    panic: tuple[str, ...] = ()

    @property
    def type(self) -> IncidentType:
        return IncidentType(self.spec.type)

    def label(self, start_of: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "site": self.site_id,
            "zone": self.zone,
            "exit": self.exit,
            "devices": list(self.devices),
            "start": start_of(self.start),
            "end": start_of(self.end),
            "start_s": self.start,
            "end_s": self.end,
            "description": self.spec.description,
        }


def _neighbours(net: Network, z: int) -> list[int]:
    out = set()
    for a, b in zip(net.exit_a.tolist(), net.exit_b.tolist(), strict=True):
        if a == z and b >= 0:
            out.add(b)
        elif b == z and a >= 0:
            out.add(a)
    return sorted(out)


_K = DeviceKind
# per incident type: kinds affected in the zone, kinds affected in the neighbouring zones, and
# whether the gate counters on the zone's exits see it
_AFFECTS: dict[IncidentType, tuple[set[DeviceKind], set[DeviceKind], bool]] = {
    IncidentType.CROWD_CRUSH: ({_K.ACOUSTIC, _K.PRESENCE, _K.PANIC_BUTTON}, set(), True),
    IncidentType.SMOKE: ({_K.AIR_QUALITY, _K.PRESENCE, _K.PANIC_BUTTON}, {_K.AIR_QUALITY}, True),
    IncidentType.PERIMETER_BREACH: ({_K.PRESENCE}, set(), False),
    IncidentType.SUDDEN_DISPERSAL: (
        {_K.ACOUSTIC, _K.PRESENCE, _K.PANIC_BUTTON},
        {_K.ACOUSTIC, _K.PRESENCE},
        True,
    ),
    IncidentType.SOUND_SPIKE: ({_K.ACOUSTIC, _K.PRESENCE}, {_K.ACOUSTIC}, True),
}


def _affected(site: Site, inc: Incident, zone: str, near_zones: set[str], fence: list[str]) -> list[str]:
    """Devices whose readings the incident changes: what a detector may be expected to notice."""
    here, near, counters = _AFFECTS[IncidentType(inc.type)]
    if isinstance(inc, Smoke) and inc.fire:
        here = here | {_K.TEMPERATURE}
    zone_exits = {e.id for e in site.exits if zone in (e.from_zone, e.to_zone)}
    out: list[str] = []
    for d in site.devices:
        hit = (
            (d.zone == zone and d.kind in here)
            or (d.zone in near_zones and d.kind in near)
            or d.id in fence
            or (counters and d.kind is _K.GATE_COUNTER and d.exit in zone_exits)
            or (d.kind is _K.CAMERA and d.camera is not None and zone in d.camera.sees)
            or (d.kind is _K.TELCO_CELL and zone in d.covers)
        )
        if hit:
            out.append(d.id)
    return out


def place_incidents(world: World, net: Network) -> list[PlacedIncident]:
    scenario = world.scenario
    placed: list[PlacedIncident] = []
    for s, inst in enumerate(world.instances):
        if inst.group > 0 and not scenario.spec.scaling.replicate_incidents:
            continue
        site = inst.site
        zone_ids = [z.id for z in site.zones]
        for inc in scenario.spec.incidents:
            if inc.site != inst.core.id:
                continue
            exit_id: str | None = None
            if isinstance(inc, CrowdCrush):
                exit_id = inc.exit
                ex = site.exit(inc.exit)
                front = ex.from_zone if inc.direction == "inbound" else ex.to_zone
                zone = front or ""
            else:
                zone = inc.zone
            zi = int(net.zone_offset[s]) + zone_ids.index(zone)
            near = _neighbours(net, zi)
            near_zones = {zone_ids[n - int(net.zone_offset[s])] for n in near}
            fence: list[str] = []
            if isinstance(inc, PerimeterBreach):
                centre = site.zone(zone).centroid
                if inc.location is not None:
                    frame0 = LocalFrame(inst.core.center)
                    x, y = frame0.to_xy(inc.location)
                    centre = LocalFrame(site.center).to_latlon(x, y)
                sensors = [
                    d for d in site.devices if d.kind is DeviceKind.PERIMETER and d.location is not None
                ]
                sensors.sort(key=lambda d: distance_m(centre, d.location) if d.location else math.inf)
                fence = [d.id for d in sensors[: inc.sensors]]
            panic = [d.id for d in site.devices if d.kind is DeviceKind.PANIC_BUTTON and d.zone == zone]
            if isinstance(inc, PerimeterBreach | SoundSpike):
                panic = []
            t0 = scenario.at(inc.start) + inst.time_offset_s
            t1 = scenario.at(inc.end) + inst.time_offset_s
            placed.append(
                PlacedIncident(
                    id=inc.id if inst.group == 0 else f"{inc.id}-g{inst.group:03d}",
                    spec=inc,
                    site_index=s,
                    site_id=site.id,
                    zone=zone,
                    zone_index=zi,
                    exit=exit_id,
                    start=t0,
                    end=t1,
                    devices=tuple(_affected(site, inc, zone, near_zones, fence)),
                    neighbours=tuple(near),
                    fence=tuple(fence),
                    panic=tuple(panic),
                )
            )
    placed.sort(key=lambda p: (p.start, p.id))
    return placed


@dataclass
class Effects:
    """Per-zone additions the incidents make to what sensors measure at one instant."""

    db: F64
    pm25: F64
    co: F64
    heat: F64
    fence_g: dict[str, float] = field(default_factory=dict)
    panic: set[str] = field(default_factory=set)


class IncidentEffects:
    def __init__(self, incidents: list[PlacedIncident], n_zones: int, seed: int) -> None:
        self.incidents = incidents
        self.n_zones = n_zones
        self.rng = np.random.default_rng([seed, 0x1AC1])
        self._zero = np.zeros(n_zones)
        self._quiet = Effects(self._zero, self._zero, self._zero, self._zero)

    def at(self, t: float) -> Effects:
        """Effects at time t: incidents act during their window, smoke lingers a few minutes after."""
        live = [p for p in self.incidents if p.start <= t < p.end + 900.0]
        if not live:
            return self._quiet
        eff = Effects(
            np.zeros(self.n_zones), np.zeros(self.n_zones), np.zeros(self.n_zones), np.zeros(self.n_zones)
        )
        for p in live:
            inc, z, near = p.spec, p.zone_index, list(p.neighbours)
            age, span = t - p.start, p.end - p.start
            inside = t < p.end
            if isinstance(inc, Smoke):
                level = 1.0 - math.exp(-age / 60.0)
                if not inside:
                    level = (1.0 - math.exp(-span / 60.0)) * math.exp(-(t - p.end) / 120.0)
                eff.pm25[z] += inc.pm25 * level
                eff.co[z] += inc.co * level
                eff.pm25[near] += 0.25 * inc.pm25 * level
                eff.co[near] += 0.25 * inc.co * level
                if inc.fire:
                    eff.heat[z] += 9.0 * level
                    eff.heat[near] += 2.0 * level
                if inside and age > 60.0:
                    eff.panic.update(p.panic)
            elif not inside:
                continue
            elif isinstance(inc, SoundSpike):
                bang = inc.level_db * math.exp(-age / inc.spike)
                eff.db[z] += bang
                eff.db[near] += max(bang - 12.0, 0.0)
            elif isinstance(inc, SuddenDispersal):
                eff.db[z] += 14.0 * math.exp(-age / 240.0)
                eff.db[near] += 6.0 * math.exp(-age / 240.0)
                if age < 300.0:
                    eff.panic.update(p.panic)
            elif isinstance(inc, CrowdCrush):
                eff.db[z] += 10.0 * min(1.0, age / max(span, 1.0))
                if age > 0.5 * span:
                    eff.panic.update(p.panic)
            elif isinstance(inc, PerimeterBreach) and age < 0.7 * span:
                for d in p.fence:
                    eff.fence_g[d] = float(self.rng.uniform(2.5, 9.0))
        return eff
