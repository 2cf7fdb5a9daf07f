"""The simulation loop: crowd model, incident effects, sensors, faults, payloads, ground truth.

`Simulation.step()` advances one tick and returns the readings due, as arrays per device kind (for
in-process consumers such as detector evaluation); `Simulation.run(publisher)` encodes and
publishes them on a real-time or accelerated clock. Everything random comes from the seed, and every
process computes every device's values (cheap, vectorised) but encodes and publishes only its own
partition, so the bytes of a device's payloads do not depend on the number of processes.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from beffroi.devices import DeviceKind
from simulators.crowd import CrowdModel, build_network
from simulators.encode import Encoder, second_stamp
from simulators.faults import FaultTable, PlacedFault, place_faults, typical_span
from simulators.incidents import IncidentEffects, PlacedIncident, place_incidents
from simulators.scenario import EventType, Scenario
from simulators.sensors import Bank, Context, TelcoCells, build_banks
from simulators.truth import TruthWriter, iso, write_json, write_labels
from simulators.world import World, build_world

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ALIGN_S = 5.0
"""Devices report on a 5 s grid of phases (their timestamps keep a per-device millisecond offset)."""


class Sink(Protocol):
    """Where payloads go: `simulators.publish.Publisher` fits."""

    def publish(self, device_id: str, payload: bytes) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass
class KindBatch:
    """The readings of one device kind at one tick (after faults)."""

    b: int  # bank index
    bank: Bank
    idx: I64  # device index in the bank
    values: F64  # (len(idx), fields)
    skew: dict[int, float]  # device index -> clock offset in seconds
    duplicate: set[int]


@dataclass
class RunStats:
    ticks: int = 0
    readings: int = 0
    published: int = 0
    sim_s: float = 0.0
    wall_s: float = 0.0
    behind_s: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else 0.0


def partition_of(device_id: str, processes: int) -> int:
    """The process (0..processes-1) that publishes a device."""
    return zlib.crc32(device_id.encode()) % processes


def _excitement_table(scenario: Scenario, margin: float) -> tuple[F64, F64, F64]:
    """Crowd excitement and fireworks on a 1 s grid of the core timeline, from `-margin`."""
    ev = scenario.spec.timeline
    times = {e.key: scenario.events[e.key] for e in ev}
    grid = np.arange(-margin, scenario.spec.duration + margin + 1.0, 1.0)
    exc = np.full(len(grid), 0.1)
    kinds = {e.key: e.event for e in ev}

    def first(kind: EventType) -> float | None:
        found = [times[k] for k, v in kinds.items() if v is kind]
        return min(found) if found else None

    ko, ht, sh, fw = (
        first(k)
        for k in (EventType.KICK_OFF, EventType.HALF_TIME, EventType.SECOND_HALF, EventType.FINAL_WHISTLE)
    )
    if ko is not None:
        ramp = (grid >= ko - 3600) & (grid < ko)
        exc[ramp] = 0.1 + 0.4 * (grid[ramp] - (ko - 3600)) / 3600
        end_first = ht if ht is not None else (fw if fw is not None else math.inf)
        exc[(grid >= ko) & (grid < end_first)] = 0.8
        if ht is not None:
            exc[(grid >= ht) & (grid < (sh if sh is not None else math.inf))] = 0.35
        if sh is not None:
            exc[(grid >= sh) & (grid < (fw if fw is not None else math.inf))] = 0.85
    if fw is not None:
        after = grid >= fw
        exc[after] = 0.15 + 0.45 * np.exp(-(grid[after] - fw) / 600.0)
    for start_kind, end_kind, level in (
        (EventType.CEREMONY_START, EventType.CEREMONY_END, 0.7),
        (EventType.SHOW_START, EventType.SHOW_END, 0.75),
    ):
        a, b = first(start_kind), first(end_kind)
        if a is not None:
            exc[(grid >= a) & (grid < (b if b is not None else math.inf))] = np.maximum(
                exc[(grid >= a) & (grid < (b if b is not None else math.inf))], level
            )
    fireworks = np.zeros(len(grid))
    for k, kind in kinds.items():
        t = times[k]
        if kind is EventType.GOAL:
            after = grid >= t
            exc[after] += 0.7 * np.exp(-(grid[after] - t) / 45.0)
        elif kind is EventType.FIREWORKS:
            fireworks[(grid >= t) & (grid < t + 600)] = 1.0
    return grid, exc, fireworks


class Simulation:
    """One scenario at one scale and seed, as one of `processes` partitions."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        scale: float | None = None,
        seed: int | None = None,
        start: datetime | None = None,
        partition: int = 0,
        processes: int = 1,
        out_dir: Path | None = None,
        world: World | None = None,
    ) -> None:
        self.scenario = scenario
        spec = scenario.spec
        self.world = world if world is not None else build_world(scenario, scale=scale, seed=seed)
        self.seed = self.world.seed
        self.dt = spec.tick_s
        self.start = (start if start is not None else spec.start).astimezone(UTC)
        self.local_start = spec.start
        self.partition, self.processes = partition, processes
        self.net = build_network(self.world)
        self.model = CrowdModel(
            self.net,
            dt=self.dt,
            jam_density=spec.crowd_model.jam_density,
            free_speed=spec.crowd_model.free_speed,
            queue_speed=spec.crowd_model.queue_speed,
        )
        self.incidents: list[PlacedIncident] = place_incidents(self.world, self.net)
        self.effects = IncidentEffects(self.incidents, self.net.n_zones, self.seed)
        self.faults: list[PlacedFault] = place_faults(self.world)
        self.banks = build_banks(self.world, self.net)
        namespace = self.world.venue.namespace
        sites = [inst.site.id for inst in self.world.instances]
        self.encoders: list[Encoder] = []
        self.tables: list[FaultTable] = []
        self.mine: list[npt.NDArray[np.bool_]] = []
        self.slots: list[list[tuple[int, list[I64]]]] = []
        for bank in self.banks:
            self.encoders.append(Encoder(bank.devices, [sites[s] for s in bank.site.tolist()], namespace))
            self.tables.append(
                FaultTable(
                    self.faults, bank.ids, len(bank.spec.fields), typical_span(bank.spec.fields), self.seed
                )
            )
            self.mine.append(
                np.array([partition_of(i, processes) == partition for i in bank.ids], dtype=bool)
            )
            self.slots.append(self._schedule(bank))
        margin = spec.scaling.time_jitter + 60.0
        self._grid0 = -margin
        _, self._exc, self._fireworks = _excitement_table(scenario, margin)
        self._site_offset = np.array([inst.time_offset_s for inst in self.world.instances])
        self._wind = np.full(self.net.n_sites, spec.weather.wind)
        self._wind_rng = np.random.default_rng([self.seed, 0x3141])
        self.tick = 0
        self._align = max(1, round(ALIGN_S / self.dt))
        self._telco = [b for b in self.banks if isinstance(b, TelcoCells)]
        self._stamp, self._stamp_t = b"", math.nan
        self.out_dir = out_dir
        self.truth: TruthWriter | None = None
        if out_dir is not None and partition == 0:
            self.truth = TruthWriter(
                out_dir,
                self.world,
                self.net,
                start=self.start,
                interval_s=spec.ground_truth.interval_s,
                dt=self.dt,
            )
            self._write_labels()
            self.truth.sample(self.model, force=True)

    # -- set-up ----------------------------------------------------------------------------
    def _schedule(self, bank: Bank) -> list[tuple[int, list[I64]]]:
        """Devices due at each tick, grouped by reporting period (in ticks). Phases are spread over the
        period on a grid of `ALIGN_S`, so that each kind is read on few ticks, in bigger batches."""
        periods = np.array(
            [max(1, round(d.report_interval_s / self.dt)) for d in bank.devices], dtype=np.int64
        )
        align = max(1, round(ALIGN_S / self.dt))
        grid = np.maximum(periods // align, 1)
        crc = np.array([zlib.crc32(i.encode()) for i in bank.ids], dtype=np.int64)
        phases = (crc % grid) * (periods // grid)
        out: list[tuple[int, list[I64]]] = []
        for p in np.unique(periods).tolist():
            sel = np.flatnonzero(periods == p)
            out.append((p, [sel[phases[sel] == k] for k in range(p)]))
        return out

    def _write_labels(self) -> None:
        assert self.out_dir is not None
        header = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "scale": self.world.scale,
            "start": iso(self.start, 0.0),
            "duration_s": self.scenario.spec.duration,
            "sites": len(self.world.instances),
            "devices": self.world.device_count,
        }
        write_labels(
            self.out_dir,
            header=header,
            incidents=self.incidents,
            faults=self.faults,
            start_of=lambda t: iso(self.start, t),
        )
        (self.out_dir / "venue.yaml").write_text(self.world.venue.to_yaml(), encoding="utf-8")

    # -- one tick --------------------------------------------------------------------------
    def context(self) -> Context:
        t = self.model.t
        at = np.clip(np.round(t - self._site_offset - self._grid0).astype(np.int64), 0, len(self._exc) - 1)
        local = self.local_start + timedelta(seconds=t)
        return Context(
            t=t,
            hour=local.hour + local.minute / 60.0,
            model=self.model,
            excitement=self._exc[at],
            fireworks=self._fireworks[at],
            wind=self._wind,
            effects=self.effects.at(t),
        )

    def advance(self) -> None:
        """Move the crowd one tick, without reading sensors (fast-forward)."""
        self.model.step()
        self.tick += 1
        if self.truth is not None:
            self.truth.sample(self.model)

    def step(self) -> list[KindBatch]:
        """Advance one tick; the readings due at its end, per kind, for every partition."""
        self.advance()
        return self.step_readings()

    def step_readings(self) -> list[KindBatch]:
        """The readings due at the current tick (after `advance`)."""
        k = self.tick
        if k % self._align == 0:
            for cell in self._telco:
                cell.accumulate(self.model)
        dues: list[tuple[int, I64]] = []
        for b in range(len(self.banks)):
            groups = [slots[k % p] for p, slots in self.slots[b]]
            due = groups[0] if len(groups) == 1 else np.concatenate(groups)
            if len(due):
                dues.append((b, due))
        if not dues:
            return []
        ar = self._wind_rng.standard_normal(len(self._wind))
        self._wind = np.clip(0.9 * self._wind + 0.1 * self.scenario.spec.weather.wind + 0.07 * ar, 0.0, 1.0)
        ctx = self.context()
        out: list[KindBatch] = []
        for b, due in dues:
            bank = self.banks[b]
            values = bank.values(due, ctx)
            table = self.tables[b]
            skew: dict[int, float] = {}
            dup: set[int] = set()
            if table.faults:
                keep, skew, dup = table.apply(due, values, ctx.t)
                bank.bound(values)
                if keep is not None:
                    due, values = due[keep], values[keep]
            out.append(KindBatch(b, bank, due, values, skew, dup))
        return out

    def resync(self) -> None:
        ctx = self.context()
        for bank in self.banks:
            bank.resync(ctx)

    # -- publishing ------------------------------------------------------------------------
    def stamp(self) -> bytes:
        """`YYYY-MM-DDTHH:MM:SS` of the current simulated second (UTC)."""
        t = self.model.t
        if self._stamp_t != t:
            self._stamp, self._stamp_t = second_stamp(self.start, t), t
        return self._stamp

    def publish_batch(self, batch: KindBatch, publish: Callable[[str, bytes], None]) -> int:
        """Encode and publish this partition's part of a batch; returns the payloads sent."""
        enc, mine = self.encoders[batch.b], self.mine[batch.b]
        t = self.model.t
        stamp = self.stamp()
        sel = mine[batch.idx] if self.processes > 1 else None
        idx = batch.idx if sel is None else batch.idx[sel]
        vals = batch.values if sel is None else batch.values[sel]
        special = batch.skew or batch.duplicate
        if not special:
            return enc.emit(idx.tolist(), vals.T.tolist(), stamp, publish)
        sent = 0
        for i, row in zip(idx.tolist(), vals.tolist(), strict=True):
            skew = batch.skew.get(i)
            payload = enc.one(i, row, stamp if skew is None else second_stamp(self.start, t + skew))
            publish(enc.ids[i], payload)
            sent += 1
            if i in batch.duplicate:
                publish(enc.ids[i], payload)
                sent += 1
        return sent

    def run(
        self,
        sink: Sink | None,
        *,
        duration_s: float | None = None,
        speed: float = 0.0,
        from_s: float = 0.0,
        stop: Callable[[], bool] | None = None,
        on_tick: Callable[[Simulation], None] | None = None,
    ) -> RunStats:
        """Run from `from_s` (fast-forwarding the crowd) for `duration_s` simulated seconds.

        `speed` is simulated seconds per wall second (1 = real time); 0 runs as fast as possible.
        With `sink` None nothing is encoded (dry run of the model and sensors).
        """
        spec = self.scenario.spec
        end = spec.duration if duration_s is None else min(spec.duration, from_s + duration_s)
        while self.model.t + self.dt / 2 < from_s:
            self.advance()
        if from_s > 0:
            self.resync()
        stats = RunStats()
        publish = sink.publish if sink is not None else None
        wall0 = time.monotonic()
        t0 = self.model.t
        by_kind: dict[str, int] = {}
        while self.model.t + self.dt / 2 < end:
            if stop is not None and stop():
                break
            batches = self.step()
            stats.ticks += 1
            for batch in batches:
                n = len(batch.idx)
                stats.readings += n
                by_kind[batch.bank.kind.value] = by_kind.get(batch.bank.kind.value, 0) + n
                if publish is not None:
                    stats.published += self.publish_batch(batch, publish)
            if on_tick is not None:
                on_tick(self)
            if speed > 0:
                target = wall0 + (self.model.t - t0) / speed
                lag = target - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
                else:
                    stats.behind_s = max(stats.behind_s, -lag)
        if sink is not None:
            sink.flush()
        stats.sim_s = self.model.t - t0
        stats.wall_s = time.monotonic() - wall0
        stats.by_kind = by_kind
        self.close(stats)
        return stats

    def close(self, stats: RunStats | None = None) -> None:
        if self.truth is not None:
            self.truth.close()
            assert self.out_dir is not None
            doc = {
                "scenario": self.scenario.name,
                "seed": self.seed,
                "scale": self.world.scale,
                "start": iso(self.start, 0.0),
                "end": iso(self.start, self.model.t),
                "sites": len(self.world.instances),
                "zones": self.net.n_zones,
                "devices": self.world.device_count,
                "incidents": len(self.incidents),
                "faults": len(self.faults),
                "truth_rows": self.truth.rows,
            }
            if stats is not None:
                doc.update(
                    ticks=stats.ticks,
                    readings=stats.readings,
                    published_by_partition_0=stats.published,
                    readings_by_kind=stats.by_kind,
                    wall_s=round(stats.wall_s, 3),
                )
            write_json(self.out_dir / "manifest.json", doc)
            self.truth = None


def device_kinds(sim: Simulation) -> dict[str, DeviceKind]:
    return {i: bank.kind for bank in sim.banks for i in bank.ids}
