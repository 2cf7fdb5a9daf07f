"""The explicit list of routers the app serves, one per resource. Add a line per new resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers import alerts, health

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    alerts.router,
)
