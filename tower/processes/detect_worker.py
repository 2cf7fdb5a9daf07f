"""`python -m tower.processes.detect_worker`: one detector worker of its consumer group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analytics.detect_worker import DetectWorker, DetectWorkerConfig
from beffroi.bus import Bus
from beffroi.store import Store
from beffroi.venue import Venue
from beffroi.yamlconf import load_model
from tower.process import Running, worker_main
from tower.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot", type=Path, help="state snapshot file (restored at start)")


def build(args: argparse.Namespace, settings: Settings, bus: Bus, store: Store) -> Running:
    venue = load_model(Venue, settings.venue) if settings.venue is not None else None
    bus.ensure_topics(settings.kafka.partitions())
    worker = DetectWorker(
        bus=bus,
        store=store,
        config=DetectWorkerConfig.from_settings(settings, snapshot_path=args.snapshot),
        venue=venue,
    )
    return Running(run=worker.run, stop=worker.stop, finish=worker.shutdown)


def main(argv: Sequence[str] | None = None) -> int:
    return worker_main(
        argv,
        prog="python -m tower.processes.detect_worker",
        description=__doc__,
        build=build,
        add_arguments=add_arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
