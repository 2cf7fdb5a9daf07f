"""Who may call what: every route declares one rule, checked before its handler runs.

- `public`: no token (health, sign-in, the map page's files).
- `require(role)`: a valid token whose role is at least `role` (else 401, then 403).
- `site_for(role)`: the same for a route under /sites/{site_id}: a site outside the user's sites
  answers 404 exactly as an unknown one does (its existence is not revealed), checked before the role.

The token comes from `Authorization: Bearer ...`, or from the session cookie that the map page
gets from POST /auth/session (HttpOnly, SameSite=Strict; it also serves the SSE stream).
tests/api/test_access_matrix.py fails for any route without a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from api.auth.tokens import InvalidToken, KeysUnavailable, Principal, TokenVerifier
from beffroi.identity import SITE_ID_PATTERN, Role
from beffroi.venue import Venue

BEARER = {"WWW-Authenticate": "Bearer"}


def token_of(request: Request) -> tuple[str | None, bool]:
    """The request's token and whether it came from the session cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), False
        return None, False
    return request.cookies.get(request.app.state.auth_settings.cookie_name), True


async def authenticated(request: Request) -> Principal:
    """The principal of the request's token; 401 without a valid one."""
    token, from_cookie = token_of(request)
    if not token:
        raise HTTPException(401, "sign in first: this endpoint needs a bearer token", headers=BEARER)
    verifier: TokenVerifier = request.app.state.tokens
    principal = verifier.cached(token)
    if principal is None:
        try:
            principal = await run_in_threadpool(verifier.principal, token)
        except InvalidToken as exc:
            raise HTTPException(401, str(exc), headers=BEARER) from exc
        except KeysUnavailable as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from exc
    if from_cookie and request.method not in ("GET", "HEAD", "OPTIONS"):
        _same_origin(request)
    request.state.principal = principal
    return principal


def _same_origin(request: Request) -> None:
    """A cookie-borne write must come from this API's own pages (SameSite=Strict does it in browsers
    that honour it; this covers the others)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise HTTPException(403, f"cross-origin request from {origin} refused")


Authenticated = Annotated[Principal, Depends(authenticated)]


class Rule:
    """Base of the access rules; `role` None: public."""

    role: Role | None = None


class _Public(Rule):
    async def __call__(self) -> None:
        return None


public = _Public()


class RoleRule(Rule):
    def __init__(self, role: Role) -> None:
        self.role = self.needed = role

    async def __call__(self, principal: Authenticated) -> Principal:
        _check_role(principal, self.needed)
        return principal


def _check_role(principal: Principal, role: Role) -> None:
    if not principal.can(role):
        raise HTTPException(
            403, f"this needs the {role.value} role or above; {principal.name} is {principal.role.value}"
        )


@dataclass(frozen=True, slots=True)
class SiteScope:
    site_id: str
    principal: Principal


class SiteRule(Rule):
    def __init__(self, role: Role) -> None:
        self.role = self.needed = role

    async def __call__(
        self, request: Request, site_id: Annotated[str, Path(pattern=SITE_ID_PATTERN, max_length=64)]
    ) -> SiteScope:
        # `authenticated` called, not depended on: one dependency less to solve on the hot path
        principal = await authenticated(request)
        venue: Venue | None = request.app.state.venue
        if not principal.sees(site_id) or (venue is not None and all(s.id != site_id for s in venue.sites)):
            if venue is None:
                raise HTTPException(
                    404, f"unknown site {site_id!r}: this API has no venue (settings.venue is not set)"
                )
            visible = sum(1 for s in venue.sites if principal.sees(s.id))
            raise HTTPException(404, f"unknown site {site_id!r} (venue {venue.id!r} has {visible} sites)")
        _check_role(principal, self.needed)
        return SiteScope(site_id, principal)


_ROLE_RULES = {role: RoleRule(role) for role in Role}
_SITE_RULES = {role: SiteRule(role) for role in Role}


def require(role: Role) -> RoleRule:
    return _ROLE_RULES[role]


def site_for(role: Role) -> SiteRule:
    return _SITE_RULES[role]


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
ViewSite = Annotated[SiteScope, Depends(site_for(Role.VIEWER))]
OperateSite = Annotated[SiteScope, Depends(site_for(Role.OPERATOR))]
SuperviseSite = Annotated[SiteScope, Depends(site_for(Role.SUPERVISOR))]
PUBLIC = Depends(public)


# -- the rules in the OpenAPI document ---------------------------------------------------------------


def flat_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes, those of included routers too (FastAPI keeps an included router whole)."""
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += flat_routes(included.routes) if included is not None else [route]
    return flat


def rule_of(route: APIRoute) -> Rule | None:
    """The access rule among the route's dependencies (None: it has none, which is a bug)."""
    found: set[Rule] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        found |= {d.call for d in dependant.dependencies if isinstance(d.call, Rule)}  # type: ignore[misc]
        stack += dependant.dependencies
    if len(found) > 1:
        raise ValueError(f"{route.path}: several access rules")
    return found.pop() if found else None


_ERROR_BODY = {
    "type": "object",
    "required": ["error", "reason"],
    "properties": {"error": {"type": "string"}, "reason": {"type": "string"}},
}


def document_access(app: FastAPI) -> None:
    """Adds to the app's OpenAPI document the bearer scheme, and to each operation the answers its
    rule can give: 401 without a valid token, 403 below its role, 404 for a site outside the user's."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "oauth2",
            "flows": {"password": {"tokenUrl": "auth/token", "scopes": {}}},
        }
        for route in flat_routes(app.routes):
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            rule = rule_of(route)
            if rule is None or rule.role is None:
                continue
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                operation["security"] = [{"bearer": []}]
                answers = operation.setdefault("responses", {})
                found = {"description": "unknown site, or outside the user's sites", **_json_error()}
                extra = {"401": {"description": "no valid token", **_json_error()}}
                if rule.role is not Role.VIEWER:
                    extra["403"] = {
                        "description": f"the user's role is below {rule.role.value}",
                        **_json_error(),
                    }
                if isinstance(rule, SiteRule):
                    extra["404"] = found
                for code, answer in extra.items():
                    answers.setdefault(code, answer)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _json_error() -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ERROR_BODY}}}
