"""Running a scenario: choose where payloads go (mode), align the simulated clock, split devices
over processes, and collect the figures.

Modes:
- `stack`: `MqttPublisher`, each device logging in to Mosquitto as itself, QoS 1;
- `embedded`: the embedded platform (bridge, in-memory bus, SQLite, API) composed in this process
  with the simulated venue, fed through `InProcessPublisher`;
- `dry`: nothing leaves the process (optionally payloads to a file, or their SHA-256).

With `start="auto"` (the default outside dry mode) the simulated clock is placed so that the run ends
now: every timestamp is in the past of the wall clock, as a broker-side bridge expects, even at
`--speed 60`.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, Literal

from beffroi.clock import parse_iso, utcnow
from simulators.engine import RunStats, Simulation, Sink
from simulators.scenario import Scenario
from simulators.scenario_file import load_scenario
from simulators.world import build_world
from tower.settings import Settings, load_settings

log = logging.getLogger(__name__)

Mode = Literal["stack", "embedded", "dry"]


@dataclass(frozen=True)
class RunOptions:
    scenario: Path
    mode: Mode = "dry"
    speed: float = 1.0
    scale: float | None = None
    seed: int | None = None
    duration_s: float | None = None
    from_time: str | None = None
    processes: int = 1
    out_dir: Path | None = None
    start: str = "auto"  # "auto", "scenario" or an ISO 8601 datetime
    settings: Path | None = None
    payloads: bool = False
    digest: bool = False
    provision: bool = False


@dataclass
class Summary:
    sites: int
    devices: int
    start: str
    ticks: int = 0
    readings: int = 0
    published: int = 0
    sim_s: float = 0.0
    wall_s: float = 0.0
    behind_s: float = 0.0
    digests: list[str] = field(default_factory=list)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else 0.0


class CountingSink:
    """Dry mode: counts, and optionally hashes or writes, every payload."""

    def __init__(self, *, digest: bool = False, file: BinaryIO | None = None) -> None:
        self.count = 0
        self._hash = hashlib.sha256() if digest else None
        self._file = file

    def publish(self, device_id: str, payload: bytes) -> None:
        self.count += 1
        if self._hash is not None:
            self._hash.update(payload)
            self._hash.update(b"\n")
        if self._file is not None:
            self._file.write(payload + b"\n")

    def flush(self, timeout: float | None = None) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def hexdigest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""


def plan_start(scenario: Scenario, opts: RunOptions, *, now: datetime | None = None) -> datetime:
    """The simulated start: the scenario's, an explicit one, or `auto` (the run ends at wall-clock now)."""
    if opts.start == "scenario" or (opts.start == "auto" and opts.mode == "dry"):
        return scenario.spec.start.astimezone(UTC)
    if opts.start != "auto":
        return parse_iso(opts.start, what="--start")
    spec = scenario.spec
    from_s = scenario.at(opts.from_time) if opts.from_time else 0.0
    end = spec.duration if opts.duration_s is None else min(spec.duration, from_s + opts.duration_s)
    now = now if now is not None else utcnow()
    wall = (end - from_s) / opts.speed if opts.speed > 0 else 0.0
    return (now + timedelta(seconds=wall) - timedelta(seconds=end)).replace(microsecond=0)


def _settings(opts: RunOptions) -> Settings:
    return load_settings(opts.settings)


def _stop_flag() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return stop


