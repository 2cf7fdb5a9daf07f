"""Incidents of a site: its open incident alerts (not sensor faults) grouped by zone and time.

Alerts of one zone belong to one incident while each follows the previous one within `window_min`
minutes (a chain: a long-running situation stays one incident). Computed on read; nothing stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.access import ViewSite
from api.deps import StoreDep
from beffroi.events import Alert, AlertCategory, AlertStatus, Severity

router = APIRouter(tags=["incidents"])

MAX_ALERTS = 1000
_RANK = {severity: rank for rank, severity in enumerate(Severity)}


class Incident(BaseModel):
    zone_id: str | None
    severity: Severity
    """The worst severity of its alerts."""
    first_raised_at: datetime
    last_raised_at: datetime
    count: int
    statuses: dict[AlertStatus, int]
    alert_ids: list[str]
    """Newest first."""


class IncidentPage(BaseModel):
    site_id: str
    window_min: int
    count: int
    truncated: bool
    """True when the site has more than MAX_ALERTS open incident alerts: only the newest are grouped."""
    incidents: list[Incident]


def group_incidents(alerts: Sequence[Alert], window: timedelta) -> list[Incident]:
    """Alerts grouped by zone, then into chains whose successive alerts are at most `window` apart;
    newest incident first."""
    by_zone: dict[str | None, list[Alert]] = {}
    for alert in sorted(alerts, key=lambda a: (a.raised_at, a.alert_id)):
        by_zone.setdefault(alert.zone_id, []).append(alert)
    groups: list[list[Alert]] = []
    for chain in by_zone.values():
        current = [chain[0]]
        for alert in chain[1:]:
            if alert.raised_at - current[-1].raised_at > window:
                groups.append(current)
                current = []
            current.append(alert)
        groups.append(current)
    incidents = [_incident(group) for group in groups]
    incidents.sort(key=lambda i: (i.last_raised_at, i.alert_ids[0]), reverse=True)
    return incidents


def _incident(group: list[Alert]) -> Incident:
    statuses: dict[AlertStatus, int] = {}
    for alert in group:
        statuses[alert.status] = statuses.get(alert.status, 0) + 1
    return Incident(
        zone_id=group[0].zone_id,
        severity=max((a.severity for a in group), key=_RANK.__getitem__),
        first_raised_at=group[0].raised_at,
        last_raised_at=group[-1].raised_at,
        count=len(group),
        statuses=statuses,
        alert_ids=[a.alert_id for a in reversed(group)],
    )


@router.get("/sites/{site_id}/incidents")
def list_incidents(
    scope: ViewSite,
    store: StoreDep,
    window_min: Annotated[
        int, Query(ge=1, le=1440, description="largest gap, in minutes, between alerts of one incident")
    ] = 10,
) -> IncidentPage:
    """Open incident alerts of the site grouped by zone and time, newest incident first."""
    site_id = scope.site_id
    alerts = store.list_alerts(site_id, is_open=True, limit=MAX_ALERTS)
    incidents = group_incidents(
        [a for a in alerts if a.category is AlertCategory.INCIDENT], timedelta(minutes=window_min)
    )
    return IncidentPage(
        site_id=site_id,
        window_min=window_min,
        count=len(incidents),
        truncated=len(alerts) >= MAX_ALERTS,
        incidents=incidents,
    )
