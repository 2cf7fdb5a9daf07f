"""The analytics component's sections of the settings tree (`worker`, `detectors`, `crowd`), and what
its workers read of the tree."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field

from analytics.detectors.engine import EngineConfig
from analytics.rules.crowd_density import CrowdDensityConfig
from analytics.rules.density_trend import DensityTrendConfig
from analytics.rules.gate_flow import GateFlowConfig
from analytics.rules.registry import RuleConfig, ZoneRuleConfig
from analytics.rules.threshold import ThresholdConfig
from beffroi.settings import PlatformSettings, Section


def _default_rules() -> list[RuleConfig]:
    def rule(name: str, model: str, field: str, above: float, severity: str = "high") -> RuleConfig:
        return ThresholdConfig.model_validate(
            {"name": name, "model": model, "field": field, "above": above, "severity": severity}
        )

    return [
        rule("panic-button", "beffroi.panic_button.v1", "pressed", 0.5, "critical"),
        rule("smoke-pm25", "beffroi.air_quality.v1", "pm25", 150.0),
        rule("co-level", "beffroi.air_quality.v1", "co", 50.0),
        rule("sound-spike", "beffroi.acoustic.v1", "dba", 110.0, "medium"),
        rule("fence-vibration", "beffroi.perimeter.v1", "vibration", 2.0),
        rule("crowd-density", "beffroi.camera.v1", "density", 5.0, "critical"),
    ]


class WorkerSettings(Section):
    group: str = "beffroi-analytics"
    batch_size: int = Field(default=2000, ge=1)
    poll_timeout_s: float = Field(default=0.5, gt=0)
    rules: list[RuleConfig] = Field(default_factory=_default_rules)


class DetectorsSettings(Section):
    """The streaming anomaly detectors (analytics/detect_worker.py), a consumer group of their own."""

    enabled: bool = True
    group: str = "beffroi-detectors"
    snapshot_path: Path | None = Field(
        default=Path("var/detectors.snapshot"), description="state snapshot, restored at start"
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)


def _default_zone_rules() -> list[ZoneRuleConfig]:
    return [CrowdDensityConfig(), DensityTrendConfig(), GateFlowConfig()]


class CrowdSettings(Section):
    """Crowd-safety rules over the video pipeline's zone states (analytics/crowd_worker.py), a
    consumer group of their own on the zone_state topic: a backlog of readings never delays them."""

    enabled: bool = True
    group: str = "beffroi-crowd"
    batch_size: int = Field(default=2000, ge=1)
    poll_timeout_s: float = Field(default=0.5, gt=0)
    resume_s: float = Field(
        default=900.0,
        ge=0,
        description="after a restart, an open alert of the same rule, subject and level raised this "
        "recently is taken as the episode in progress (no second alert)",
    )
    rules: list[ZoneRuleConfig] = Field(default_factory=_default_zone_rules)


class AnalyticsPlatformSettings(PlatformSettings, Protocol):
    """The settings tree as the workers read it (tower.settings.Settings provides it)."""

    @property
    def worker(self) -> WorkerSettings: ...

    @property
    def detectors(self) -> DetectorsSettings: ...

    @property
    def crowd(self) -> CrowdSettings: ...
