"""Threshold rule: alert when one value field of a device model crosses a fixed level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from beffroi.events import Alert, AlertCategory, Reading, Severity, derived_id

KEY: Final = "threshold"


class ThresholdConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["threshold"] = "threshold"
    name: str = Field(min_length=1)
    model: str
    field: str
    above: float | None = None
    below: float | None = None
    severity: Severity = Severity.HIGH
    category: AlertCategory = AlertCategory.INCIDENT
    hold_s: float = Field(
        default=300.0,
        ge=0,
        description="at most one alert per device and rule per window of this length (clock-aligned); "
        "0 alerts on every reading",
    )

    @model_validator(mode="after")
    def _bound(self) -> ThresholdConfig:
        if self.above is None and self.below is None:
            raise ValueError(f"rule {self.name!r} needs `above` or `below`")
        return self


class ThresholdRule:
    """One alert per reading of `config.model` whose `config.field` is above/below the level."""

    def __init__(self, config: ThresholdConfig) -> None:
        self.config = config
        self.name = config.name

    def crossed(self, value: float) -> bool:
        c = self.config
        return (c.above is not None and value > c.above) or (c.below is not None and value < c.below)

    def alert_id(self, reading: Reading) -> str:
        """Derived from the device and the hold window, so a sensor that stays over the level raises
        one alert per window, and a redelivered reading never raises a second one."""
        if self.config.hold_s == 0:
            return derived_id(self.config.name, reading.message_id)
        window = int(reading.ts.timestamp() // self.config.hold_s)
        return derived_id(self.config.name, reading.device_id, str(window))

    def evaluate(self, readings: Sequence[Reading]) -> list[Alert]:
        c = self.config
        alerts: list[Alert] = []
        for r in readings:
            if r.model != c.model:
                continue
            value = r.value.get(c.field)
            if value is None or not self.crossed(value):
                continue
            level = f"above {c.above:g}" if c.above is not None and value > c.above else f"below {c.below:g}"
            where = f"zone {r.zone_id}" if r.zone_id else f"site {r.site_id}"
            alerts.append(
                Alert(
                    alert_id=self.alert_id(r),
                    site_id=r.site_id,
                    zone_id=r.zone_id,
                    device_id=r.device_id,
                    rule=c.name,
                    category=c.category,
                    severity=c.severity,
                    raised_at=r.ts,
                    title=f"{c.name}: {c.field} {value:g} {level}",
                    detail=f"device {r.device_id} in {where} reported {c.field}={value:g} ({r.model})",
                    value=value,
                    source_ids=(r.message_id,),
                )
            )
        return alerts
