"""Exports for supervisors and admins: a site's alerts (with status, owner and escalations) and the
audit log, as CSV (or JSON), each export itself written to the audit log (kind `export`).

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) are
written with a leading apostrophe (OWASP's CSV injection advice): a title comes from a device.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api.access import SuperviseSite, Supervisor
from api.audit import audit
from api.deps import IdentityDep, StoreDep
from api.routers.alerts import AlertPage
from api.routers.audit import AuditPage
from api.timestamps import Timestamp
from beffroi.identity import SITE_ID_PATTERN, AuditKind

router = APIRouter(tags=["exports"])

Format = Annotated[Literal["csv", "json"], Query(description="csv (a spreadsheet) or json")]
Since = Annotated[Timestamp | None, Query(description="at or after (ISO 8601 with zone)")]
Until = Annotated[Timestamp | None, Query(description="before (ISO 8601 with zone)")]
Limit = Annotated[int, Query(ge=1, le=100_000)]

ALERT_COLUMNS = (
    "alert_id",
    "site_id",
    "zone_id",
    "device_id",
    "rule",
    "category",
    "severity",
    "status",
    "raised_at",
    "title",
    "detail",
    "value",
    "owner",
    "escalations",
)
AUDIT_COLUMNS = ("seq", "at", "kind", "actor", "site_id", "target", "client", "detail")


def _documented(schema: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "the export (CSV with a header row, or JSON)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
            },
        },
        422: {"description": "a bad filter"},
    }


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(getattr(value, "value", value))
    return "'" + text if text.startswith(_FORMULA) else text


def _csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue().encode()


def _answer(body: bytes, fmt: str, name: str) -> Response:
    media = "text/csv" if fmt == "csv" else "application/json"
    disposition = f'attachment; filename="{name}.{fmt}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/sites/{site_id}/alerts/export", response_class=Response, responses=_documented("AlertPage"))
def export_alerts(
    request: Request,
    scope: SuperviseSite,
    store: StoreDep,
    format: Format = "csv",
    since: Since = None,
    until: Until = None,
    limit: Limit = 10_000,
) -> Response:
    """The site's alerts raised in [since, until), newest first, with status and owner. Audited."""
    site_id = scope.site_id
    alerts = store.list_alerts(site_id, since=since, until=until, limit=limit)
    marks = store.alert_marks([a.alert_id for a in alerts])
    owners = {i: m.owner for i, m in marks.items() if m.owner is not None}
    escalated = {i: m.escalations for i, m in marks.items() if m.escalations}
    if format == "json":
        page = AlertPage(
            site_id=site_id, count=len(alerts), alerts=alerts, owners=owners, escalated=escalated
        )
        data = page.model_dump_json().encode()
    else:
        rows = (
            [
                *(getattr(a, c) for c in ALERT_COLUMNS[:-2]),
                owners.get(a.alert_id),
                escalated.get(a.alert_id, 0),
            ]
            for a in alerts
        )
        data = _csv(ALERT_COLUMNS, rows)
    window = f"since {since.isoformat() if since else '-'} until {until.isoformat() if until else '-'}"
    audit(
        request,
        AuditKind.EXPORT,
        actor=scope.principal.name,
        site_id=site_id,
        target=f"alerts.{format}",
        detail=f"{len(alerts)} alerts, {window}",
    )
    return _answer(data, format, f"alerts-{site_id}")


@router.get(
    "/audit/export",
    response_class=Response,
    responses={**_documented("AuditPage"), 404: {"description": "a site outside the user's sites"}},
)
def export_audit(
    request: Request,
    principal: Supervisor,
    identity: IdentityDep,
    format: Format = "csv",
    site: Annotated[str | None, Query(pattern=SITE_ID_PATTERN, max_length=64)] = None,
    kind: Annotated[AuditKind | None, Query()] = None,
    since: Since = None,
    limit: Limit = 10_000,
) -> Response:
    """Audit records of the user's sites (or of `site`), newest first (records without a site only
    for users of every site). Audited: the export is itself a record."""
    if site is not None and not principal.sees(site):
        raise HTTPException(404, f"unknown site {site!r}")
    sites = frozenset({site}) if site is not None else principal.sites
    records = identity.list_audit(sites=sites, kind=kind, since=since, limit=limit)
    if format == "json":
        data = AuditPage(count=len(records), records=records).model_dump_json().encode()
    else:
        data = _csv(AUDIT_COLUMNS, ([getattr(r, c) for c in AUDIT_COLUMNS] for r in records))
    scope = site or ("every site" if principal.sites is None else ",".join(sorted(principal.sites)))
    audit(
        request,
        AuditKind.EXPORT,
        actor=principal.name,
        site_id=site,
        target=f"audit.{format}",
        detail=f"{len(records)} records of {scope}" + (f", kind {kind.value}" if kind else ""),
    )
    return _answer(data, format, "audit")
