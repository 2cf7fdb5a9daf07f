"""Ground truth, streamed to disk as the simulation runs (nothing accumulates in memory).

Files under the output directory:
- `zones.csv`: `timestamp,t_s,site,zone,occupancy,density,los` every `interval_s`;
- `exits.csv`: `timestamp,t_s,site,exit,inbound,outbound,specific_flow` (persons in the interval, and
  persons per metre of width per minute), inbound being from `from_zone` to `to_zone`;
- `labels.json`: the incident windows (type, site, zone, exit, devices affected, start, end);
- `faults.json`: the sensor-fault windows, which are not incidents;
- `venue.yaml`: the venue as simulated (clones included), for the bridge and the cameras;
- `manifest.json`: scenario, seed, scale, start, duration and counts, written at the end.
`SiteConditions` reads zones.csv/exits.csv back as the camera simulator's `CrowdConditions`.
"""

from __future__ import annotations

import bisect
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from beffroi.venue import ZoneKind
from simulators.crowd import CrowdModel, Network
from simulators.world import World

F64 = npt.NDArray[np.float64]

WALKWAY_LOS = np.array([0.31, 0.43, 0.72, 1.08, 2.17])
"""Fruin's walkway levels of service by density (persons/m2): A below 0.31 ... F above 2.17."""
QUEUING_LOS = np.array([0.83, 1.08, 1.54, 3.57, 5.26])
"""Fruin's queuing (standing) levels of service: A below 0.83 ... F above 5.26 persons/m2."""
STANDING = {
    ZoneKind.STAND,
    ZoneKind.VIEWING,
    ZoneKind.STAGE_FRONT,
    ZoneKind.QUAY,
    ZoneKind.PLAZA,
    ZoneKind.PLATFORM,
}


def level_of_service(density: F64, standing: npt.NDArray[np.bool_]) -> list[str]:
    """Fruin level of service per zone: queuing scale for standing zones, walkway scale elsewhere."""
    grade = np.where(
        standing,
        np.searchsorted(QUEUING_LOS, density, side="right"),
        np.searchsorted(WALKWAY_LOS, density, side="right"),
    )
    return ["ABCDEF"[i] for i in grade.tolist()]


def iso(start: datetime, t: float) -> str:
    return (start + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class TruthWriter:
    """Writes the per-interval rows; call `sample` after each tick."""

    def __init__(
        self, out_dir: Path, world: World, net: Network, *, start: datetime, interval_s: float, dt: float
    ) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.start = start
        self.every = max(1, round(interval_s / dt))
        self.net = net
        self._zones_f: TextIO = (out_dir / "zones.csv").open("w", encoding="utf-8", newline="")
        self._exits_f: TextIO = (out_dir / "exits.csv").open("w", encoding="utf-8", newline="")
        self._zones_f.write("timestamp,t_s,site,zone,occupancy,density,los\n")
        self._exits_f.write("timestamp,t_s,site,exit,inbound,outbound,specific_flow\n")
        self._zone_keys = [f"{inst.site.id},{z.id}" for inst in world.instances for z in inst.site.zones]
        self._standing = np.array([z.kind in STANDING for inst in world.instances for z in inst.site.zones])
        sites = [inst.site.id for inst in world.instances]
        self._exit_keys = [
            f"{sites[s]},{e}" for s, e in zip(net.exit_site.tolist(), net.exit_ids, strict=True)
        ]
        self._last_cum = np.zeros((net.n_exits, 2))
        # one format string per file, the keys baked in; \x00 stands for the timestamp prefix
        self._zones_tmpl = "".join(f"\x00{k.replace('%', '%%')},%.1f,%.4f,%s\n" for k in self._zone_keys)
        self._exits_tmpl = "".join(f"\x00{k.replace('%', '%%')},%.1f,%.1f,%.1f\n" for k in self._exit_keys)
        self._ticks = 0
        self.rows = 0

    def sample(self, model: CrowdModel, *, force: bool = False) -> None:
        self._ticks += 1
        if not force and self._ticks % self.every:
            return
        t = model.t
        prefix = f"{iso(self.start, t)},{t:g},"
        los = level_of_service(model.density, self._standing)
        args = [
            v for row in zip(model.occupancy.tolist(), model.density.tolist(), los, strict=True) for v in row
        ]
        self._zones_f.write(self._zones_tmpl.replace("\x00", prefix) % tuple(args))
        cum = model.cum_exit_flow
        flow = cum - self._last_cum
        self._last_cum = cum.copy()
        minutes = max(self.every * model.dt, 1e-9) / 60.0
        specific = flow.sum(axis=1) / (self.net.exit_width * minutes)
        rows = np.column_stack([flow, specific]).ravel().tolist()
        self._exits_f.write(self._exits_tmpl.replace("\x00", prefix) % tuple(rows))
        self.rows += len(self._zone_keys)

    def flush(self) -> None:
        self._zones_f.flush()
        self._exits_f.flush()

    def close(self) -> None:
        self._zones_f.close()
        self._exits_f.close()


def write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_labels(
    out_dir: Path,
    *,
    header: dict[str, Any],
    incidents: list[Any],
    faults: list[Any],
    start_of: Callable[[float], str],
) -> None:
    write_json(out_dir / "labels.json", {**header, "incidents": [p.label(start_of) for p in incidents]})
    write_json(out_dir / "faults.json", {**header, "faults": [f.label(start_of) for f in faults]})


@dataclass
class _Series:
    t: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)

    def at(self, t_s: float) -> float:
        if not self.t:
            return 0.0
        i = bisect.bisect_right(self.t, t_s) - 1
        return self.v[max(i, 0)]


class SiteConditions:
    """One site's ground truth read back: density per zone and net flow per exit, stepwise in time.

    Implements the camera simulator's `CrowdConditions` (density in persons/m2, gate flow in persons/s
    from `from_zone` to `to_zone`).
    """

    def __init__(self, out_dir: Path | str, site_id: str) -> None:
        out = Path(out_dir)
        self.site_id = site_id
        self._density: dict[str, _Series] = {}
        self._flow: dict[str, _Series] = {}
        with (out / "zones.csv").open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row["site"] == site_id:
                    s = self._density.setdefault(row["zone"], _Series())
                    s.t.append(float(row["t_s"]))
                    s.v.append(float(row["density"]))
        with (out / "exits.csv").open(encoding="utf-8", newline="") as f:
            last: dict[str, float] = {}
            for row in csv.DictReader(f):
                if row["site"] == site_id:
                    t = float(row["t_s"])
                    span = t - last.get(row["exit"], 0.0)
                    last[row["exit"]] = t
                    s = self._flow.setdefault(row["exit"], _Series())
                    s.t.append(t - span)
                    s.v.append((float(row["inbound"]) - float(row["outbound"])) / max(span, 1e-9))
        if not self._density:
            raise KeyError(f"no ground truth for site {site_id!r} in {out}")

    def zones(self) -> list[str]:
        return sorted(self._density)

    def density(self, zone_id: str, t_s: float) -> float:
        s = self._density.get(zone_id)
        return s.at(t_s) if s is not None else 0.0

    def gate_flow(self, gate_id: str, t_s: float) -> float:
        s = self._flow.get(gate_id)
        return s.at(t_s) if s is not None else 0.0
