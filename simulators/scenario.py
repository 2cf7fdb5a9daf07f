"""Scenario files: venue, event timeline, crowd plans, incidents and sensor faults.

`simulators.scenario_file.load_scenario(path)` validates the YAML in two passes, shape (pydantic,
extra keys forbidden) then references (sites, zones, exits, devices, timeline events), and raises one
`ConfigError` that names the file and the line of every problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from beffroi.devices import DeviceKind
from beffroi.events import LatLon
from beffroi.venue import Site, Venue, ZoneKind
from beffroi.yamlconf import Loc
from simulators.timeexpr import EVENT_ID, Duration, TimeExpr, event_ref, resolve_time

_ID = r"^[a-z0-9][a-z0-9_-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EventType(StrEnum):
    GATES_OPEN = "gates_open"
    GATES_CLOSE = "gates_close"
    KICK_OFF = "kick_off"
    HALF_TIME = "half_time"
    SECOND_HALF = "second_half"
    FINAL_WHISTLE = "final_whistle"
    EGRESS = "egress"
    GOAL = "goal"
    CEREMONY_START = "ceremony_start"
    CEREMONY_END = "ceremony_end"
    SHOW_START = "show_start"
    SHOW_END = "show_end"
    FIREWORKS = "fireworks"


class TimelineEvent(_Model):
    """A planned event. Later times may refer to it by `id` (default: the event type)."""

    event: EventType
    at: TimeExpr
    id: str | None = Field(default=None, pattern=EVENT_ID)
    label: str = ""

    @property
    def key(self) -> str:
        return self.id if self.id is not None else self.event.value


ZoneSelector = Annotated[str, Field(min_length=1, description="'all', 'kind:<zone kind>' or a zone id")]


class ZonesTarget(_Model):
    """Settle in these zones: shared by capacity, or `nearest`: into the adjacent ones (shared by the
    width of the exits between), else the closest ones."""

    zones: list[ZoneSelector] = Field(min_length=1)
    split: Literal["capacity", "nearest"] = "capacity"


class LeaveVia(_Model):
    """Walk through the site and leave by these boundary exits."""

    leave_via: list[str] = Field(min_length=1)


Target = Literal["leave", "evacuate", "neighbours"] | ZonesTarget | LeaveVia
"""Where movers go: `leave` by the ordinary boundary exits, `evacuate` by any exit including emergency
ones, `neighbours` into the adjacent zones, or a `ZonesTarget` / `LeaveVia`."""


class ArrivalCurve(_Model):
    """Cumulative arrivals: logistic or normal around `peak` with scale `spread`, or uniform between
    `start` and `end`. Nobody arrives outside [start, end]. `headway` bunches arrivals into trains."""

    shape: Literal["logistic", "normal", "uniform"] = "logistic"
    peak: TimeExpr | None = None
    spread: Duration = Field(default=1800.0, gt=0)
    start: TimeExpr | None = None
    end: TimeExpr | None = None
    headway: Duration | None = Field(default=None, gt=0)
    pulse: Duration = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _shape(self) -> ArrivalCurve:
        if self.shape == "uniform" and (self.start is None or self.end is None):
            raise ValueError("a uniform curve needs `start` and `end`")
        if self.shape != "uniform" and self.peak is None:
            raise ValueError(f"a {self.shape} curve needs a `peak`")
        return self


class Arrival(_Model):
    count: int = Field(ge=0)
    curve: ArrivalCurve
    to: Target
    enter_via: list[str] | None = Field(default=None, min_length=1, description="boundary exits")


class Move(_Model):
    """People settled in `from` zones start moving to `to`: a `fraction` of them from `at`, spread over
    `spread`, or continuously at `per_hour` between the two `between` times (dwell-time departures)."""

    from_: list[ZoneSelector] = Field(alias="from", min_length=1)
    to: Target
    at: TimeExpr | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)
    spread: Duration = Field(default=300.0, gt=0)
    between: tuple[TimeExpr, TimeExpr] | None = None
    per_hour: float | None = Field(default=None, gt=0, le=60)

    @model_validator(mode="after")
    def _one_form(self) -> Move:
        pulse = self.at is not None or self.fraction is not None
        steady = self.between is not None or self.per_hour is not None
        if pulse == steady:
            raise ValueError("give either `at` with `fraction`, or `between` with `per_hour`")
        if pulse and (self.at is None or self.fraction is None):
            raise ValueError("a one-off move needs both `at` and `fraction`")
        if steady and (self.between is None or self.per_hour is None):
            raise ValueError("a steady move needs both `between` and `per_hour`")
        return self


class CrowdPlan(_Model):
    """How the crowd of one site (and of its clones at scale) arrives, moves and leaves."""

    site: str
    initial: dict[ZoneSelector, int] = Field(default_factory=dict)
    arrivals: list[Arrival] = Field(default_factory=list)
    moves: list[Move] = Field(default_factory=list)
    gates_open: TimeExpr | None = Field(default=None, description="default: the `gates_open` event, if any")
    gates_close: TimeExpr | None = Field(default=None, description="inbound stops; default `gates_close`")
    emergency_exits_open: TimeExpr | None = Field(default=None, description="e.g. final_whistle")
    closed_exits: list[str] = Field(
        default_factory=list, description="exits kept shut all along: nobody enters, leaves or walks through"
    )


class IncidentType(StrEnum):
    CROWD_CRUSH = "crowd_crush"
    SMOKE = "smoke"
    PERIMETER_BREACH = "perimeter_breach"
    SUDDEN_DISPERSAL = "sudden_dispersal"
    SOUND_SPIKE = "sound_spike"


class _Incident(_Model):
    id: str = Field(pattern=_ID)
    site: str
    start: TimeExpr
    end: TimeExpr
    description: str = ""


class CrowdCrush(_Incident):
    """An exit jams (its width shrinks) while people keep pressing on it: density builds up in front
    of it, in its `from_zone` (`direction: inbound`) or in its `to_zone` (`outbound`, e.g. at egress)."""

    type: Literal[IncidentType.CROWD_CRUSH]
    exit: str
    direction: Literal["inbound", "outbound"] = "inbound"
    width_factor: float = Field(default=0.1, ge=0, le=1)
    surge: int = Field(default=0, ge=0, description="inbound: extra arrivals heading for this exit")
    surge_to: list[ZoneSelector] | None = Field(
        default=None, description="where the surge is going; default the site's first arrival destination"
    )


class Smoke(_Incident):
    """Smoke (or fire) in a zone: PM2.5 and CO rise there, less in the neighbours; people move away."""

    type: Literal[IncidentType.SMOKE]
    zone: str
    pm25: float = Field(default=450.0, gt=0, le=900)
    co: float = Field(default=20.0, ge=0, le=400)
    fire: bool = False
    evacuate: float = Field(default=0.5, ge=0, le=1)


class PerimeterBreach(_Incident):
    """Intruders climb a fence into a zone: vibration on the nearest fence sensors, uncounted entries."""

    type: Literal[IncidentType.PERIMETER_BREACH]
    zone: str
    intruders: int = Field(default=150, ge=0)
    location: LatLon | None = Field(default=None, description="breach point; default the zone's centroid")
    sensors: int = Field(default=3, ge=1, le=20)


class SuddenDispersal(_Incident):
    """Most of a zone's crowd runs out of it at once."""

    type: Literal[IncidentType.SUDDEN_DISPERSAL]
    zone: str
    fraction: float = Field(default=0.8, gt=0, le=1)
    returns: float = Field(
        default=0.0, ge=0, le=1, description="part of the neighbours' crowd that comes back"
    )


