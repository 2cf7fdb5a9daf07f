"""Signing in: POST /auth/token (OAuth2 password flow: a bearer token in the body) and
POST /auth/session (the same check; the token goes into an HttpOnly, SameSite=Strict cookie for the
map page and its SSE stream). Failed sign-ins are limited per user name and per client address
(429 with Retry-After); every attempt, successful or not, is audited."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Request, Response
from pydantic import BaseModel

from api.access import BEARER, PUBLIC, Viewer, token_of
from api.audit import audit, client_of
from api.auth.passwords import Passwords
from api.auth.ratelimit import FailureLimiter
from api.auth.settings import AuthSettings
from api.auth.tokens import LocalTokens, Principal, TokenVerifier, principal_of
from api.deps import IdentityDep
from beffroi.identity import USER_NAME_PATTERN, AuditKind, IdentityStore, Role, User

router = APIRouter(prefix="/auth", tags=["auth"])

_NAME = re.compile(USER_NAME_PATTERN)
_UNAUTHORIZED = {"description": "wrong user name or password, or a disabled user"}
_LIMITED = {"description": "too many failed sign-ins for this user or from this address (see Retry-After)"}


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    """Seconds."""


class Session(BaseModel):
    """Who is signed in, with what rights, until when (the token itself is only in the cookie)."""

    name: str
    role: Role
    sites: list[str]
    """Site ids, or ['*'] for every site."""
    source: Literal["local", "oidc"]
    expires_at: float
    """Seconds since the epoch."""


Username = Annotated[str, Form(min_length=1, max_length=128)]
Password = Annotated[str, Form(min_length=1, max_length=1024)]


def _session(principal: Principal) -> Session:
    return Session(
        name=principal.name,
        role=principal.role,
        sites=principal.site_list(),
        source=principal.source,
        expires_at=principal.expires_at,
    )


def _sign_in(request: Request, identity: IdentityStore, username: str, password: str) -> User:
    """The user whose password this is; 401 or 429 otherwise. Audited either way."""
    state = request.app.state
    users: FailureLimiter = state.user_limiter
    addresses: FailureLimiter = state.address_limiter
    passwords: Passwords = state.passwords
    name = username.strip().lower()
    client = client_of(request)
    wait = max(users.retry_after(name), addresses.retry_after(client))
    if wait:
        audit(request, AuditKind.SIGN_IN_FAILED, actor=name, detail=f"refused: rate limited for {wait} s")
        raise HTTPException(
            429, f"too many failed sign-ins: try again in {wait} s", headers={"Retry-After": str(wait)}
        )
    user = identity.get_user(name) if _NAME.match(name) else None
    ok = passwords.verify(user.password_hash if user is not None else None, password)
    if user is None or not ok or user.disabled:
        users.fail(name)
        addresses.fail(client)
        why = "unknown user" if user is None else "disabled user" if ok else "wrong password"
        audit(request, AuditKind.SIGN_IN_FAILED, actor=name, detail=why)
        raise HTTPException(401, "wrong user name or password, or a disabled user", headers=BEARER)
    users.reset(name)
    return user


@router.post(
    "/token", dependencies=[PUBLIC], responses={401: _UNAUTHORIZED, 429: _LIMITED}, summary="Sign in (OAuth2)"
)
def issue_token(request: Request, identity: IdentityDep, username: Username, password: Password) -> Token:
    """The OAuth2 password flow: form fields `username` and `password`; answers a short-lived
    bearer token for the `Authorization: Bearer` header."""
    user = _sign_in(request, identity, username, password)
    tokens: LocalTokens = request.app.state.tokens.local
    token, expires_at = tokens.issue(user)
    audit(request, AuditKind.SIGN_IN, actor=user.name, detail="bearer token")
    return Token(access_token=token, expires_in=int(expires_at - time.time()))


def _set_cookie(request: Request, response: Response, token: str, expires_at: float) -> None:
    """The token, HttpOnly; beside it a hint cookie without secret that tells the page a session may
    be open (so that it asks for one only then: a browser logs every 401 as an error)."""
    settings: AuthSettings = request.app.state.auth_settings
    for name, value, httponly in ((settings.cookie_name, token, True), (_hint(settings), "1", False)):
        response.set_cookie(
            name,
            value,
            max_age=max(0, round(expires_at - time.time())),
            httponly=httponly,
            samesite="strict",
            secure=settings.cookie_secure,
            path="/",
        )


def _hint(settings: AuthSettings) -> str:
    return f"{settings.cookie_name}_open"


@router.post(
    "/session",
    dependencies=[PUBLIC],
    responses={401: _UNAUTHORIZED, 429: _LIMITED},
    summary="Sign in (cookie)",
)
def open_session(
    request: Request, response: Response, identity: IdentityDep, username: Username, password: Password
) -> Session:
    """Sign in for the map page: the token is set in an HttpOnly, SameSite=Strict cookie."""
    user = _sign_in(request, identity, username, password)
    tokens: LocalTokens = request.app.state.tokens.local
    token, expires_at = tokens.issue(user)
    _set_cookie(request, response, token, expires_at)
    audit(request, AuditKind.SIGN_IN, actor=user.name, detail="session cookie")
    return _session(principal_of(user, expires_at))


@router.get("/session", summary="Who is signed in")
def get_session(principal: Viewer) -> Session:
    return _session(principal)


@router.post("/session/refresh", summary="A fresh session cookie before this one expires")
def refresh_session(
    request: Request, response: Response, principal: Viewer, identity: IdentityDep
) -> Session:
    """For a user of this API (not an OIDC token): a new cookie, with the user's current rights."""
    if principal.source != "local":
        raise HTTPException(409, "an OIDC token is renewed by its issuer, not here")
    user = identity.get_user(principal.name)
    if user is None or user.disabled:
        raise HTTPException(401, f"user {principal.name!r} is unknown or disabled", headers=BEARER)
    verifier: TokenVerifier = request.app.state.tokens
    token, expires_at = verifier.local.issue(user)
    _set_cookie(request, response, token, expires_at)
    return _session(principal_of(user, expires_at))


@router.delete("/session", status_code=204, summary="Sign out")
def close_session(request: Request, principal: Viewer) -> Response:
    """Clears the cookie; the token stops working in this API process."""
    token, _ = token_of(request)
    verifier: TokenVerifier = request.app.state.tokens
    if token:
        verifier.revoke(token)
    response = Response(status_code=204)
    settings: AuthSettings = request.app.state.auth_settings
    response.delete_cookie(settings.cookie_name, path="/", httponly=True, samesite="strict")
    response.delete_cookie(_hint(settings), path="/", samesite="strict")
    return response
