"""Writing to the audit log from a request: who (the principal, or the name typed at sign-in), from
which address, on which site."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from beffroi.identity import AuditKind, AuditRecord, IdentityStore


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def audit(
    request: Request,
    kind: AuditKind,
    *,
    actor: str,
    site_id: str | None = None,
    target: str | None = None,
    detail: str = "",
) -> AuditRecord:
    """Append one record (now, from the request's client) and return it."""
    record = AuditRecord(
        at=datetime.now(UTC),
        kind=kind,
        actor=actor[:128],
        site_id=site_id,
        target=None if target is None else target[:256],
        client=client_of(request)[:64],
        detail=detail[:2000],
    )
    identity: IdentityStore = request.app.state.identity
    identity.append_audit([record])
    return record
