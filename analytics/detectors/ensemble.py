"""The detector core: an ensemble of online forecasters scored by prediction error, batched over streams.

Per stream, at every row (row i sees rows <= i only):
- forecasters: the last value, EW levels at a few spans, a linear extrapolation of the last two
  values and, where the caller supplies one, a seasonal forecast (`ForecastEnsemble` finds the
  period from the stream itself: autocorrelation of its recent past, the median of the values one,
  two and three periods ago);
- each forecaster's absolute error is divided by its own running mean absolute error (learned from
  clipped errors, so anomalies barely move it); the forecaster with the smallest running error is
  the stream's model, and its z the first view;
- a second view: how far the value is out of the stream's recent distribution (EW mean and sd over
  `long_span` rows), for anomalies that are only large, not unpredictable;
- each view is calibrated by its rarity on this stream: -log10 of how often the stream has already
  had a z that high (counted on a ladder of levels, with a Gaussian prior worth `prior_rows` rows),
  never rarer than the Gaussian tail; the larger of the two rarities scores;
- a novelty gate: a row scores only when its rarity exceeds the recent peak (which decays), so a
  level shift or a burst raises one detection, not one per row;
- a count prior: on count streams (people, vehicles, events: non-negative integers) a detection
  gets `count_bonus` decades more, i.e. a smaller surprise is worth raising there (on the dev
  split the labelled events of count streams are denser and milder than elsewhere).

`core_step` is written once against the `Ops` seam (NumPy or PyTorch, any float dtype) over a state
dict of (n,) and (n, cols) arrays; the `ensemble` detector plugin and `ForecastEnsemble` (what
`beffroi detect` runs) both call it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array, Ops, make_ops
from analytics.detectors.base import StateSpec

NDArray = np.ndarray[Any, Any]
LEVELS = tuple(2.0 ** (k / 2.0) for k in range(2, 31))  # z ladder for the tail counts: 2 .. 32768
LN10 = math.log(10.0)
_EDGES = (0.0, *LEVELS, math.inf)  # z reaches k levels when _EDGES[k] <= z < _EDGES[k + 1]


class EnsembleConfig(BaseModel):
    """The one parameter set used for every stream."""

    model_config = ConfigDict(extra="forbid")

    level_spans: tuple[float, ...] = Field(
        default=(4.0, 32.0), description="EW spans of the level forecasters"
    )
    error_span: float = Field(default=400.0, ge=2, description="EW span of each forecaster's mean abs error")
    error_clip: float = Field(default=4.0, gt=0, description="errors clipped at this many MAEs when learning")
    min_scale_rel: float = Field(default=1e-3, ge=0, description="MAE floor relative to the mean abs level")
    long_span: float = Field(default=500.0, ge=2, description="EW span of the recent-distribution view")
    long_clip: float = Field(
        default=0.0, ge=0, description="clip (in sd) of the view's variance updates; 0 = none"
    )
    prior_rows: float = Field(default=3000.0, ge=0, description="weight in rows of the Gaussian tail prior")
    record_bonus: float = Field(
        default=0.25,
        ge=0,
        description="decades added per level (x sqrt 2) by which z beats the stream's record, beyond "
        "the first: the empirical tail cannot tell a new record from a far larger one",
    )
    peak_decay: float = Field(default=0.98, gt=0, lt=1, description="per-row decay of the recent rarity peak")
    warmup: int = Field(default=30, ge=2, description="rows scored 0 while a stream learns")
    count_bonus: float = Field(
        default=1.0, ge=0, description="decades added to a detection's rarity on count streams"
    )
    rarity_scale: float = Field(
        default=4.0, gt=0, description="score = 1 - exp(-r / rarity_scale), r = -log10 of the tail frequency"
    )
    season: bool = Field(default=True, description="ForecastEnsemble: add a seasonal forecaster")
    history: int = Field(default=3072, ge=16, description="rows kept per stream for the period search")
    period_every: int = Field(default=256, ge=1, description="rows between period searches")
    min_period: int = Field(default=4, ge=2)
    min_acf: float = Field(default=0.3, description="autocorrelation a period needs to be used")


def n_forecasters(config: EnsembleConfig) -> int:
    return len(config.level_spans) + 3  # last value, levels, extrapolation, seasonal


def state_spec(config: EnsembleConfig) -> dict[str, StateSpec]:
    """The per-stream state of the core (one row per stream)."""
    m = n_forecasters(config)
    v = 2  # views
    return {
        "count": StateSpec(),
        "last": StateSpec(),
        "prev": StateSpec(),
        "levels": StateSpec(cols=len(config.level_spans)),
        "mae": StateSpec(cols=m),
        "mae_n": StateSpec(cols=m),
        "abs_level": StateSpec(),
        "long_mean": StateSpec(),
        "long_var": StateSpec(),
        "tail": StateSpec(cols=v * len(LEVELS)),
        "seen": StateSpec(cols=v),
        "record": StateSpec(cols=v),
        "peak": StateSpec(),
    }


def core_step(
    ops: Ops,
    st: dict[str, Array],
    x: Array,
    present: Array,
    config: EnsembleConfig,
    seasonal: Array | None = None,
    seasonal_ok: Array | None = None,
    counts: Array | None = None,
) -> Array:
    """Score one row of every stream and learn from it; returns the gated rarity r >= 0 (decades).

    `x`: finite values (anything where absent); `present`: 1.0 where the stream has a new value;
    `seasonal`/`seasonal_ok`: an optional seasonal forecast and 1.0 where it exists; `counts`: 1.0 on
    count streams (the count prior), None for none."""
    c = config
    k = len(c.level_spans)
    started = ops.as_float(st["count"] > 0) * present
    last, prev = st["last"], st["prev"]
    forecasts = [last] + [st["levels"][:, j] for j in range(k)] + [last * 2.0 - prev]
    usable = [started] * (k + 1) + [ops.as_float(st["count"] > 1) * present]
    if seasonal is not None and seasonal_ok is not None:
        forecasts.append(ops.where(seasonal_ok > 0, seasonal, 0.0))
        usable.append(seasonal_ok * started)
    floor = st["abs_level"] * c.min_scale_rel + 1e-12
    a_err = 2.0 / (c.error_span + 1.0)
    best_mae = ops.full(x.shape, math.inf)
    z = ops.zeros(*x.shape)
    for j, (f, u) in enumerate(zip(forecasts, usable, strict=True)):
        mae, mae_n = st["mae"][:, j], st["mae_n"][:, j]
        scale = ops.maximum(mae, floor)
        err = ops.abs(x - f) * u
        trusted = ops.as_float(mae_n >= 5.0) * u
        better = (trusted > 0) & (mae < best_mae)
        best_mae = ops.where(better, mae, best_mae)
        z = ops.where(better, err / scale, z)
        clipped = ops.where(trusted > 0, ops.minimum(err, scale * c.error_clip), err)
        rate = ops.maximum(1.0 / (mae_n + 1.0), a_err) * u
        st["mae"][:, j] = mae + rate * (clipped - mae)
        st["mae_n"][:, j] = mae_n + u
    counted = ops.as_float(st["count"] >= c.warmup) * started
    z = z * counted
    # the recent-distribution view
    dev = x - st["long_mean"]
    sd = ops.sqrt(st["long_var"])
    z_long = ops.abs(dev) / ops.maximum(sd, floor) * counted
    a = ops.maximum(1.0 / (st["count"] + 1.0), 2.0 / (c.long_span + 1.0))
    first = present - started
    st["long_mean"] += started * a * dev + first * (x - st["long_mean"])
    dev2 = dev * dev
    if c.long_clip > 0:
        dev2 = ops.where(counted > 0, ops.minimum(dev2, st["long_var"] * c.long_clip**2), dev2)
    st["long_var"] += started * ((1.0 - a) * (st["long_var"] + a * dev2) - st["long_var"])
    # levels, last values, counts
    for j, span in enumerate(c.level_spans):
        lv = st["levels"][:, j]
        st["levels"][:, j] = lv + started * (2.0 / (span + 1.0)) * (x - lv) + first * (x - lv)
    st["abs_level"] += present * ops.where(
        started > 0, (ops.abs(x) - st["abs_level"]) * 0.01, ops.abs(x) - st["abs_level"]
    )
    st["prev"] += present * (last - prev)
    st["last"] += present * (x - last)
    st["count"] += present
    r = ops.maximum(_rarity(ops, st, z, counted, 0, c), _rarity(ops, st, z_long, counted, 1, c))
    novel = ops.as_float(r > st["peak"])
    st["peak"] = ops.maximum(st["peak"] * c.peak_decay, r)
    r = r * novel * present
    if counts is not None and c.count_bonus > 0:
        r = r + ops.as_float(r > 0) * counts * c.count_bonus
    return r


def _rarity(ops: Ops, st: dict[str, Array], z: Array, counted: Array, view: int, c: EnsembleConfig) -> Array:
    """-log10 of this stream's frequency of a z this high (Gaussian prior), capped by the Gaussian.

    The number of ladder levels z reaches comes from its logarithm (corrected against the exact
    edges); the count there is gathered by index, and the counts below it raised in one pass."""
    nl = len(LEVELS)
    tail_all = st["tail"]
    lo = view * nl
    seen = st["seen"][:, view]
    record = st["record"][:, view]  # levels reached by the stream's highest counted z so far
    edges = ops.asarray(_EDGES)
    q = ops.clip(ops.floor(ops.log(ops.maximum(z, 1e-30)) * (2.0 / math.log(2.0))) - 1.0, 0.0, nl)
    qi = ops.to_index(q)
    q = q - ops.as_float(z < ops.take(edges, qi)) + ops.as_float(z >= ops.take(edges, qi + 1))
    reached = ops.clip(q, 0.0, nl)
    n, cols = tail_all.shape[0], tail_all.shape[1]
    index = ops.arange(n) * cols + (lo - 1) + ops.to_index(ops.maximum(reached, 1.0))
    freq = ops.where(reached > 0, ops.take(tail_all, index), seen)
    gauss = z * z / (2.0 * LN10)
    rarity = (
        -ops.log((freq + ops.exp(gauss * -LN10) * c.prior_rows + 0.5) / (seen + c.prior_rows + 1.0)) / LN10
    )
    rarity += ops.maximum(reached - record - 1.0, 0.0) * c.record_bonus
    hit = reached * counted
    tail_all[:, lo : lo + nl] += ops.as_float(ops.asarray(range(nl))[None, :] < hit[:, None])
    st["seen"][:, view] = seen + counted
    st["record"][:, view] = ops.maximum(record, hit)
    return ops.maximum(ops.minimum(rarity, gauss), 0.0)


class ForecastEnsemble:
    """The core over `n` streams in float64 NumPy, with a seasonal forecaster whose period each
    stream finds in its own past; `step(values)` scores one row of every stream (NaN = no value).
    A stream is a count stream while every value it has had is a non-negative integer."""

    def __init__(self, n: int, config: EnsembleConfig | None = None) -> None:
        self.config = c = config or EnsembleConfig()
        self.n = n
        self.ops = make_ops("numpy", dtype="float64")
        self.state = {
            name: self.ops.full((n, spec.cols) if spec.cols else (n,), spec.fill)
            for name, spec in state_spec(c).items()
        }
        self.buf = np.full((c.history, n), np.nan)
        self.pos = 0  # ring position (all streams step together)
        self.period = np.zeros(n, dtype=np.int64)
        self.rows = 0
        self.counts = np.ones(n)  # 1.0 while every value of the stream is a non-negative integer

    def _lag(self, lag: NDArray) -> NDArray:
        """The value `lag` rows before this one (NaN where unknown)."""
        h = self.config.history
        out = self.buf[(self.pos - lag) % h, np.arange(self.n)]
        return np.where((lag >= 1) & (lag < h), out, np.nan)

    def step(self, values: NDArray) -> NDArray:
        c = self.config
        x = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(x)
        seasonal = seasonal_ok = None
        if c.season:
            p = self.period
            seasonal = _nan_median3(np.stack([self._lag(p * (j + 1)) for j in range(3)]))
            seasonal_ok = (np.isfinite(seasonal) & (p > 0)).astype(np.float64)
        whole = ~ok | ((x >= 0) & (x == np.round(x)))
        self.counts *= whole
        r = core_step(
            self.ops,
            self.state,
            np.where(ok, x, 0.0),
            ok.astype(np.float64),
            c,
            seasonal,
            seasonal_ok,
            self.counts,
        )
        self.buf[self.pos] = np.where(ok, x, np.nan)
        self.pos = (self.pos + 1) % c.history
        self.rows += 1
        if c.season and self.rows % c.period_every == 0:
            self.period = self._find_periods()
        return np.asarray(1.0 - np.exp(-r / c.rarity_scale))

    def _find_periods(self) -> NDArray:
        c = self.config
        order = (np.arange(c.history) + self.pos) % c.history  # oldest first
        series = self.buf[order]
        periods = np.zeros(self.n, dtype=np.int64)
        for j in range(self.n):
            y = series[:, j]
            y = y[np.isfinite(y)]
            if len(y) >= 4 * c.min_period:
                periods[j] = dominant_period(y, c.min_period, c.min_acf)
        return periods


def _nan_median3(a: NDArray) -> NDArray:
    """Median over axis 0 of 3 rows, ignoring NaN; NaN where every row is NaN."""
    s = np.sort(a, axis=0)  # NaN last
    k = np.sum(np.isfinite(a), axis=0)
    out: NDArray = np.where(k == 3, s[1], np.where(k == 2, 0.5 * (s[0] + s[1]), s[0]))
    return out


def dominant_period(y: NDArray, min_period: int, min_acf: float) -> int:
    """The lag (>= min_period, <= len/3) of the highest local autocorrelation peak above min_acf, else 0."""
    y = y - y.mean()
    n = len(y)
    size = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(y, size)
    acf = np.fft.irfft(spec * np.conj(spec), size)[: n // 3 + 1]
    if acf[0] <= 0 or len(acf) < min_period + 2:
        return 0
    acf = acf / acf[0] * n / (n - np.arange(len(acf)))  # unbiased
    lo = min_period
    inner = acf[lo:-1]
    peaks = np.flatnonzero((inner > acf[lo - 1 : -2]) & (inner >= acf[lo + 1 :])) + lo
    peaks = peaks[acf[peaks] >= min_acf]
    if len(peaks) == 0:
        return 0
    return int(peaks[np.argmax(acf[peaks])])


def score_streams(values: list[NDArray], config: EnsembleConfig | None = None) -> list[NDArray]:
    """Score several series as fresh streams stepping together (each sees its own rows <= i)."""
    n = len(values)
    length = max((len(v) for v in values), default=0)
    grid = np.full((length, n), np.nan)
    for j, v in enumerate(values):
        grid[: len(v), j] = v
    core = ForecastEnsemble(n, config)
    out = np.zeros((length, n))
    for i in range(length):
        out[i] = core.step(grid[i])
    return [out[: len(v), j] for j, v in enumerate(values)]
