"""Streaming robust location/scale, vectorised over streams (the core of the baselines).

Location is an EW Huber estimate: each deviation is clipped at `clip` robust scales before it
moves the location (small `clip` approaches the streaming median). Scale is the EW mean of the
clipped absolute deviation, a MAD-like estimate; for Gaussian noise with clip=2 it is 0.781 sigma,
so `SIGMA_PER_SCALE` turns it into sigma units. Both start as running means (weight 1/count) and
settle at `alpha`, so short series warm up quickly.
"""

from __future__ import annotations

from analytics.detectors.backend import Array, Ops

SIGMA_PER_SCALE = 1.28
_UNCLIPPED = 1e30
COUNT_CAP = 1e6


def robust_z(
    x: Array,
    w: Array,
    *,
    loc: Array,
    scale: Array,
    count: Array,
    floor: Array | float,
    alpha: float,
    clip: float,
    min_count: float,
    ops: Ops,
    trend: Array | None = None,
    beta: float = 0.0,
    damping: float = 1.0,
    min_sd: Array | None = None,
) -> Array:
    """Signed robust z of `x` against (loc, scale), then update loc/scale/count in place.

    `w` is the presence mask (1.0 / 0.0); z is 0 where absent or before `min_count` values.
    With `trend` (updated in place too) the forecast is Holt's damped linear one,
    loc + damping * trend, so a steady ramp (a crowd arriving) is not an anomaly.
    """
    if trend is not None:
        trend *= 1.0 - w * (1.0 - damping)
        loc += w * trend
    d = x - loc
    s_eff = scale * SIGMA_PER_SCALE + floor
    if min_sd is not None:
        s_eff = ops.maximum(s_eff, min_sd)
    warm = ops.as_float(count >= min_count)
    z = d / s_eff * (warm * w)
    n1 = count + w
    a = ops.maximum(1.0 / ops.maximum(n1, 1.0), alpha) * w
    lim = s_eff * clip + (1.0 - warm) * _UNCLIPPED
    step = a * ops.clip(d, -lim, lim)
    loc += step
    if trend is not None:
        trend += step * (beta * ops.minimum(count, 1.0))
    a_s = ops.maximum(1.0 / ops.maximum(count, 1.0), alpha) * w * ops.minimum(count, 1.0)
    scale += a_s * (ops.minimum(ops.abs(d), lim) - scale)
    ops.assign(count, ops.minimum(n1, COUNT_CAP))
    return z
