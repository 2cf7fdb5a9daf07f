"""Score published zone states against a scenario run's ground truth (zones.csv).

    python -m analytics.vision.scoring --truth DIR [--settings S] [--mode stack] [--group G]

Reads every `zone_state` record on the bus and compares each state's density with the true density
of its zone at the state's time: mean absolute error overall and per zone, in persons/m², and
relative to the mean true density.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from analytics.vision.zone_state import ZoneState
from beffroi.bus_factory import make_bus
from beffroi.clock import parse_iso
from beffroi.settings import load_settings


@dataclass
class TruthSeries:
    t: list[float]  # epoch seconds
    density: list[float]

    def at(self, epoch_s: float) -> float:
        i = bisect.bisect_right(self.t, epoch_s) - 1
        return self.density[max(i, 0)]

    def covers(self, epoch_s: float) -> bool:
        """Whether the time falls within the truth (up to one step after its last sample)."""
        step = self.t[-1] - self.t[-2] if len(self.t) > 1 else 0.0
        return self.t[0] <= epoch_s <= self.t[-1] + step


def load_truth(zones_csv: Path) -> dict[tuple[str, str], TruthSeries]:
    series: dict[tuple[str, str], TruthSeries] = {}
    with zones_csv.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            s = series.setdefault((row["site"], row["zone"]), TruthSeries([], []))
            s.t.append(parse_iso(row["timestamp"]).timestamp())
            s.density.append(float(row["density"]))
    return series


@dataclass(frozen=True)
class Score:
    states: int
    mae: float  # persons/m²
    mean_true: float
    per_zone: dict[str, tuple[int, float, float]]  # zone -> (states, MAE, mean true density)

    @property
    def relative_mae(self) -> float:
        return self.mae / self.mean_true if self.mean_true > 0 else float("nan")


def score(states: Iterable[ZoneState], truth: dict[tuple[str, str], TruthSeries]) -> Score:
    """Compare each state's density with the truth at the middle of its window (states of zones or
    times the truth does not cover are left out: the bus may hold other runs' states)."""
    errs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in states:
        series = truth.get((s.site_id or "", s.zone_id))
        mid = s.ts.timestamp() - s.window_s / 2
        if series is None or not series.covers(mid):
            continue
        true = series.at(mid)
        errs[f"{s.site_id}/{s.zone_id}"].append((abs(s.density - true), true))
    rows = [e for v in errs.values() for e in v]
    n = len(rows)
    return Score(
        states=n,
        mae=sum(e for e, _ in rows) / n if n else float("nan"),
        mean_true=sum(t for _, t in rows) / n if n else float("nan"),
        per_zone={
            z: (len(v), sum(e for e, _ in v) / len(v), sum(t for _, t in v) / len(v))
            for z, v in sorted(errs.items())
        },
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m analytics.vision.scoring",
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
