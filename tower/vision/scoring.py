"""Score published zone states against a scenario run's ground truth (zones.csv).

    python -m tower.vision.scoring --truth DIR [--settings S] [--mode stack] [--group G]

Reads every `zone_state` record on the bus and scores it with `analytics.vision.scoring`.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from analytics.vision.scoring import load_truth, score
from beffroi.bus_factory import make_bus
from beffroi.records import ZoneState
from tower.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tower.vision.scoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--truth", type=Path, required=True, help="ground-truth directory (zones.csv)")
    p.add_argument("--settings", type=Path)
    p.add_argument("--mode", choices=["embedded", "stack"])
    p.add_argument("--idle-s", type=float, default=5.0, help="stop reading after this long without records")
    args = p.parse_args(argv)
    settings = load_settings(args.settings, **({"mode": args.mode} if args.mode else {}))
    topic = settings.kafka.topic("zone_state")
    states = []
    with (
        make_bus(settings, ensure_topics=False) as bus,
        bus.subscribe(f"vision-score-{uuid.uuid4().hex[:8]}", [topic]) as sub,
    ):
        idle = 0.0
        while idle < args.idle_s:
            batch = sub.poll(timeout=1.0)
            idle = 0.0 if batch else idle + 1.0
            states += [ZoneState.model_validate(json.loads(r.value)) for r in batch]
    result = score(states, load_truth(args.truth / "zones.csv"))
    print(
        f"{result.states} zone states: density MAE {result.mae:.3f} p/m2 over a mean true density of "
        f"{result.mean_true:.3f} p/m2 ({100 * result.relative_mae:.1f}%)"
    )
    for zone, (n, mae, mean) in result.per_zone.items():
        print(f"  {zone:<28} {n:5d} states  MAE {mae:.3f}  mean true {mean:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
