"""The process entry point the consumer workers share: `python -m tower.processes.worker` and the others."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from beffroi import metrics
from beffroi.bus import Bus
from beffroi.bus_factory import make_bus
from beffroi.signals import stop_on_signals
from beffroi.store import Store
from beffroi.store_factory import make_store
from tower.settings import Settings, load_settings


@dataclass(frozen=True)
class Running:
    """How to run a worker in the foreground, ask it to stop (on SIGTERM/SIGINT), and finish it."""

    run: Callable[[], None]
    stop: Callable[[], None]
    finish: Callable[[], None]


def worker_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    build: Callable[[argparse.Namespace, Settings, Bus, Store], Running],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse `--settings` (plus `add_arguments`), open the bus and the migrated store, and run what
    `build` makes of them until a signal asks it to stop."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--settings", help="settings YAML (the environment overrides it)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(args.settings)
    port = metrics.serve(settings.metrics)
    if port is not None:
        logging.getLogger(prog).info("metrics on http://%s:%d/metrics", settings.metrics.host, port)
    with make_bus(settings) as bus, make_store(settings) as store:
        store.migrate()
        running = build(args, settings, bus, store)
        try:
            with stop_on_signals(running.stop):
                running.run()
        finally:
            running.finish()
    return 0
