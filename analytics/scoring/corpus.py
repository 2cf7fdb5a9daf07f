"""A labelled corpus of univariate series in the Numenta Anomaly Benchmark layout, and its split.

Layout: `data/<source>/<name>.csv` (`timestamp,value`) and `labels/combined_windows.json` mapping
`<source>/<name>.csv` to `[start, end]` windows (inclusive, timestamps present in the file).

The split is fixed before any tuning and depends on file names only: per source, files sorted by
name, every third one (index 2, 5, 8, ...) is held out; a source with fewer than three files holds
out its last one, so every source with two or more files is in both parts. The held-out keys of
the shipped data set are also committed (`anomaly_holdout.txt`); a test checks they agree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

NDArray = np.ndarray[Any, Any]
Split = Literal["dev", "holdout", "all"]
SPLITS: tuple[Split, ...] = ("dev", "holdout", "all")
HOLDOUT_LIST = Path(__file__).with_name("anomaly_holdout.txt")


class CorpusError(ValueError):
    """The corpus directory is unusable; the message names the file."""


@dataclass(frozen=True)
class SeriesFile:
    key: str  # "<source>/<name>.csv"
    t: NDArray  # epoch seconds, float64
    values: NDArray  # float64 (NaN = missing)
    windows: tuple[tuple[int, int], ...]  # [first, last] rows, sorted

    @property
    def source(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]


def holdout_keys(keys: Iterable[str]) -> list[str]:
    """The held-out part of a corpus: per source, sorted names, indices 2, 5, 8, ... (the last file
    of a source with two files). Deterministic: depends on the names only."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        by_source[key.split("/", 1)[0]].append(key)
    held: list[str] = []
    for source in sorted(by_source):
        names = sorted(by_source[source])
        picked = [k for i, k in enumerate(names) if i % 3 == 2]
        if not picked and len(names) >= 2:
            picked = [names[-1]]
        held.extend(picked)
    return sorted(held)


def select(keys: Iterable[str], split: Split) -> list[str]:
    keys = sorted(keys)
    if split == "all":
        return keys
    held = set(holdout_keys(keys))
    return [k for k in keys if (k in held) == (split == "holdout")]


def committed_holdout() -> list[str]:
    """The committed held-out keys of `shared/data/anomaly` (one per line)."""
    return [line.strip() for line in HOLDOUT_LIST.read_text().splitlines() if line.strip()]


def _epoch(text: str) -> float:
    stamp = datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def read_values(path: Path) -> tuple[NDArray, NDArray]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc
    if not lines or [c.strip().lower() for c in lines[0].split(",")][:2] != ["timestamp", "value"]:
        raise CorpusError(f"{path}:1: header must be `timestamp,value`")
    t = np.empty(len(lines) - 1)
    v = np.empty(len(lines) - 1)
    for i, line in enumerate(lines[1:]):
        parts = line.split(",")
        try:
            t[i] = _epoch(parts[0])
            v[i] = float(parts[1]) if parts[1].strip() else np.nan
        except (ValueError, IndexError):
            raise CorpusError(f"{path}:{i + 2}: expected `timestamp,value`, got {line!r}") from None
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        raise CorpusError(f"{path}: timestamps must be strictly increasing")
    return t, v


def corpus_keys(root: Path) -> list[str]:
    data = root / "data"
    if not data.is_dir():
        raise CorpusError(f"{root}: no data/ folder (expected NAB layout data/<source>/<name>.csv)")
    return sorted(f"{p.parent.name}/{p.name}" for p in data.glob("*/*.csv"))


def load_labels(root: Path) -> dict[str, list[list[str]]]:
    path = root / "labels" / "combined_windows.json"
    try:
        labels: dict[str, list[list[str]]] = json.loads(path.read_text())
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: not JSON ({exc})") from exc
    return labels


def load_corpus(
    root: Path | str, split: Split = "all", *, keys: Sequence[str] | None = None
) -> list[SeriesFile]:
    """The files of `split` (or exactly `keys`), each with its windows as row ranges."""
    root = Path(root)
    everything = corpus_keys(root)
    labels = load_labels(root)
    chosen = list(keys) if keys is not None else select(everything, split)
    files = []
    for key in chosen:
        if key not in labels:
            raise CorpusError(f"{root}/labels/combined_windows.json: no entry for {key}")
        t, v = read_values(root / "data" / key)
        rows = []
        for start, end in labels[key]:
            lo = int(np.searchsorted(t, _epoch(start), side="left"))
            hi = int(np.searchsorted(t, _epoch(end), side="right")) - 1
            if lo <= hi:
                rows.append((lo, hi))
        files.append(SeriesFile(key=key, t=t, values=v, windows=tuple(sorted(rows))))
    return files