class SoundSpike(_Incident):
    """A bang: a short loud spike in a zone, with part of its crowd moving away."""

    type: Literal[IncidentType.SOUND_SPIKE]
    zone: str
    level_db: float = Field(default=32.0, gt=0, le=60)
    spike: Duration = Field(default=15.0, gt=0)
    movement: float = Field(default=0.3, ge=0, le=1)
    returns: float = Field(
        default=0.5, ge=0, le=1, description="part of the neighbours' crowd that comes back"
    )


Incident = Annotated[
    CrowdCrush | Smoke | PerimeterBreach | SuddenDispersal | SoundSpike, Field(discriminator="type")
]


class FaultType(StrEnum):
    STUCK = "stuck"
    DRIFT = "drift"
    DROPOUT = "dropout"
    NOISE_BURST = "noise_burst"
    CLOCK_SKEW = "clock_skew"
    DUPLICATE = "duplicate"


class DeviceSelect(_Model):
    kind: DeviceKind | None = None
    site: str | None = None
    zone: str | None = None
    count: int = Field(default=1, ge=1)


class Fault(_Model):
    """A sensor fault, not an incident. `magnitude`: drift per hour (default 0.3) or noise sigma (0.08),
    in typical spans (a tenth of the field's physical range, at most 100 units); clock skew in seconds
    (600; negative: the device's clock is late)."""

    type: FaultType
    device: str | None = None
    select: DeviceSelect | None = None
    start: TimeExpr
    end: TimeExpr
    magnitude: float | None = None

    @model_validator(mode="after")
    def _target(self) -> Fault:
        if (self.device is None) == (self.select is None):
            raise ValueError("give exactly one of `device` and `select`")
        return self


