"""A venue's simulated cameras, live: the zone densities the video pipeline publishes, scored.

    python -m tower.vision.live_run --truth DIR [--site sdf] [--cameras N|IDS] [--from S]
        [--speed X] [--seconds 120] [--fps 1] [--width 640] [--processes 1] [--mode stack]

1. The camera simulator (`python -m simulators.camera --serve --live`, a child process) renders the
   crowd of a scenario run's ground truth (DIR from `beffroi simulate`) as each camera sees it, and
   serves one HTTP MJPEG stream per camera, in real time.
2. The video service reads the streams (ingest/video), detects and counts, and publishes zone_state
   records on the bus (Kafka in stack mode).
3. The records are read back from the bus (kept in WORKDIR/states.jsonl) and each zone's density is
   compared with the true density of its zone at the record's time: MAE overall and per zone.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from analytics.vision.scoring import Score, load_truth, score
from analytics.vision.service import VisionService, VisionSettings
from beffroi.bus import Bus
from beffroi.records import ZoneState
from beffroi.venue import Venue, load_venue
from simulators.camera.live import STREAMS, ZONES, read_streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveRun:
    """What to simulate: `cameras` of `site` in a scenario run's ground truth (`truth`), from `t0_s`
    seconds into it at `speed` scenario seconds per second, for `seconds` of wall time."""

    truth: Path
    site: str | None = None
    cameras: str = "8"
    t0_s: float = 0.0
    speed: float = 1.0
    seconds: float = 60.0
    fps: float = 1.0
    width: int = 640
    render_range_m: float = 25.0  # people farther away are too small to count at 640 px anyway
    processes: int = 1
    port: int = 0
    warmup_s: float = 3.0
    vision: VisionSettings = field(default_factory=lambda: VisionSettings(torch_threads=1))

    def simulator_args(self, live_dir: Path) -> list[str]:
        args = ["--truth", str(self.truth), "--cameras", self.cameras, "--from", str(self.t0_s)]
        args += ["--speed", str(self.speed), "--seconds", str(self.seconds), "--fps", str(self.fps)]
        args += ["--width", str(self.width), "--render-range", str(self.render_range_m)]
        args += ["--serve", str(self.port), "--live", str(live_dir), "--warmup", str(self.warmup_s)]
        args += ["--processes", str(self.processes)]
        return args + (["--site", self.site] if self.site else [])


@dataclass(frozen=True)
class LiveResult:
    cameras: dict[str, str]  # camera id -> stream URL
    states: list[ZoneState]  # as read back from the bus
    score: Score
    service: dict[str, object]  # VisionService.describe()


def _wait_for(path: Path, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"camera simulator exited ({proc.returncode}) before serving:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"camera simulator: no {path.name} after {timeout_s:.0f} s")
        time.sleep(0.1)


def run_live(spec: LiveRun, *, bus: Bus, topic: str, workdir: Path) -> LiveResult:
    """Run the simulator and the video service together; return what came back on `topic`, scored."""
    workdir.mkdir(parents=True, exist_ok=True)
    sim_log = workdir / "camera-sim.log"
    with sim_log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.camera", *spec.simulator_args(workdir)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(workdir / STREAMS, proc, sim_log, timeout_s=120.0)
        urls = read_streams(workdir / STREAMS)
        venue = load_venue(spec.truth / "venue.yaml")
        settings = spec.vision.model_copy(update={"cameras": urls, "sample_fps": spec.fps})
        service = VisionService(venue=venue, settings=settings, bus=bus, topic=topic)
        records = []
        with bus.subscribe(f"{topic}.live-run.{uuid.uuid4().hex[:8]}", [topic]) as sub:
            service.start()
            try:
                while proc.poll() is None:
                    records += sub.poll(timeout=0.5)
            finally:
                service.stop()
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 3.0:
                batch = sub.poll(timeout=0.5)
                if batch:
                    records += batch
                    idle_since = time.monotonic()
        if proc.returncode != 0:
            raise RuntimeError(f"camera simulator failed ({proc.returncode}); see {sim_log}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    ours = set(urls)
    states = [
        s for s in (ZoneState.model_validate(json.loads(r.value)) for r in records) if set(s.cameras) <= ours
    ]
    with (workdir / "states.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(s.model_dump_json(by_alias=True) + "\n" for s in states)
    return LiveResult(
        cameras=urls,
        states=states,
        score=score(states, load_truth(workdir / ZONES)),
        service=service.describe(),
    )


def report(result: LiveResult, venue: Venue) -> str:
    s = result.score
    areas = {f"{site.id}/{z.id}": z.area for site in venue.sites for z in site.zones}
    lines = [
        f"{len(result.cameras)} cameras, {s.states} zone states: density MAE {s.mae:.3f} p/m2 over a mean "
        f"true density of {s.mean_true:.3f} p/m2 ({100 * s.relative_mae:.1f}%)",
        f"  {'zone':<24} {'states':>6} {'MAE p/m2':>9} {'true p/m2':>9} {'rel.':>6} {'count MAE':>9}",
    ]
    for zone, (n, mae, mean) in s.per_zone.items():
        rel = f"{100 * mae / mean:5.1f}%" if mean > 0 else "     -"
        lines.append(f"  {zone:<24} {n:6d} {mae:9.3f} {mean:9.3f} {rel} {mae * areas.get(zone, 0.0):9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from beffroi.bus_factory import make_bus
    from beffroi.yamlconf import load_model
    from tower.settings import load_settings

    p = argparse.ArgumentParser(
        prog="python -m tower.vision.live_run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--truth", type=Path, required=True, help="a scenario run's directory (beffroi simulate)")
    p.add_argument("--site")
    p.add_argument("--cameras", default="8", help="'all', the first N, or ids separated by commas")
    p.add_argument("--from", dest="t0", type=float, default=0.0, help="seconds into the scenario")
    p.add_argument("--speed", type=float, default=1.0, help="scenario seconds per second")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--fps", type=float, default=1.0, help="frames per second per camera")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--processes", type=int, default=1, help="camera simulator processes")
    p.add_argument("--port", type=int, default=8554, help="first MJPEG port")
    p.add_argument("--config", type=Path, help="vision settings YAML (detector, density weights)")
    p.add_argument("--settings", type=Path, help="beffroi settings (bus, topics)")
    p.add_argument("--mode", choices=["embedded", "stack"])
    p.add_argument("--workdir", type=Path, default=Path("var/vision/live"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_settings(args.settings, **({"mode": args.mode} if args.mode else {}))
    vision = load_model(VisionSettings, args.config) if args.config else VisionSettings(torch_threads=1)
    spec = LiveRun(
        truth=args.truth,
        site=args.site,
        cameras=args.cameras,
        t0_s=args.t0,
        speed=args.speed,
        seconds=args.seconds,
        fps=args.fps,
        width=args.width,
        processes=args.processes,
        port=args.port if args.processes > 1 else 0,
        vision=vision,
    )
    with make_bus(settings) as bus:
        result = run_live(spec, bus=bus, topic=settings.kafka.topic("zone_state"), workdir=args.workdir)
    print(json.dumps(result.service, default=str))
    print(report(result, load_venue(args.truth / "venue.yaml")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
