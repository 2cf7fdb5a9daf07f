"""Procedures (SOPs): GET the set, PUT a new one (supervisors of every site: the set applies to all
sites); GET an alert's procedure with the steps done, POST a step as done. Each tick and each change
of the set is audited; the ticks are read back from the audit log."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel

from api.access import OperateSite, Supervisor, Viewer, ViewSite
from api.audit import audit
from api.deps import IdentityDep, SettingsDep, StoreDep
from api.procedures import Procedures, Slug, load_procedures, steps_done
from api.routers.alert_lifecycle import AlertId, case_of_site
from beffroi.events import AlertCase
from beffroi.identity import AuditKind, IdentityStore
from beffroi.yamlconf import ConfigError

router = APIRouter(tags=["procedures"])


class StepState(BaseModel):
    id: str
    text: str
    required: bool
    done_by: str | None = None
    done_at: datetime | None = None


class AlertProcedure(BaseModel):
    alert_id: str
    procedure_id: str | None
    """None: no procedure applies to this alert."""
    title: str | None
    steps: list[StepState]


def alert_procedure(procedures: Procedures, identity: IdentityStore, case: AlertCase) -> AlertProcedure:
    procedure = procedures.for_alert(case.alert)
    if procedure is None:
        return AlertProcedure(alert_id=case.alert.alert_id, procedure_id=None, title=None, steps=[])
    done = steps_done(identity, case.alert.alert_id)
    steps = [
        StepState(
            id=s.id,
            text=s.text,
            required=s.required,
            done_by=done[s.id][0] if s.id in done else None,
            done_at=done[s.id][1] if s.id in done else None,
        )
        for s in procedure.steps
    ]
    return AlertProcedure(
        alert_id=case.alert.alert_id, procedure_id=procedure.id, title=procedure.title, steps=steps
    )


@router.get("/procedures")
def get_procedures(request: Request, principal: Viewer) -> Procedures:
    """The procedures in force."""
    procedures: Procedures = request.app.state.procedures
    return procedures


@router.put(
    "/procedures",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}
    },
    responses={
        403: {"description": "only a supervisor of every site changes the procedures"},
        409: {"description": "this API has no procedures file (settings.api.procedures)"},
        422: {"description": "the YAML does not validate; the reason names each line"},
    },
)
async def put_procedures(request: Request, principal: Supervisor, settings: SettingsDep) -> Procedures:
    """Replace the procedures with a YAML document (the file's format); saved to the procedures file."""
    if principal.sites is not None:
        raise HTTPException(
            403, "the procedures apply to every site: only a supervisor of every site changes them"
        )
    path: FilePath | None = settings.api.procedures
    if path is None:
        raise HTTPException(409, "this API has no procedures file (settings.api.procedures is not set)")
    raw = await request.body()
    if len(raw) > 1_000_000:
        raise HTTPException(413, "a procedures file is at most 1 MB")
    try:
        text = raw.decode("utf-8")
        procedures = load_procedures(path, text)
    except UnicodeDecodeError as exc:
        raise HTTPException(422, "the body is not UTF-8 text") from exc
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from exc
    path.write_text(text, encoding="utf-8")
    before: Procedures = request.app.state.procedures
    request.app.state.procedures = procedures
    old, new = {p.id for p in before.procedures}, {p.id for p in procedures.procedures}
    audit(
        request,
        AuditKind.PROCEDURES_LOADED,
        actor=principal.name,
        target=str(path),
        detail=f"sha256 {hashlib.sha256(raw).hexdigest()[:16]}; {len(new)} procedures; "
        f"added {sorted(new - old)}, removed {sorted(old - new)}",
    )
    return procedures


@router.get("/sites/{site_id}/alerts/{alert_id}/procedure")
def get_alert_procedure(
    request: Request, scope: ViewSite, alert_id: AlertId, store: StoreDep, identity: IdentityDep
) -> AlertProcedure:
    """The procedure that applies to the alert, with who did each step and when."""
    case = case_of_site(store, scope.site_id, alert_id)
    return alert_procedure(request.app.state.procedures, identity, case)


@router.post(
    "/sites/{site_id}/alerts/{alert_id}/procedure/steps/{step_id}",
    responses={404: {"description": "unknown alert, or no such step"}, 409: {"description": "done already"}},
)
def tick_step(
    request: Request,
    scope: OperateSite,
    alert_id: AlertId,
    step_id: Annotated[Slug, Path()],
    store: StoreDep,
    identity: IdentityDep,
) -> AlertProcedure:
    """Record the step as done by the signed-in operator (audited)."""
    case = case_of_site(store, scope.site_id, alert_id)
    procedures: Procedures = request.app.state.procedures
    procedure = procedures.for_alert(case.alert)
    if procedure is None or all(s.id != step_id for s in procedure.steps):
        raise HTTPException(404, f"no step {step_id!r} in the procedure of alert {alert_id!r}")
    done = steps_done(identity, alert_id)
    if step_id in done:
        who, when = done[step_id]
        raise HTTPException(409, f"step {step_id!r} was done by {who} at {when.isoformat()}")
    audit(
        request,
        AuditKind.STEP_DONE,
        actor=scope.principal.name,
        site_id=scope.site_id,
        target=alert_id,
        detail=step_id,
    )
    return alert_procedure(procedures, identity, case)
