"""A site's recorded past for the map's timeline: GET /sites/{id}/history?from=&to= gives the zone
states (density, level of service) and the alerts of the window, each alert with the status changes
operators made (so that the page shows it as it was at any moment of the window)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Self

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from api.access import ViewSite
from api.deps import StoreDep
from api.timestamps import Timestamp
from beffroi.events import Alert, AlertAction, AlertStatus
from beffroi.records import LevelOfService

router = APIRouter(tags=["sites"])

MAX_SPAN = timedelta(hours=24)
LOOKBACK = timedelta(minutes=5)
"""Zone states this long before `from` come too: each zone's state as the window opens."""
MAX_ZONE_STATES = 50_000
MAX_ALERTS = 5_000


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Timestamp = Field(alias="from", description="window start (ISO 8601 with zone)")
    until: Timestamp = Field(alias="to", description="window end, excluded (ISO 8601 with zone)")

    @model_validator(mode="after")
    def _a_window(self) -> Self:
        if self.until <= self.since:
            raise ValueError("`to` must be after `from`")
        if self.until - self.since > MAX_SPAN:
            raise ValueError(f"a window spans at most {MAX_SPAN.total_seconds() / 3600:g} h")
        return self


class ZoneSample(BaseModel):
    """One recorded zone state, as the map colours it."""

    zone_id: str
    ts: datetime
    density: float = Field(description="persons/m²")
    los: LevelOfService
    count: float
    confidence: float


class StatusChange(BaseModel):
    at: datetime
    action: AlertAction
    operator: str
    status: AlertStatus = Field(description="the alert's status after the change")


class HistoryAlert(BaseModel):
    """An alert raised in the window; `status` is today's, `changes` say when it became so."""

    alert: Alert
    changes: list[StatusChange]


class History(BaseModel):
    site_id: str
    since: datetime = Field(alias="from")
    until: datetime = Field(alias="to")
    zone_states: list[ZoneSample] = Field(
        description=f"oldest first, from {LOOKBACK.total_seconds() / 60:g} min before `from`"
    )
    alerts: list[HistoryAlert] = Field(description="raised in the window, oldest first")
    truncated: bool = Field(description=f"more than {MAX_ZONE_STATES} zone states or {MAX_ALERTS} alerts")

    model_config = ConfigDict(populate_by_name=True)


@router.get(
    "/sites/{site_id}/history",
    response_model_by_alias=True,
    responses={422: {"description": "a missing or bad window (`to` after `from`, at most 24 h)"}},
)
async def site_history(scope: ViewSite, store: StoreDep, query: Annotated[HistoryQuery, Query()]) -> History:
    """What the site's zones and alerts were over [from, to): recorded zone states (densities and
    levels of service) and the alerts raised, with their operators' status changes."""
    site_id = scope.site_id

    def read() -> History:
        states = store.list_zone_states(
            query.since - LOOKBACK, query.until, site_ids=[site_id], limit=MAX_ZONE_STATES + 1
        )
        raised = store.list_alerts(site_id, since=query.since, until=query.until, limit=MAX_ALERTS + 1)
        truncated = len(states) > MAX_ZONE_STATES or len(raised) > MAX_ALERTS
        alerts = sorted(raised[:MAX_ALERTS], key=lambda a: (a.raised_at, a.alert_id))
        trails = store.alert_trails([a.alert_id for a in alerts])
        return History(
            site_id=site_id,
            since=query.since,
            until=query.until,
            zone_states=[
                ZoneSample(
                    zone_id=s.zone_id,
                    ts=s.ts,
                    density=s.density,
                    los=s.los,
                    count=s.count,
                    confidence=s.confidence,
                )
                for s in states[:MAX_ZONE_STATES]
            ],
            alerts=[
                HistoryAlert(
                    alert=a,
                    changes=[
                        StatusChange(at=e.at, action=e.action, operator=e.operator, status=e.to_status)
                        for e in trails.get(a.alert_id, [])
                        if e.from_status != e.to_status
                    ],
                )
                for a in alerts
            ],
            truncated=truncated,
        )

    return await run_in_threadpool(read)
