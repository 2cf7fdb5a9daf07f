"""A macroscopic crowd model: people flow between zones through exits of limited capacity.

State is one float vector `x` over compartments, for every site at once:
- `stay[z]`: people settled in zone z (seated, watching, queueing for nothing in particular);
- `home[s]`: people of site s outside it (not yet arrived, or gone);
- `queue[q]`: arrivals waiting at the boundary to enter by their entrances;
- `moving[z, c]`: people in zone z walking towards class c's destination (a zone to settle in, or
  the outside by a set of exits), through the exits that bring them closer (shortest paths).

Each tick: arrival curves move people from `home` to queues, timeline and incident moves turn settled
people into walkers, then walkers cross exits. The flow through an exit is at most
width x specific flow (<= 82 p/m/min, Fruin) x dt, shared by both directions, with screening
limiting inbound flow through gates; a zone takes no more than its jam density; walkers reach an exit
at the density-dependent walking speed (Weidmann). Flows move mass from one compartment to another,
so the total is conserved exactly (up to float rounding) and people enter or leave a zone only
through its exits.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from beffroi.venue import Exit, ExitKind, LocalFrame, Site
from simulators.scenario import (
    Arrival,
    CrowdCrush,
    CrowdPlan,
    Incident,
    LeaveVia,
    PerimeterBreach,
    Scenario,
    Smoke,
    SoundSpike,
    SuddenDispersal,
    Target,
    ZonesTarget,
    select_zones,
)
from simulators.world import World

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

INF = math.inf
_SLACK_FACTOR, _SLACK_M = 1.15, 10.0
_FULL_FRACTION = 0.995
_DETOUR, _DETOUR_M = 0.02, 60.0

# class kinds
SETTLE, LEAVE = 0, 1
# exit codes
_VIRTUAL = "virtual"


class PlanError(ValueError):
    """A crowd plan that cannot be routed; `loc` points into the scenario document."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class ClassKey:
    kind: int
    zone: int = -1
    exits: frozenset[int] = frozenset()
    emergency: bool = False
    refuge: int = -1  # settle apart, as refugees of incident `refuge` who may go back later


@dataclass
class _Exit:
    id: str
    kind: str
    width: float
    qmax: float
    screening: float | None
    a: int  # outer node (Z = outside)
    b: int  # inner node
    xy: tuple[float, float]


@dataclass
class SiteTemplate:
    """The compiled network of one core site; times are seconds after the scenario start."""

    site: Site
    zone_ids: list[str]
    zone_area: F64
    zone_capacity: F64
    zone_length: F64
    exits: list[_Exit]
    n_x: int = 0
    x_node: list[int] = field(default_factory=list)  # zone index, or -1 outside (home, queues)
    x_kind: list[int] = field(default_factory=list)  # 0 stay, 1 home, 2 queue, 3 moving
    x_init: list[float] = field(default_factory=list)
    r_src: list[int] = field(default_factory=list)
    r_dst: list[int] = field(default_factory=list)
    r_exit: list[int] = field(default_factory=list)
    r_inbound: list[bool] = field(default_factory=list)
    r_to_node: list[int] = field(default_factory=list)
    r_pref: list[float] = field(default_factory=list)
    arrivals: list[tuple[int, float, int, float, float, float, float, float, float, float]] = field(
        default_factory=list
    )  # queue x, count, shape, peak, scale, start, end, headway, pulse, phase
    moves: list[tuple[int, float, float, float]] = field(default_factory=list)  # stay x, t0, t1, rate
    move_targets: list[tuple[int, int, float]] = field(default_factory=list)  # move, moving x, weight
    gate_open: list[float] = field(default_factory=list)
    gate_close: list[float] = field(default_factory=list)
    emergency_open: list[float] = field(default_factory=list)
    open_windows: list[tuple[int, float, float]] = field(default_factory=list)
    width_windows: list[tuple[int, float, float, float]] = field(default_factory=list)
    speed_windows: list[tuple[int, float, float, float]] = field(default_factory=list)

    @property
    def n_zones(self) -> int:
        return len(self.zone_ids)


