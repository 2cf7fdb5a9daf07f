"""Sensor faults: windows during which a device misbehaves. They are not incidents and are labelled
apart. Value faults (stuck, drift, noise burst) change the numbers; delivery faults (dropout,
clock skew, duplicate) change what is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from beffroi.devices import KIND_SPECS, DeviceKind, Field
from simulators.scenario import FaultType
from simulators.world import World

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DEFAULT_MAGNITUDE = {
    FaultType.DRIFT: 0.3,  # typical spans per hour
    FaultType.NOISE_BURST: 0.08,  # sigma, in typical spans
    FaultType.CLOCK_SKEW: 600.0,  # seconds
}


VALUE_FAULTS = frozenset({FaultType.STUCK, FaultType.DRIFT, FaultType.NOISE_BURST})


def observable(ftype: FaultType, kind: DeviceKind) -> bool:
    """Whether the fault changes what the device reports: a value fault on an on/off device (door
    contact, panic button) is rounded away or held at its usual state, so it is not placed at random."""
    if ftype not in VALUE_FAULTS:
        return True
    return not all(f.integer and f.low == 0 and f.high == 1 for f in KIND_SPECS[kind].fields)


@dataclass(frozen=True)
class PlacedFault:
    id: str
    type: FaultType
    device: str
    site_id: str
    zone: str | None
    start: float
    end: float
    magnitude: float
    source: str  # "scenario" or "random"

    def label(self, start_of: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "device": self.device,
            "site": self.site_id,
            "zone": self.zone,
            "start": start_of(self.start),
            "end": start_of(self.end),
            "start_s": self.start,
            "end_s": self.end,
            "magnitude": self.magnitude,
            "source": self.source,
        }


def place_faults(world: World) -> list[PlacedFault]:
    """The scenario's faults (on core devices) and random ones over every device, from the seed."""
    sc = world.scenario
    spec = sc.spec
    placed: list[PlacedFault] = []
    index = {d.id: (inst.site.id, d) for inst in world.instances for d in inst.site.devices}
    rng = np.random.default_rng([world.seed, 0xFA17])
    for k, f in enumerate(spec.faults):
        if f.device is not None:
            targets = [f.device]
        else:
            assert f.select is not None
            sel = f.select
            pool = sorted(
                d.device.id
                for d in sc.venue.devices.values()
                if (sel.kind is None or d.device.kind is sel.kind)
                and (sel.site is None or d.site_id == sel.site)
                and (sel.zone is None or d.device.zone == sel.zone)
            )
            targets = [pool[i] for i in sorted(rng.choice(len(pool), size=sel.count, replace=False))]
        mag = f.magnitude if f.magnitude is not None else DEFAULT_MAGNITUDE.get(f.type, 0.0)
        for j, dev in enumerate(targets):
            site_id, d = index[dev]
            placed.append(
                PlacedFault(
                    id=f"fault-{k + 1:03d}" + (f"-{j + 1}" if len(targets) > 1 else ""),
                    type=f.type,
                    device=dev,
                    site_id=site_id,
                    zone=d.zone,
                    start=sc.at(f.start),
                    end=sc.at(f.end),
                    magnitude=mag,
                    source="scenario",
                )
            )
    rf = spec.random_faults
    if rf is not None and rf.per_device_per_hour > 0:
        hours = spec.duration / 3600.0
        devices = [(inst.site.id, d) for inst in world.instances for d in inst.site.devices]
        n = rng.poisson(rf.per_device_per_hour * hours * len(devices))
        picks = rng.integers(0, len(devices), n)
        types = rng.integers(0, len(rf.types), n)
        lengths = rng.uniform(rf.min_duration, max(rf.max_duration, rf.min_duration), n)
        starts = rng.uniform(0.0, max(spec.duration - rf.min_duration, 1.0), n)
        signs = rng.choice([-1.0, 1.0], n)
        busy: dict[str, list[tuple[float, float]]] = {}
        for i in range(n):
            site_id, d = devices[int(picks[i])]
            t0, t1 = float(round(starts[i])), float(round(min(starts[i] + lengths[i], spec.duration)))
            if not observable(rf.types[int(types[i])], d.kind):
                continue  # skipped, not redrawn: the other random faults stay where they were
            if any(a < t1 and t0 < b for a, b in busy.get(d.id, [])):
                continue
            busy.setdefault(d.id, []).append((t0, t1))
            ftype = rf.types[int(types[i])]
            mag = DEFAULT_MAGNITUDE.get(ftype, 0.0) * (
                signs[i] if ftype is not FaultType.NOISE_BURST else 1.0
            )
            placed.append(
                PlacedFault(
                    id=f"random-{i + 1:05d}",
                    type=ftype,
                    device=d.id,
                    site_id=site_id,
                    zone=d.zone,
                    start=t0,
                    end=t1,
                    magnitude=float(mag),
                    source="random",
                )
            )
    placed.sort(key=lambda p: (p.start, p.id))
    return placed


class FaultTable:
    """The faults of one bank, checked against the due devices of each tick."""

    def __init__(
        self, faults: list[PlacedFault], ids: list[str], kind_fields: int, span: F64, seed: int
    ) -> None:
        pos = {d: i for i, d in enumerate(ids)}
        mine = [f for f in faults if f.device in pos]
        self.faults = mine
        self.dev = np.array([pos[f.device] for f in mine], dtype=np.int64)
        self.t0 = np.array([f.start for f in mine], dtype=np.float64)
        self.t1 = np.array([f.end for f in mine], dtype=np.float64)
        self.held = np.full((len(mine), kind_fields), np.nan)
        self.span = span
        self.n = len(ids)
        self.rng = np.random.default_rng([seed, 0xB0B])
        self._due_pos = np.full(len(ids), -1, dtype=np.int64)

    def apply(
        self, due: I64, values: F64, t: float
    ) -> tuple[npt.NDArray[np.bool_] | None, dict[int, float], set[int]]:
        """Alter `values` in place; return which due devices still publish (None: all), clock offsets
        and duplicated devices (by device index)."""
        skew: dict[int, float] = {}
        dup: set[int] = set()
        if not len(self.faults):
            return None, skew, dup
        active = np.flatnonzero((self.t0 <= t) & (t < self.t1))
        if not len(active):
            return None, skew, dup
        self._due_pos[due] = np.arange(len(due))
        drop: list[int] = []
        for k in active.tolist():
            f = self.faults[k]
            j = int(self._due_pos[self.dev[k]])
            if j < 0:
                continue
            if f.type is FaultType.STUCK:
                if np.isnan(self.held[k, 0]):
                    self.held[k] = values[j]
                values[j] = self.held[k]
            elif f.type is FaultType.DRIFT:
                values[j] += f.magnitude * self.span * (t - f.start) / 3600.0
            elif f.type is FaultType.NOISE_BURST:
                values[j] += self.rng.normal(0.0, abs(f.magnitude), len(self.span)) * self.span
            elif f.type is FaultType.DROPOUT:
                drop.append(j)
            elif f.type is FaultType.CLOCK_SKEW:
                skew[int(self.dev[k])] = f.magnitude
            elif f.type is FaultType.DUPLICATE:
                dup.add(int(self.dev[k]))
        self._due_pos[due] = -1
        if drop:
            keep = np.ones(len(due), dtype=bool)
            keep[drop] = False
            return keep, skew, dup
        return None, skew, dup


def typical_span(fields: tuple[Field, ...]) -> F64:
    """A field's typical span, the unit of drift and noise: a tenth of its physical range, at most 100."""
    return np.array([min(f.high - f.low, 1000.0) / 10.0 for f in fields], dtype=np.float64)
