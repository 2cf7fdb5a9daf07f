"""GET /audit: the audit log, for supervisors and admins, limited to their sites (records without a
site, such as sign-ins and user changes, only for users of every site)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.access import Supervisor
from api.deps import IdentityDep
from api.timestamps import Timestamp
from beffroi.identity import SITE_ID_PATTERN, AuditKind, AuditRecord

router = APIRouter(tags=["audit"])


class AuditPage(BaseModel):
    count: int
    records: list[AuditRecord]


@router.get("/audit", responses={404: {"description": "a site outside the user's sites"}})
def list_audit(
    principal: Supervisor,
    identity: IdentityDep,
    site: Annotated[str | None, Query(pattern=SITE_ID_PATTERN, max_length=64)] = None,
    kind: Annotated[AuditKind | None, Query()] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    target: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[Timestamp | None, Query(description="at or after (ISO 8601 with zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audit records, newest first."""
    if site is not None and not principal.sees(site):
        raise HTTPException(404, f"unknown site {site!r}")
    sites = frozenset({site}) if site is not None else principal.sites
    records = identity.list_audit(
        sites=sites, kind=kind, actor=actor, target=target, since=since, limit=limit
    )
    return AuditPage(count=len(records), records=records)
