"""Windowed scoring in the style of the Numenta Anomaly Benchmark (NAB).

Per data file: every labelled window earns the best of its detections, through a scaled sigmoid
of the detection's position (earliest = +1, right edge = 0); a window without detection costs
`fn`; a detection outside every window is a false positive costing up to `fp`, less when it
falls just after a window. Rows in the probationary period (the first 15 % of a file, at most
750 rows) are not scored. Summed over files and normalised so that "never detect" gives 0 and
"detect every window at its first row, nothing else" gives 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NDArray = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
}


def scaled_sigmoid(position: float) -> float:
    """NAB's reward: +0.987 at a window's left edge (-1), 0 at its right edge, -> -1 past it."""
    if position > 3.0:
        return -1.0
    if position < -3.0:
        return 1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(n_rows: int, fraction: float = 0.15) -> int:
    return int(min(math.floor(fraction * n_rows), fraction * 5000))


@dataclass(frozen=True)
class FileScore:
    raw: float
    windows: int
    detected: int
    false_positives: int
    first_detection: tuple[int | None, ...]  # row of the first detection in each window


def window_rows(
    timestamps: Sequence[float] | NDArray, windows: Sequence[tuple[float, float]]
) -> list[tuple[int, int]]:
    """Row ranges [first, last] of each (start, end) window (windows holding no row are dropped)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    rows = []
    for start, end in sorted(windows):
        first = int(np.searchsorted(ts, start, side="left"))
        last = int(np.searchsorted(ts, end, side="right")) - 1
        if first <= last:
            rows.append((first, last))
    return rows


def score_file(
    detections: Sequence[bool] | np.ndarray[tuple[int], np.dtype[np.bool_]],
    windows: Sequence[tuple[int, int]],
    profile: Profile,
    *,
    probation: int | None = None,
) -> FileScore:
    """Score one file. `detections[i]`: row i raised a detection; `windows`: [first, last] rows."""
    det = np.asarray(detections, dtype=bool)
    n = len(det)
    skip = probation_rows(n) if probation is None else probation
    wins = sorted(windows)
    best = [-profile.fn] * len(wins)
    first: list[int | None] = [None] * len(wins)
    fp_total = 0.0
    fps = 0
    for i in np.flatnonzero(det):
        if i < skip:
            continue
        inside = next((k for k, (lo, hi) in enumerate(wins) if lo <= i <= hi), None)
        if inside is not None:
            lo, hi = wins[inside]
            width = hi - lo + 1
            value = scaled_sigmoid(-(hi - i + 1) / width) * profile.tp / MAX_TP
            if first[inside] is None:
                first[inside] = int(i)
            best[inside] = max(best[inside], value)
            continue
        before = [k for k, (_, hi) in enumerate(wins) if hi < i]
        if before:
            lo, hi = wins[before[-1]]
            width = hi - lo + 1
            position = abs(hi - i) / (width - 1) if width > 1 else 2.0
        else:
            position = 3.0
        fp_total += scaled_sigmoid(position) * profile.fp
        fps += 1
    return FileScore(
        raw=sum(best) + fp_total,
        windows=len(wins),
        detected=sum(f is not None for f in first),
        false_positives=fps,
        first_detection=tuple(first),
    )


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    """100 x (raw - null) / (perfect - null); null = every window missed, perfect = all at once."""
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True)
class CorpusScore:
    profile: str
    score: float
    raw: float
    windows: int
    detected: int
    false_positives: int


def score_corpus(
    files: Sequence[tuple[np.ndarray[tuple[int], np.dtype[np.bool_]], Sequence[tuple[int, int]]]],
    profile: Profile,
    *,
    probation: int | None = None,
) -> CorpusScore:
    """Sum the raw scores of (detections, windows) files and normalise over all their windows."""
    parts = [score_file(d, w, profile, probation=probation) for d, w in files]
    raw = sum(p.raw for p in parts)
    windows = sum(p.windows for p in parts)
    return CorpusScore(
        profile=profile.name,
        score=normalise(raw, windows, profile),
        raw=raw,
        windows=windows,
        detected=sum(p.detected for p in parts),
        false_positives=sum(p.false_positives for p in parts),
    )


def best_threshold(
    files: Sequence[tuple[NDArray, Sequence[tuple[int, int]]]],
    profile: Profile,
    *,
    thresholds: Sequence[float] | None = None,
    probation: int | None = None,
    onsets: bool = False,
) -> tuple[float, CorpusScore]:
    """The threshold on anomaly scores that maximises the corpus score (NAB's optimiser, on a grid).

    With `onsets`, only the rows where the score crosses the threshold upwards are detections (for
    finely sampled scores that stay high for many rows, as an alert is raised once)."""
    grid = (
        list(thresholds)
        if thresholds is not None
        else [round(0.05 * k, 2) for k in range(1, 20)] + [0.96, 0.97, 0.98, 0.99, 0.995]
    )
    best: tuple[float, CorpusScore] | None = None
    for t in grid:

        def detect(s: NDArray, t: float = t) -> NDArray:
            hot = np.asarray(s) >= t
            if onsets:
                hot = hot & ~np.concatenate([[False], hot[:-1]])
            return hot

        result = score_corpus([(detect(s), w) for s, w in files], profile, probation=probation)
        if best is None or result.score > best[1].score:
            best = (t, result)
    assert best is not None
    return best


