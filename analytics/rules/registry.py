"""The explicit list of rule plugins: KEY -> (config model, rule class). Add a line per new rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from analytics.rules import threshold
from analytics.rules.base import Rule

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