class _Compiler:
    def __init__(
        self,
        scenario: Scenario,
        site: Site,
        plan: CrowdPlan | None,
        plan_index: int | None,
        incidents: list[tuple[int, Incident]],
        seed: int,
    ) -> None:
        self.sc = scenario
        self.site = site
        self.plan = plan
        self.ploc: tuple[str | int, ...] = ("crowd", plan_index) if plan_index is not None else ("crowd",)
        self.incidents = incidents
        self.rng = np.random.default_rng([seed, 0xC0DE, sum(site.id.encode())])
        self.frame = LocalFrame(site.center)
        self.zone_ids = [z.id for z in site.zones]
        self.zi = {z: i for i, z in enumerate(self.zone_ids)}
        self.Z = len(self.zone_ids)
        self.cent = [self.frame.to_xy(z.centroid) for z in site.zones]
        self.size = [math.sqrt(z.area) for z in site.zones] + [0.0]
        self.exits: list[_Exit] = [self._exit(e) for e in site.exits]
        shut = set(plan.closed_exits) if plan is not None else set()
        self.closed = frozenset(i for i, e in enumerate(self.exits) if e.id in shut)
        self.classes: dict[ClassKey, int] = {}
        self.class_keys: list[ClassKey] = []
        self.refuges: list[tuple[int, int, float, float]] = []  # incident, zone, return time, share
        self.dist: list[list[float]] = []
        self.rem: list[dict[tuple[int, int], float]] = []
        self.sources: list[set[int]] = []
        self.adj: list[list[tuple[int, int]]] = [[] for _ in range(self.Z + 1)]
        for i, e in enumerate(self.exits):
            self.adj[e.a].append((i, e.b))
            self.adj[e.b].append((i, e.a))

    # -- geometry and graph ------------------------------------------------------------------
    def _exit(self, e: Exit) -> _Exit:
        a = self.zi[e.from_zone] if e.from_zone is not None else self.Z
        b = self.zi[e.to_zone] if e.to_zone is not None else self.Z
        if e.location is not None:
            xy = self.frame.to_xy(e.location)
        else:
            pts = [self.cent[n] for n in (a, b) if n < self.Z]
            xy = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
        return _Exit(e.id, e.kind.value, e.width_m, e.max_specific_flow, e.screening_flow, a, b, xy)

    def at(self, expr: str | None, default: float) -> float:
        return default if expr is None else self.sc.at(expr)

    def _cost(self, n: int, e: _Exit) -> float:
        if n == self.Z:
            return 0.0
        c = self.cent[n]
        return math.hypot(c[0] - e.xy[0], c[1] - e.xy[1])

    def _allowed(self, key: ClassKey, i: int) -> bool:
        e = self.exits[i]
        if e.kind == _VIRTUAL or i in self.closed:
            return False
        boundary = e.a == self.Z or e.b == self.Z
        if e.kind == ExitKind.EMERGENCY.value and not key.emergency:
            return False
        if boundary:
            return key.kind == LEAVE and i in key.exits
        return True

    def _default_leave_exits(self, emergency: bool) -> frozenset[int]:
        out = set()
        for i, e in enumerate(self.exits):
            boundary = e.a == self.Z or e.b == self.Z
            if (
                boundary
                and i not in self.closed
                and e.kind not in (ExitKind.TRAIN.value, _VIRTUAL)
                and (e.kind != ExitKind.EMERGENCY.value or emergency)
            ):
                out.add(i)
        return frozenset(out)

    def _entries(self, enter_via: list[str] | None) -> set[int]:
        if enter_via is not None:
            return {i for i, e in enumerate(self.exits) if e.id in enter_via and i not in self.closed}
        return {
            i
            for i, e in enumerate(self.exits)
            if (e.a == self.Z or e.b == self.Z)
            and i not in self.closed
            and e.kind not in (ExitKind.TRAIN.value, ExitKind.EMERGENCY.value, _VIRTUAL)
        }

    def klass(self, key: ClassKey) -> int:
        c = self.classes.get(key)
        if c is None:
            if key.refuge >= 0:
                base = self.klass(dataclasses.replace(key, refuge=-1))
                rem, dist = self.rem[base], self.dist[base]
            else:
                rem = self._remaining_distances(key)
                dist = self._zone_distances(key, rem)
            c = self.classes[key] = len(self.class_keys)
            self.class_keys.append(key)
            self.rem.append(rem)
            self.dist.append(dist)
            self.sources.append(set())
        return c

    def _xy_gap(self, i: int, j: int) -> float:
        a, b = self.exits[i].xy, self.exits[j].xy
        return math.hypot(a[0] - b[0], a[1] - b[1])

    def _remaining_distances(self, key: ClassKey) -> dict[tuple[int, int], float]:
        """Walking distance left after crossing exit e into node m, for every usable (e, m): Dijkstra
        over exit crossings, from those that reach the destination (a zone, or the outside)."""
        rem: dict[tuple[int, int], float] = {}
        heap: list[tuple[float, int, int]] = []
        for i, e in enumerate(self.exits):
            if not self._allowed(key, i):
                continue
            for m in (e.a, e.b):
                if (key.kind == SETTLE and m == key.zone) or (key.kind == LEAVE and m == self.Z):
                    rem[(i, m)] = 0.0
                    heapq.heappush(heap, (0.0, i, m))
        while heap:
            d, i, m = heapq.heappop(heap)
            if d > rem.get((i, m), INF):
                continue
            e = self.exits[i]
            n = e.b if m == e.a else e.a  # the node this crossing leaves
            if n == self.Z:
                continue  # nobody walks through the outside
            for j, _ in self.adj[n]:
                if j == i or not self._allowed(key, j):
                    continue
                # crossing j leads into n from k: then walk from exit j to exit i inside n
                nd = d + self._xy_gap(i, j)
                if nd < rem.get((j, n), INF):
                    rem[(j, n)] = nd
                    heapq.heappush(heap, (nd, j, n))
        return rem

    def _zone_distances(self, key: ClassKey, rem: dict[tuple[int, int], float]) -> list[float]:
        """From each zone's centroid to the destination (0 at a settle class's own zone)."""
        out = [INF] * (self.Z + 1)
        for n in range(self.Z):
            if key.kind == SETTLE and n == key.zone:
                out[n] = 0.0
                continue
            for i, m in self.adj[n]:
                r = rem.get((i, m))
                if r is not None and self._allowed(key, i):
                    out[n] = min(out[n], self._cost(n, self.exits[i]) + r)
        return out

    def forward(self, c: int, n: int) -> list[tuple[int, int, float]]:
        """(exit, next node, preference) for the exits of zone n that leave walkers of class c nearer
        their destination than some of them are now: walkers are spread over the zone, up to about
        half its size from its centroid. The preference fades with the detour from the centroid
        (e^-detour/L, L = 60 m or half the zone's size) and walkers split by preference x open width."""
        key, rem, here = self.class_keys[c], self.rem[c], self.dist[c][n]
        spread = 0.5 * self.size[n]
        scale = max(_DETOUR_M, spread)
        out: list[tuple[int, int, float]] = []
        for i, m in self.adj[n]:
            r = rem.get((i, m))
            if r is None or not self._allowed(key, i) or r >= here + spread:
                continue
            excess = max(0.0, self._cost(n, self.exits[i]) + r - here)
            out.append((i, m, max(_DETOUR, math.exp(-excess / scale))))
        return out

    def entry_links(self, c: int, entries: set[int]) -> list[tuple[int, int]]:
        rem = self.rem[c]
        cand: list[tuple[float, int, int]] = []
        for i in entries:
            e = self.exits[i]
            inner = e.b if e.a == self.Z else e.a
            key = self.class_keys[c]
            if key.kind == SETTLE and inner == key.zone:
                r = 0.0
            else:
                r = min(
                    (
                        self._xy_gap(i, j) + rem[(j, m)]
                        for j, m in self.adj[inner]
                        if j != i and (j, m) in rem and self._allowed(key, j)
                    ),
                    default=INF,
                )
            if r < INF:
                cand.append((r, i, inner))
        if not cand:
            return []
        best = min(x[0] for x in cand)
        return [(i, inner) for v, i, inner in cand if v <= best * _SLACK_FACTOR + _SLACK_M]

    # -- targets -----------------------------------------------------------------------------
    def target_classes(
        self, target: Target | tuple[str, int], from_zone: int | None, loc: tuple[str | int, ...]
    ) -> list[tuple[int, float]]:
        """(class, weight) pairs for people at `from_zone` (None: arriving from outside)."""
        site = self.site
        if target == "leave":
            return [(self.klass(ClassKey(LEAVE, exits=self._default_leave_exits(False))), 1.0)]
        if target == "evacuate":
            return [(self.klass(ClassKey(LEAVE, exits=self._default_leave_exits(True), emergency=True)), 1.0)]
        if isinstance(target, LeaveVia):
            ids = {i for i, e in enumerate(self.exits) if e.id in target.leave_via and i not in self.closed}
            if not ids:
                raise PlanError(loc, f"site {site.id!r}: every exit of {target.leave_via} is closed")
            return [(self.klass(ClassKey(LEAVE, exits=frozenset(ids))), 1.0)]
        refuge = target[1] if isinstance(target, tuple) else -1
        if isinstance(target, tuple) or target == "neighbours":
            assert from_zone is not None
            widths: dict[int, float] = {}
            for i, e in enumerate(self.exits):
                if (
                    from_zone in (e.a, e.b)
                    and i not in self.closed
                    and e.kind not in (ExitKind.EMERGENCY.value, _VIRTUAL)
                ):
                    m = e.b if from_zone == e.a else e.a
                    if m != self.Z:
                        widths[m] = widths.get(m, 0.0) + e.width
            if not widths:
                return self.target_classes("evacuate", from_zone, loc)
            return [(self.klass(ClassKey(SETTLE, zone=m, refuge=refuge)), w) for m, w in widths.items()]
        assert isinstance(target, ZonesTarget)
        zones = [self.zi[z] for z in select_zones(site, target.zones)]
        if from_zone is not None:
            zones = [z for z in zones if z != from_zone]
        if not zones:
            return []
        if from_zone is not None:
            reachable = [z for z in zones if self.dist[self.klass(ClassKey(SETTLE, zone=z))][from_zone] < INF]
            if not reachable:
                raise PlanError(
                    loc,
                    f"site {site.id!r}: zone {self.zone_ids[from_zone]!r} cannot reach any of {target.zones}",
                )
            zones = reachable
        caps = {z: max(float(site.zones[z].capacity), 1.0) for z in zones}
        if target.split == "nearest" and from_zone is not None:
            shared: dict[int, float] = {}
            for i, m in self.adj[from_zone]:
                if m in zones and i not in self.closed and self.exits[i].kind != ExitKind.EMERGENCY.value:
                    shared[m] = shared.get(m, 0.0) + self.exits[i].width
            if shared:
                return [(self.klass(ClassKey(SETTLE, zone=z)), w) for z, w in shared.items()]
            d = {z: self.dist[self.klass(ClassKey(SETTLE, zone=z))][from_zone] for z in zones}
            best = min(d.values())
            if best == INF:
                raise PlanError(
                    loc, f"site {site.id!r}: zone {self.zone_ids[from_zone]!r} cannot reach {target.zones}"
                )
            zones = [z for z in zones if d[z] <= best * 1.3 + 20.0]
        return [(self.klass(ClassKey(SETTLE, zone=z)), caps[z]) for z in zones]

    def _surge_destination(self, surge_to: list[str] | None, behind: int) -> ZonesTarget:
        if surge_to is not None:
            return ZonesTarget(zones=surge_to)
        if self.plan is not None:
            for a in self.plan.arrivals:
                if isinstance(a.to, ZonesTarget):
                    return ZonesTarget(zones=a.to.zones)
        return ZonesTarget(zones=[self.zone_ids[behind]])

    # -- compile -----------------------------------------------------------------------------
    def compile(self) -> SiteTemplate:
        plan = self.plan
        horizon = self.sc.spec.duration
        arrivals: list[tuple[Arrival, tuple[str | int, ...], float]] = []
        moves: list[
            tuple[list[int], Target | tuple[str, int], float, float, float, tuple[str | int, ...], bool]
        ] = []
        tpl = SiteTemplate(
            site=self.site,
            zone_ids=self.zone_ids,
            zone_area=np.array([z.area for z in self.site.zones]),
            zone_capacity=np.array([float(z.capacity) for z in self.site.zones]),
            zone_length=np.array([max(math.sqrt(z.area), 5.0) for z in self.site.zones]),
            exits=self.exits,
        )
        gate_open = gate_close = emergency_open = None
        if plan is not None:
            for j, a in enumerate(plan.arrivals):
                arrivals.append((a, (*self.ploc, "arrivals", j), 1.0))
            for j, mv in enumerate(plan.moves):
                src = [self.zi[z] for z in select_zones(self.site, mv.from_)]
                if mv.at is not None and mv.fraction is not None:
                    t0 = self.sc.at(mv.at)
                    rate = -math.log(1 - min(mv.fraction, _FULL_FRACTION)) / mv.spread
                    moves.append((src, mv.to, t0, t0 + mv.spread, rate, (*self.ploc, "moves", j), False))
                elif mv.between is not None and mv.per_hour is not None:
                    t0, t1 = self.sc.at(mv.between[0]), self.sc.at(mv.between[1])
                    moves.append((src, mv.to, t0, t1, mv.per_hour / 3600.0, (*self.ploc, "moves", j), False))
            gate_open = plan.gates_open
            gate_close = plan.gates_close
            emergency_open = plan.emergency_exits_open
        t_gate_open = self.at(gate_open, self.sc.events.get("gates_open", -INF))
        t_gate_close = self.at(gate_close, self.sc.events.get("gates_close", INF))
        t_emergency = self.at(emergency_open, INF)
        extra_entries: dict[int, set[int]] = {}
        for k, inc in self.incidents:
            iloc: tuple[str | int, ...] = ("incidents", k)
            t0, t1 = self.sc.at(inc.start), self.sc.at(inc.end)
            if isinstance(inc, CrowdCrush):
                ei = next(i for i, x in enumerate(self.exits) if x.id == inc.exit)
                tpl.width_windows.append((ei, t0, t1, inc.width_factor))
                front, behind = self.exits[ei].a, self.exits[ei].b
                if inc.direction == "outbound":
                    front, behind = behind, front
                if inc.surge > 0:
                    surge = Arrival.model_validate(
                        {
                            "count": inc.surge,
                            "curve": {
                                "shape": "uniform",
                                "start": inc.start,
                                "end": f"+{t0 + 0.6 * (t1 - t0)}s",
                            },
                            "to": {"zones": [self.zone_ids[front]]},
                        }
                    )
                    arrivals.append((surge, iloc, 1.0))
                if behind != self.Z and inc.surge > 0:
                    onward = self._surge_destination(inc.surge_to, behind)
                    moves.append(([front], onward, t0, t1, 1 / 60.0, iloc, False))
            elif isinstance(inc, PerimeterBreach):
                z = self.zi[inc.zone]
                breach = len(self.exits)
                self.exits.append(
                    _Exit(f"breach-{inc.id}", _VIRTUAL, 2.0, 20.0, None, self.Z, z, self.cent[z])
                )
                tpl.open_windows.append((breach, t0, t1))
                intruders = Arrival.model_validate(
                    {
                        "count": inc.intruders,
                        "curve": {"shape": "uniform", "start": inc.start, "end": f"+{t0 + 0.5 * (t1 - t0)}s"},
                        "to": {"zones": [inc.zone]},
                    }
                )
                extra_entries[len(arrivals)] = {breach}
                arrivals.append((intruders, iloc, 1.0))
            else:
                assert isinstance(inc, Smoke | SuddenDispersal | SoundSpike)
                z = self.zi[inc.zone]
                if isinstance(inc, Smoke):
                    fraction, begin, spread, speed = inc.evacuate, t0 + 30.0, 180.0, 1.3
                elif isinstance(inc, SuddenDispersal):
                    fraction, begin, spread, speed = inc.fraction, t0, 60.0, 2.5
                else:
                    fraction, begin, spread, speed = inc.movement, t0 + 3.0, 90.0, 1.8
                if fraction > 0:
                    rate = -math.log(1 - min(fraction, _FULL_FRACTION)) / spread
                    back = getattr(inc, "returns", 0.0)
                    flee: Target | tuple[str, int] = ("refuge", k) if back > 0 else "neighbours"
                    moves.append(([z], flee, begin, begin + spread, rate, iloc, True))
                    if back > 0:
                        self.refuges.append((k, z, max(t1, begin + spread), back))
                tpl.speed_windows.append((z, begin, t1, speed))
                for i, e in enumerate(self.exits):
                    if e.kind == ExitKind.EMERGENCY.value and z in (e.a, e.b):
                        tpl.open_windows.append((i, t0, t1))
        self._layout(tpl, arrivals, moves, extra_entries, horizon)
        for i, e in enumerate(self.exits):
            gate = e.kind == ExitKind.GATE.value
            tpl.gate_open.append(INF if i in self.closed else t_gate_open if gate else -INF)
            tpl.gate_close.append(t_gate_close if gate else INF)
            if e.kind == ExitKind.EMERGENCY.value:
                tpl.emergency_open.append(t_emergency)
            elif e.kind == _VIRTUAL:
                tpl.emergency_open.append(INF)
            else:
                tpl.emergency_open.append(-INF)
        return tpl

    def _layout(
        self,
        tpl: SiteTemplate,
        arrivals: list[tuple[Arrival, tuple[str | int, ...], float]],
        moves: list[
            tuple[list[int], Target | tuple[str, int], float, float, float, tuple[str | int, ...], bool]
        ],
        extra_entries: dict[int, set[int]],
        horizon: float,
    ) -> None:
        Z = self.Z
        # 1. classes, queues and move targets (which also fixes the sources of every class)
        queue_specs: list[tuple[int, float, tuple[float, ...], list[tuple[int, int]]]] = []
        for j, (arr, loc, factor) in enumerate(arrivals):
            entries = extra_entries.get(j) or self._entries(arr.enter_via)
            pairs = self.target_classes(arr.to, None, (*loc, "to"))
            total_w = sum(w for _, w in pairs) or 1.0
            curve = self._curve(arr, horizon)
            for c, w in pairs:
                links = self.entry_links(c, entries)
                if not links:
                    raise PlanError(
                        loc, f"site {self.site.id!r}: no entrance leads to the arrivals' destination"
                    )
                for _, inner in links:
                    self.sources[c].add(inner)
                queue_specs.append((c, arr.count * factor * w / total_w, curve, links))
        move_specs: list[tuple[int, float, float, float, list[tuple[int, float]], bool]] = []
        for src_zones, target, t0, t1, rate, loc, flee in moves:
            for z in src_zones:
                pairs = [
                    (c, w)
                    for c, w in self.target_classes(target, z, (*loc, "to"))
                    if not (self.class_keys[c].kind == SETTLE and self.class_keys[c].zone == z)
                ]
                if not pairs:
                    continue
                for c, _ in pairs:
                    if self.dist[c][z] == INF:
                        raise PlanError(
                            loc, f"site {self.site.id!r}: zone {self.zone_ids[z]!r} has no way there"
                        )
                    self.sources[c].add(z)
                move_specs.append((z, t0, t1, rate, pairs, flee))
        back_class: dict[int, int] = {}
        for k, z, _, _ in self.refuges:
            back = back_class[k] = self.klass(ClassKey(SETTLE, zone=z))
            for key in self.class_keys:
                if key.refuge == k and key.zone != z:
                    self.sources[back].add(key.zone)
        # 2. prune: a class needs a compartment at every zone reachable from its sources
        comp: dict[tuple[int, int], int] = {}
        x_node: list[int] = []
        x_kind: list[int] = []
        for z in range(Z):
            x_node.append(z)
            x_kind.append(0)
        home = len(x_node)
        x_node.append(-1)
        x_kind.append(1)
        queue_x: list[int] = []
        for _ in queue_specs:
            queue_x.append(len(x_node))
            x_node.append(-1)
            x_kind.append(2)
        refuge_x: dict[tuple[int, int], int] = {}
        for key in self.class_keys:
            if key.refuge >= 0:
                refuge_x[(key.refuge, key.zone)] = len(x_node)
                x_node.append(key.zone)
                x_kind.append(4)
        fwd_cache: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
        for c in range(len(self.class_keys)):
            key = self.class_keys[c]
            todo = [n for n in self.sources[c] if not (key.kind == SETTLE and n == key.zone)]
            seen = set(todo)
            while todo:
                n = todo.pop()
                comp[(n, c)] = len(x_node)
                x_node.append(n)
                x_kind.append(3)
                ahead = fwd_cache[(c, n)] = self.forward(c, n)
                if not ahead:
                    raise PlanError(
                        self.ploc, f"site {self.site.id!r}: walkers in zone {self.zone_ids[n]!r} are stuck"
                    )
                for _, m, _ in ahead:
                    if m != Z and not (key.kind == SETTLE and m == key.zone) and m not in seen:
                        seen.add(m)
                        todo.append(m)

        def dest(c: int, m: int) -> int:
            key = self.class_keys[c]
            if m == Z:
                return home
            if key.kind == SETTLE and m == key.zone:
                return refuge_x[(key.refuge, m)] if key.refuge >= 0 else m
            return comp[(m, c)]

        # 3. routes
        for (n, c), xi in comp.items():
            for e, m, pref in fwd_cache[(c, n)]:
                ex = self.exits[e]
                tpl.r_src.append(xi)
                tpl.r_dst.append(dest(c, m))
                tpl.r_exit.append(e)
                tpl.r_inbound.append(n == ex.a)
                tpl.r_to_node.append(m if m != Z else -1)
                tpl.r_pref.append(pref)
        for qi, (c, count, curve, links) in zip(queue_x, queue_specs, strict=True):
            for e, m in links:
                tpl.r_src.append(qi)
                tpl.r_dst.append(dest(c, m))
                tpl.r_exit.append(e)
                tpl.r_inbound.append(True)
                tpl.r_to_node.append(m)
                tpl.r_pref.append(1.0)
            tpl.arrivals.append((qi, count, *curve))  # type: ignore[arg-type]
        at_node: dict[int, list[int]] = {}
        for (n, _c), xi in comp.items():
            at_node.setdefault(n, []).append(xi)
        for z, t0, t1, rate, pairs, flee in move_specs:
            # a flight (incident) moves walkers as well as settled people
            for src in [z, *(at_node.get(z, []) if flee else [])]:
                mi = len(tpl.moves)
                tpl.moves.append((src, t0, t1, rate))
                total_w = sum(w for _, w in pairs)
                for c, w in pairs:
                    tpl.move_targets.append((mi, comp[(z, c)], w / total_w))
        # refugees go back (a share of them) or settle where they are, once the scare is over
        for k, _, t_back, share in self.refuges:
            rate = -math.log(1 - _FULL_FRACTION) / 300.0
            for (kk, n), xi in refuge_x.items():
                if kk != k:
                    continue
                mi = len(tpl.moves)
                tpl.moves.append((xi, t_back, t_back + 300.0, rate))
                tpl.move_targets.append((mi, comp[(n, back_class[k])], share))
                tpl.move_targets.append((mi, n, 1.0 - share))
        tpl.n_x = len(x_node)
        tpl.x_node = x_node
        tpl.x_kind = x_kind
        init = [0.0] * len(x_node)
        init[home] = sum(q[1] for q in queue_specs)
        if self.plan is not None:
            for sel, count in self.plan.initial.items():
                zs = [self.zi[z] for z in select_zones(self.site, [sel])]
                caps = [max(float(self.site.zones[z].capacity), 1.0) for z in zs]
                for z, cap in zip(zs, caps, strict=True):
                    init[z] += count * cap / sum(caps)
        tpl.x_init = init

    def _curve(self, arr: Arrival, horizon: float) -> tuple[float, ...]:
        c = arr.curve
        shape = {"logistic": 0, "normal": 1, "uniform": 2}[c.shape]
        peak = self.sc.at(c.peak) if c.peak is not None else 0.0
        scale = c.spread / 1.8138 if shape == 0 else c.spread
        start = self.sc.at(c.start) if c.start is not None else peak - 5 * c.spread
        end = self.sc.at(c.end) if c.end is not None else peak + 5 * c.spread
        headway = c.headway or 0.0
        phase = float(self.rng.uniform(0, headway)) if headway else 0.0
        return (float(shape), peak, scale, start, end, headway, c.pulse, phase)


