"""The explicit list of detector plugins and the discriminated-union config type for settings.

Adding a detector: a new module in `plugins/` with `KEY`, `<Name>Config` (`type: Literal[KEY]`)
and the class, then one entry in `DETECTORS` and one member in `DetectorConfig`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from analytics.detectors.backend import Ops
from analytics.detectors.base import Detector, StreamMeta
from analytics.detectors.plugins import (
    drift,
    ensemble,
    forecast,
    multiscale,
    noise_burst,
    out_of_range,
    phase_baseline,
    stale,
    stuck,
)

DETECTORS: dict[str, tuple[type[BaseModel], type[Detector]]] = {
    phase_baseline.KEY: (phase_baseline.PhaseBaselineConfig, phase_baseline.PhaseBaseline),
    multiscale.KEY: (multiscale.MultiscaleConfig, multiscale.Multiscale),
    forecast.KEY: (forecast.ForecastConfig, forecast.Forecast),
    stuck.KEY: (stuck.StuckConfig, stuck.Stuck),
    stale.KEY: (stale.StaleConfig, stale.Stale),
    drift.KEY: (drift.DriftConfig, drift.Drift),
    out_of_range.KEY: (out_of_range.OutOfRangeConfig, out_of_range.OutOfRange),
    noise_burst.KEY: (noise_burst.NoiseBurstConfig, noise_burst.NoiseBurst),
    ensemble.KEY: (ensemble.EnsembleDetectorConfig, ensemble.EnsembleDetector),
}

DetectorConfig = Annotated[
    phase_baseline.PhaseBaselineConfig
    | multiscale.MultiscaleConfig
    | forecast.ForecastConfig
    | stuck.StuckConfig
    | stale.StaleConfig
    | drift.DriftConfig
    | out_of_range.OutOfRangeConfig
    | noise_burst.NoiseBurstConfig
    | ensemble.EnsembleDetectorConfig,
    Field(discriminator="type"),
]


def build_detector(config: BaseModel, *, ops: Ops, meta: StreamMeta) -> Detector:
    key = getattr(config, "type", None)
    if key not in DETECTORS:
        raise ValueError(f"unknown detector type {key!r} (known: {', '.join(DETECTORS)})")
    config_cls, detector_cls = DETECTORS[key]
    if not isinstance(config, config_cls):
        raise TypeError(f"detector {key!r} needs a {config_cls.__name__}, got {type(config).__name__}")
    return detector_cls(config, ops=ops, meta=meta)