class RandomFaults(_Model):
    """Faults drawn from the seed over every device (clones included)."""

    per_device_per_hour: float = Field(default=0.002, ge=0, le=1)
    types: list[FaultType] = Field(default_factory=lambda: list(FaultType), min_length=1)
    min_duration: Duration = Field(default=120.0, gt=0)
    max_duration: Duration = Field(default=1800.0, gt=0)


class ScalingSpec(_Model):
    """Scale `s` gives max(core sites, round(s x sites_at_scale_1)) sites: the core sites and clones of
    them, moved on a grid, with jittered timelines and attendance."""

    sites_at_scale_1: int = Field(default=50, ge=1)
    spacing_km: float = Field(default=8.0, gt=0)
    time_jitter: Duration = 900.0
    attendance_jitter: float = Field(default=0.3, ge=0, lt=1)
    replicate_incidents: bool = True


class GroundTruthSpec(_Model):
    interval_s: Duration = Field(default=5.0, gt=0)


class WeatherSpec(_Model):
    temperature_c: float = Field(default=24.0, ge=-20, le=45)
    daily_amplitude_c: float = Field(default=5.0, ge=0, le=15)
    wind: float = Field(default=0.3, ge=0, le=1)


class CrowdModelSpec(_Model):
    jam_density: float = Field(default=7.5, gt=2, le=10, description="persons/m2 a zone cannot exceed")
    free_speed: float = Field(default=1.34, gt=0.3, le=3, description="walking speed in m/s")
    queue_speed: float = Field(default=0.5, gt=0, le=1.5, description="speed floor of a dense queue, m/s")


class ScenarioSpec(_Model):
    kind: Literal["scenario"] = "scenario"
    name: str = Field(pattern=_ID)
    description: str = ""
    seed: int = 0
    start: AwareDatetime
    duration: Duration = Field(gt=0)
    tick_s: float = Field(default=1.0, ge=0.1, le=10)
    scale: float = Field(default=1.0, gt=0, le=100)
    venue: str | dict[str, Any]
    timeline: list[TimelineEvent] = Field(default_factory=list)
    crowd: list[CrowdPlan] = Field(default_factory=list)
    incidents: list[Incident] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    random_faults: RandomFaults | None = None
    scaling: ScalingSpec = ScalingSpec()
    ground_truth: GroundTruthSpec = GroundTruthSpec()
    weather: WeatherSpec = WeatherSpec()
    crowd_model: CrowdModelSpec = CrowdModelSpec()


@dataclass(frozen=True)
class Scenario:
    """A validated scenario with its venue loaded and its timeline resolved (seconds after start)."""

    spec: ScenarioSpec
    venue: Venue
    path: Path
    events: dict[str, float] = field(default_factory=dict)
    loaded_ns: int = 0

    def at(self, expr: str) -> float:
        """Seconds after the start for a time expression of this scenario."""
        return resolve_time(expr, start=self.spec.start, events=self.events)

    @property
    def name(self) -> str:
        return self.spec.name


