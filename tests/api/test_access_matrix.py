"""Every route x every role x own site / other site, REST and SSE, against the served app.

The routes come from the app itself: a route without an access rule, or without an example request
below, fails `test_every_route_has_a_rule_and_an_example`. Users: one per role, each with the site
`stade-demo` only; `fan-demo` is the other site, with an alert of its own that must never show.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from api.access import Rule, SiteRule, flat_routes, rule_of
from api.app import create_app
from beffroi.events import AlertStatus
from beffroi.identity import Role
from tests.fixtures.api import LiveApi, add_user, auth_settings_for_tests, token_for, with_fan_zone
from tests.fixtures.store import make_alert
from tower.runtime import DEMO_VENUE
from tower.settings import Settings

pytestmark = pytest.mark.usefixtures("live_store")  # both stores (PostgreSQL: integration)

OWN, OTHER = "stade-demo", "fan-demo"
PASSWORD = "correct horse battery staple"
ROLES: list[Role | None] = [None, *Role]  # None: no token


@dataclass
class World:
    api: LiveApi
    alerts: dict[str, str]  # site -> the id of an alert of that site


def _rule(route: APIRoute) -> Rule | None:
    return rule_of(route)


def _all_routes() -> list[BaseRoute]:
    settings = Settings().model_copy(update={"api": Settings().api.model_copy(update={"auth": _auth()})})
    return flat_routes(create_app(settings, live_alerts=False).routes)


def _app_routes() -> list[APIRoute]:
    return [r for r in _all_routes() if isinstance(r, APIRoute)]


def _auth() -> Any:
    return auth_settings_for_tests()


ROUTES = {(method, r.path): r for r in _app_routes() for method in sorted(r.methods)}

Call = Callable[[World, str, str], dict[str, Any]]
"""(world, site, user name) -> keyword arguments of httpx.request (url, json, data...).
Each example comes with the least role the route needs (PUBLIC: none), the specification that the
matrix holds the app to; routes under /sites/{site_id} answer 404 for the other site, whatever the role."""

PUBLIC = None
EXAMPLES: dict[tuple[str, str], tuple[Role | None, Call]] = {
    ("GET", "/health"): (PUBLIC, lambda w, s, u: {"url": "/health"}),
    ("GET", "/metrics"): (Role.VIEWER, lambda w, s, u: {"url": "/metrics"}),
    ("GET", "/"): (PUBLIC, lambda w, s, u: {"url": "/"}),
    ("GET", "/map"): (PUBLIC, lambda w, s, u: {"url": "/map"}),
    ("GET", "/overview"): (PUBLIC, lambda w, s, u: {"url": "/overview"}),
    ("POST", "/auth/token"): (
        PUBLIC,
        lambda w, s, u: {
            "url": "/auth/token",
            "data": {"username": u or "viewer", "password": PASSWORD},
        },
    ),
    ("POST", "/auth/session"): (
        PUBLIC,
        lambda w, s, u: {
            "url": "/auth/session",
            "data": {"username": u or "viewer", "password": PASSWORD},
        },
    ),
    ("GET", "/auth/session"): (Role.VIEWER, lambda w, s, u: {"url": "/auth/session"}),
    ("POST", "/auth/session/refresh"): (Role.VIEWER, lambda w, s, u: {"url": "/auth/session/refresh"}),
    ("DELETE", "/auth/session"): (Role.VIEWER, lambda w, s, u: {"url": "/auth/session"}),
    ("GET", "/sites"): (Role.VIEWER, lambda w, s, u: {"url": "/sites"}),
    ("GET", "/sites/{site_id}"): (Role.VIEWER, lambda w, s, u: {"url": f"/sites/{s}"}),
    ("GET", "/sites/{site_id}/alerts"): (Role.VIEWER, lambda w, s, u: {"url": f"/sites/{s}/alerts"}),
    ("GET", "/sites/{site_id}/alerts/stream"): (
        Role.VIEWER,
        lambda w, s, u: {"url": f"/sites/{s}/alerts/stream"},
    ),
    ("GET", "/sites/{site_id}/alerts/{alert_id}"): (
        Role.VIEWER,
        lambda w, s, u: {"url": f"/sites/{s}/alerts/{w.alerts[s]}"},
    ),
    ("POST", "/sites/{site_id}/alerts/{alert_id}/actions"): (
        Role.OPERATOR,
        lambda w, s, u: {
            "url": f"/sites/{s}/alerts/{w.alerts[s]}/actions",
            "json": {"action": "comment", "comment": "checked on CCTV"},
        },
    ),
    ("POST", "/sites/{site_id}/alerts/{alert_id}/assign"): (
        Role.SUPERVISOR,
        lambda w, s, u: {
            "url": f"/sites/{s}/alerts/{_fresh_alert(w, s)}/assign",
            "json": {"assignee": "operator"},
        },
    ),
    ("GET", "/sites/{site_id}/incidents"): (Role.VIEWER, lambda w, s, u: {"url": f"/sites/{s}/incidents"}),
    ("GET", "/sites/{site_id}/zone-states"): (
        Role.VIEWER,
        lambda w, s, u: {"url": f"/sites/{s}/zone-states"},
    ),
    ("GET", "/sites/{site_id}/history"): (
        Role.VIEWER,
        lambda w, s, u: {
            "url": f"/sites/{s}/history",
            "params": {"from": "2024-07-26T18:00:00Z", "to": "2024-07-27T00:00:00Z"},
        },
    ),
    ("GET", "/audit"): (Role.SUPERVISOR, lambda w, s, u: {"url": "/audit"}),
    ("GET", "/audit/export"): (Role.SUPERVISOR, lambda w, s, u: {"url": "/audit/export?format=csv"}),
    ("GET", "/sites/{site_id}/alerts/export"): (
        Role.SUPERVISOR,
        lambda w, s, u: {"url": f"/sites/{s}/alerts/export?format=csv"},
    ),
    ("POST", "/replays"): (
        Role.SUPERVISOR,
        lambda w, s, u: {
            "url": "/replays",
            "json": {"from": "2024-07-26T19:00:00Z", "to": "2024-07-26T19:01:00Z", "sites": [OWN]},
        },
    ),
    ("GET", "/replays/{replay_id}"): (Role.SUPERVISOR, lambda w, s, u: {"url": f"/replays/{_replay(w)}"}),
    ("GET", "/procedures"): (Role.VIEWER, lambda w, s, u: {"url": "/procedures"}),
    ("PUT", "/procedures"): (
        Role.SUPERVISOR,
        lambda w, s, u: {"url": "/procedures", "content": PROCEDURES.read_bytes()},
    ),
    ("GET", "/sites/{site_id}/alerts/{alert_id}/procedure"): (
        Role.VIEWER,
        lambda w, s, u: {"url": f"/sites/{s}/alerts/{w.alerts[s]}/procedure"},
    ),
    ("POST", "/sites/{site_id}/alerts/{alert_id}/procedure/steps/{step_id}"): (
        Role.OPERATOR,
        lambda w, s, u: {"url": f"/sites/{s}/alerts/{_fresh_alert(w, s)}/procedure/steps/confirm"},
    ),
    ("GET", "/users"): (Role.ADMIN, lambda w, s, u: {"url": "/users"}),
    ("POST", "/users"): (
        Role.ADMIN,
        lambda w, s, u: {
            "url": "/users",
            "json": {
                "name": f"new-{uuid.uuid4().hex[:8]}",
                "role": "viewer",
                "sites": [OWN],
                "password": PASSWORD,
            },
        },
    ),
    ("POST", "/users/{name}/disable"): (
        Role.ADMIN,
        lambda w, s, u: {"url": f"/users/{_throwaway(w)}/disable"},
    ),
}


EVERY_SITE = {("PUT", "/procedures")}
"""Routes that need, beyond the role, a user of every site (the matrix's users have one site)."""


def _replay(world: World) -> str:
    """A replay started by a supervisor of the world (its id: any supervisor may read it)."""
    token = token_for(world.api.app, "replay-starter", role=Role.SUPERVISOR, sites=(OWN,))
    body = {"from": "2024-07-26T19:00:00Z", "to": "2024-07-26T19:01:00Z"}
    r = httpx.post(world.api.base_url + "/replays", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _fresh_alert(world: World, site: str) -> str:
    alert = make_alert(site_id=site, zone_id=None)  # rule smoke-pm25: the demo's `smoke` procedure
    world.api.slice.store.write_alerts([alert])
    return alert.alert_id


def _throwaway(world: World) -> str:
    name = f"old-{uuid.uuid4().hex[:8]}"
    add_user(world.api.app, name, role=Role.VIEWER, sites=(OWN,))
    return name


def test_every_route_has_a_rule_and_an_example():
    app_routes = _app_routes()
    missing_rule = [r.path for r in app_routes if _rule(r) is None]
    assert missing_rule == [], "routes without an access rule (api/access.py)"
    assert sorted(set(ROUTES) - set(EXAMPLES)) == [], "routes without an example request in EXAMPLES"
    assert sorted(set(EXAMPLES) - set(ROUTES)) == [], "examples of routes the app no longer has"
    mounts = [r.path for r in _all_routes() if isinstance(r, Mount)]
    assert mounts == ["/map/static"], "a mount serves files without a rule: only the map's assets may"
    others = sorted(r.path for r in _all_routes() if not isinstance(r, APIRoute | Mount))
    assert others == sorted(PUBLIC_DOCS), "FastAPI's own pages are public; nothing else may bypass the rules"


PUBLIC_DOCS = ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]
"""The OpenAPI document and its viewers: public, they hold no data."""


PROCEDURES = Path(DEMO_VENUE).parent / "procedures.yaml"


@pytest.fixture
def api_settings(api_settings, tmp_path):
    """The demo procedures (copied: PUT /procedures writes the file)."""
    path = tmp_path / "procedures.yaml"
    path.write_bytes(PROCEDURES.read_bytes())
    return api_settings.model_copy(update={"api": api_settings.api.model_copy(update={"procedures": path})})


@pytest.fixture
def world(make_live_api, demo_venue) -> World:
    api = make_live_api(with_fan_zone(demo_venue))
    for role in Role:
        add_user(api.app, role.value, role=role, sites=(OWN,), password=PASSWORD)
    add_user(api.app, "root", role=Role.ADMIN, sites=("*",), password=PASSWORD)
    alerts = {site: make_alert(site_id=site, zone_id=None, status=AlertStatus.NEW) for site in (OWN, OTHER)}
    api.slice.store.write_alerts(list(alerts.values()))
    world = World(api, {site: a.alert_id for site, a in alerts.items()})
    # the other site has an audit record too (an action by a user of every site)
    token = token_for(api.app, "root")
    r = httpx.post(
        f"{api.base_url}/sites/{OTHER}/alerts/{world.alerts[OTHER]}/actions",
        json={"action": "acknowledge"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return world


def _expected(needed: Role | None, route: tuple[str, str], role: Role | None, site: str) -> str:
    if needed is None:
        return "ok"
    if role is None:
        return "401"
    if "{site_id}" in route[1] and site == OTHER:
        return "404"
    return "ok" if role.allows(needed) and route not in EVERY_SITE else "403"


def _outcome(status: int) -> str:
    return str(status) if status in (401, 403, 404) else "ok" if status < 400 else f"unexpected {status}"


def _request(client: httpx.Client, method: str, call: dict[str, Any], token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = call.pop("url")
    if url.endswith("/stream"):
        with client.stream(method, url, headers=headers) as r:
            if r.status_code == 200:
                assert r.headers["content-type"].startswith("text/event-stream")
                first = next(r.iter_lines())
                return r.status_code, first
            return r.status_code, r.read().decode()
    r = client.request(method, url, headers=headers, **call)
    return r.status_code, r.text


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=[f"{m} {p}" for m, p in sorted(ROUTES)])
def test_matrix(world, method, path):
    route = ROUTES[(method, path)]
    needed, example = EXAMPLES[(method, path)]
    rule = _rule(route)
    assert rule is not None
    assert isinstance(rule, SiteRule) == ("{site_id}" in path), "a route under a site needs a site rule"
    sites = [OWN, OTHER] if "{site_id}" in path else [OWN]
    wrong = []
    client = httpx.Client(base_url=world.api.base_url, timeout=10, follow_redirects=False)
    for role, site in itertools.product(ROLES, sites):
        name = role.value if role is not None else None
        token = token_for(world.api.app, name) if name is not None else None
        call = example(world, site, name or "")
        status, body = _request(client, method, call, token)
        want, got = _expected(needed, (method, path), role, site), _outcome(status)
        if want != got:
            wrong.append(f"{name or 'anonymous'} on {site}: expected {want}, got {status} {body[:200]}")
        if world.alerts[OTHER] in body:
            wrong.append(f"{name or 'anonymous'} on {site}: the other site's alert shows: {body[:200]}")
    client.close()
    assert wrong == []


def test_sites_list_only_the_users_sites(world):
    for role in Role:
        token = token_for(world.api.app, role.value)
        r = httpx.get(f"{world.api.base_url}/sites", headers={"Authorization": f"Bearer {token}"})
        assert [s["id"] for s in r.json()["sites"]] == [OWN], role
    token = token_for(world.api.app, "root")
    r = httpx.get(f"{world.api.base_url}/sites", headers={"Authorization": f"Bearer {token}"})
    assert [s["id"] for s in r.json()["sites"]] == [OWN, OTHER]
