"""`python -m tower.processes.worker`: one worker process of the readings' consumer group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analytics.worker import Worker
from beffroi.bus import Bus
from beffroi.store import Store
from tower.process import Running, worker_main
from tower.settings import Settings


def build(args: argparse.Namespace, settings: Settings, bus: Bus, store: Store) -> Running:
    worker = Worker.from_settings(settings, bus=bus, store=store)
    return Running(run=worker.run, stop=worker.stop, finish=worker.close)


def main(argv: Sequence[str] | None = None) -> int:
    return worker_main(argv, prog="python -m tower.processes.worker", description=__doc__, build=build)


if __name__ == "__main__":
    sys.exit(main())