def select_zones(site: Site, selectors: list[str]) -> list[str]:
    """Zone ids matched by selectors ('all', 'kind:<kind>', zone id), in site order, no repeats."""
    chosen: list[str] = []
    for sel in selectors:
        for z in site.zones:
            if (
                sel == "all" or (sel.startswith("kind:") and z.kind.value == sel[5:]) or z.id == sel
            ) and z.id not in chosen:
                chosen.append(z.id)
    return chosen


class Checker:
    """Second pass: every reference and time expression, each problem with its location."""

    def __init__(self, spec: ScenarioSpec, venue: Venue) -> None:
        self.spec = spec
        self.venue = venue
        self.sites = {s.id: s for s in venue.sites}
        self.issues: list[tuple[Loc, str]] = []
        self.events: dict[str, float] = {}

    def fail(self, loc: Loc, message: str) -> None:
        self.issues.append((loc, message))

    def time(self, expr: str | None, loc: Loc) -> float | None:
        if expr is None:
            return None
        try:
            return resolve_time(expr, start=self.spec.start, events=self.events)
        except KeyError:
            ref = event_ref(expr)
            known = ", ".join(sorted(self.events)) or "none"
            self.fail(loc, f"unknown timeline event {ref!r} (known so far: {known})")
            return None

    def window(self, start: str, end: str, loc: Loc) -> None:
        t0, t1 = self.time(start, (*loc, "start")), self.time(end, (*loc, "end"))
        if t0 is not None and t1 is not None and t1 <= t0:
            self.fail((*loc, "end"), "the end must come after the start")

    def site(self, site_id: str | None, loc: Loc) -> Site | None:
        if site_id is None:
            return None
        site = self.sites.get(site_id)
        if site is None:
            self.fail(loc, f"unknown site {site_id!r} (venue has: {', '.join(self.sites)})")
        return site

    def zones(self, site: Site, selectors: list[str], loc: Loc) -> None:
        kinds = {k.value for k in ZoneKind}
        ids = {z.id for z in site.zones}
        for i, sel in enumerate(selectors):
            if sel == "all":
                continue
            if sel.startswith("kind:"):
                if sel[5:] not in kinds:
                    self.fail((*loc, i), f"unknown zone kind {sel[5:]!r} (one of {', '.join(sorted(kinds))})")
                elif not select_zones(site, [sel]):
                    self.fail((*loc, i), f"site {site.id!r} has no zone of kind {sel[5:]!r}")
            elif sel not in ids:
                self.fail((*loc, i), f"site {site.id!r} has no zone {sel!r}")

    def zone(self, site: Site, zone_id: str, loc: Loc) -> None:
        if zone_id not in {z.id for z in site.zones}:
            self.fail(loc, f"site {site.id!r} has no zone {zone_id!r}")

    def boundary_exits(self, site: Site, exits: list[str], loc: Loc) -> None:
        by_id = {e.id: e for e in site.exits}
        for i, e in enumerate(exits):
            ex = by_id.get(e)
            if ex is None:
                self.fail((*loc, i), f"site {site.id!r} has no exit {e!r}")
            elif ex.from_zone is not None and ex.to_zone is not None:
                self.fail((*loc, i), f"exit {e!r} is inside the site, not on its boundary")

    def target(self, site: Site, target: Target, loc: Loc) -> None:
        if isinstance(target, ZonesTarget):
            self.zones(site, target.zones, (*loc, "zones"))
        elif isinstance(target, LeaveVia):
            self.boundary_exits(site, target.leave_via, (*loc, "leave_via"))

    def run(self) -> None:
        self.check_timeline()
        self.check_crowd()
        self.check_incidents()
        self.check_faults()

    def check_timeline(self) -> None:
        for i, ev in enumerate(self.spec.timeline):
            loc: Loc = ("timeline", i)
            if ev.key in self.events:
                self.fail((*loc, "id"), f"timeline event {ev.key!r} appears twice: give it an `id`")
            t = self.time(ev.at, (*loc, "at"))
            if t is not None:
                self.events[ev.key] = t

    def check_crowd(self) -> None:
        seen: set[str] = set()
        for i, plan in enumerate(self.spec.crowd):
            loc: Loc = ("crowd", i)
            site = self.site(plan.site, (*loc, "site"))
            if plan.site in seen:
                self.fail((*loc, "site"), f"a second crowd plan for site {plan.site!r}")
            seen.add(plan.site)
            for key in ("gates_open", "gates_close", "emergency_exits_open"):
                self.time(getattr(plan, key), (*loc, key))
            if site is None:
                continue
            self.zones(site, list(plan.initial), (*loc, "initial"))
            exit_ids = {e.id for e in site.exits}
            for j, closed in enumerate(plan.closed_exits):
                if closed not in exit_ids:
                    self.fail((*loc, "closed_exits", j), f"site {site.id!r} has no exit {closed!r}")
            for j, arr in enumerate(plan.arrivals):
                aloc: Loc = (*loc, "arrivals", j)
                self.target(site, arr.to, (*aloc, "to"))
                if arr.to == "neighbours":
                    self.fail((*aloc, "to"), "arrivals cannot go to `neighbours`")
                if arr.enter_via is not None:
                    self.boundary_exits(site, arr.enter_via, (*aloc, "enter_via"))
                elif not any(e.from_zone is None or e.to_zone is None for e in site.exits):
                    self.fail(aloc, f"site {site.id!r} has no boundary exit to enter by")
                c = arr.curve
                times = {k: self.time(getattr(c, k), (*aloc, "curve", k)) for k in ("peak", "start", "end")}
                if times["start"] is not None and times["end"] is not None and times["end"] <= times["start"]:
                    self.fail((*aloc, "curve", "end"), "the end must come after the start")
            for j, mv in enumerate(plan.moves):
                mloc: Loc = (*loc, "moves", j)
                self.zones(site, mv.from_, (*mloc, "from"))
                self.target(site, mv.to, (*mloc, "to"))
                self.time(mv.at, (*mloc, "at"))
                if mv.between is not None:
                    self.window(mv.between[0], mv.between[1], (*mloc, "between"))

    def check_incidents(self) -> None:
        ids: set[str] = set()
        for i, inc in enumerate(self.spec.incidents):
            loc: Loc = ("incidents", i)
            if inc.id in ids:
                self.fail((*loc, "id"), f"duplicate incident id {inc.id!r}")
            ids.add(inc.id)
            self.window(inc.start, inc.end, loc)
            site = self.site(inc.site, (*loc, "site"))
            if site is None:
                continue
            if isinstance(inc, CrowdCrush):
                ex = next((e for e in site.exits if e.id == inc.exit), None)
                front = None if ex is None else (ex.from_zone if inc.direction == "inbound" else ex.to_zone)
                if ex is None:
                    self.fail((*loc, "exit"), f"site {site.id!r} has no exit {inc.exit!r}")
                elif front is None:
                    side = "from_zone" if inc.direction == "inbound" else "to_zone"
                    self.fail(
                        (*loc, "exit"),
                        f"exit {inc.exit!r} has no zone in front of it ({inc.direction}: `{side}`)",
                    )
                if inc.direction == "outbound" and inc.surge:
                    self.fail((*loc, "surge"), "a surge arrives inbound; an outbound crush has none")
            else:
                self.zone(site, inc.zone, (*loc, "zone"))

    def check_faults(self) -> None:
        devices = self.venue.devices
        for i, f in enumerate(self.spec.faults):
            loc: Loc = ("faults", i)
            self.window(f.start, f.end, loc)
            if f.device is not None and f.device not in devices:
                self.fail((*loc, "device"), f"unknown device {f.device!r}")
            if f.select is not None:
                sel = f.select
                site = self.site(sel.site, (*loc, "select", "site"))
                if site is not None and sel.zone is not None:
                    self.zone(site, sel.zone, (*loc, "select", "zone"))
                matching = [
                    p
                    for p in devices.values()
                    if (sel.kind is None or p.device.kind is sel.kind)
                    and (sel.site is None or p.site_id == sel.site)
                    and (sel.zone is None or p.device.zone == sel.zone)
                ]
                if len(matching) < sel.count:
                    self.fail(
                        (*loc, "select"), f"selects {len(matching)} devices, fewer than count={sel.count}"
                    )