def run_partition(opts: RunOptions, partition: int, start_iso: str) -> tuple[RunStats, str]:
    """One process's share: its devices' payloads; partition 0 also writes the ground truth."""
    scenario = load_scenario(opts.scenario)
    start = parse_iso(start_iso)
    out = opts.out_dir if partition == 0 else None
    sim = Simulation(
        scenario,
        scale=opts.scale,
        seed=opts.seed,
        start=start,
        partition=partition,
        processes=opts.processes,
        out_dir=out,
    )
    from_s = scenario.at(opts.from_time) if opts.from_time else 0.0
    stop = _stop_flag()
    sink: Sink
    closers: list[Any] = []
    if opts.mode == "stack":
        from simulators.publish import MqttPublisher

        settings = _settings(opts)
        if opts.provision and partition == 0:
            from tower.runtime import provision_devices

            provision_devices(settings, sim.world.venue.devices)
        mqtt = MqttPublisher(settings.mqtt.model_copy(update={"namespace": sim.world.venue.namespace}))
        closers.append(mqtt.close)
        sink = mqtt
    else:
        file = None
        if opts.payloads and opts.out_dir is not None:
            opts.out_dir.mkdir(parents=True, exist_ok=True)
            name = "payloads.jsonl" if opts.processes == 1 else f"payloads-p{partition}.jsonl"
            file = (opts.out_dir / name).open("wb")
        counting = CountingSink(digest=opts.digest, file=file)
        closers.append(counting.close)
        sink = counting
    try:
        stats = sim.run(sink, duration_s=opts.duration_s, speed=opts.speed, from_s=from_s, stop=stop.is_set)
    finally:
        for close in closers:
            close()
    return stats, sink.hexdigest() if isinstance(sink, CountingSink) else ""


def _run_embedded(opts: RunOptions, start: datetime) -> tuple[RunStats, str]:
    from tower.runtime import compose

    scenario = load_scenario(opts.scenario)
    sim = Simulation(scenario, scale=opts.scale, seed=opts.seed, start=start, out_dir=opts.out_dir)
    settings = _settings(opts).model_copy(update={"mode": "embedded"})
    # the API signs its tokens with a key from the environment; without one the run feeds the
    # platform (bridge, workers, store) and serves no API rather than failing
    serve_api = settings.api.auth.secret_key is not None
    if not serve_api:
        log.warning("simulate: BEFFROI_API__AUTH__SECRET_KEY is not set, so the operator API is not served")
    runtime = compose(settings, venue=sim.world.venue, api=serve_api)
    from_s = scenario.at(opts.from_time) if opts.from_time else 0.0
    stop = _stop_flag()
    with runtime:
        publisher = runtime.publisher
        if publisher is None:
            raise RuntimeError("the embedded runtime has no in-process publisher")
        stats = sim.run(
            publisher, duration_s=opts.duration_s, speed=opts.speed, from_s=from_s, stop=stop.is_set
        )
        bridge = runtime.bridge
        deadline = time.monotonic() + 60.0
        while (
            bridge.stats.accepted + bridge.stats.dead_lettered < stats.published
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)  # let the bridge take everything before the platform stops
    return stats, ""


def run(opts: RunOptions) -> Summary:
    """Run a scenario as `opts` says; several processes share the devices by hash of their ids."""
    scenario = load_scenario(opts.scenario)
    world = build_world(scenario, scale=opts.scale, seed=opts.seed)
    start = plan_start(scenario, opts)
    summary = Summary(sites=len(world.instances), devices=world.device_count, start=start.isoformat())
    del world
    if opts.mode == "embedded":
        if opts.processes != 1:
            raise ValueError("embedded mode runs in one process (--processes 1)")
        results = [_run_embedded(opts, start)]
    elif opts.processes == 1:
        results = [run_partition(opts, 0, start.isoformat())]
    else:
        with ProcessPoolExecutor(max_workers=opts.processes, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_partition, opts, p, start.isoformat()) for p in range(opts.processes)]
            results = [f.result() for f in futures]
    first = results[0][0]
    summary.ticks = first.ticks
    summary.readings = first.readings
    summary.sim_s = first.sim_s
    summary.published = sum(r.published for r, _ in results)
    summary.wall_s = max(r.wall_s for r, _ in results)
    summary.behind_s = max(r.behind_s for r, _ in results)
    summary.digests = [d for _, d in results]
    return summary


def export_venue(
    scenario_path: Path, out: Path, *, scale: float | None = None, seed: int | None = None
) -> int:
    """Write the venue as simulated at `scale` (for `mqtt-provision` and the bridge); returns devices."""
    scenario = load_scenario(scenario_path)
    world = build_world(scenario, scale=scale, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(world.venue.to_yaml(), encoding="utf-8")
    return world.device_count
