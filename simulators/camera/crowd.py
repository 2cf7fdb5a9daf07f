"""Individual people for the camera simulator, consistent with the scenario's zone densities.

A camera only needs the people it can see, so each camera keeps a `CrowdWindow`: the agents on
the ground around its view. Agents wander inside their zone, stand still more as density rises,
keep their distance, and walk through gates at the scenario's flow. Spawning and removal keep each
zone at the density that `CrowdConditions` asks for. Every random draw comes from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from beffroi.geometry import FloatArray, overlap_area, points_in_polygon


@dataclass(frozen=True)
class GroundZone:
    id: str
    polygon: FloatArray
    area_m2: float


@dataclass(frozen=True)
class GroundGate:
    """A line on the ground from `a` to `b`; its normal (to the right walking from a to b) points
    from `from_zone` to `to_zone`."""

    id: str
    a: FloatArray
    b: FloatArray
    from_zone: str | None
    to_zone: str | None

    @property
    def width_m(self) -> float:
        return float(np.hypot(*(self.b - self.a)))

    @property
    def normal(self) -> FloatArray:
        d = (self.b - self.a) / self.width_m
        n: FloatArray = np.array([d[1], -d[0]])
        return n

    @property
    def centre(self) -> FloatArray:
        c: FloatArray = (self.a + self.b) / 2.0
        return c

    def signed_distance(self, xy: FloatArray) -> FloatArray:
        d: FloatArray = (xy - self.a) @ self.normal
        return d

    def along(self, xy: FloatArray) -> FloatArray:
        """Position along the line, 0 at `a` and `width_m` at `b`."""
        t: FloatArray = (xy - self.a) @ ((self.b - self.a) / self.width_m)
        return t


class CrowdConditions(Protocol):
    """What the scenario says about the crowd at time `t_s` (seconds since the start)."""

    def density(self, zone_id: str, t_s: float) -> float:
        """Persons per m² in the zone."""
        ...

    def gate_flow(self, gate_id: str, t_s: float) -> float:
        """Persons per second through the gate, from its `from_zone` to its `to_zone` (negative: back)."""
        ...


@dataclass(frozen=True)
class StaticConditions:
    densities: Mapping[str, float]
    flows: Mapping[str, float] = field(default_factory=dict)

    def density(self, zone_id: str, t_s: float) -> float:
        return self.densities.get(zone_id, 0.0)

    def gate_flow(self, gate_id: str, t_s: float) -> float:
        return self.flows.get(gate_id, 0.0)


@dataclass
class Agents:
    """Struct of arrays, one row per person in the window."""

    ids: npt.NDArray[np.int64]
    pos: FloatArray
    goal: FloatArray
    speed: FloatArray
    phase: FloatArray
    heading: FloatArray  # walking direction (radians) of those wandering in their zone
    via_gate: npt.NDArray[np.int64]  # index of the gate being crossed, -1 when not in transit

    @classmethod
    def empty(cls) -> Agents:
        return cls(
            ids=np.zeros(0, np.int64),
            pos=np.zeros((0, 2)),
            goal=np.zeros((0, 2)),
            speed=np.zeros(0),
            phase=np.zeros(0),
            heading=np.zeros(0),
            via_gate=np.zeros(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, keep: npt.NDArray[np.bool_]) -> None:
        for name in ("ids", "pos", "goal", "speed", "phase", "heading", "via_gate"):
            setattr(self, name, getattr(self, name)[keep])

    def append(self, other: Agents) -> None:
        for name in ("ids", "pos", "goal", "speed", "phase", "heading", "via_gate"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))


def walking_speed(density: float) -> float:
    """Weidmann's fundamental diagram: free walking speed (m/s) at a density (p/m²)."""
    if density <= 0.05:
        return 1.34
    return max(0.0, 1.34 * (1.0 - math.exp(-1.913 * (1.0 / density - 1.0 / 5.4))))


def personal_space(pos: FloatArray, *, radius: float = 0.45, neighbours: int = 24) -> FloatArray:
    """Displacement pushing apart people closer than `radius` (near neighbours in x order)."""
    n = len(pos)
    push = np.zeros_like(pos)
    if n < 2:
        return push
    order = np.argsort(pos[:, 0], kind="stable")
    p = pos[order]
    acc = np.zeros_like(p)
    for k in range(1, min(neighbours, n - 1) + 1):
        diff = p[:-k] - p[k:]
        d = np.hypot(diff[:, 0], diff[:, 1])
        f = (np.clip(radius - d, 0.0, None) / np.maximum(d, 1e-6))[:, None] * diff * 0.5
        acc[:-k] += f
        acc[k:] -= f
    push[order] = acc
    return push


