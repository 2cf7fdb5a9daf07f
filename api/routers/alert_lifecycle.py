"""One alert as operators handle it: GET it with its owner and audit trail, POST an action on it.

Actions follow the lifecycle of beffroi/store.py (`TRANSITIONS`): acknowledge (new), start (new,
acknowledged), resolve (any open status), close (resolved), comment (any status, status unchanged).
An action that does not apply to the alert's current status is a 409 naming the status and owner;
this includes repeating one (acknowledging an acknowledged alert), so that an operator learns that
a colleague got there first. Concurrent conflicting actions: exactly one succeeds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse

from api.deps import SiteId, StoreDep
from beffroi.events import AlertCase, AlertStatus, OperatorAction
from beffroi.store import Store, TransitionRefused, UnknownAlertError

router = APIRouter(tags=["alert lifecycle"])

AlertId = Annotated[str, Path(min_length=1, max_length=128, description="the alert's alert_id")]

IDENTITY_NOTE = (
    "**Operator identity:** `operator` is a free-text name that the API records as given. Beffroi has "
    "no authentication system yet: anyone who can reach the API can act under any name, so serve it "
    "only on the control room's network or behind an authenticating reverse proxy."
)

_ERROR = {"content": {"application/json": {"example": {"error": "not_found", "reason": "..."}}}}
_CONFLICT = {
    "description": "the action does not apply to the alert's current status (which the body gives)",
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


def _case_of_site(store: Store, site_id: str, alert_id: str) -> AlertCase:
    case = store.get_alert_case(alert_id)
    if case is None or case.alert.site_id != site_id:
        raise HTTPException(404, f"unknown alert {alert_id!r} on site {site_id!r}")
    return case


@router.get(
    "/sites/{site_id}/alerts/{alert_id}",
    responses={404: {"description": "unknown site, or no such alert on it", **_ERROR}},
)
def get_alert(site_id: SiteId, alert_id: AlertId, store: StoreDep) -> AlertCase:
    """The alert with its current status, its owner and its audit trail (oldest first)."""
    return _case_of_site(store, site_id, alert_id)


@router.post(
    "/sites/{site_id}/alerts/{alert_id}/actions",
    response_model=AlertCase,
    description=(
        "Apply an operator's action to the alert: `acknowledge` (new → acknowledged), `start` (new or "
        "acknowledged → in_progress), `resolve` (new, acknowledged or in_progress → resolved), `close` "
        "(resolved → closed) or `comment` (any status; `comment` required). Each is recorded in the "
        "audit trail. Acknowledging or starting makes the operator the alert's owner.\n\n"
        "`expected_status` (optional): apply only if the alert is still in that status, as the "
        "operator saw it; otherwise 409.\n\n" + IDENTITY_NOTE
    ),
    responses={404: {"description": "unknown site, or no such alert on it", **_ERROR}, 409: _CONFLICT},
)
def act_on_alert(
    site_id: SiteId, alert_id: AlertId, action: OperatorAction, store: StoreDep
) -> AlertCase | JSONResponse:
    """Acknowledge, start, resolve, close or comment an alert; answers the alert as it now is."""
    _case_of_site(store, site_id, alert_id)  # an alert never changes site: checked once
    try:
        store.act_on_alert(alert_id, action)
    except UnknownAlertError as exc:
        raise HTTPException(404, f"unknown alert {alert_id!r} on site {site_id!r}") from exc
    except TransitionRefused as exc:
        return _conflict(str(exc), status=exc.status, owner=exc.owner)
    return _case_of_site(store, site_id, alert_id)


def _conflict(reason: str, *, status: AlertStatus, owner: str | None) -> JSONResponse:
    body: dict[str, Any] = {"error": "conflict", "reason": reason, "status": status.value, "owner": owner}
    return JSONResponse(body, status_code=409)
