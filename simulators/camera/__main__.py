"""`python -m simulators.camera`: render a venue's cameras into video files, truth and MJPEG streams.

Crowd conditions come from a scenario run's ground truth (`--truth DIR`, as written by
`beffroi simulate`: zones.csv, exits.csv, venue.yaml), or are fixed per zone (`--density Z=D`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from beffroi.devices import DeviceKind
from beffroi.venue import Venue
from beffroi.yamlconf import ConfigError, load_yaml, validate_doc
from simulators.camera.crowd import CrowdConditions, StaticConditions
from simulators.camera.render import CameraScene
from simulators.camera.run import CameraRun, Shifted, render_cameras, render_in_processes
from simulators.camera.scene import RENDER_RANGE_M, camera_scene


def load_venue(path: Path) -> Venue:
    return validate_doc(Venue, load_yaml(path), path)


def camera_ids(venue: Venue, site: str | None, choice: str) -> list[str]:
    cams = [
        d.id
        for s in venue.sites
        if site is None or s.id == site
        for d in s.devices
        if d.kind is DeviceKind.CAMERA
    ]
    if choice == "all":
        return cams
    if choice.isdigit():
        return cams[: int(choice)]
    wanted = choice.split(",")
    unknown = [c for c in wanted if c not in cams]
    if unknown:
        raise SystemExit(f"unknown camera(s): {', '.join(unknown)}")
    return wanted


def build(
    venue_path: Path,
    truth: Path | None,
    site: str | None,
    cameras: str,
    densities: tuple[tuple[str, float], ...],
    width: int,
    t0_s: float,
    render_range_m: float = RENDER_RANGE_M,
) -> tuple[list[CameraScene], CrowdConditions]:
    venue = load_venue(venue_path)
    ids = camera_ids(venue, site, cameras)
    if not ids:
        raise SystemExit("no cameras to simulate")
    scenes = [camera_scene(venue, i, width=width, render_range_m=render_range_m) for i in ids]
    conditions: CrowdConditions
    if truth is not None:
        from simulators.truth import SiteConditions

        site_id = site or venue.devices[ids[0]].site_id
        conditions = Shifted(SiteConditions(truth, site_id), t0_s)
    else:
        conditions = StaticConditions(dict(densities))
    return scenes, conditions


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
    p.add_argument("--processes", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        densities = tuple((k, float(v)) for k, v in (d.split("=", 1) for d in args.density))
    except ValueError:
        p.error("--density takes ZONE=PERSONS_PER_M2")
    venue_path = args.truth / "venue.yaml" if args.truth is not None else args.venue
    make = functools.partial(
        build,
        venue_path,
        args.truth,
        args.site,
        args.cameras,
        densities,
        args.width,
        args.t0,
        args.render_range,
    )
    run = CameraRun(
        fps=args.fps,
        seconds=args.seconds,
        seed=args.seed,
        realtime=args.serve is not None,
        out=args.out,
        dataset=args.dataset,
        serve_port=args.serve,
    )
    try:
        if args.processes > 1:
            render_in_processes(make, run, processes=args.processes)
        else:
            scenes, conditions = make()
            render_cameras(scenes, conditions, run)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