def compile_site(scenario: Scenario, site: Site, *, with_incidents: bool, seed: int) -> SiteTemplate:
    plans = [(i, p) for i, p in enumerate(scenario.spec.crowd) if p.site == site.id]
    plan_index, plan = plans[0] if plans else (None, None)
    incidents = (
        [(k, inc) for k, inc in enumerate(scenario.spec.incidents) if inc.site == site.id]
        if with_incidents
        else []
    )
    return _Compiler(scenario, site, plan, plan_index, incidents, seed).compile()


def check_plans(scenario: Scenario) -> list[PlanError]:
    """Compile every core site, returning the routing problems (for `load_scenario`)."""
    problems: list[PlanError] = []
    for site in scenario.venue.sites:
        try:
            compile_site(scenario, site, with_incidents=True, seed=0)
        except PlanError as exc:
            problems.append(exc)
    return problems


def _erf(x: F64) -> F64:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return np.asarray(s * y, dtype=np.float64)


@dataclass
class Network:
    """All sites' templates laid side by side, with their time offsets applied."""

    n_sites: int
    zone_site: I64
    zone_area: F64
    zone_capacity: F64
    zone_length: F64
    zone_offset: I64  # first global zone of each site
    exit_offset: I64  # first global exit of each site
    exit_site: I64
    exit_ids: list[str]
    exit_width: F64
    exit_qmax: F64
    exit_screen: F64  # inbound factor while screening (screening / qmax), 1 when unscreened
    exit_gate_open: F64
    exit_gate_close: F64
    exit_emergency_open: F64
    exit_a: I64  # global zone, -1 outside
    exit_b: I64
    x_node: I64  # global zone, -1 outside
    x_kind: I64
    x_site: I64
    x_init: F64
    r_src: I64
    r_dst: I64
    r_exit: I64
    r_inbound: B
    r_to_node: I64
    r_pref: F64
    ar_queue: I64
    ar_count: F64
    ar_curve: F64  # (n, 8): shape, peak, scale, start, end, headway, pulse, phase
    mv_src: I64
    mv_t0: F64
    mv_t1: F64
    mv_rate: F64
    mt_move: I64
    mt_dst: I64
    mt_w: F64
    ow_exit: I64
    ow_t: F64  # (n, 2)
    ww_exit: I64
    ww_t: F64
    ww_f: F64
    sw_node: I64
    sw_t: F64
    sw_f: F64

    @property
    def n_zones(self) -> int:
        return len(self.zone_area)

    @property
    def n_exits(self) -> int:
        return len(self.exit_width)


