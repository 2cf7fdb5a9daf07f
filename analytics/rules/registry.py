"""The explicit list of rule plugins: KEY -> (config model, rule class). Add a line per new rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field

from analytics.rules import crowd_density, density_trend, gate_flow, threshold
from analytics.rules.base import Rule
from analytics.rules.zone import ZoneRule

# The config union that settings validate; with a second plugin it becomes
# Annotated[ThresholdConfig | OtherConfig, Field(discriminator="type")].
RuleConfig = threshold.ThresholdConfig

RULES: Mapping[str, tuple[type[BaseModel], Callable[[Any], Rule]]] = {
    threshold.KEY: (threshold.ThresholdConfig, threshold.ThresholdRule),
}


def build_rule(config: Mapping[str, Any] | BaseModel) -> Rule:
    """A rule from its config; a config without `type` is a threshold rule (the settings' form)."""
    data = config.model_dump() if isinstance(config, BaseModel) else dict(config)
    key = data.setdefault("type", threshold.KEY)
    if key not in RULES:
        raise ValueError(f"unknown rule type {key!r} (known: {', '.join(sorted(RULES))})")
    config_model, rule_class = RULES[key]
    return rule_class(config_model.model_validate(data))


def build_rules(configs: Iterable[Mapping[str, Any] | BaseModel]) -> list[Rule]:
    return [build_rule(c) for c in configs]


# Zone rules: over the video pipeline's `ZoneState`s (topic zone_state), run by analytics/crowd_worker.py.
ZoneRuleConfig = Annotated[
    crowd_density.CrowdDensityConfig | density_trend.DensityTrendConfig | gate_flow.GateFlowConfig,
    Field(discriminator="type"),
]

ZONE_RULES: Mapping[str, tuple[type[BaseModel], Callable[[Any], ZoneRule]]] = {
    crowd_density.KEY: (crowd_density.CrowdDensityConfig, crowd_density.CrowdDensityRule),
    density_trend.KEY: (density_trend.DensityTrendConfig, density_trend.DensityTrendRule),
    gate_flow.KEY: (gate_flow.GateFlowConfig, gate_flow.GateFlowRule),
}


def build_zone_rule(config: Mapping[str, Any] | BaseModel) -> ZoneRule:
    """A zone rule from its config (`type` is required: there is no default zone rule)."""
    data = config.model_dump() if isinstance(config, BaseModel) else dict(config)
    key = str(data.get("type"))
    if key not in ZONE_RULES:
        raise ValueError(f"unknown zone rule type {key!r} (known: {', '.join(sorted(ZONE_RULES))})")
    config_model, rule_class = ZONE_RULES[key]
    return rule_class(config_model.model_validate(data))


def build_zone_rules(configs: Iterable[Mapping[str, Any] | BaseModel]) -> list[ZoneRule]:
    rules = [build_zone_rule(c) for c in configs]
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"zone rule names must be unique (alert ids derive from them): {names}")
    return rules
