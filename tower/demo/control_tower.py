"""The control tower of `make demo`: a shipped scenario at accelerated time, all in this process.

`ControlTower` runs, beside the embedded platform (bridge, workers, crowd rules, API):
- the scenario's sensors (`Simulation.run` at `speed` simulated seconds per second, through the
  in-process publisher), from `from_time` on, the scenario's `from_time` being now;
- a few of its cameras, rendered from the running crowd model (`FollowingConditions`) and served as
  MJPEG streams on the loopback interface;
- the video service reading those streams (the real pipeline: readers, detector, density model,
  counting, zone aggregates) and publishing zone states on the bus for the crowd worker and the map.

Everything is stamped on the simulated clock (`clock()`): readings, frames, zone states and alerts,
so that the rules' windows and holds are in scenario seconds. The clock starts at the wall time of
the start and runs `speed` times faster; the bridge and the API's escalations use it as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from analytics.vision.service import VisionService, VisionSettings, build_pipeline
from beffroi.bus import Bus
from beffroi.clock import utcnow
from beffroi.venue import Venue
from simulators.camera.following import FollowingConditions
from simulators.camera.run import CameraRun, render_cameras
from simulators.camera.scene import camera_scene
from simulators.camera.stream import MjpegServer
from simulators.engine import Simulation
from simulators.publish import Publisher
from simulators.scenario_file import load_scenario

log = logging.getLogger(__name__)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@dataclass(frozen=True)
class TowerDemo:
    """What `make demo` runs: the stadium final from 20:24 (the crush at gate D builds from 20:20,
    plaza D reaches level E at about 20:32) at 8x, one copy of its four sites, two cameras on the
    plaza and one in a station hall, each at one frame every `1 / fps` seconds of wall time."""

    scenario: Path = SCENARIOS / "stadium.yaml"
    scale: float = 0.02
    from_time: str = "20:24"
    speed: float = 8.0
    cameras: tuple[str, ...] = ("sdf-cam-plaza-d-1", "sdf-cam-plaza-e-1", "rer-d-sdf-cam-hall-1")
    fps: float = 0.5
    width: int = 640
    render_range_m: float = 20.0


@dataclass
class _Streams:
    """Stream URLs as the camera threads start serving them."""

    expected: int
    urls: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)

    def add(self, server: MjpegServer, camera_ids: list[str]) -> None:
        with self.lock:
            self.urls.update({c: server.url(c) for c in camera_ids})
            if len(self.urls) >= self.expected:
                self.ready.set()


class ControlTower:
    """The scenario, its cameras and the video service, as services for `tower.runtime.compose`."""

    def __init__(self, spec: TowerDemo = TowerDemo(), *, now: datetime | None = None) -> None:
        self.spec = spec
        scenario = load_scenario(spec.scenario)
        self.from_s = scenario.at(spec.from_time)
        start = (now if now is not None else utcnow()) - timedelta(seconds=self.from_s)
        self.sim = Simulation(scenario, scale=spec.scale, start=start.replace(microsecond=0))
        self.venue: Venue = self.sim.world.venue
        unknown = [c for c in spec.cameras if c not in self.venue.devices]
        if unknown:
            raise ValueError(f"demo cameras not in the venue: {', '.join(unknown)}")
        self._stop = threading.Event()
        self.scenario_started = threading.Event()
        self.vision: VisionService | None = None

    def describe(self) -> str:
        s = self.spec
        return (
            f"  the control tower: {self.sim.scenario.name} ({len(self.venue.sites)} sites) from "
            f"{s.from_time} at {s.speed:g}x, {len(s.cameras)} cameras through the video pipeline; "
            f"simulated time starts now"
        )

    def clock(self) -> datetime:
        """The simulated now: the time the scenario has reached."""
        return self.sim.start + timedelta(seconds=self.sim.model.t)

    def stop(self) -> None:
        self._stop.set()

    # -- the three parts, each run in a service thread ----------------------------------------
    def run_scenario(self, publisher: Publisher) -> None:
        """Fast-forward to `from_time`, then publish the sensors' readings at `speed`."""
        spec = self.spec

        def started(_: Simulation) -> None:
            self.scenario_started.set()

        stats = self.sim.run(
            publisher, speed=spec.speed, from_s=self.from_s, stop=self._stop.is_set, on_tick=started
        )
        log.info(
            "demo scenario: %.0f s simulated in %.0f s, %d readings, at most %.1f s behind",
            stats.sim_s,
            stats.wall_s,
            stats.readings,
            stats.behind_s,
        )

    def camera_groups(self) -> dict[str, list[str]]:
        """The demo's cameras by site (each site's crowd comes from its own part of the model)."""
        groups: dict[str, list[str]] = {}
        for c in self.spec.cameras:
            groups.setdefault(self.venue.devices[c].site_id, []).append(c)
        return groups

    def run_cameras(self, site_id: str, camera_ids: list[str], streams: _Streams) -> None:
        spec = self.spec
        scenes = [
            camera_scene(self.venue, c, width=spec.width, render_range_m=spec.render_range_m)
            for c in camera_ids
        ]
        run = CameraRun(fps=spec.fps, seconds=1e9, realtime=True, serve_port=0)
        while not self.scenario_started.wait(0.5):
            if self._stop.is_set():
                return
        render_cameras(
            scenes,
            FollowingConditions(self.sim, site_id),
            run,
            on_start=lambda server: streams.add(server, camera_ids),
            stop=self._stop.is_set,
        )

    def run_vision(self, bus: Bus, topic: str, streams: _Streams) -> None:
        """The video service on the camera streams, until stopped."""
        build_pipeline(self.venue, self.vision_settings({}))  # models loaded while fast-forwarding
        while not streams.ready.wait(0.5):
            if self._stop.is_set():
                return
        self.vision = VisionService(
            venue=self.venue,
            settings=self.vision_settings(streams.urls),
            bus=bus,
            topic=topic,
            clock=self.clock,
        )
        self.vision.start()
        self._stop.wait()
        self.vision.stop(drain=False)

    def vision_settings(self, urls: dict[str, str]) -> VisionSettings:
        """Defaults scaled to the simulated clock: a 1 s window and 5 s of skew of wall time."""
        speed = self.spec.speed
        return VisionSettings(
            cameras=urls,
            sample_fps=self.spec.fps,
            torch_threads=1,
            window_s=speed,
            max_skew_s=5.0 * speed,
            batch=4,
        )

    def services(self, publisher: Publisher, bus: Bus, zone_state_topic: str) -> list[ServiceSpec]:
        """(name, run) of each thread; `stop()` ends them all."""
        streams = _Streams(expected=len(self.spec.cameras))
        out: list[ServiceSpec] = [("demo-scenario", lambda: self.run_scenario(publisher))]
        for site_id, ids in self.camera_groups().items():
            out.append((f"demo-cameras-{site_id}", partial(self.run_cameras, site_id, ids, streams)))
        out.append(("demo-vision", lambda: self.run_vision(bus, zone_state_topic, streams)))
        return out


ServiceSpec = tuple[str, Callable[[], None]]
