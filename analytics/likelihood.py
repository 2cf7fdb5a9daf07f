"""Anomaly likelihood, Numenta-style and vectorised: how unusual is this raw score for this stream?

Per stream: the raw score is compressed (log1p), averaged over a short EW window, and compared
with the long-run distribution of that same short average (EW mean and variance over a long
window, updated with winsorised values so anomalies barely move it). The Gaussian tail Q(z) of
the standardised short average gives `likelihood = 1 - Q(z)` in [0, 1] (about uniform on normal
data) and a log-scaled `score = -log10(Q) / decades` in [0, 1] that keeps resolving the far tail
(where float32 likelihoods round to 1). Q uses the Borjesson-Sundberg approximation (relative
error < 0.3 % for every z), written with the array seam so both backends agree.

Refinements for real sensors: the short average is fed the smaller of the last two values (a
single knock does not move it, a sustained change does); the score also judges each value on its
own (`instant`); and both tails are floored by how often this stream has already had excursions
that high (`tail_levels`), so a stream with heavy tails stops alarming on its usual bursts.
With peer groups (`bind_groups`: same site, kind and field) the floor of a single value is the
larger of the stream's own rate and its group's mean rate: the first knock on one fence is no
news when the site's other fences are knocked every hour. Sustained excursions (the short
average) are judged on the stream's own history only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array, Ops

_A = 0.339
_B = 5.510
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LN10 = math.log(10.0)
_LN_HALF = math.log(0.5)
_TAIL_STATE = ("ifreq", "iabove", "sfreq", "sabove")


class LikelihoodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    short_window: float = Field(default=4.0, ge=1, description="EW span of the short average of raw scores")
    long_window: float = Field(default=2000.0, ge=10, description="EW span of the score distribution")
    min_count: int = Field(default=50, ge=2, description="scores seen before the likelihood is trusted")
    winsor: float = Field(default=4.0, gt=0, description="clip for updates of the long-run statistics, in sd")
    decades: float = Field(default=10.0, gt=0, description="-log10 tail probability that maps to score 1")
    min_sd: float = Field(default=0.01, gt=0, description="floor of the long-run sd (log1p raw units)")
    instant: bool = Field(
        default=True,
        description="the score also reacts at once to one extreme raw score (not only its average)",
    )
    settle_short: bool = Field(
        default=True,
        description="feed the short average the smaller of the last two values (one knock does not move it)",
    )
    floor_short: bool = Field(
        default=True, description="floor the short average's tail too, not only one value's"
    )
    tail_levels: tuple[float, ...] = Field(
        default=(6.0, 24.0),
        description="raw-score levels whose excursions each stream counts: a score is never rarer than "
        "how often this stream has had excursions above the highest level it exceeds (heavy tails)",
    )


def log_tail(z: Array, ops: Ops) -> Array:
    """log Q(z) for z >= 0 (Borjesson-Sundberg)."""
    denom = z * (1.0 - _A) + ops.sqrt(z * z + _B) * _A
    return z * z * -0.5 - ops.log(denom) - _LOG_SQRT_2PI


def gaussian_tail(z: Array, ops: Ops) -> tuple[Array, Array]:
    """(Q(z), log Q(max(z, 0))) for any z, vectorised; the log keeps resolving the far tail."""
    neg = ops.as_float(z < 0)
    lq = log_tail(ops.abs(z), ops)
    q_abs = ops.exp(lq)
    q = q_abs + neg * (1.0 - 2.0 * q_abs)
    return q, lq + neg * (_LN_HALF - lq)


@dataclass(frozen=True)
class LikelihoodOut:
    likelihood: Array
    score: Array


class AnomalyLikelihood:
    """Per-stream likelihood state: short average, long-run mean and variance, count."""

    def __init__(self, config: LikelihoodConfig, *, ops: Ops, n: int) -> None:
        self.config = config
        self.ops = ops
        self.n = n
        self.STATE = (
            "short",
            "prev",
            "mean",
            "var",
            "count",
            "imean",
            "ivar",
            *(f"{kind}{k}" for kind in _TAIL_STATE for k in range(len(config.tail_levels))),
        )
        self._short_levels = tuple(math.log1p(level) for level in config.tail_levels)
        self.state: dict[str, Array] = {name: ops.zeros(n) for name in self.STATE}
        self._a_short = 2.0 / (config.short_window + 1.0)
        self._a_long = 1.0 / config.long_window
        self._segment: Array | None = None
        self._groups = 0
        self._group_size: Array | None = None

    def bind_groups(self, group: np.ndarray[tuple[int], np.dtype[np.int64]]) -> None:
        """Peer group of each stream (-1: none): tail rates are pooled within a group."""
        grouped = group >= 0
        if not grouped.any():
            self._segment = self._group_size = None
            return
        n_groups = int(group.max()) + 1
        segment = np.where(grouped, group, np.arange(len(group)) + n_groups)
        self._groups = n_groups + len(group)
        self._segment = self.ops.asindex(segment)
        self._group_size = self.ops.asarray(
            np.bincount(segment, minlength=self._groups)[segment].astype(float)
        )

    def update(self, raw: Array, present: Array) -> LikelihoodOut:
        """Fold this tick's raw scores in (where present) and return likelihood and score."""
        ops, st, cfg = self.ops, self.state, self.config
        v = ops.log(1.0 + raw)
        count = st["count"]
        first = 1.0 - ops.minimum(count, 1.0)
        # the short average takes the smaller of the last two values: one knock does not move it
        settled = ops.minimum(v, st["prev"] + first * 1e30) if cfg.settle_short else v
        st["prev"] += present * (v - st["prev"])
        st["short"] += present * ops.maximum(first, self._a_short) * (settled - st["short"])
        warm = ops.as_float(count >= cfg.min_count)
        a = ops.maximum(1.0 / ops.maximum(count + present, 1.0), self._a_long) * present
        z = self._standardise(st["short"], st["mean"], st["var"], warm, a)
        q, log_q = gaussian_tail(z, ops)
        if cfg.tail_levels and cfg.floor_short:
            log_q = ops.maximum(log_q, self._observed_tail(st["short"], present, a, "s", self._short_levels))
        likelihood = (1.0 - q) * warm + 0.5 * (1.0 - warm)
        if cfg.instant:
            zi = self._standardise(v, st["imean"], st["ivar"], warm, a)
            log_qi = log_tail(ops.maximum(zi, 0.0), ops)
            if cfg.tail_levels:
                log_qi = ops.maximum(log_qi, self._observed_tail(raw, present, a, "i", cfg.tail_levels))
            log_q = ops.minimum(log_q, log_qi)
        score = ops.clip(log_q * (-1.0 / (_LN10 * cfg.decades)), 0.0, 1.0) * warm
        ops.assign(count, ops.minimum(count + present, 1e6))
        return LikelihoodOut(likelihood=likelihood, score=score)

    def _observed_tail(
        self, v: Array, present: Array, a: Array, path: str, levels: tuple[float, ...]
    ) -> Array:
        """log of how often this stream's statistic has had an excursion above the highest level
        `v` exceeds now: a floor under its tail probability, for streams with heavy tails (a fence
        knocked now and then, a gate with bursty arrivals). An excursion is counted when it ends,
        so the first one of its kind is judged on the Gaussian tail alone, however long it lasts."""
        ops, st = self.ops, self.state
        freq = ops.full((self.n,), 1.0)
        for k, level in enumerate(levels):
            over = ops.as_float(v > level)
            rate, above = st[f"{path}freq{k}"], st[f"{path}above{k}"]
            seen = rate
            if path == "i" and self._segment is not None and self._group_size is not None:
                pooled = ops.take(ops.segment_sum(rate, self._segment, self._groups), self._segment)
                seen = ops.maximum(rate, pooled / self._group_size)
            freq = freq + over * (seen - freq)
            rate += a * (above - above * over - rate)
            above += present * (over - above)
        return ops.log(ops.maximum(freq, 1e-30))

    def _standardise(self, v: Array, mean: Array, var: Array, warm: Array, a: Array) -> Array:
        """z of `v` under the running (mean, var) (0 before warm-up), which then learn `v`
        (winsorised), in place."""
        ops, cfg = self.ops, self.config
        sd = ops.sqrt(var) + cfg.min_sd
        d = v - mean
        lim = sd * cfg.winsor + (1.0 - warm) * 1e30
        dc = ops.clip(d, -lim, lim)
        mean += a * dc
        var += a * ((1.0 - a) * dc * dc - var)
        return d / sd * warm

    def grow(self, n: int) -> None:
        extra = n - self.n
        if extra > 0:
            for name in self.STATE:
                self.state[name] = self.ops.concat([self.state[name], self.ops.zeros(extra)])
        self.n = n

    def export_state(self) -> dict[str, np.ndarray[tuple[int], np.dtype[np.floating]]]:
        return {name: self.ops.to_numpy(a).copy() for name, a in self.state.items()}

    def load_state(self, arrays: dict[str, np.ndarray[tuple[int], np.dtype[np.floating]]]) -> None:
        for name in self.STATE:
            a = np.asarray(arrays[name])
            if a.shape != (self.n,):
                raise ValueError(
                    f"likelihood: state array {name!r} has shape {a.shape}, expected {(self.n,)}"
                )
            self.state[name] = self.ops.asarray(a)

    def bytes_per_stream(self) -> int:
        return len(self.STATE) * (8 if self.ops.dtype_name == "float64" else 4)
