"""The operator API's app factory. Nothing happens at import: `create_app` builds, the lifespan opens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI

from api.errors import install_error_handlers
from api.feed import AlertFeed
from api.health import HealthChecks
from api.routers import ROUTERS
from beffroi import metrics
from beffroi.bus import Bus
from beffroi.settings import PlatformSettings
from beffroi.store import Store
from beffroi.venue import Venue


def create_app(
    settings: PlatformSettings,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    venue: Venue | None = None,
    live_alerts: bool = True,
    health: HealthChecks | None = None,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API. A store or bus passed in is used as is (and not closed); missing ones are built
    from `settings` when the app starts. `live_alerts=False` serves no SSE stream (no bus needed).
    The venue (given, or read from `settings.venue`) makes unknown sites answer 404."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.settings = settings
            app.state.health = dict(health or {})
            app.state.venue = venue
            if venue is None and settings.venue is not None:
                from beffroi.settings import load_venue_for

                app.state.venue = load_venue_for(settings)
            if store is None:
                from beffroi.store_factory import make_store

                own_store = stack.enter_context(make_store(settings))
                own_store.migrate()
                app.state.store = own_store
            else:
                app.state.store = store
            app.state.feed = None
            if live_alerts:
                feed_bus = bus
                if feed_bus is None:
                    from beffroi.bus_factory import make_bus

                    feed_bus = stack.enter_context(make_bus(settings))
                feed = AlertFeed(
                    feed_bus,
                    topic=settings.kafka.topic("alerts"),
                    group_prefix=f"{settings.kafka.topic_prefix}beffroi-api",
                )
                feed.start()
                stack.callback(feed.stop)
                metrics.SSE_LISTENERS.set_function(feed.listeners)
                app.state.feed = feed
                app.state.health["alert_feed"] = lambda: _feed_health(feed)
            yield

    app = FastAPI(
        title="Beffroi operator API",
        version="0.1.0",
        summary="Alerts of the event-security platform, stored and live.",
        description=(
            "Operators list a site's alerts, follow new ones live, and move each through its "
            "lifecycle (new, acknowledged, in progress, resolved, closed) with an audit trail.\n\n"
            "There is no authentication system yet: an action names its operator in its body, "
            "recorded as given."
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (*ROUTERS, *extra_routers):
        app.include_router(router)
    return app


def _feed_health(feed: AlertFeed) -> dict[str, object]:
    if not feed.running:
        raise RuntimeError("the alert feed thread is not running")
    if feed.error is not None:
        raise RuntimeError(f"the alert feed cannot read its topic: {feed.error}")
    return {"listeners": feed.listeners(), "delivered": feed.delivered}
