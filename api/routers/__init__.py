"""The explicit list of routers the app serves, one per resource. Add a line per new resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.map import page as map_page
from api.routers import alerts, health, sites

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    alerts.router,
    sites.router,
    map_page.router,
)
