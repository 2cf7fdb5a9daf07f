"""Reference detectors scored beside `detect` on every corpus: each sees rows <= i only."""

from __future__ import annotations

from typing import Any

import numpy as np

NDArray = np.ndarray[Any, Any]


def rolling_zscore(values: NDArray, window: int = 200, scale: float = 4.0) -> NDArray:
    """The naive baseline: z = |x_i - mean| / sd over the previous `window` rows (fewer at the
    start, none before the third row), score = 1 - exp(-z / scale). Missing values score 0."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros(n)
    shift = float(x[ok][0])
    y = np.where(ok, x - shift, 0.0)
    c1 = np.concatenate([[0.0], np.cumsum(y)])
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    cn = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(n)
    lo = np.maximum(i - window, 0)
    count = (cn[i] - cn[lo]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c1[i] - c1[lo]) / count
        var = np.maximum((c2[i] - c2[lo]) / count - mean * mean, 0.0)
        z = np.abs(y - mean) / np.sqrt(var)
    z = np.where((count >= 2) & ok & np.isfinite(z), z, 0.0)
    z = np.where((count >= 2) & ok & (var == 0) & (np.abs(y - mean) > 0), np.inf, z)
    return 1.0 - np.exp(-z / scale)


def never(values: NDArray) -> NDArray:
    """Never detects: the 0 of the normalised score."""
    return np.zeros(len(values))
