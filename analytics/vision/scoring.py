"""Score zone states against a scenario run's ground truth (zones.csv), read as data.

Each state's density is compared with the true density of its zone at the state's time: mean
absolute error overall and per zone, in persons/m², and relative to the mean true density
(`python -m tower.vision.scoring` reads the states from the bus).
"""

from __future__ import annotations

import bisect
import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from beffroi.clock import parse_iso
from beffroi.records import ZoneState


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