def build_network(world: World) -> Network:
    scenario = world.scenario
    cache: dict[tuple[str, bool], SiteTemplate] = {}
    parts: list[tuple[SiteTemplate, float, float]] = []
    for inst in world.instances:
        with_inc = inst.group == 0 or scenario.spec.scaling.replicate_incidents
        key = (inst.core.id, with_inc)
        if key not in cache:
            cache[key] = compile_site(scenario, inst.core, with_incidents=with_inc, seed=world.seed)
        parts.append((cache[key], inst.time_offset_s, inst.attendance))
    return _concat(parts)


def _concat(parts: list[tuple[SiteTemplate, float, float]]) -> Network:
    zs: list[list[float]] = [[], [], [], []]
    zone_site: list[int] = []
    zone_offset: list[int] = []
    exit_offset: list[int] = []
    ex: dict[str, list[float]] = {k: [] for k in ("w", "q", "s", "go", "gc", "eo", "a", "b", "site")}
    exit_ids: list[str] = []
    xs: dict[str, list[float]] = {k: [] for k in ("node", "kind", "site", "init")}
    rs: dict[str, list[float]] = {k: [] for k in ("src", "dst", "exit", "in", "to", "pref")}
    ar_q: list[int] = []
    ar_n: list[float] = []
    ar_c: list[list[float]] = []
    mv: dict[str, list[float]] = {k: [] for k in ("src", "t0", "t1", "rate")}
    mt: dict[str, list[float]] = {k: [] for k in ("move", "dst", "w")}
    ow: list[tuple[int, float, float]] = []
    ww: list[tuple[int, float, float, float]] = []
    sw: list[tuple[int, float, float, float]] = []
    z0 = e0 = x0 = m0 = 0
    for s, (tpl, dt, factor) in enumerate(parts):
        zone_offset.append(z0)
        exit_offset.append(e0)
        zs[0].extend(tpl.zone_area)
        zs[1].extend(tpl.zone_capacity)
        zs[2].extend(tpl.zone_length)
        zone_site.extend([s] * tpl.n_zones)
        Z = tpl.n_zones
        for e in tpl.exits:
            exit_ids.append(e.id)
            ex["w"].append(e.width)
            ex["q"].append(e.qmax)
            ex["s"].append(e.screening / e.qmax if e.screening else 1.0)
            ex["a"].append(e.a + z0 if e.a < Z else -1)
            ex["b"].append(e.b + z0 if e.b < Z else -1)
            ex["site"].append(s)
        ex["go"].extend(t + dt for t in tpl.gate_open)
        ex["gc"].extend(t + dt for t in tpl.gate_close)
        ex["eo"].extend(t + dt for t in tpl.emergency_open)
        xs["node"].extend(n + z0 if n >= 0 else -1 for n in tpl.x_node)
        xs["kind"].extend(tpl.x_kind)
        xs["site"].extend([s] * tpl.n_x)
        xs["init"].extend(
            v * (factor if k == 1 else 1.0) for v, k in zip(tpl.x_init, tpl.x_kind, strict=True)
        )
        rs["src"].extend(i + x0 for i in tpl.r_src)
        rs["dst"].extend(i + x0 for i in tpl.r_dst)
        rs["exit"].extend(i + e0 for i in tpl.r_exit)
        rs["in"].extend(tpl.r_inbound)
        rs["to"].extend(n + z0 if n >= 0 else -1 for n in tpl.r_to_node)
        rs["pref"].extend(tpl.r_pref)
        for q, count, shape, peak, scale, start, end, headway, pulse, phase in tpl.arrivals:
            ar_q.append(q + x0)
            ar_n.append(count * factor)
            ar_c.append([shape, peak + dt, scale, start + dt, end + dt, headway, pulse, phase + dt])
        for src, t0, t1, rate in tpl.moves:
            mv["src"].append(src + x0)
            mv["t0"].append(t0 + dt)
            mv["t1"].append(t1 + dt)
            mv["rate"].append(rate)
        for m, dst, w in tpl.move_targets:
            mt["move"].append(m + m0)
            mt["dst"].append(dst + x0)
            mt["w"].append(w)
        ow.extend((e + e0, t0 + dt, t1 + dt) for e, t0, t1 in tpl.open_windows)
        ww.extend((e + e0, t0 + dt, t1 + dt, f) for e, t0, t1, f in tpl.width_windows)
        sw.extend((n + z0, t0 + dt, t1 + dt, f) for n, t0, t1, f in tpl.speed_windows)
        z0 += Z
        e0 += len(tpl.exits)
        x0 += tpl.n_x
        m0 += len(tpl.moves)

    def i64(v: Iterable[float | int | bool]) -> I64:
        return np.asarray(list(v), dtype=np.int64)

    def f64(v: Iterable[float]) -> F64:
        return np.asarray(list(v), dtype=np.float64)

    return Network(
        n_sites=len(parts),
        zone_site=i64(zone_site),
        zone_area=f64(zs[0]),
        zone_capacity=f64(zs[1]),
        zone_length=f64(zs[2]),
        zone_offset=i64(zone_offset),
        exit_offset=i64(exit_offset),
        exit_site=i64(ex["site"]),
        exit_ids=exit_ids,
        exit_width=f64(ex["w"]),
        exit_qmax=f64(ex["q"]),
        exit_screen=f64(ex["s"]),
        exit_gate_open=f64(ex["go"]),
        exit_gate_close=f64(ex["gc"]),
        exit_emergency_open=f64(ex["eo"]),
        exit_a=i64(ex["a"]),
        exit_b=i64(ex["b"]),
        x_node=i64(xs["node"]),
        x_kind=i64(xs["kind"]),
        x_site=i64(xs["site"]),
        x_init=f64(xs["init"]),
        r_src=i64(rs["src"]),
        r_dst=i64(rs["dst"]),
        r_exit=i64(rs["exit"]),
        r_inbound=np.asarray(rs["in"], dtype=bool),
        r_to_node=i64(rs["to"]),
        r_pref=f64(rs["pref"]),
        ar_queue=i64(ar_q),
        ar_count=f64(ar_n),
        ar_curve=np.asarray(ar_c, dtype=np.float64).reshape(-1, 8),
        mv_src=i64(mv["src"]),
        mv_t0=f64(mv["t0"]),
        mv_t1=f64(mv["t1"]),
        mv_rate=f64(mv["rate"]),
        mt_move=i64(mt["move"]),
        mt_dst=i64(mt["dst"]),
        mt_w=f64(mt["w"]),
        ow_exit=i64(w[0] for w in ow),
        ow_t=np.asarray([w[1:] for w in ow], dtype=np.float64).reshape(-1, 2),
        ww_exit=i64(w[0] for w in ww),
        ww_t=np.asarray([w[1:3] for w in ww], dtype=np.float64).reshape(-1, 2),
        ww_f=f64(w[3] for w in ww),
        sw_node=i64(w[0] for w in sw),
        sw_t=np.asarray([w[1:3] for w in sw], dtype=np.float64).reshape(-1, 2),
        sw_f=f64(w[3] for w in sw),
    )


