"""GET /health: the API, its store and the components running beside it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.access import PUBLIC
from api.deps import HealthDep, SettingsDep, StoreDep

router = APIRouter(tags=["health"])


@router.get("/health", dependencies=[PUBLIC])
def health(settings: SettingsDep, store: StoreDep, checks: HealthDep) -> JSONResponse:
    status = 200
    body: dict[str, Any] = {"status": "ok", "mode": settings.mode}
    probes = {
        "store": lambda: {"alert_lookup": store.get_alert("00000000-0000-0000-0000-000000000000") is None},
        **checks,
    }
    for name, probe in probes.items():
        try:
            body[name] = {"ok": True, **probe()}
        except Exception as exc:
            body[name] = {"ok": False, "reason": str(exc)}
            body["status"] = "degraded"
            status = 503
    return JSONResponse(body, status_code=status)
