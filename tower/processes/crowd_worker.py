"""`python -m tower.processes.crowd_worker`: one member of the crowd rules' consumer group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analytics.crowd_worker import CrowdWorker
from beffroi.bus import Bus
from beffroi.store import Store
from tower.process import Running, worker_main
from tower.settings import Settings


def build(args: argparse.Namespace, settings: Settings, bus: Bus, store: Store) -> Running:
    worker = CrowdWorker.from_settings(settings, bus=bus, store=store)
    return Running(run=worker.run, stop=worker.stop, finish=worker.close)


def main(argv: Sequence[str] | None = None) -> int:
    return worker_main(argv, prog="python -m tower.processes.crowd_worker", description=__doc__, build=build)


if __name__ == "__main__":
    sys.exit(main())
