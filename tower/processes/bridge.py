"""`python -m tower.processes.bridge`: the stack-mode bridge as its own process (Mosquitto -> Kafka)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from beffroi import metrics
from beffroi.settings import load_venue_for
from beffroi.signals import stop_on_signals
from tower.runtime import bridge_for_stack
from tower.settings import load_settings

log = logging.getLogger("ingest.bridge")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tower.processes.bridge", description=__doc__)
    parser.add_argument("--settings", help="settings YAML (the environment overrides it)")
    parser.add_argument("--venue", help="venue YAML (default: settings.venue)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(args.settings, **({"venue": args.venue} if args.venue else {}))
    venue = load_venue_for(settings)
    bridge, closer = bridge_for_stack(settings, venue)
    port = metrics.serve(settings.metrics)
    if port is not None:
        log.info("bridge metrics on http://%s:%d/metrics", settings.metrics.host, port)

    try:
        with stop_on_signals(bridge.stop):
            bridge.run()
    finally:
        closer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
