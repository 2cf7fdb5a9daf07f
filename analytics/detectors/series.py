"""One series from a CSV (`timestamp,value`) scored as a fresh stream: what `beffroi detect` runs.

The default parameter set is generic, not tuned to Beffroi's simulator: a multi-horizon robust
z-score ensemble (value, step, short mean, volatility) vetoed by a time-of-day seasonal baseline
once that has warmed up (a daily peak is not an anomaly), then the anomaly-likelihood step.
Scores use float64, stream strictly forward (row i sees rows <= i only) and stay 0 during warm-up.
Missing values (empty, NaN) score 0 and leave the state as it was; irregular timestamps are fine
(every detector counts values, not clock ticks); timestamps going backwards are clamped.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.base import StreamMeta
from analytics.detectors.plugins.multiscale import MultiscaleConfig
from analytics.detectors.plugins.phase_baseline import PhaseBaselineConfig
from analytics.detectors.stack import DetectorStack, StackConfig
from analytics.likelihood import LikelihoodConfig


def _series_stack() -> StackConfig:
    return StackConfig(
        backend="numpy",
        dtype="float64",
        detectors=[
            MultiscaleConfig(),
            PhaseBaselineConfig(n_phases=24, alpha=0.05, clip=2.5, min_count=8, rel_floor=0.001, beta=0.0),
        ],
        combine="min",
        # a generic series may repeat its anomalies: the tail floor judges single values only
        likelihood=LikelihoodConfig(
            short_window=3.0,
            long_window=1500.0,
            min_count=100,
            settle_short=False,
            floor_short=False,
            tail_levels=(4.0, 8.0, 16.0, 32.0),
        ),
        suppress_on_fault=False,
    )


class SeriesConfig(BaseModel):
    """The one parameter set used for every file."""

    model_config = ConfigDict(extra="forbid")

    season_s: float = Field(default=86400.0, gt=0, description="seasonal period (time of day)")
    stack: StackConfig = Field(default_factory=_series_stack)
    warmup_rows: int = Field(default=150, ge=0, description="rows scored 0 while the stream learns")


class SeriesInputError(ValueError):
    """The input CSV is unusable; the message names the file and the line."""


@dataclass(frozen=True)
class Row:
    line: int
    timestamp: str
    t: float
    value: float
    value_text: str


def parse_timestamp(text: str) -> float:
    """Epoch seconds from ISO 8601 (no zone = UTC) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def read_series_csv(path: Path | str) -> list[Row]:
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SeriesInputError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise SeriesInputError(f"{path}:1: empty file (expected a header `timestamp,value`)")
        names = [h.strip().lower() for h in header]
        if "timestamp" not in names or "value" not in names:
            raise SeriesInputError(
                f"{path}:1: header must name columns `timestamp` and `value`, got {header}"
            )
        ti, vi = names.index("timestamp"), names.index("value")
        rows: list[Row] = []
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(ti, vi):
                raise SeriesInputError(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
            stamp = row[ti]
            try:
                t = parse_timestamp(stamp)
            except ValueError:
                raise SeriesInputError(
                    f"{path}:{line}: timestamp {stamp!r} is not ISO 8601 or epoch seconds"
                ) from None
            if not math.isfinite(t):
                raise SeriesInputError(f"{path}:{line}: timestamp {stamp!r} is not finite")
            raw = row[vi].strip()
            if raw == "" or raw.lower() in ("nan", "null", "none", "na"):
                value = math.nan
            else:
                try:
                    value = float(raw)
                except ValueError:
                    raise SeriesInputError(f"{path}:{line}: value {raw!r} is not a number") from None
                if math.isinf(value):
                    raise SeriesInputError(f"{path}:{line}: value {raw!r} is infinite")
            rows.append(Row(line=line, timestamp=stamp, t=t, value=value, value_text=raw))
    return rows


class SeriesScorer:
    """Streams one series row by row: `score(t, value)` sees nothing after this row."""

    def __init__(self, config: SeriesConfig | None = None) -> None:
        self.config = config or SeriesConfig()
        self.stack = DetectorStack(self.config.stack, meta=StreamMeta.generic(1))
        self._buckets = max((getattr(d, "n_phases", 1) for d in self.config.stack.detectors), default=1)
        self._rows = 0
        self._values = np.zeros(1)
        self._phase = np.zeros(1, dtype=np.int64)

    def score(self, t: float, value: float) -> float:
        self._rows += 1
        self._values[0] = value
        frac = (t % self.config.season_s) / self.config.season_s
        self._phase[0] = min(int(frac * self._buckets), self._buckets - 1)
        out = self.stack.step(t, self._values, None, self._phase)
        if self._rows <= self.config.warmup_rows or math.isnan(value):
            return 0.0
        return float(self.stack.ops.to_numpy(out.score)[0])


def score_rows(rows: Iterable[Row], config: SeriesConfig | None = None) -> list[float]:
    scorer = SeriesScorer(config)
    return [scorer.score(r.t, r.value) for r in rows]


def write_scores_csv(path: Path | str, rows: Sequence[Row], scores: Sequence[float]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for row, score in zip(rows, scores, strict=True):
            writer.writerow([row.timestamp, row.value_text, f"{min(max(score, 0.0), 1.0):.6f}"])
    tmp.replace(path)
