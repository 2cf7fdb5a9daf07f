"""The explicit registry of person-detector backends: one plugin module per backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from analytics.vision.detectors.base import PersonDetector
from analytics.vision.detectors.plugins import hog, yolo

DetectorConfig = Annotated[hog.HogConfig | yolo.YoloConfig, Field(discriminator="type")]

PLUGINS: dict[str, tuple[type[BaseModel], Callable[[Any], PersonDetector]]] = {
    hog.KEY: (hog.HogConfig, hog.HogDetector),
    yolo.KEY: (yolo.YoloConfig, yolo.YoloDetector),
}

_ADAPTER: TypeAdapter[DetectorConfig] = TypeAdapter(DetectorConfig)


def detector_config(data: Mapping[str, Any]) -> DetectorConfig:
    """Validate a detector section (`type` picks the backend)."""
    return _ADAPTER.validate_python(dict(data))


def create_detector(config: DetectorConfig | Mapping[str, Any]) -> PersonDetector:
    cfg = detector_config(config) if isinstance(config, Mapping) else config
    _, factory = PLUGINS[cfg.type]
    return factory(cfg)
