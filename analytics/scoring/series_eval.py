"""NAB-style evaluation of anomaly scores over a labelled corpus (`beffroi eval-series`).

For each detector and profile: NAB's sweeper weights every scorable row; the headline threshold
maximises the mean over sources of each source's normalised score (so no source decides by its
number of windows); per-source and per-file scores are read at that threshold. NAB's own figure
(windows of all files pooled, threshold optimised for that pool) is given beside it. False alarms
= scorable rows outside every window at or above the threshold, per 1,000 scorable rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.scoring.corpus import SeriesFile
from analytics.scoring.nab import PROFILES, Curve, Profile, SweptFile, optimise, sweep_file, threshold_curve

NDArray = np.ndarray[Any, Any]
Scorer = Callable[[Sequence[SeriesFile]], list[NDArray]]


@dataclass(frozen=True)
class FileResult:
    key: str
    rows: int
    windows: int
    detected: int
    false_alarms: int
    score: float  # normalised on this file alone (0 when it has no window)


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    threshold: float  # maximises the mean of per-source scores
    score: float  # that mean (the headline)
    per_source: dict[str, float]
    false_alarms_per_1000: float
    nab_threshold: float  # NAB's own: all windows pooled
    nab_score: float
    files: tuple[FileResult, ...]


def _file_result(key: str, rows: int, swept: SweptFile, profile: Profile, threshold: float) -> FileResult:
    curve = threshold_curve([swept], profile)
    raw, fps = curve.at(threshold)
    hot = swept.scores >= threshold
    detected = len({int(w) for w in swept.window[hot] if w >= 0})
    return FileResult(
        key=key,
        rows=rows,
        windows=swept.n_windows,
        detected=detected,
        false_alarms=fps,
        score=float(curve.normalised(raw)) if swept.n_windows else 0.0,
    )


def evaluate_profile(
    files: Sequence[SeriesFile], scores: Sequence[NDArray], profile: Profile
) -> ProfileResult:
    swept = [sweep_file(s, f.windows, profile) for f, s in zip(files, scores, strict=True)]
    by_source: dict[str, list[SweptFile]] = defaultdict(list)
    for f, sw in zip(files, swept, strict=True):
        by_source[f.source].append(sw)
    curves = {src: threshold_curve(parts, profile) for src, parts in sorted(by_source.items())}
    scoring = {src: c for src, c in curves.items() if c.n_windows > 0}
    candidates = np.unique(np.concatenate([c.thresholds for c in curves.values()] + [np.array([1.1])]))
    mean = np.zeros(len(candidates))
    for curve in scoring.values():
        mean += _normalised_at(curve, candidates)
    mean /= max(len(scoring), 1)
    best = int(np.argmax(mean[::-1]))  # ties: the highest threshold
    threshold = float(candidates[::-1][best])
    per_source = {src: float(c.normalised(c.at(threshold)[0])) for src, c in scoring.items()}
    fps = sum(c.at(threshold)[1] for c in curves.values())
    rows = sum(c.scored_rows for c in curves.values())
    nab_threshold, nab_score = optimise(threshold_curve(swept, profile))
    return ProfileResult(
        profile=profile.name,
        threshold=threshold,
        score=float(np.mean(list(per_source.values()))) if per_source else 0.0,
        per_source=per_source,
        false_alarms_per_1000=1000.0 * fps / max(rows, 1),
        nab_threshold=nab_threshold,
        nab_score=nab_score,
        files=tuple(
            _file_result(f.key, len(f.values), sw, profile, threshold)
            for f, sw in zip(files, swept, strict=True)
        ),
    )


def _normalised_at(curve: Curve, thresholds: NDArray) -> NDArray:
    j = np.searchsorted(-curve.thresholds, -thresholds, side="right") - 1
    raw = np.where(j >= 0, curve.raw[np.maximum(j, 0)] if len(curve.raw) else curve.null, curve.null)
    return np.asarray(curve.normalised(raw))


def evaluate(
    files: Sequence[SeriesFile], scores: Mapping[str, Sequence[NDArray]]
) -> dict[str, dict[str, ProfileResult]]:
    """{detector: {profile: result}} for per-file score arrays of each detector."""
    return {
        name: {p: evaluate_profile(files, per_file, prof) for p, prof in PROFILES.items()}
        for name, per_file in scores.items()
    }
