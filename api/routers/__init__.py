"""The explicit list of routers the app serves, one per resource. Add a line per new resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.map import page as map_page
from api.routers import (
    alert_lifecycle,
    alerts,
    audit,
    auth,
    exports,
    health,
    history,
    incidents,
    metrics,
    procedures,
    replays,
    sites,
    users,
    zones,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    auth.router,
    exports.router,  # before alerts' lifecycle: /sites/{id}/alerts/export is not an alert id
    alerts.router,
    alert_lifecycle.router,  # after alerts: /sites/{id}/alerts/stream is not an alert id
    sites.router,
    zones.router,
    history.router,
    incidents.router,
    procedures.router,
    audit.router,
    users.router,
    map_page.router,
    metrics.router,
    replays.router,
)
