"""From a scored tick to what the engine reports: alerts for the episodes it starts, per-site scores.

The engine's scoring step leaves a `ScoredTick` (host arrays, one row per stream); `tick_alerts`
turns its episode onsets into `Alert`s (and what the evaluation knows of each, `AlertInfo`), and
`site_scores` its scores into one `SiteScores` (the `scores` topic's record) per site. Pure
functions of their arguments: an alert id derives from (category, stream, tick), so the same
scores always raise the same ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from analytics.detectors.streams import StreamInfo
from beffroi.events import Alert, AlertCategory, Severity, derived_id
from beffroi.records import SiteScores

NDArray = np.ndarray[Any, Any]


@dataclass(frozen=True)
class AlertInfo:
    """What the engine knows about an alert beyond the `Alert` itself (for evaluation)."""

    stream: str
    model: str
    direction: int  # +1 value above its baseline, -1 below, 0 unknown (faults)
    score: float


@dataclass(frozen=True)
class ScoredTick:
    """One tick as the scoring step leaves it; arrays have one row per stream.

    `score`: incident score (0 where held); `raw`: the combined robust z; `fault`: worst fault
    severity, `fault_key[row]` the fault it came from; `incident_rows`/`fault_rows`: rows whose
    episode starts at this tick; `direction`: sign of the last value against its baseline (None
    when unknown); `last_value`/`last_message`: each stream's latest value and its message id.
    """

    end: float  # epoch seconds
    present: NDArray
    score: NDArray
    raw: NDArray
    fault: NDArray
    fault_key: Sequence[str]
    incident_rows: NDArray
    fault_rows: NDArray
    direction: NDArray | None
    last_value: NDArray
    last_message: NDArray


def aware(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def tick_alerts(tick: ScoredTick, streams: Sequence[StreamInfo]) -> tuple[list[Alert], dict[str, AlertInfo]]:
    """The alerts of the episodes that start at `tick` (incidents first), with their `AlertInfo`."""
    alerts: list[Alert] = []
    info: dict[str, AlertInfo] = {}
    for row in tick.incident_rows.tolist():
        stream = streams[row]
        score = float(tick.score[row])
        alert = incident_alert(tick, row, stream, score, float(tick.raw[row]))
        direction = 0 if tick.direction is None else int(tick.direction[row])
        alerts.append(alert)
        info[alert.alert_id] = AlertInfo(stream.key, stream.model, direction, score)
    for row in tick.fault_rows.tolist():
        stream = streams[row]
        severity = float(tick.fault[row])
        alert = fault_alert(tick, row, stream, tick.fault_key[row], severity)
        alerts.append(alert)
        info[alert.alert_id] = AlertInfo(stream.key, stream.model, 0, severity)
    return alerts, info


def incident_alert(tick: ScoredTick, row: int, stream: StreamInfo, score: float, raw: float) -> Alert:
    value = float(tick.last_value[row])
    message = str(tick.last_message[row])
    return Alert(
        alert_id=derived_id("detector", "incident", stream.key, repr(tick.end)),
        site_id=stream.site_id,
        zone_id=stream.zone_id,
        device_id=stream.device_id,
        rule="detector:anomaly",
        category=AlertCategory.INCIDENT,
        severity=Severity.HIGH if score >= 0.9 else Severity.MEDIUM,
        raised_at=aware(tick.end),
        title=f"Unusual {stream.field} at {stream.device_id}",
        detail=f"stream {stream.key}: anomaly score {score:.2f} (robust z {raw:.1f}), value {value:g}",
        value=None if math.isnan(value) else value,
        source_ids=(message,) if message else (),
    )


def fault_alert(tick: ScoredTick, row: int, stream: StreamInfo, key: str, severity: float) -> Alert:
    value = float(tick.last_value[row])
    message = str(tick.last_message[row])
    return Alert(
        alert_id=derived_id("detector", "fault", stream.key, repr(tick.end)),
        site_id=stream.site_id,
        zone_id=stream.zone_id,
        device_id=stream.device_id,
        rule=f"fault:{key}",
        category=AlertCategory.FAULT,
        severity=Severity.LOW,
        raised_at=aware(tick.end),
        title=f"Sensor fault ({key.replace('_', ' ')}) on {stream.device_id}",
        detail=f"stream {stream.key}: {key} severity {severity:.2f}, last value {value:g}",
        value=None if math.isnan(value) else value,
        source_ids=(message,) if message else (),
    )


def site_scores(tick: ScoredTick, streams: Sequence[StreamInfo]) -> list[SiteScores]:
    """Per site, the (score, fault severity) of every stream with a new value or an active fault."""
    when = aware(tick.end)
    by_site: dict[str, SiteScores] = {}
    for row in np.flatnonzero(tick.present | (tick.fault >= 1.0)).tolist():
        stream = streams[row]
        entry = by_site.setdefault(stream.site_id, SiteScores(stream.site_id, when, {}))
        entry.streams[stream.key] = (round(float(tick.score[row]), 6), round(float(tick.fault[row]), 4))
    return list(by_site.values())
