"""`python -m simulators.camera`: render a venue's cameras into video files, truth and MJPEG streams.

Crowd conditions come from a scenario run's ground truth (`--truth DIR`, as written by
`beffroi simulate`: zones.csv, exits.csv, venue.yaml), or are fixed per zone (`--density Z=D`).
With `--serve` and `--live DIR`, a live run also writes DIR/streams.json (camera -> URL) and
DIR/zones.csv (each zone's true density by wall-clock time) before its first frame.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from beffroi.yamlconf import ConfigError
from simulators.camera.live import write_streams, write_zone_truth
from simulators.camera.run import CameraRun, render_cameras, render_in_processes, split
from simulators.camera.scene import RENDER_RANGE_M
from simulators.camera.stream import MjpegServer
from simulators.camera.venue_cameras import VenueCameras


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.camera", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--truth", type=Path, help="ground-truth directory of a scenario run (uses its venue.yaml)"
    )
    src.add_argument("--venue", type=Path, help="venue file, with --density for the crowd")
    p.add_argument("--site", help="only this site's cameras")
    p.add_argument(
        "--cameras", default="all", help="'all', a number (the first N), or ids separated by commas"
    )
    p.add_argument("--density", action="append", default=[], metavar="ZONE=P_PER_M2")
    p.add_argument("--from", dest="t0", type=float, default=0.0, help="seconds into the truth timeline")
    p.add_argument("--speed", type=float, default=1.0, help="truth-timeline seconds per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--width", type=int, default=640, help="frame width (height keeps the pose's aspect)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--render-range", type=float, default=RENDER_RANGE_M, help="draw people up to this far (m)"
    )
    p.add_argument("--out", type=Path, help="write {camera}.avi and {camera}.truth.jsonl here")
    p.add_argument("--dataset", type=Path, help="also write training frames (images/, labels/, truth.jsonl)")
    p.add_argument(
        "--serve", type=int, metavar="PORT", help="serve MJPEG streams (0: any free port), in real time"
    )
    p.add_argument("--live", type=Path, metavar="DIR", help="with --serve: write streams.json and zones.csv")
    p.add_argument(
        "--warmup", type=float, default=3.0, help="with --live: seconds between start-up and the first frame"
    )
    p.add_argument("--processes", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        densities = tuple((k, float(v)) for k, v in (d.split("=", 1) for d in args.density))
    except ValueError:
        p.error("--density takes ZONE=PERSONS_PER_M2")
    if args.live is not None and args.serve is None:
        p.error("--live needs --serve")
    if args.live is not None and args.processes > 1 and not args.serve:
        p.error("--live with --processes needs a fixed --serve PORT (worker i serves on PORT + i)")
    recipe = VenueCameras(
        venue_path=args.truth / "venue.yaml" if args.truth is not None else args.venue,
        truth=args.truth,
        site=args.site,
        cameras=args.cameras,
        densities=densities,
        width=args.width,
        t0_s=args.t0,
        speed=args.speed,
        render_range_m=args.render_range,
    )
    try:
        cams = recipe.load()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    start_at = time.time() + args.warmup if args.live is not None else None
    run = CameraRun(
        fps=args.fps,
        seconds=args.seconds,
        seed=args.seed,
        realtime=args.serve is not None,
        out=args.out,
        dataset=args.dataset,
        serve_port=args.serve,
        start_at=start_at,
    )
    on_start = None
    if args.live is not None and start_at is not None:
        live, at = args.live, start_at
        write_zone_truth(
            live,
            site_id=cams.site_id,
            zones=cams.zones(),
            conditions=cams.conditions,
            start_at=at,
            seconds=args.seconds,
        )
        if args.processes > 1:
            groups = split(cams.scenes, args.processes)
            host = run.serve_host
            write_streams(
                live,
                {
                    s.camera_id: f"http://{host}:{args.serve + i}/{s.camera_id}.mjpg"
                    for i, g in enumerate(groups)
                    for s in g
                },
            )
        else:

            def on_start(server: MjpegServer) -> None:
                write_streams(live, {s.camera_id: server.url(s.camera_id) for s in cams.scenes})

    if args.processes > 1:
        render_in_processes(recipe, run, processes=args.processes)
    else:
        render_cameras(cams.scenes, cams.conditions, run, on_start=on_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