# --- NAB's own sweeper, vectorised -------------------------------------------------------------
#
# Faithful to NAB's `Sweeper` (nab/sweeper.py) and `Runner.normalize`: every row whose anomaly score
# is >= the threshold is a detection (no onset grouping); rows in the probationary period are not
# scored at all, so a window lying wholly inside it counts neither as found nor as missed; a row
# outside every window costs fp x sigmoid(distance past the previous window, in that window's width
# - 1), or the full fp before the first window; the threshold is optimised per profile over every
# distinct score of the pooled rows; normalised with null = -fn x (scorable windows) and perfect =
# tp x (all windows), as NAB's runner does. (`score_file` above is the onset-based variant that the
# scenario evaluation uses: it also charges windows inside the probationary period.)


@dataclass(frozen=True)
class SweptFile:
    """One file's scorable rows (after probation), each with its NAB weight and window id."""

    scores: NDArray  # anomaly score per scorable row
    weight: NDArray  # tp-weighted sigmoid inside a window, fp-weighted cost outside
    window: NDArray  # window index (in this file) or -1 outside every window
    n_windows: int  # all windows, for the perfect score
    scorable_windows: int  # windows with at least one scorable row, for the null score


def sweep_file(
    scores: NDArray, windows: Sequence[tuple[int, int]], profile: Profile, *, probation: int | None = None
) -> SweptFile:
    """NAB's `calcSweepScore` for one file: the weight each row would earn if it were detected."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    skip = probation_rows(n) if probation is None else probation
    rows = np.arange(n)
    wid = np.full(n, -1, dtype=np.int64)
    weight = np.empty(n)
    wins = sorted(windows)
    his = np.array([hi for _, hi in wins], dtype=np.int64)
    widths = np.array([hi - lo + 1 for lo, hi in wins], dtype=np.float64)
    for k, (lo, hi) in enumerate(wins):
        wid[lo : hi + 1] = k
    inside = wid >= 0
    if inside.any():
        kin = wid[inside]
        pos = -(his[kin] - rows[inside] + 1) / widths[kin]
        weight[inside] = _sigmoid_array(pos) * profile.tp / MAX_TP
    out = ~inside
    prev = np.searchsorted(his, rows[out], side="left") - 1  # last window ending before the row
    unweighted = np.full(int(out.sum()), -1.0)
    has_prev = prev >= 0
    if has_prev.any():
        p = prev[has_prev]
        pos = np.abs(his[p] - rows[out][has_prev]) / np.maximum(widths[p] - 1.0, 1.0)
        unweighted[has_prev] = _sigmoid_array(pos)
    weight[out] = unweighted * profile.fp
    keep = rows >= skip
    scorable = {int(w) for w in np.unique(wid[keep]) if w >= 0}
    return SweptFile(
        scores=s[keep],
        weight=weight[keep],
        window=wid[keep],
        n_windows=len(wins),
        scorable_windows=len(scorable),
    )


def _sigmoid_array(position: NDArray) -> NDArray:
    value = 2.0 / (1.0 + np.exp(np.clip(5.0 * position, -50.0, 50.0))) - 1.0
    return np.where(position > 3.0, -1.0, value)


@dataclass(frozen=True)
class Curve:
    """Raw corpus score as a step function of the threshold: detections are rows with score >= t.

    `thresholds` descend; `raw[j]` is the score at threshold `thresholds[j]`; `null` the score with
    no detection (threshold above every score)."""

    thresholds: NDArray
    raw: NDArray
    fp_rows: NDArray  # rows outside windows at or above each threshold
    null: float
    perfect: float
    scored_rows: int
    n_windows: int

    def at(self, threshold: float) -> tuple[float, int]:
        """(raw score, false-positive rows) with detections = scores >= threshold."""
        j = int(np.searchsorted(-self.thresholds, -threshold, side="right")) - 1
        if j < 0:
            return self.null, 0
        return float(self.raw[j]), int(self.fp_rows[j])

    def normalised(self, raw: float | NDArray) -> float | NDArray:
        if self.perfect == self.null:
            return 0.0 * raw
        return 100.0 * (raw - self.null) / (self.perfect - self.null)


def threshold_curve(files: Sequence[SweptFile], profile: Profile) -> Curve:
    """NAB's `calcScoreByThreshold` over the pooled rows of `files` (exact, every distinct score)."""
    scores = np.concatenate([f.scores for f in files]) if files else np.zeros(0)
    weight = np.concatenate([f.weight for f in files]) if files else np.zeros(0)
    offsets = np.cumsum([0] + [f.n_windows for f in files])
    window = (
        np.concatenate([np.where(f.window >= 0, f.window + offsets[i], -1) for i, f in enumerate(files)])
        if files
        else np.zeros(0, dtype=np.int64)
    )
    scorable = sum(f.scorable_windows for f in files)
    null = -profile.fn * scorable
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    w = weight[order]
    win = window[order]
    outside = win < 0
    gain = np.where(outside, w, 0.0)
    best: dict[int, float] = {}
    for j in np.flatnonzero(~outside):  # a window's part rises with its best detection so far
        k = int(win[j])
        old = best.get(k, -profile.fn)
        if w[j] > old:
            gain[j] = w[j] - old
            best[k] = float(w[j])
    raw = null + np.cumsum(gain)
    fps = np.cumsum(outside)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if len(s) else np.zeros(0, dtype=np.int64)
    return Curve(
        thresholds=s[last],
        raw=raw[last],
        fp_rows=fps[last],
        null=null,
        perfect=profile.tp * int(offsets[-1]),
        scored_rows=len(s),
        n_windows=int(offsets[-1]),
    )


def optimise(curve: Curve) -> tuple[float, float]:
    """(threshold, normalised score) maximising the corpus score; above every score if detecting
    nothing is best (NAB starts its sweep at 1.1)."""
    if len(curve.raw) == 0 or curve.raw.max() <= curve.null:
        return 1.1, float(curve.normalised(curve.null))
    j = int(np.argmax(curve.raw))
    return float(curve.thresholds[j]), float(curve.normalised(curve.raw[j]))
