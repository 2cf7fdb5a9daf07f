"""One alert as operators handle it: GET it with its owner and audit trail, POST an action on it.

Actions follow the lifecycle of beffroi/store.py (`TRANSITIONS`): acknowledge (new), start (new,
acknowledged), resolve (any open status), close (resolved), comment (any status, status unchanged).
An action that does not apply to the alert's current status is a 409 naming the status and owner;
this includes repeating one (acknowledging an acknowledged alert), so that an operator learns that
a colleague got there first. Concurrent conflicting actions: exactly one succeeds.
The operator of record is the signed-in user; every action is also written to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.access import OperateSite, SuperviseSite, ViewSite
from api.audit import audit
from api.deps import PageCacheDep, StoreDep
from api.feed import AlertFeed, LiveEvent
from api.idempotency import Answer, IdempotencyKeys, KeyInFlight, KeyReused
from api.page_cache import PageCache
from api.procedures import Procedures, required_undone
from beffroi.events import ActionComment, AlertAction, AlertCase, AlertStatus, OperatorAction, OperatorName
from beffroi.identity import AuditKind, IdentityStore, Role
from beffroi.store import Store, TransitionRefused, UnknownAlertError

router = APIRouter(tags=["alert lifecycle"])

AlertId = Annotated[str, Path(min_length=1, max_length=128, description="the alert's alert_id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="a retried request with the same key (same user, same request) acts once and gets "
        "the first answer again, with `Idempotent-Replayed: true`",
    ),
]

IDENTITY_NOTE = (
    "**Operator identity:** the action is recorded under the signed-in user's name (the token's). "
    "`operator`, when given, must be that name."
)

_ERROR = {"content": {"application/json": {"example": {"error": "not_found", "reason": "..."}}}}
_CONFLICT = {
    "description": "the action does not apply to the alert's current status (which the body gives), "
    "or it resolves an alert whose procedure has required steps not done (`steps` names them)",
    "content": {
        "application/json": {
            "example": {
                "error": "conflict",
                "reason": "alert 3f2c… is already acknowledged (owner: alice)",
                "status": "acknowledged",
                "owner": "alice",
            }
        }
    },
}


class ActionRequest(BaseModel):
    """An action on an alert, by the signed-in user. `expected_status`, when given, makes the action
    apply only if the alert is still in that status (what the operator saw). A `comment` action
    needs a comment with text (the document says so, as the validator does); `assign` has its own
    route."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"action": {"const": "comment"}}, "required": ["action"]},
                    "then": {
                        "required": ["comment"],
                        "properties": {"comment": {"type": "string", "pattern": "\\S"}},
                    },
                },
                {"not": {"properties": {"action": {"const": "assign"}}, "required": ["action"]}},
            ]
        },
    )

    action: AlertAction
    operator: OperatorName | None = Field(
        default=None, description="optional; when given, the signed-in user's name"
    )
    comment: ActionComment = None
    expected_status: AlertStatus | None = None

    @model_validator(mode="after")
    def _comment_has_text(self) -> ActionRequest:
        if self.action is AlertAction.COMMENT and not (self.comment or "").strip():
            raise ValueError("a comment action needs a non-empty comment")
        if self.action is AlertAction.ASSIGN:
            raise ValueError("assign has its own route: POST /sites/{site_id}/alerts/{alert_id}/assign")
        return self


