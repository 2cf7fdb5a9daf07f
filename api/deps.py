"""Dependencies of the routers, read from `app.state` (set by the app factory's lifespan).

They are `async def` on purpose: a plain `def` dependency costs a thread-pool hop per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.feed import AlertFeed
from api.health import HealthChecks
from api.page_cache import PageCache
from api.settings import ApiPlatformSettings
from beffroi.identity import IdentityStore
from beffroi.store import Store
from beffroi.venue import Venue


async def get_settings(request: Request) -> ApiPlatformSettings:
    settings: ApiPlatformSettings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_venue(request: Request) -> Venue | None:
    venue: Venue | None = request.app.state.venue
    return venue


async def get_feed(request: Request) -> AlertFeed:
    feed: AlertFeed | None = request.app.state.feed
    if feed is None:
        raise HTTPException(503, "live alerts are not available: this API runs without a bus")
    return feed


async def get_identity(request: Request) -> IdentityStore:
    identity: IdentityStore = request.app.state.identity
    return identity


async def get_page_cache(request: Request) -> PageCache:
    cache: PageCache = request.app.state.page_cache
    return cache


async def get_health(request: Request) -> HealthChecks:
    checks: HealthChecks = request.app.state.health
    return checks


SettingsDep = Annotated[ApiPlatformSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
VenueDep = Annotated[Venue | None, Depends(get_venue)]
FeedDep = Annotated[AlertFeed, Depends(get_feed)]
HealthDep = Annotated[HealthChecks, Depends(get_health)]
IdentityDep = Annotated[IdentityStore, Depends(get_identity)]
PageCacheDep = Annotated[PageCache, Depends(get_page_cache)]
