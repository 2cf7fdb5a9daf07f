"""Run a scenario through the detector engine in-process and keep what scoring needs
(`analytics.scoring.evaluate.EvalRun`).

The simulator (`simulators.engine.Simulation`) produces each tick's readings with their ground
truth; they become `Reading`s as the bridge would make them (values rounded as the payloads
round them, a clock-skewed device stamps its own wrong time, a duplicate is delivered twice) and
go through `DetectEngine`, the same code as the detector worker. Event phases come from the
scenario timeline (each site clone keeps its own shifted timeline).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from analytics.detectors.engine import DetectEngine, EngineConfig, TickResult, TimelinePhases
from analytics.scoring.evaluate import PHASE_OF_EVENT, EvalRun, Label, NDArray
from beffroi.events import Reading, derived_id
from simulators.engine import Simulation
from simulators.scenario_file import load_scenario


def scenario_phases(sim: Any) -> TimelinePhases:
    """Phase changes of every simulated site from the scenario timeline (clones shifted)."""
    scenario = sim.scenario
    start = sim.start.timestamp()
    changes: dict[str, list[tuple[float, int]]] = {}
    events: dict[str, list[float]] = {}
    for inst in sim.world.instances:
        steps = []
        times = []
        for event in scenario.spec.timeline:
            at = start + scenario.events[event.key] + inst.time_offset_s
            times.append(at)
            phase = PHASE_OF_EVENT.get(event.event.value)
            if phase is not None:
                steps.append((at, int(phase)))
        changes[inst.site.id] = sorted(steps)
        events[inst.site.id] = sorted(times)
    return TimelinePhases(changes, events)


def _readings(sim: Any, batches: list[Any], sites: list[str]) -> list[Reading]:
    t = sim.model.t
    when = sim.start + timedelta(seconds=t)
    out: list[Reading] = []
    for batch in batches:
        bank = batch.bank
        names = [f.name for f in bank.spec.fields]
        digits = [0 if f.integer else getattr(f, "decimals", 6) for f in bank.spec.fields]
        model = bank.spec.model
        for i, row in zip(batch.idx.tolist(), batch.values.tolist(), strict=True):
            device = bank.devices[i]
            skew = batch.skew.get(i)
            ts = when if skew is None else when + timedelta(seconds=skew)
            r = Reading.model_construct(
                message_id=derived_id("sim", device.id, repr(t)),
                device_id=device.id,
                site_id=sites[int(bank.site[i])],
                zone_id=device.zone,
                stream_id=f"urn:lo:nsid:beffroi:{device.id}!data",
                model=model,
                ts=ts,
                received_at=when,
                value={n: round(v, d) for n, v, d in zip(names, row, digits, strict=True)},
                location=None,
                tags=(),
            )
            out.append(r)
            if i in batch.duplicate:
                out.append(r)
    return out


def _labels(sim: Any) -> tuple[list[Label], list[Label]]:
    start = sim.start

    def at(s: float) -> datetime:
        moment: datetime = start + timedelta(seconds=s)
        return moment

    incidents = [
        Label(i.id, "incident", i.type.value, i.site_id, i.zone, tuple(i.devices), at(i.start), at(i.end))
        for i in sim.incidents
    ]
    faults = [
        Label(f.id, "fault", f.type.value, f.site_id, f.zone, (f.device,), at(f.start), at(f.end))
        for f in sim.faults
    ]
    return incidents, faults


def simulate(
    scenario_path: Path | str,
    *,
    engine: EngineConfig | None = None,
    scale: float | None = None,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> EvalRun:
    """Simulate the scenario (at `scale`, for `duration_s` or its whole length) through the engine."""
    scenario = load_scenario(scenario_path)
    sim = Simulation(scenario, scale=scale)
    sites = [inst.site.id for inst in sim.world.instances]
    site_index = {s: k for k, s in enumerate(sites)}
    config = engine or EngineConfig(tick_s=scenario.spec.tick_s)
    zone_kinds = {
        (inst.site.id, zone.id): zone.kind.value for inst in sim.world.instances for zone in inst.site.zones
    }
    det = DetectEngine(config, phases=scenario_phases(sim), zone_kinds=zone_kinds)
    end = scenario.spec.duration if duration_s is None else min(duration_s, scenario.spec.duration)
    incidents, faults = _labels(sim)
    run = EvalRun(
        scenario=scenario.name,
        scale=sim.world.scale,
        sites=sites,
        devices=sim.world.device_count,
        tick_s=config.tick_s,
        ticks=np.zeros(0),
        site_score=np.zeros((0, len(sites))),
        incidents=[i for i in incidents if i.start.timestamp() < sim.start.timestamp() + end],
        faults=[f for f in faults if f.start.timestamp() < sim.start.timestamp() + end],
    )
    ticks: list[float] = []
    rows: list[NDArray] = []

    def keep(results: list[TickResult]) -> None:
        for res in results:
            ticks.append(res.tick.timestamp())
            row = np.zeros(len(sites))
            for site in res.scores:
                if site.streams:
                    row[site_index[site.site_id]] = max(v[0] for v in site.streams.values())
            rows.append(row)
            run.alerts += res.alerts
            run.info.update(res.info)

    wall0 = time.monotonic()
    next_report = 0.0
    while sim.model.t + sim.dt / 2 < end:
        readings = _readings(sim, sim.step(), sites)
        run.readings += len(readings)
        now = (sim.start + timedelta(seconds=sim.model.t)).timestamp()
        keep(det.add(readings, watermark=now))
        if progress is not None and sim.model.t >= next_report:
            progress(sim.model.t / end)
            next_report += end / 20
    keep(det.flush())
    run.wall_s = time.monotonic() - wall0
    run.ticks = np.array(ticks)
    run.site_score = np.array(rows) if rows else np.zeros((0, len(sites)))
    run.counters = {
        "late": det.late,
        "duplicates": det.duplicates,
        "untrusted": det.untrusted,
        "streams": len(det.table),
    }
    return run
