"""Alerts of a site: GET the stored ones, or stream new ones live (server-sent events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import FeedDep, SiteId, StoreDep
from beffroi.events import Alert, AlertStatus

router = APIRouter(tags=["alerts"])


class AlertPage(BaseModel):
    site_id: str
    count: int
    alerts: list[Alert]


@router.get("/sites/{site_id}/alerts")
def list_alerts(
    site_id: SiteId,
    store: StoreDep,
    since: Annotated[
        AwareDatetime | None, Query(description="raised at or after (ISO 8601 with zone)")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="raised before (ISO 8601 with zone)")] = None,
    status: Annotated[AlertStatus | None, Query()] = None,
    is_open: Annotated[
        bool | None,
        Query(
            alias="open",
            description="true: only open alerts (new, acknowledged, in_progress); false: resolved or closed",
        ),
    ] = None,
    zone: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertPage:
    """Alerts of the site, newest first, with their current status."""
    alerts = store.list_alerts(
        site_id, since=since, until=until, status=status, is_open=is_open, zone_id=zone, limit=limit
    )
    return AlertPage(site_id=site_id, count=len(alerts), alerts=alerts)


@router.get("/sites/{site_id}/alerts/stream", response_class=EventSourceResponse)
async def stream_alerts(site_id: SiteId, feed: FeedDep) -> EventSourceResponse:
    """New alerts of the site as they are raised: `event: alert`, `id: alert_id`, `data: Alert JSON`."""
    listener = feed.listen(site_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(comment=f"watching alerts of {site_id}")
            while (alert := await listener.get()) is not None:
                yield ServerSentEvent(data=alert.model_dump_json(), event="alert", id=alert.alert_id)
        finally:
            feed.unlisten(listener)

    return EventSourceResponse(events(), ping=15)
