"""What a scenario evaluation keeps for scoring: the labelled windows of the ground truth (incidents
and sensor faults) and the detector engine's scores and alerts per tick. `tower.evaluate.simulate`
fills one from a simulated run; `metrics.evaluate` scores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from analytics.detectors.alerts import AlertInfo
from analytics.detectors.base import Phase
from beffroi.events import Alert

NDArray = np.ndarray[Any, Any]

PHASE_OF_EVENT = {
    "gates_open": Phase.INGRESS,
    "kick_off": Phase.PLAY,
    "half_time": Phase.INTERVAL,
    "second_half": Phase.PLAY,
    "final_whistle": Phase.EGRESS,
    "egress": Phase.EGRESS,
    "ceremony_start": Phase.PLAY,
    "ceremony_end": Phase.EGRESS,
    "show_start": Phase.PLAY,
    "show_end": Phase.EGRESS,
}


@dataclass(frozen=True)
class Label:
    """A labelled window: an incident (of a site and zone) or a sensor fault (of a device)."""

    id: str
    category: str  # "incident" or "fault"
    type: str
    site: str
    zone: str | None
    devices: tuple[str, ...]
    start: datetime
    end: datetime


@dataclass
class EvalRun:
    scenario: str
    scale: float
    sites: list[str]
    devices: int
    tick_s: float
    ticks: NDArray  # tick end, epoch seconds
    site_score: NDArray  # [ticks, sites] largest incident score of the site's streams
    alerts: list[Alert] = field(default_factory=list)
    info: dict[str, AlertInfo] = field(default_factory=dict)
    incidents: list[Label] = field(default_factory=list)
    faults: list[Label] = field(default_factory=list)
    readings: int = 0
    wall_s: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


def utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)
