"""The simulated world at a given scale: the scenario's core sites plus moved clones of them.

Scale `s` gives max(core, round(s x sites_at_scale_1)) sites. Clone group g (g >= 1) copies every
core site, moved together by a grid offset (so a stadium keeps its stations around it), with its
own timeline shift and attendance factor drawn from the seed. Device ids get a `-g{g:03d}` suffix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from beffroi.venue import EARTH_RADIUS_M, Site, Venue
from simulators.scenario import Scenario


@dataclass(frozen=True)
class SiteInstance:
    site: Site
    core: Site
    group: int
    time_offset_s: float
    attendance: float


@dataclass(frozen=True)
class World:
    scenario: Scenario
    scale: float
    seed: int
    venue: Venue
    instances: tuple[SiteInstance, ...]

    @property
    def device_count(self) -> int:
        return sum(len(i.site.devices) for i in self.instances)


def _spiral(n: int) -> list[tuple[int, int]]:
    """The first n grid cells around the origin, ring by ring, origin excluded."""
    cells: list[tuple[int, int]] = []
    r = 1
    while len(cells) < n:
        ring = [(x, y) for x in range(-r, r + 1) for y in range(-r, r + 1) if max(abs(x), abs(y)) == r]
        ring.sort(key=lambda c: math.atan2(c[1], c[0]))
        cells.extend(ring)
        r += 1
    return cells[:n]


def _moved(value: Any, dlat: float, dlon: float) -> Any:
    if isinstance(value, dict):
        if set(value) >= {"lat", "lon"} and isinstance(value["lat"], float | int):
            return {**value, "lat": round(value["lat"] + dlat, 7), "lon": round(value["lon"] + dlon, 7)}
        return {k: _moved(v, dlat, dlon) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, dlat, dlon) for v in value]
    return value


def clone_site(site: Site, group: int, dx_m: float, dy_m: float) -> Site:
    """A copy of `site` moved by (dx, dy) metres, its site and device ids suffixed with the group."""
    suffix = f"-g{group:03d}"
    dlat = math.degrees(dy_m / EARTH_RADIUS_M)
    dlon = math.degrees(dx_m / (EARTH_RADIUS_M * math.cos(math.radians(site.center.lat))))
    doc = _moved(site.model_dump(mode="python"), dlat, dlon)
    doc["id"] = site.id + suffix
    doc["name"] = f"{site.name} ({group})" if site.name else ""
    for d in doc["devices"]:
        d["id"] = d["id"] + suffix
    return Site.model_validate(doc)


def site_count(scenario: Scenario, scale: float) -> int:
    core = len(scenario.venue.sites)
    return max(core, round(scale * scenario.spec.scaling.sites_at_scale_1))


def build_world(scenario: Scenario, *, scale: float | None = None, seed: int | None = None) -> World:
    spec = scenario.spec
    scale = spec.scale if scale is None else scale
    seed = spec.seed if seed is None else seed
    core = scenario.venue.sites
    total = site_count(scenario, scale)
    groups = math.ceil(total / len(core))
    rng = np.random.default_rng([seed, 0x5CA1E])
    jitter = spec.scaling.time_jitter
    tick = spec.tick_s
    offsets = [0.0] + [round(float(rng.uniform(-jitter, jitter)) / tick) * tick for _ in range(groups - 1)]
    factors = [1.0] + [1.0 - float(rng.uniform(0, spec.scaling.attendance_jitter)) for _ in range(groups - 1)]
    cells = _spiral(groups - 1)
    step = spec.scaling.spacing_km * 1000.0
    instances: list[SiteInstance] = []
    for i in range(total):
        g, site = divmod(i, len(core))
        base = core[site]
        if g == 0:
            moved = base
        else:
            cx, cy = cells[g - 1]
            moved = clone_site(base, g, cx * step, cy * step)
        instances.append(SiteInstance(moved, base, g, offsets[g], factors[g]))
    venue = scenario.venue
    if total > len(core):
        venue = Venue(
            id=venue.id,
            name=f"{venue.name} x{scale:g}" if venue.name else "",
            namespace=venue.namespace,
            sites=[inst.site for inst in instances],
        )
    return World(scenario=scenario, scale=scale, seed=seed, venue=venue, instances=tuple(instances))
