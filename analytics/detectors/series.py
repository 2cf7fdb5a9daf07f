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

from analytics.detectors.ensemble import EnsembleConfig, ForecastEnsemble, NDArray, score_streams


class SeriesConfig(BaseModel):
    """The one parameter set used for every file."""

    model_config = ConfigDict(extra="forbid")

    core: EnsembleConfig = Field(default_factory=EnsembleConfig)


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
        self.core = ForecastEnsemble(1, self.config.core)
        self._value = np.zeros(1)

    def score(self, t: float, value: float) -> float:
        self._value[0] = value
        return float(self.core.step(self._value)[0])


def score_rows(rows: Iterable[Row], config: SeriesConfig | None = None) -> list[float]:
    values = np.array([r.value for r in rows], dtype=np.float64)
    return [float(v) for v in score_many([values], config=config)[0]]


def score_many(
    values: Sequence[NDArray], times: Sequence[NDArray] | None = None, config: SeriesConfig | None = None
) -> list[NDArray]:
    """Several series scored as fresh streams stepping together (batched; same scores as one by one).
    `times` is accepted for symmetry with the CSV rows: the core counts rows, not clock ticks."""
    return score_streams(list(values), (config or SeriesConfig()).core)


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
