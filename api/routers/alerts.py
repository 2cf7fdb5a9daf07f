"""Alerts of a site: GET the stored ones, or stream new ones live (server-sent events)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.access import ViewSite
from api.deps import FeedDep
from api.feed import LiveEvent, LiveStream
from api.page_cache import PageCache
from api.timestamps import Timestamp
from beffroi.events import Alert, AlertStatus
from beffroi.store import Store

router = APIRouter(tags=["alerts"])


class AlertPage(BaseModel):
    site_id: str
    count: int
    alerts: list[Alert]
    owners: dict[str, str] = Field(
        default_factory=dict, description="alert_id -> owner (who acknowledged, started, or was assigned it)"
    )
    escalated: dict[str, int] = Field(
        default_factory=dict,
        description="alert_id -> how many times it was escalated (not acknowledged in time), when it was",
    )


class AlertQuery(BaseModel):
    """The filters of an alert list."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    since: Timestamp | None = Field(default=None, description="raised at or after (ISO 8601 with zone)")
    until: Timestamp | None = Field(default=None, description="raised before (ISO 8601 with zone)")
    status: AlertStatus | None = None
    is_open: bool | None = Field(
        default=None,
        alias="open",
        description="true: only open alerts (new, acknowledged, in_progress); false: resolved or closed",
    )
    zone: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=1000)


def _query_parameters() -> list[dict[str, Any]]:
    """AlertQuery's fields as OpenAPI query parameters (the route parses them itself)."""
    schema = AlertQuery.model_json_schema(by_alias=True)
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": field,
            "description": field.get("description", ""),
        }
        for name, field in schema["properties"].items()
    ]


def _parse_query(request: Request) -> AlertQuery:
    params = request.query_params
    try:
        return AlertQuery.model_validate({k: params[k] for k in params if k in _QUERY_KEYS})
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


_QUERY_KEYS = frozenset(f.alias or name for name, f in AlertQuery.model_fields.items())


@router.get(
    "/sites/{site_id}/alerts",
    response_model=AlertPage,
    openapi_extra={"parameters": _query_parameters()},
    responses={422: {"description": "a bad filter"}},
)
async def list_alerts(request: Request, scope: ViewSite) -> Response:
    """Alerts of the site, newest first, with their current status."""
    # the hot path of every screen: async (a page from the cache costs no thread hop), its query
    # parsed with one model validation, state read from the app rather than through dependencies
    query = _parse_query(request)
    site_id = scope.site_id
    cache: PageCache = request.app.state.page_cache
    body = cache.get(site_id, query)
    if body is None:
        version = cache.version(site_id)
        store: Store = request.app.state.store

        def page() -> bytes:
            q = query
            alerts = store.list_alerts(
                site_id,
                since=q.since,
                until=q.until,
                status=q.status,
                is_open=q.is_open,
                zone_id=q.zone,
                limit=q.limit,
            )
            marks = store.alert_marks([a.alert_id for a in alerts])
            page = AlertPage(
                site_id=site_id,
                count=len(alerts),
                alerts=alerts,
                owners={i: m.owner for i, m in marks.items() if m.owner is not None},
                escalated={i: m.escalations for i, m in marks.items() if m.escalations},
            )
            return page.model_dump_json().encode()

        body = await run_in_threadpool(page)
        cache.put(site_id, query, body, version=version)
    return Response(body, media_type="application/json")


@router.get("/sites/{site_id}/alerts/stream", response_class=LiveStream, status_code=200)
async def stream_alerts(scope: ViewSite, feed: FeedDep) -> LiveStream:
    """New alerts of the site as they are raised: `event: alert`, `id: alert_id`, `data: Alert JSON`;
    and what operators of this API do to them: `event: case`, `data: AlertCase JSON` (status, owner).
    The stream ends when the token expires (the client reconnects with a fresh one)."""
    site_id = scope.site_id
    hello = LiveEvent(ServerSentEvent(comment=f"watching alerts of {site_id}").encode())
    return LiveStream(feed, feed.listen(site_id), hello, scope.principal.expires_at)
