"""Run camera simulators: render a venue's cameras from the crowd conditions into files and streams.

`python -m simulators.camera` is the command line. Cameras can be spread over several processes
(rendering is CPU-bound); each process serves its cameras' MJPEG streams on its own port.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simulators.camera.crowd import CrowdConditions
from simulators.camera.render import CameraRenderer, CameraScene
from simulators.camera.sinks import DatasetSink, FrameSink, StreamSink, TruthSink, VideoFileSink
from simulators.camera.stream import MjpegServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shifted:
    """Conditions read `t0_s` seconds into another timeline (a scenario's ground truth), `speed`
    seconds of it per second (gate flows stay in persons per second of walking)."""

    base: CrowdConditions
    t0_s: float
    speed: float = 1.0

    def density(self, zone_id: str, t_s: float) -> float:
        return self.base.density(zone_id, self.t0_s + self.speed * t_s)

    def gate_flow(self, gate_id: str, t_s: float) -> float:
        return self.base.gate_flow(gate_id, self.t0_s + self.speed * t_s)


@dataclass(frozen=True)
class CameraRun:
    fps: float = 5.0
    seconds: float = 60.0
    seed: int = 0
    realtime: bool = False
    out: Path | None = None  # {camera}.avi and {camera}.truth.jsonl
    video_ext: str = ".avi"
    dataset: Path | None = None
    dataset_every: int = 5
    serve_host: str = "127.0.0.1"
    serve_port: int | None = None  # MJPEG on this port (0: any free one)
    #: realtime: wall time (epoch s) of frame 0, shared by every process; frame k is due at
    #: start_at + k / fps, and a camera that falls behind skips frames rather than lag (default: now)
    start_at: float | None = None
    extra_sinks: Sequence[Callable[[str], FrameSink]] = field(default_factory=tuple)


def _sinks(
    scene: CameraScene, run: CameraRun, server: MjpegServer | None, shared: list[FrameSink]
) -> list[FrameSink]:
    cam = scene.camera
    sinks: list[FrameSink] = []
    if run.out is not None:
        sinks.append(
            VideoFileSink(
                run.out / f"{scene.camera_id}{run.video_ext}", fps=run.fps, size=(cam.width, cam.height)
            )
        )
        sinks.append(TruthSink(run.out / f"{scene.camera_id}.truth.jsonl"))
    sinks.extend(shared)
    if server is not None:
        sinks.append(StreamSink(server.channel(scene.camera_id)))
    sinks.extend(make(scene.camera_id) for make in run.extra_sinks)
    return sinks


def render_cameras(
    scenes: Sequence[CameraScene],
    conditions: CrowdConditions,
    run: CameraRun,
    *,
    on_start: Callable[[MjpegServer], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Render every scene for `run.seconds` (or until `stop()`); returns the frames written per camera.
    Streams are served (and `on_start` called) once the renderers are ready: the first frame follows
    soon after."""
    renderers = [
        CameraRenderer(s, conditions=conditions, fps=run.fps, seed=run.seed * 1009 + i)
        for i, s in enumerate(scenes)
    ]
    server = (
        MjpegServer(host=run.serve_host, port=run.serve_port).start() if run.serve_port is not None else None
    )
    try:
        shared: list[FrameSink] = []
        if run.dataset is not None:
            shared.append(DatasetSink(run.dataset, every=run.dataset_every))
        sinks = [_sinks(s, run, server, shared) for s in scenes]
        if server is not None:
            for s in scenes:
                log.info("camera %s streaming on %s", s.camera_id, server.url(s.camera_id))
            if on_start is not None:
                on_start(server)
        frames = round(run.seconds * run.fps)
        start = run.start_at if run.start_at is not None else time.time()
        k = written = 0
        while k < frames and not (stop is not None and stop()):
            if run.realtime:
                wait = start + k / run.fps - time.time()
                if wait > 0:
                    time.sleep(wait)
                due = min(frames - 1, int((time.time() - start) * run.fps))
                if due > k:  # behind the clock: a live camera shows now, not what it missed
                    for r in renderers:
                        r.skip(due - k)
                    k = due
            for r, out in zip(renderers, sinks, strict=True):
                image, truth = r.next_frame()
                for sink in out:
                    sink.write(image, truth)
            k += 1
            written += 1
        closed: set[int] = set()
        for out in sinks:
            for sink in out:
                if id(sink) not in closed:
                    sink.close()
                    closed.add(id(sink))
        return {s.camera_id: written for s in scenes}
    finally:
        if server is not None:
            server.stop()


def split(items: Sequence[CameraScene], parts: int) -> list[list[CameraScene]]:
    parts = max(1, min(parts, len(items)))
    return [list(items[i::parts]) for i in range(parts)]


def render_in_processes(
    build: Callable[[], tuple[list[CameraScene], CrowdConditions]],
    run: CameraRun,
    *,
    processes: int,
) -> None:
    """Render in `processes` worker processes; worker i serves on `serve_port + i` (when serving).

    `build` must be a picklable module-level callable that rebuilds the scenes and conditions.
    """
    scenes, _ = build()
    groups = split(scenes, processes)
    ctx = mp.get_context("spawn")
    workers = []
    for i, group in enumerate(groups):
        port = None if run.serve_port is None else (run.serve_port + i if run.serve_port else 0)
        args = (build, [s.camera_id for s in group], run, port)
        p = ctx.Process(target=_worker, args=args, name=f"camera-sim-{i}")
        p.start()
        workers.append(p)
    failed = 0
    for p in workers:
        p.join()
        failed += p.exitcode != 0
    if failed:
        raise RuntimeError(f"{failed} camera simulator process(es) failed")


def _worker(
    build: Callable[[], tuple[list[CameraScene], CrowdConditions]],
    camera_ids: list[str],
    run: CameraRun,
    port: int | None,
) -> None:
    from dataclasses import replace

    scenes, conditions = build()
    mine = [s for s in scenes if s.camera_id in set(camera_ids)]
    render_cameras(mine, conditions, replace(run, serve_port=port))
