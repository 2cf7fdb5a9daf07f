"""Escalation of alerts nobody acknowledged: settings (the escalator itself comes with the store's
support for it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from beffroi.events import Severity


def _default_after() -> dict[Severity, float]:
    return {Severity.CRITICAL: 60.0, Severity.HIGH: 300.0, Severity.MEDIUM: 900.0, Severity.LOW: 1800.0}


class EscalationSettings(BaseModel):
    """An open alert still new (nobody acknowledged it) `after_s[severity]` seconds after it was raised
    or last escalated is escalated: its severity goes up one level (critical stays critical) and the
    site's supervisors are flagged; once per level."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    after_s: dict[Severity, float] = Field(default_factory=_default_after)
    check_every_s: float = Field(default=5.0, gt=0)