class CrowdModel:
    """Steps the network. After `step()`, `occupancy`, `density` and `exit_flow` describe the tick.

    Controls (open exits, width factors, speed factors, active moves) change only at known instants;
    they are recomputed when the clock passes one, so a tick costs a few dozen array operations.
    """

    def __init__(
        self,
        net: Network,
        *,
        dt: float,
        jam_density: float = 7.5,
        free_speed: float = 1.34,
        queue_speed: float = 0.5,
    ) -> None:
        self.net = net
        self.dt = dt
        self.jam = jam_density
        self.free_speed = free_speed
        self.queue_speed = queue_speed
        self.x = net.x_init.copy()
        self.t = 0.0
        nz, ne, nx = net.n_zones, net.n_exits, len(net.x_init)
        self._nx = nx
        self._node_bins = np.where(net.x_node >= 0, net.x_node, nz)
        self._to_bins = np.where(net.r_to_node >= 0, net.r_to_node, nz)
        self._src_slot = np.where(net.x_kind[net.r_src] == 2, nz, np.maximum(net.x_node[net.r_src], 0))
        self._exit_dir = net.r_exit * 2 + (~net.r_inbound).astype(np.int64)
        self._in_weight = net.r_inbound.astype(np.float64)
        self._jam_room = jam_density * net.zone_area
        self._zone_rate = np.ones(nz + 1)
        self._g = np.ones(nz + 1)
        # arrivals: normalised cumulative curve per program, tracked from one tick to the next
        c = net.ar_curve
        self._ar = {
            k: c[:, i]
            for i, k in enumerate(("shape", "peak", "scale", "start", "end", "headway", "pulse", "phase"))
        }
        self._ar_lo = self._cdf_raw(np.arange(len(c)), self._ar["start"])
        self._ar_hi = self._cdf_raw(np.arange(len(c)), self._ar["end"])
        self._ar_prev = np.zeros(len(c))
        self._remaining = net.ar_count.copy()
        home = np.flatnonzero(net.x_kind == 1)
        self._site_home = np.zeros(net.n_sites, dtype=np.int64)
        self._site_home[net.x_site[home]] = home
        self._ar_site = net.x_site[net.ar_queue] if len(net.ar_queue) else np.zeros(0, dtype=np.int64)
        # control change points
        times = [
            net.exit_gate_open,
            net.exit_gate_close,
            net.exit_emergency_open,
            net.ow_t.ravel(),
            net.ww_t.ravel(),
            net.sw_t.ravel(),
            net.mv_t0,
            net.mv_t1,
        ]
        allt = np.concatenate(times) if times else np.zeros(0)
        self._changes = np.unique(allt[np.isfinite(allt)])
        self._epoch = -1
        self.total = float(self.x.sum())
        self.route_flow = np.zeros(len(net.r_src))
        self.exit_flow = np.zeros((ne, 2))
        self.cum_exit_flow = np.zeros((ne, 2))
        self.exit_capacity = np.zeros(ne)
        self.exit_open = np.ones(ne, dtype=bool)
        self.width_factor = np.ones(ne)
        self.speed_factor = np.ones(nz)
        self.occupancy = np.bincount(self._node_bins, weights=self.x, minlength=nz + 1)[:nz]
        self.density = self.occupancy / net.zone_area
        self._controls(0.0)

    # -- controls --------------------------------------------------------------------------
    def _controls(self, t: float) -> None:
        epoch = int(np.searchsorted(self._changes, t, side="right"))
        if epoch == self._epoch:
            return
        self._epoch = epoch
        net, dt = self.net, self.dt
        forced = np.zeros(net.n_exits, dtype=bool)
        if len(net.ow_exit):
            act = (net.ow_t[:, 0] <= t) & (t < net.ow_t[:, 1])
            forced[net.ow_exit[act]] = True
        is_open = (t >= net.exit_gate_open) & ((t >= net.exit_emergency_open) | forced)
        factor = np.ones(net.n_exits)
        if len(net.ww_exit):
            act = (net.ww_t[:, 0] <= t) & (t < net.ww_t[:, 1])
            np.multiply.at(factor, net.ww_exit[act], net.ww_f[act])
        width = net.exit_width * factor * is_open
        inbound = np.where(t < net.exit_gate_close, net.exit_screen, 0.0)
        self.exit_open, self.width_factor = is_open, factor
        speed = np.ones(net.n_zones)
        if len(net.sw_node):
            act = (net.sw_t[:, 0] <= t) & (t < net.sw_t[:, 1])
            np.multiply.at(speed, net.sw_node[act], net.sw_f[act])
        self.speed_factor = speed
        # split of walkers over their forward exits, by open (and, inbound, screened) width
        w_eff = width[net.r_exit] * np.where(net.r_inbound, np.minimum(inbound[net.r_exit], 1.0), 1.0)
        w_eff *= net.r_pref
        denom = np.bincount(net.r_src, weights=w_eff, minlength=self._nx)[net.r_src]
        self._share = np.divide(w_eff, denom, out=np.zeros_like(w_eff), where=denom > 0)
        self._cap = width * net.exit_qmax / 60.0 * dt
        self._cap_in = self._cap * inbound
        # moves active in this epoch, as a hazard per source compartment
        h = np.where((net.mv_t0 <= t) & (t < net.mv_t1), net.mv_rate, 0.0)
        self._moving = bool(h.any())
        if self._moving:
            hz = np.bincount(net.mv_src, weights=h, minlength=self._nx)
            self._mv_p = -np.expm1(-hz * dt)
            hz_src = hz[net.mv_src]
            share = np.divide(h, hz_src, out=np.zeros_like(h), where=hz_src > 0)
            self._mv_w = share[net.mt_move] * net.mt_w
            self._mv_from = net.mv_src[net.mt_move]

    def _cdf_raw(self, idx: I64, tt: F64) -> F64:
        a = self._ar
        z = (tt - a["peak"][idx]) / a["scale"][idx]
        shape = a["shape"][idx]
        out = np.empty(len(idx))
        lg, nm, un = shape == 0, shape == 1, shape == 2
        out[lg] = 1.0 / (1.0 + np.exp(-np.clip(z[lg], -60, 60)))
        out[nm] = 0.5 * (1.0 + _erf(z[nm] / math.sqrt(2.0)))
        start, end = a["start"][idx][un], a["end"][idx][un]
        out[un] = (tt[un] - start) / np.maximum(end - start, 1e-9)
        return out

    def _arrivals(self, t: float) -> None:
        a = self._ar
        t1 = t + self.dt
        idx = np.flatnonzero((a["start"] < t1) & (a["end"] > t) & (self._remaining > 0))
        if not len(idx):
            return
        tt = np.clip(np.full(len(idx), t1), a["start"][idx], a["end"][idx])
        lo, hi = self._ar_lo[idx], self._ar_hi[idx]
        f = (self._cdf_raw(idx, tt) - lo) / np.maximum(hi - lo, 1e-12)
        amount = self.net.ar_count[idx] * (f - self._ar_prev[idx])
        self._ar_prev[idx] = f
        headway = a["headway"][idx]
        trains = headway > 0
        if trains.any():
            hw, pulse = headway[trains], a["pulse"][idx][trains]
            in_pulse = np.mod(t - a["phase"][idx][trains], hw) < pulse
            amount[trains] *= np.where(in_pulse, hw / pulse, 0.0)
        amount = np.clip(amount, 0.0, self._remaining[idx])
        self._remaining[idx] -= amount
        take = np.bincount(self._ar_site[idx], weights=amount, minlength=self.net.n_sites)
        self.x[self._site_home] -= take
        np.add.at(self.x, self.net.ar_queue[idx], amount)

    def _moves(self) -> None:
        moved = self.x * self._mv_p
        self.x -= moved
        self.x += np.bincount(self.net.mt_dst, weights=moved[self._mv_from] * self._mv_w, minlength=self._nx)

    def step(self) -> None:
        """Advance one tick of `dt` seconds."""
        net, dt, x = self.net, self.dt, self.x
        t = self.t
        self._controls(t)
        self._arrivals(t)
        if self._moving:
            self._moves()
        nz = net.n_zones
        # walkers reaching an exit this tick: Weidmann speed at the zone's density over its length,
        # floored at the shuffling speed of a dense queue, which keeps feeding its exit
        inv = 1.0 / np.maximum(self.density, 1e-3) - 1.0 / 5.4
        v = self.free_speed * -np.expm1(-1.913 * inv)
        v = np.clip(v, self.queue_speed, self.free_speed) * self.speed_factor
        np.minimum(v * (dt / net.zone_length), 1.0, out=self._zone_rate[:nz])
        demand = x[net.r_src] * self._zone_rate[self._src_slot] * self._share
        # exit capacity, shared by both directions; screened gates admit less inbound
        ne = net.n_exits
        d_all = np.bincount(net.r_exit, weights=demand, minlength=ne)
        d_in = np.bincount(net.r_exit, weights=demand * self._in_weight, minlength=ne)
        f_all = np.divide(self._cap, d_all, out=np.ones(ne), where=d_all > self._cap)
        f_in = np.minimum(f_all, np.divide(self._cap_in, d_in, out=np.ones(ne), where=d_in > self._cap_in))
        flow = demand * np.where(net.r_inbound, f_in[net.r_exit], f_all[net.r_exit])
        # a zone takes no more than its jam density
        inflow = np.bincount(self._to_bins, weights=flow, minlength=nz + 1)[:nz]
        room = np.maximum(self._jam_room - self.occupancy, 0.0)
        np.divide(room, inflow, out=self._g[:nz], where=inflow > room)
        self._g[:nz][inflow <= room] = 1.0
        flow *= self._g[self._to_bins]
        x -= np.bincount(net.r_src, weights=flow, minlength=self._nx).astype(np.float64, copy=False)
        x += np.bincount(net.r_dst, weights=flow, minlength=self._nx).astype(np.float64, copy=False)
        self.route_flow = flow
        self.exit_flow = (
            np.bincount(self._exit_dir, weights=flow, minlength=2 * ne)
            .reshape(ne, 2)
            .astype(np.float64, copy=False)
        )
        self.cum_exit_flow += self.exit_flow
        self.occupancy = np.bincount(self._node_bins, weights=x, minlength=nz + 1)[:nz]
        self.density = self.occupancy / net.zone_area
        self.t = t + dt

    @property
    def exit_capacity_now(self) -> F64:
        """Persons the exits could pass this tick (both directions together)."""
        return self._cap

    def outside(self) -> F64:
        """People of each site outside it (at home or queueing at its entrances)."""
        out = self.x * (self.net.x_node < 0)
        return np.bincount(self.net.x_site, weights=out, minlength=self.net.n_sites).astype(
            np.float64, copy=False
        )


def make_model(world: World) -> CrowdModel:
    spec = world.scenario.spec
    return CrowdModel(
        build_network(world),
        dt=spec.tick_s,
        jam_density=spec.crowd_model.jam_density,
        free_speed=spec.crowd_model.free_speed,
        queue_speed=spec.crowd_model.queue_speed,
    )
