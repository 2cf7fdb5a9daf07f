"""`python -m tower.vision`: run the video pipeline on a venue's cameras, publishing zone_state.

    python -m tower.vision --venue venue.yaml [--config vision.yaml] [--camera ID=URL ...]
                               [--streams streams.json] [--settings settings.yaml] [--seconds S]

Files are read to their end (then the service stops); streams are read until --seconds or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from analytics.vision.service import VisionService, VisionSettings
from beffroi.bus_factory import make_bus
from beffroi.venue import load_venue
from beffroi.yamlconf import ConfigError, load_model
from simulators.camera.live import read_streams
from tower.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tower.vision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--venue", type=Path, required=True)
    p.add_argument("--config", type=Path, help="vision settings YAML (detector, density weights, cameras)")
    p.add_argument("--camera", action="append", default=[], metavar="ID=URL")
    p.add_argument(
        "--streams", type=Path, help="JSON {camera id: URL}, as a live camera simulator writes (streams.json)"
    )
    p.add_argument("--settings", type=Path, help="beffroi settings (bus, topics)")
    p.add_argument("--mode", choices=["embedded", "stack"])
    p.add_argument("--seconds", type=float, help="stop after this long")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_settings(args.settings, **({"mode": args.mode} if args.mode else {}))
        vision = load_model(VisionSettings, args.config) if args.config else VisionSettings()
        venue = load_venue(args.venue)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    cameras = dict(vision.cameras)
    if args.streams is not None:
        try:
            cameras.update(read_streams(args.streams))
        except (OSError, ValueError) as exc:
            p.error(f"--streams: {exc}")
    for spec in args.camera:
        cid, _, url = spec.partition("=")
        if not url:
            p.error("--camera takes ID=URL")
        cameras[cid] = url
    vision = vision.model_copy(update={"cameras": cameras})
    with make_bus(settings) as bus:
        service = VisionService(
            venue=venue, settings=vision, bus=bus, topic=settings.kafka.topic("zone_state")
        )
        service.start()
        deadline = time.monotonic() + args.seconds if args.seconds else None
        try:
            while not service.wait_sources(timeout=1.0):
                if deadline is not None and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            pass
        service.stop()
        print(json.dumps(service.describe(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
