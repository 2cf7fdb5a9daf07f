"""What-if runs for planners: a scenario with changes applied, through the crowd model only.

A change is `PATH=VALUE`, `PATH*=FACTOR`, `PATH+=AMOUNT` or `PATH-=AMOUNT`. PATH walks the scenario
document with dots; a list element is picked by its index, by its `id`, `site` or `event` (the
timeline's key), or `*` for all of them. `venue.` walks into the venue file the scenario names.

    timeline.kick_off.at=21:30                     move kick-off (events defined from it move too)
    timeline.kick_off.at+=30m                      the same, relative (time expressions take durations)
    crowd.*.arrivals.*.count*=1.2                  20% more arrivals at every site
    venue.sites.sdf.exits.gate-d=closed            close a gate (also: `....width_m=0`): nobody routes
                                                   through it, in or out
    venue.sites.sdf.exits.gate-d.width_m*=1.5      widen an exit by half
    incidents.crush-gate-d=removed                 drop a list element or a key

`apply_changes` returns the changed, fully re-validated `Scenario`; every problem raises a
`ChangeError` naming the change, the path and, where one exists, the file and line it points at.
`run_crowd` steps the crowd model alone (no sensors) and samples each zone's occupancy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from beffroi.venue import Venue
from beffroi.yamlconf import ConfigError, line_of, load_yaml, validate_doc
from simulators.crowd import make_model
from simulators.scenario import Scenario
from simulators.scenario_file import scenario_from_doc, venue_path
from simulators.timeexpr import parse_duration, resolve_time
from simulators.world import build_world

F64 = npt.NDArray[np.float64]

Op = Literal["=", "*=", "+=", "-="]
_LIST_KEYS = ("id", "site")
_TIME_KEYS = frozenset(
    {"at", "start", "end", "peak", "gates_open", "gates_close", "emergency_exits_open", "between"}
)


class ChangeError(ValueError):
    """A change that does not apply to the scenario: names the change, and the file:line when known."""

    def __init__(self, change: str, message: str, where: str | None = None) -> None:
        self.change = change
        text = f"--set {change}: {message}"
        super().__init__(f"{text} ({where})" if where else text)


@dataclass(frozen=True)
class Change:
    text: str
    path: tuple[str, ...]
    op: Op
    value: str


def parse_change(text: str) -> Change:
    """`PATH=VALUE`, `PATH*=X`, `PATH+=X` or `PATH-=X`."""
    eq = text.find("=")
    if eq <= 0:
        raise ChangeError(text, "expected PATH=VALUE (or PATH*=FACTOR, PATH+=AMOUNT, PATH-=AMOUNT)")
    op: Op = "="
    head = text[:eq]
    if head[-1] in "*+-" and not head.endswith(".*"):
        op = {"*": "*=", "+": "+=", "-": "-="}[head[-1]]  # type: ignore[assignment]
        head = head[:-1]
    path = tuple(head.strip().split("."))
    if not all(path):
        raise ChangeError(text, f"empty part in path {head!r}")
    value = text[eq + 1 :].strip()
    if not value:
        raise ChangeError(text, "no value after '='")
    return Change(text, path, op, value)


def _element_key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for k in _LIST_KEYS:
        if isinstance(item.get(k), str):
            return str(item[k])
    ev = item.get("event")
    return str(ev) if isinstance(ev, str) else None


class _Editor:
    def __init__(self, scenario: Scenario) -> None:
        self.base = scenario
        self.path = scenario.path
        self.doc = copy.deepcopy(load_yaml(scenario.path))
        raw = self.doc.get("venue") if isinstance(self.doc, dict) else None
        self.venue_file: Path | None = venue_path(scenario.path, raw) if isinstance(raw, str) else None
        self.venue_doc: Any = None
        self.venue_changed = False

    def where(self, root: Any, file: Path, loc: tuple[str | int, ...]) -> str:
        line = line_of(root, loc)
        return f"{file}:{line}" if line is not None else str(file)

    def apply(self, ch: Change) -> None:
        path = list(ch.path)
        root, file = self.doc, self.path
        prefix: tuple[str | int, ...] = ()
        closing = self._closing(ch, path[1:])
        if closing is not None:
            self._close(ch, *closing)
            return
        if path[0] == "venue" and self.venue_file is not None:
            if self.venue_doc is None:
                self.venue_doc = copy.deepcopy(load_yaml(self.venue_file))
            root, file, path = self.venue_doc, self.venue_file, path[1:]
            self.venue_changed = True
        if not path:
            raise ChangeError(ch.text, "the path names the whole venue; name a field in it")
        targets = self._resolve(ch, root, file, path[:-1], prefix)
        leaf = path[-1]
        if "*" in path[:-1] and ch.op != "=":
            # scale or shift only the elements that have the field (a plan without `initial` ...)
            targets = [(n, at) for n, at in targets if not isinstance(n, dict) or leaf in n] or targets
        for node, loc in targets:
            self._set(ch, root, file, node, loc, leaf)

    def _closing(self, ch: Change, path: list[str]) -> tuple[str, str] | None:
        venue = ch.path[0] == "venue"
        if not venue or len(path) < 4 or path[0] != "sites" or path[2] != "exits":
            return None
        if len(path) == 4 and ch.op == "=" and ch.value == "closed":
            return path[1], path[3]
        if len(path) == 5 and path[4] == "width_m" and ch.op in ("=", "*="):
            try:
                if float(ch.value) == 0:
                    return path[1], path[3]
            except ValueError:
                return None
        return None

    def _close(self, ch: Change, site_id: str, exit_id: str) -> None:
        site = next((s for s in self.base.venue.sites if s.id == site_id), None)
        if site is None:
            known = ", ".join(s.id for s in self.base.venue.sites)
            raise ChangeError(ch.text, f"no site {site_id!r} (venue has: {known})")
        if exit_id not in {e.id for e in site.exits}:
            known = ", ".join(e.id for e in site.exits)
            raise ChangeError(ch.text, f"site {site_id!r} has no exit {exit_id!r} (it has: {known})")
        if "crowd" not in self.doc:
            self.doc["crowd"] = []
        plans = self.doc["crowd"]
        plan = next((p for p in plans if isinstance(p, dict) and p.get("site") == site_id), None)
        if plan is None:
            plan = {"site": site_id}
            plans.append(plan)
        closed = plan.setdefault("closed_exits", [])
        if exit_id not in closed:
            closed.append(exit_id)

    def _resolve(
        self, ch: Change, root: Any, file: Path, path: list[str], loc: tuple[str | int, ...]
    ) -> list[tuple[Any, tuple[str | int, ...]]]:
        nodes: list[tuple[Any, tuple[str | int, ...]]] = [(root, loc)]
        for depth, seg in enumerate(path):
            nxt: list[tuple[Any, tuple[str | int, ...]]] = []
            for node, at in nodes:
                shown = ".".join(path[: depth + 1])
                if isinstance(node, dict):
                    if seg not in node and "*" in path[:depth]:
                        continue  # a wildcard's element without this key: not a target
                    if seg not in node:
                        keys = ", ".join(str(k) for k in node) or "none"
                        raise ChangeError(
                            ch.text,
                            f"{shown}: no key {seg!r} here (keys: {keys})",
                            self.where(root, file, at),
                        )
                    nxt.append((node[seg], (*at, seg)))
                elif isinstance(node, list):
                    nxt.extend(self._pick(ch, root, file, node, at, seg, shown))
                else:
                    raise ChangeError(
                        ch.text, f"{shown}: {'.'.join(path[:depth]) or 'the root'} is a value, not a section"
                    )
            nodes = nxt
        if not nodes:
            raise ChangeError(ch.text, f"{'.'.join(path)}: matches nothing in the scenario")
        return nodes

    def _pick(
        self,
        ch: Change,
        root: Any,
        file: Path,
        node: list[Any],
        at: tuple[str | int, ...],
        seg: str,
        shown: str,
    ) -> list[tuple[Any, tuple[str | int, ...]]]:
        if seg == "*":
            return [(item, (*at, i)) for i, item in enumerate(node)]
        if seg.isdigit():
            i = int(seg)
            if i >= len(node):
                raise ChangeError(
                    ch.text, f"{shown}: index {i} but the list has {len(node)}", self.where(root, file, at)
                )
            return [(node[i], (*at, i))]
        found = [(item, (*at, i)) for i, item in enumerate(node) if _element_key(item) == seg]
        if not found:
            keys = ", ".join(k for k in (_element_key(x) for x in node) if k) or "none"
            raise ChangeError(
                ch.text,
                f"{shown}: no element {seg!r} (have: {keys}; or an index, or *)",
                self.where(root, file, at),
            )
        return found

    def _set(
        self, ch: Change, root: Any, file: Path, node: Any, at: tuple[str | int, ...], leaf: str
    ) -> None:
        shown = ".".join(str(p) for p in (*at, leaf))
        if isinstance(node, list):
            picked = self._pick(ch, root, file, node, at, leaf, shown)
            if ch.op == "=" and ch.value == "removed":
                drop = {id(x) for x, _ in picked}
                node[:] = [x for x in node if id(x) not in drop]
                return
            raise ChangeError(ch.text, f"{shown} is a whole section: change one of its fields, or `=removed`")
        if not isinstance(node, dict):
            raise ChangeError(
                ch.text, f"{shown}: its parent is a value, not a section", self.where(root, file, at)
            )
        if ch.op == "=" and ch.value == "removed":
            if leaf not in node:
                raise ChangeError(ch.text, f"{shown}: nothing to remove", self.where(root, file, at))
            del node[leaf]
            return
        old = node.get(leaf)
        if isinstance(old, dict | list) and ch.op != "=":
            raise ChangeError(
                ch.text, f"{shown} is a section, not a value", self.where(root, file, (*at, leaf))
            )
        node[leaf] = self._value(ch, old, leaf, shown, self.where(root, file, (*at, leaf)))

    def _value(self, ch: Change, old: Any, leaf: str, shown: str, where: str) -> Any:
        text = ch.value
        if ch.op == "=":
            if isinstance(old, bool):
                if text.lower() not in ("true", "false"):
                    raise ChangeError(ch.text, f"{shown}: expected true or false, got {text!r}", where)
                return text.lower() == "true"
            if isinstance(old, int | float):
                return _number(
                    ch, text, shown, where, integer=isinstance(old, int) and text.lstrip("-").isdigit()
                )
            if isinstance(old, str) or leaf in _TIME_KEYS:
                return text
            return _guess(text)
        if old is None:
            raise ChangeError(
                ch.text, f"{shown} is not set in the scenario: nothing to scale or shift", where
            )
        if isinstance(old, str) and ch.op in ("+=", "-="):
            try:
                shift = parse_duration(text)
            except ValueError as exc:
                raise ChangeError(ch.text, f"{shown}: {exc}", where) from None
            try:
                t = resolve_time(old, start=self.base.spec.start, events=self.base.events)
            except (KeyError, ValueError, IndexError):
                raise ChangeError(
                    ch.text, f"{shown}: {old!r} is not a time this scenario knows", where
                ) from None
            t += shift if ch.op == "+=" else -shift
            return f"+{t:g}s" if t >= 0 else f"-{-t:g}s"
        if isinstance(old, bool) or not isinstance(old, int | float):
            raise ChangeError(
                ch.text, f"{shown}: {ch.op} needs a number here, the scenario has {old!r}", where
            )
        x = _number(ch, text, shown, where, integer=False)
        new = old * x if ch.op == "*=" else old + x if ch.op == "+=" else old - x
        return round(new) if isinstance(old, int) else new


def _number(ch: Change, text: str, shown: str, where: str, *, integer: bool) -> float | int:
    try:
        x = float(text)
    except ValueError:
        raise ChangeError(ch.text, f"{shown}: expected a number, got {text!r}", where) from None
    if not math.isfinite(x):
        raise ChangeError(ch.text, f"{shown}: expected a finite number, got {text!r}", where)
    return int(x) if integer else x


def _guess(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def apply_changes(scenario: Scenario, changes: list[str]) -> Scenario:
    """The scenario with `changes` applied, re-validated like a file (every reference re-checked)."""
    ed = _Editor(scenario)
    parsed = [parse_change(c) for c in changes]
    for ch in parsed:
        ed.apply(ch)
    applied = " --set ".join(changes)
    venue: Venue | None = None
    if ed.venue_changed and ed.venue_file is not None:
        try:
            venue = validate_doc(Venue, ed.venue_doc, ed.venue_file)
        except ConfigError as exc:
            raise ChangeError(applied, f"the changed venue is not valid:\n{_first(exc)}") from None
    elif ed.venue_file is not None:
        venue = scenario.venue
    try:
        return scenario_from_doc(scenario.path, ed.doc, venue)
    except ConfigError as exc:
        raise ChangeError(applied, f"the changed scenario is not valid:\n{_first(exc)}") from None


def _first(exc: ConfigError, n: int = 4) -> str:
    lines = str(exc).splitlines()
    more = f"\n... and {len(lines) - n} more" if len(lines) > n else ""
    return "\n".join(lines[:n]) + more


@dataclass(frozen=True)
class CrowdRun:
    """Occupancy of every zone of the core sites, sampled every `sample_s` from the scenario start."""

    scenario: Scenario
    t: F64  # seconds after the start, (T,)
    site_ids: list[str]
    zone_site: list[str]
    zone_ids: list[str]
    zone_kinds: list[str]
    zone_area: F64  # (Z,)
    occupancy: F64  # (T, Z)

    @property
    def density(self) -> F64:
        return np.asarray(self.occupancy / self.zone_area, dtype=np.float64)


def run_crowd(scenario: Scenario, *, sample_s: float = 10.0) -> CrowdRun:
    """Step the crowd model of the scenario's core sites (no clones, no sensors) over its duration."""
    world = build_world(scenario, scale=0.0)
    model = make_model(world)
    dt = scenario.spec.tick_s
    every = max(1, round(sample_s / dt))
    n = math.ceil(scenario.spec.duration / dt)
    samples = [model.occupancy.copy()]
    times = [0.0]
    for k in range(1, n + 1):
        model.step()
        if k % every == 0 or k == n:
            samples.append(model.occupancy.copy())
            times.append(model.t)
    zones = [(inst.site, z) for inst in world.instances for z in inst.site.zones]
    return CrowdRun(
        scenario=scenario,
        t=np.asarray(times),
        site_ids=[inst.site.id for inst in world.instances],
        zone_site=[s.id for s, _ in zones],
        zone_ids=[z.id for _, z in zones],
        zone_kinds=[z.kind.value for _, z in zones],
        zone_area=np.asarray([z.area for _, z in zones], dtype=np.float64),
        occupancy=np.vstack(samples),
    )
