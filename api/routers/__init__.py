"""The explicit list of routers the app serves, one per resource. Add a line per new resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.map import page as map_page
from api.routers import alert_lifecycle, alerts, health, incidents, metrics, sites

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    alerts.router,
    alert_lifecycle.router,  # after alerts: /sites/{id}/alerts/stream is not an alert id
    sites.router,
    incidents.router,
    map_page.router,
    metrics.router,
)