class CrowdWindow:
    """The agents on the ground polygon `window`, among `zones`, with `gates` between them."""

    def __init__(
        self,
        *,
        window: FloatArray,
        zones: list[GroundZone],
        gates: list[GroundGate],
        conditions: CrowdConditions,
        seed: int,
    ) -> None:
        self.window = window
        self.zones = zones
        self.gates = gates
        self.conditions = conditions
        self.rng = np.random.default_rng(seed)
        self.agents = Agents.empty()
        self.t_s = 0.0
        self._next_id = 1
        self._gate_credit = np.zeros(len(gates))
        self.region_area = np.array([overlap_area(z.polygon, window) for z in zones])
        self.crossings: list[tuple[str, int, int]] = []  # (gate id, person id, +1 in / -1 out), last step

    # -- zone bookkeeping -------------------------------------------------------------------------

    def zone_index(self, xy: FloatArray) -> npt.NDArray[np.int64]:
        """Index into `zones` of the zone holding each point, -1 for none."""
        idx = np.full(len(xy), -1, dtype=np.int64)
        for i, z in enumerate(self.zones):
            free = idx < 0
            if not free.any():
                break
            inside = np.zeros(len(xy), dtype=bool)
            inside[free] = points_in_polygon(xy[free], z.polygon)
            idx[inside] = i
        return idx

    def _random_points(self, zone: int, n: int, *, min_gap: float) -> FloatArray:
        """Up to `n` points in zone ∩ window, at least `min_gap` from every agent and from each other."""
        poly = self.zones[zone].polygon
        lo = np.maximum(poly.min(axis=0), self.window.min(axis=0))
        hi = np.minimum(poly.max(axis=0), self.window.max(axis=0))
        if np.any(hi <= lo):
            return np.zeros((0, 2))
        chosen: list[FloatArray] = []
        taken = self.agents.pos
        for _ in range(6):
            need = n - len(chosen)
            if need <= 0:
                break
            cand = lo + self.rng.random((need * 4 + 8, 2)) * (hi - lo)
            cand = cand[points_in_polygon(cand, poly) & points_in_polygon(cand, self.window)]
            if min_gap <= 0:
                chosen.extend(cand[:need])
                continue
            for p in cand:
                if len(taken) and np.min(np.hypot(taken[:, 0] - p[0], taken[:, 1] - p[1])) < min_gap:
                    continue
                chosen.append(p)
                taken = np.concatenate([taken, p[None, :]])
                if len(chosen) >= n:
                    break
        return np.array(chosen) if chosen else np.zeros((0, 2))

    def _spawn(self, pos: FloatArray, *, density: float) -> Agents:
        n = len(pos)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        moving = self.rng.random(n) < max(0.15, 1.0 - density / 3.0)
        speed = np.where(moving, walking_speed(density) * self.rng.uniform(0.6, 1.1, n), 0.0)
        return Agents(
            ids=ids,
            pos=pos.copy(),
            goal=pos.copy(),
            speed=speed,
            phase=self.rng.uniform(0, 2 * math.pi, n),
            heading=self.rng.uniform(0, 2 * math.pi, n),
            via_gate=np.full(n, -1, dtype=np.int64),
        )

    def _min_gap(self, density: float) -> float:
        return float(min(0.55, 0.75 / math.sqrt(max(density, 0.1))))

    def _balance(self) -> None:
        """Spawn or remove agents so that each zone holds density x visible area, give or take one."""
        zone_of = self.zone_index(self.agents.pos)
        for i, z in enumerate(self.zones):
            density = self.conditions.density(z.id, self.t_s)
            target = density * self.region_area[i]
            here = zone_of == i
            mine = np.flatnonzero(here & (self.agents.via_gate < 0))
            have = int(np.count_nonzero(here))  # people walking through a gate count where they are
            if have < target - 1.0 or (have == 0 and target >= 0.5):
                pts = self._random_points(i, round(target) - have, min_gap=self._min_gap(density))
                self.agents.append(self._spawn(pts, density=density))
                zone_of = np.concatenate([zone_of, np.full(len(pts), i, dtype=np.int64)])
            elif have > target + 1.0 and len(mine):
                drop = self.rng.choice(mine, size=min(len(mine), have - round(target)), replace=False)
                keep = np.ones(len(self.agents), dtype=bool)
                keep[drop] = False
                self.agents.take(keep)
                zone_of = zone_of[keep]
        outside = (self.zone_index(self.agents.pos) < 0) & (self.agents.via_gate < 0)
        if outside.any():
            self.agents.take(~outside)

    # -- motion -----------------------------------------------------------------------------------

    def _start_transits(self, dt: float) -> None:
        for g, gate in enumerate(self.gates):
            self._gate_credit[g] += self.conditions.gate_flow(gate.id, self.t_s) * dt
            while abs(self._gate_credit[g]) >= 1.0:
                forward = self._gate_credit[g] > 0
                self._gate_credit[g] -= 1.0 if forward else -1.0
                self._send_through(g, forward=forward)

    def _send_through(self, g: int, *, forward: bool) -> None:
        gate = self.gates[g]
        sign = -1.0 if forward else 1.0  # the side the person starts on
        along = self.rng.uniform(0.15, 0.85) * gate.width_m
        base = gate.a + (gate.b - gate.a) * (along / gate.width_m)
        start = base + gate.normal * sign * self.rng.uniform(2.0, 3.5)
        if not points_in_polygon(start[None, :], self.window)[0]:
            return
        new = self._spawn(start[None, :], density=0.5)
        new.speed[:] = self.rng.uniform(0.9, 1.4)
        new.goal[:] = base - gate.normal * sign * self.rng.uniform(2.5, 4.0)
        new.via_gate[:] = g
        self.agents.append(new)

    def _move(self, dt: float) -> None:
        a = self.agents
        if len(a) == 0:
            return
        zone_of = self.zone_index(a.pos)
        dens = np.array([self.conditions.density(z.id, self.t_s) for z in self.zones] + [0.5])
        transit = a.via_gate >= 0
        done = transit & (np.hypot(*(a.goal - a.pos).T) < 0.3)
        a.via_gate[done] = -1
        a.speed[done] = np.where(
            self.rng.random(int(done.sum())) < 0.5, 0.0, [walking_speed(dens[z]) for z in zone_of[done]]
        )
        transit = a.via_gate >= 0
        # wanderers keep a slowly turning heading and turn anew at the edge of their zone: unlike
        # walking to random waypoints, this keeps them evenly spread over the zone
        a.heading = a.heading + self.rng.normal(0.0, 0.4 * math.sqrt(dt), len(a))
        toward = a.goal - a.pos
        dist = np.hypot(*toward.T)
        with np.errstate(invalid="ignore", divide="ignore"):
            goal_dir = np.where(dist[:, None] > 1e-9, toward / dist[:, None], 0.0)
        direction = np.where(
            transit[:, None], goal_dir, np.column_stack([np.cos(a.heading), np.sin(a.heading)])
        )
        step = np.where(transit, np.minimum(a.speed * dt, dist), a.speed * dt)
        push = personal_space(a.pos) * min(1.0, dt * 5)
        new_pos = a.pos + direction * step[:, None] + push

        def allowed(p: FloatArray) -> npt.NDArray[np.bool_]:  # people leave their zone only through a gate
            ok: npt.NDArray[np.bool_] = (
                points_in_polygon(p, self.window) & (self.zone_index(p) == zone_of)
            ) | transit
            return ok

        ok = allowed(new_pos)
        if not ok.all():  # bounce off the zone's edge: walk back the way they came
            back = a.pos - direction * step[:, None] + push
            ok_back = ~ok & allowed(back)
            new_pos[ok_back] = back[ok_back]
            a.heading[ok_back] += math.pi
            stuck = ~ok & ~ok_back
            new_pos[stuck] = a.pos[stuck]
            a.heading[stuck] = self.rng.uniform(0, 2 * math.pi, int(stuck.sum()))
        self._record_crossings(a.pos, new_pos)
        a.pos = new_pos
        a.phase = a.phase + 2.0 * math.pi * 0.9 * step

    def _record_crossings(self, before: FloatArray, after: FloatArray) -> None:
        self.crossings = []
        for gate in self.gates:
            d0, d1 = gate.signed_distance(before), gate.signed_distance(after)
            t = gate.along(after)
            hit = (np.sign(d0) != np.sign(d1)) & (d0 != 0) & (t >= 0) & (t <= gate.width_m)
            for i in np.flatnonzero(hit):
                self.crossings.append((gate.id, int(self.agents.ids[i]), 1 if d1[i] > 0 else -1))

    def step(self, dt: float) -> None:
        """Advance the crowd by `dt` seconds."""
        if self.t_s == 0.0 and len(self.agents) == 0:
            self._balance()
        self.t_s += dt
        self._start_transits(dt)
        self._move(dt)
        self._balance()
