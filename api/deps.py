"""Dependencies of the routers, read from `app.state` (set by the app factory's lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from api.feed import AlertFeed
from api.health import HealthChecks
from beffroi.settings import PlatformSettings
from beffroi.store import Store
from beffroi.venue import Venue


def get_settings(request: Request) -> PlatformSettings:
    settings: PlatformSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_venue(request: Request) -> Venue | None:
    venue: Venue | None = request.app.state.venue
    return venue


def get_feed(request: Request) -> AlertFeed:
    feed: AlertFeed | None = request.app.state.feed
    if feed is None:
        raise HTTPException(503, "live alerts are not available: this API runs without a bus")
    return feed


def get_health(request: Request) -> HealthChecks:
    checks: HealthChecks = request.app.state.health
    return checks


SettingsDep = Annotated[PlatformSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
VenueDep = Annotated[Venue | None, Depends(get_venue)]
FeedDep = Annotated[AlertFeed, Depends(get_feed)]
HealthDep = Annotated[HealthChecks, Depends(get_health)]


def known_site(
    site_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)], venue: VenueDep
) -> str:
    """The path's site id; 404 when a venue is configured and has no such site."""
    if venue is not None and all(s.id != site_id for s in venue.sites):
        raise HTTPException(
            404, f"unknown site {site_id!r} (venue {venue.id!r} has {len(venue.sites)} sites)"
        )
    return site_id


SiteId = Annotated[str, Depends(known_site)]
