"""The operator API's app factory. Nothing happens at import: `create_app` builds, the lifespan opens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import datetime

from fastapi import APIRouter, FastAPI

from api.access import document_access
from api.auth.passwords import Passwords
from api.auth.ratelimit import FailureLimiter
from api.auth.tokens import LocalTokens, OidcTokens, TokenVerifier
from api.errors import install_error_handlers
from api.escalation import Escalator
from api.feed import AlertFeed, LiveEvent
from api.health import HealthChecks
from api.idempotency import IdempotencyKeys
from api.page_cache import PageCache
from api.procedures import Procedures, load_procedures
from api.routers import ROUTERS
from api.settings import ApiPlatformSettings
from api.zone_board import ZoneBoard
from beffroi import metrics
from beffroi.bus import Bus
from beffroi.clock import utcnow
from beffroi.identity import IdentityStore
from beffroi.store import Escalation, Store
from beffroi.venue import Venue


def create_app(
    settings: ApiPlatformSettings,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    venue: Venue | None = None,
    live_alerts: bool = True,
    health: HealthChecks | None = None,
    identity: IdentityStore | None = None,
    extra_routers: Sequence[APIRouter] = (),
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The API. A store or bus passed in is used as is (and not closed); missing ones are built
    from `settings` when the app starts. `live_alerts=False` serves no SSE stream (no bus needed).
    The venue (given, or read from `settings.venue`) makes unknown sites answer 404.
    Users and the audit log are kept in `identity` (default: the store).
    While it runs, an `Escalator` on `clock` escalates overdue alerts (`settings.api.escalation`).
    Raises ValueError when `settings.api.auth` has no secret key (or a bad OIDC key set), ConfigError
    when the procedures file does not validate."""
    auth = settings.api.auth
    local_tokens = LocalTokens(auth)
    oidc = OidcTokens(auth.oidc) if auth.oidc is not None else None

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
            stack.callback(_stop_replays, app)  # before the store closes (callbacks run last first)
            users = identity if identity is not None else app.state.store
            if not isinstance(users, IdentityStore):
                raise TypeError(f"{type(users).__name__} keeps no users: pass identity=")
            app.state.identity = users
            # shared with every API process on this store: Idempotency-Keys, failed sign-ins
            app.state.idempotency_keys = IdempotencyKeys(users)
            limits = auth.sign_in_limits
            app.state.user_limiter = FailureLimiter(users, "user", limits.per_user, limits.window_s)
            app.state.address_limiter = FailureLimiter(users, "address", limits.per_address, limits.window_s)
            app.state.tokens = TokenVerifier(local_tokens, users, oidc=oidc, recheck_s=auth.recheck_s)
            app.state.feed = None
            app.state.zone_board = None
            if live_alerts:
                feed_bus = bus
                if feed_bus is None:
                    from beffroi.bus_factory import make_bus

                    feed_bus = stack.enter_context(make_bus(settings))
                feed = AlertFeed(
                    feed_bus,
                    topic=settings.kafka.topic("alerts"),
                    group_prefix=f"{settings.kafka.topic_prefix}beffroi-api",
                    on_alert=lambda alert: cache.invalidate(alert.site_id),
                )
                feed.start()
                stack.callback(feed.stop)
                metrics.SSE_LISTENERS.set_function(feed.listeners)
                app.state.feed = feed
                app.state.health["alert_feed"] = lambda: _feed_health(feed)
                board = ZoneBoard(
                    feed_bus,
                    topic=settings.kafka.topic("zone_state"),
                    group_prefix=f"{settings.kafka.topic_prefix}beffroi-api-zones",
                )
                board.start()
                stack.callback(board.stop)
                app.state.zone_board = board
            app.state.escalator = escalator = Escalator(
                app.state.store,
                settings.api.escalation,
                clock=clock,
                on_escalated=lambda e: _announce(app, e),
            )
            if settings.api.escalation.enabled:
                task = asyncio.create_task(escalator.run_forever(), name="escalation")
                stack.push_async_callback(_cancel, task)
            yield

    app = FastAPI(
        title="Beffroi operator API",
        version="0.1.0",
        summary="Alerts of the event-security platform, stored and live.",
        description=(
            "Operators list a site's alerts, follow new ones live, and move each through its "
            "lifecycle (new, acknowledged, in progress, resolved, closed) with an audit trail.\n\n"
            "Every endpoint but /health needs a bearer token (POST /auth/token, the OAuth2 password "
            "flow, or a token of the configured OIDC issuer). Roles: viewer < operator < supervisor "
            "< admin; a user sees only their sites: any other site answers 404."
        ),
        lifespan=lifespan,
    )
    app.state.page_cache = cache = PageCache(settings.api.list_cache_s)
    path = settings.api.procedures
    app.state.procedures = load_procedures(path) if path is not None else Procedures()
    app.state.auth_settings = auth
    app.state.passwords = Passwords(auth.password_hash)
    install_error_handlers(app)
    document_access(app)
    for router in (*ROUTERS, *extra_routers):
        app.include_router(router)
    return app


def _announce(app: FastAPI, escalation: Escalation) -> None:
    """An escalated alert, on its site's live stream (a `case` event) and in fresh lists."""
    cache: PageCache = app.state.page_cache
    cache.invalidate(escalation.site_id)
    feed: AlertFeed | None = app.state.feed
    store: Store = app.state.store
    case = store.get_alert_case(escalation.alert_id) if feed is not None else None
    if feed is not None and case is not None:
        feed.push(escalation.site_id, LiveEvent.of("case", case.model_dump_json(), escalation.alert_id))


def _stop_replays(app: FastAPI) -> None:
    replays = getattr(app.state, "replays", None)  # made by the first POST /replays
    if replays is not None:
        replays.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def _feed_health(feed: AlertFeed) -> dict[str, object]:
    if not feed.running:
        raise RuntimeError("the alert feed thread is not running")
    if feed.error is not None:
        raise RuntimeError(f"the alert feed cannot read its topic: {feed.error}")
    return {"listeners": feed.listeners(), "delivered": feed.delivered}