class AssignRequest(BaseModel):
    """Give an open alert to an operator of its site (who becomes its owner)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assignee: OperatorName = Field(description="an enabled user with the operator role or above on the site")
    comment: ActionComment = None
    expected_status: AlertStatus | None = None


def case_of_site(store: Store, site_id: str, alert_id: str) -> AlertCase:
    case = store.get_alert_case(alert_id)
    if case is None or case.alert.site_id != site_id:
        raise HTTPException(404, f"unknown alert {alert_id!r} on site {site_id!r}")
    return case


@router.get(
    "/sites/{site_id}/alerts/{alert_id}",
    responses={404: {"description": "unknown site, or no such alert on it", **_ERROR}},
)
def get_alert(scope: ViewSite, alert_id: AlertId, store: StoreDep) -> AlertCase:
    """The alert with its current status, its owner and its audit trail (oldest first)."""
    return case_of_site(store, scope.site_id, alert_id)


@router.post(
    "/sites/{site_id}/alerts/{alert_id}/actions",
    response_model=AlertCase,
    description=(
        "Apply an operator's action to the alert: `acknowledge` (new → acknowledged), `start` (new or "
        "acknowledged → in_progress), `resolve` (new, acknowledged or in_progress → resolved), `close` "
        "(resolved → closed) or `comment` (any status; `comment` required). Each is recorded in the "
        "alert's trail and the audit log. Acknowledging or starting makes the operator the alert's "
        "owner. Needs the operator role on the site.\n\n"
        "`expected_status` (optional): apply only if the alert is still in that status, as the "
        "operator saw it; otherwise 409.\n\n"
        "`Idempotency-Key` (optional header): a retry with the same key acts once. The new state "
        "goes to the site's live stream as a `case` event.\n\n" + IDENTITY_NOTE
    ),
    responses={
        403: {"description": "the user's role cannot act on alerts, or `operator` is not the user", **_ERROR},
        404: {"description": "unknown site, or no such alert on it", **_ERROR},
        409: _CONFLICT,
        422: {"description": "a bad body, or an Idempotency-Key used for another request", **_ERROR},
    },
)
def act_on_alert(
    request: Request,
    scope: OperateSite,
    alert_id: AlertId,
    body: ActionRequest,
    store: StoreDep,
    cache: PageCacheDep,
    idempotency_key: IdempotencyKey = None,
) -> AlertCase | Response:
    """Acknowledge, start, resolve, close or comment an alert; answers the alert as it now is."""
    site_id, user = scope.site_id, scope.principal.name
    if body.operator is not None and body.operator != user:
        raise HTTPException(403, f"you are signed in as {user!r}: you cannot act as {body.operator!r}")
    action = OperatorAction(
        action=body.action, operator=user, comment=body.comment, expected_status=body.expected_status
    )
    return _idempotent(request, site_id, user, alert_id, action, store, cache, idempotency_key)


@router.post(
    "/sites/{site_id}/alerts/{alert_id}/assign",
    response_model=AlertCase,
    description=(
        "Give an open alert (new, acknowledged or in progress) to `assignee`, who becomes its owner; "
        "its status does not change. The assignee must be an enabled user with the operator role or "
        "above on this site. Recorded in the alert's trail (comment `to NAME`) and the audit log, "
        "and pushed to the site's live stream as a `case` event. Needs the supervisor role on the "
        "site. Assigning to the current owner is a 409, as is a closed or resolved alert.\n\n"
        "`Idempotency-Key` (optional header): a retry with the same key acts once."
    ),
    responses={
        403: {"description": "the user's role cannot assign", **_ERROR},
        404: {"description": "unknown site, or no such alert on it", **_ERROR},
        409: _CONFLICT,
        422: {"description": "a bad body, an assignee who cannot take the alert, or a reused key", **_ERROR},
    },
)
def assign_alert(
    request: Request,
    scope: SuperviseSite,
    alert_id: AlertId,
    body: AssignRequest,
    store: StoreDep,
    cache: PageCacheDep,
    idempotency_key: IdempotencyKey = None,
) -> AlertCase | Response:
    """Assign the alert to an operator of its site; answers the alert as it now is."""
    site_id, user = scope.site_id, scope.principal.name
    identity: IdentityStore = request.app.state.identity
    assignee = identity.get_user(body.assignee)
    why = None
    if assignee is None:
        why = "no such user"
    elif assignee.disabled:
        why = "the user is disabled"
    elif not assignee.role.allows(Role.OPERATOR):
        why = f"the user is {assignee.role.value}, below operator"
    elif not assignee.all_sites and site_id not in assignee.sites:
        why = f"the user has no access to site {site_id!r}"
    if why is not None:
        raise HTTPException(422, f"cannot assign alert {alert_id} to {body.assignee!r}: {why}")
    action = OperatorAction(
        action=AlertAction.ASSIGN,
        operator=user,
        assignee=body.assignee,
        comment=body.comment,
        expected_status=body.expected_status,
    )
    return _idempotent(request, site_id, user, alert_id, action, store, cache, idempotency_key)


def _idempotent(
    request: Request,
    site_id: str,
    user: str,
    alert_id: str,
    body: OperatorAction,
    store: Store,
    cache: PageCache,
    idempotency_key: str | None,
) -> AlertCase | Response:
    if idempotency_key is None:
        return _act(request, site_id, user, alert_id, body, store, cache)
    keys: IdempotencyKeys = request.app.state.idempotency_keys
    fingerprint = f"{site_id}|{alert_id}|{body.model_dump_json()}"
    try:
        replay = keys.begin(user, idempotency_key, fingerprint)
    except KeyReused as exc:
        raise HTTPException(422, str(exc)) from exc
    except KeyInFlight as exc:
        raise HTTPException(409, str(exc)) from exc
    if replay is not None:
        return Response(
            replay.body,
            status_code=replay.status,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        outcome = _act(request, site_id, user, alert_id, body, store, cache)
    except BaseException:
        keys.abandon(user, idempotency_key)
        raise
    answer: Response = (
        Response(outcome.model_dump_json().encode(), media_type="application/json")
        if isinstance(outcome, AlertCase)
        else outcome
    )
    keys.finish(user, idempotency_key, fingerprint, Answer(answer.status_code, bytes(answer.body)))
    return answer


def _act(
    request: Request,
    site_id: str,
    user: str,
    alert_id: str,
    action: OperatorAction,
    store: Store,
    cache: PageCache,
) -> AlertCase | JSONResponse:
    current = case_of_site(store, site_id, alert_id)  # an alert never changes site: checked once
    if action.action is AlertAction.RESOLVE:
        procedures: Procedures = request.app.state.procedures
        identity: IdentityStore = request.app.state.identity
        undone = required_undone(procedures.for_alert(current.alert), identity, alert_id)
        if undone:
            reason = f"cannot resolve alert {alert_id}: required steps not done: " + "; ".join(
                f"{s.id} ({s.text})" for s in undone
            )
            return _conflict(
                reason, status=current.alert.status, owner=current.owner, steps=[s.id for s in undone]
            )
    try:
        entry = store.act_on_alert(alert_id, action)
    except UnknownAlertError as exc:
        raise HTTPException(404, f"unknown alert {alert_id!r} on site {site_id!r}") from exc
    except TransitionRefused as exc:
        return _conflict(str(exc), status=exc.status, owner=exc.owner)
    cache.invalidate(site_id)
    detail = f"{entry.action.value}: {entry.from_status.value} -> {entry.to_status.value}"
    if entry.comment:
        detail += f" ({entry.comment})"
    kind = AuditKind.ALERT_ASSIGNED if action.action is AlertAction.ASSIGN else AuditKind.ALERT_ACTION
    audit(request, kind, actor=user, site_id=site_id, target=alert_id, detail=detail)
    case = case_of_site(store, site_id, alert_id)
    push_case(request, case)
    return case


def push_case(request: Request, case: AlertCase) -> None:
    """Tell the site's live listeners (in this API process) what the alert now is."""
    feed: AlertFeed | None = request.app.state.feed
    if feed is not None:
        feed.push(case.alert.site_id, LiveEvent.of("case", case.model_dump_json(), case.alert.alert_id))


def _conflict(
    reason: str, *, status: AlertStatus, owner: str | None, steps: list[str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": "conflict", "reason": reason, "status": status.value, "owner": owner}
    if steps is not None:
        body["steps"] = steps
    return JSONResponse(body, status_code=409)
