"""Bearer tokens: the API's own (HS256 JWT, short-lived) and those of a configured OIDC issuer.

`TokenVerifier.principal(token)` answers who the token speaks for. A verified token is trusted for
`recheck_s` (its user is then read again: a disabled user's token stops working within that time),
so that the per-request path is a dictionary look-up.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from api.auth.settings import AuthSettings, OidcSettings
from beffroi.identity import ALL_SITES, IdentityStore, Role, User

LOCAL_ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or speaks for nobody allowed in; `str()` says why."""


class KeysUnavailable(Exception):
    """The OIDC issuer's key set cannot be read from its address (the token may be good: a 503)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for. `sites` None: every site."""

    name: str
    role: Role
    sites: frozenset[str] | None
    source: Literal["local", "oidc"]
    expires_at: float
    """The token's expiry (seconds since the epoch)."""

    def sees(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites

    def can(self, role: Role) -> bool:
        return self.role.allows(role)

    def site_list(self) -> list[str]:
        return [ALL_SITES] if self.sites is None else sorted(self.sites)


def principal_of(user: User, expires_at: float) -> Principal:
    sites = None if user.all_sites else frozenset(user.sites)
    return Principal(user.name, user.role, sites, "local", expires_at)


class LocalTokens:
    """The API's own tokens, signed with the settings' secret key."""

    def __init__(self, settings: AuthSettings, *, clock: Callable[[], float] = time.time) -> None:
        if settings.secret_key is None:
            raise ValueError(
                "api.auth.secret_key is not set: export BEFFROI_API__AUTH__SECRET_KEY "
                "(at least 32 random characters: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )
        self._key = settings.secret_key.get_secret_value()
        self._settings = settings
        self._clock = clock

    @property
    def issuer(self) -> str:
        return self._settings.issuer

    def issue(self, user: User) -> tuple[str, float]:
        """A token for `user` and its expiry (seconds since the epoch)."""
        now = int(self._clock())
        exp = now + self._settings.token_ttl_s
        claims = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": user.name,
            "iat": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=LOCAL_ALGORITHM), float(exp)

    def decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[LOCAL_ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired: sign in again") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        return claims


class OidcTokens:
    """Tokens of an external issuer, checked with its public keys (a JWKS file, or its address)."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._keys: jwt.PyJWKSet | None = None
        self._client: jwt.PyJWKClient | None = None
        if settings.jwks_file is not None:
            try:
                self._keys = jwt.PyJWKSet.from_json(settings.jwks_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, jwt.PyJWKSetError) as exc:
                raise ValueError(f"api.auth.oidc.jwks_file {settings.jwks_file}: {exc}") from exc
        else:
            assert settings.jwks_url is not None
            # the key set is fetched once, kept `jwks_cache_s`; a token with an unknown kid (a rotated
            # key) fetches it again at most every `jwks_refetch_s`
            self._client = jwt.PyJWKClient(
                settings.jwks_url,
                lifespan=settings.jwks_cache_s,
                timeout=settings.jwks_timeout_s,
                cooldown_duration=settings.jwks_refetch_s,
            )

    def _key(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientConnectionError as exc:
                raise KeysUnavailable(
                    f"the keys of {self.settings.issuer} cannot be read from {self.settings.jwks_url}: "
                    f"{exc.__cause__ or exc}"
                ) from exc
            except jwt.PyJWTError as exc:
                raise InvalidToken(f"no key of {self.settings.issuer} checks this token: {exc}") from exc
        assert self._keys is not None
        keys = [k for k in self._keys.keys if kid is None or k.key_id == kid]
        if len(keys) != 1:
            raise InvalidToken(f"no single key of {self.settings.issuer} has kid {kid!r}")
        return keys[0].key

    def principal(self, token: str) -> Principal:
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(token),
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired: sign in again") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        name = claims.get(s.username_claim) or claims.get("sub")
        if not isinstance(name, str) or not name or len(name) > 128:
            raise InvalidToken(f"the token names no user (claims {s.username_claim!r}, 'sub')")
        role = self._role(claims.get(s.roles_claim))
        sites = self._sites(claims.get(s.sites_claim))
        return Principal(name, role, sites, "oidc", float(claims["exp"]))

    def _role(self, claim: object) -> Role:
        names = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
        roles = []
        for name in names:
            if not isinstance(name, str):
                continue
            if name in self.settings.role_map:
                roles.append(self.settings.role_map[name])
            elif name in Role.__members__.values():
                roles.append(Role(name))
        if not roles:
            raise InvalidToken(f"the token's {self.settings.roles_claim!r} claim grants no Beffroi role")
        return max(roles, key=lambda r: r.rank)

    def _sites(self, claim: object) -> frozenset[str] | None:
        if claim == ALL_SITES or (isinstance(claim, list) and ALL_SITES in claim):
            return None
        if isinstance(claim, str):
            claim = [claim]
        if not isinstance(claim, list) or not claim or not all(isinstance(s, str) for s in claim):
            raise InvalidToken(f"the token's {self.settings.sites_claim!r} claim names no site")
        return frozenset(claim)


class TokenVerifier:
    """Who a bearer token speaks for, with a cache of verified tokens."""

    def __init__(
        self,
        local: LocalTokens,
        users: IdentityStore,
        *,
        oidc: OidcTokens | None = None,
        recheck_s: float = 30.0,
        max_cached: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.oidc = oidc
        self._users = users
        self._recheck_s = recheck_s
        self._max_cached = max_cached
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified less than `recheck_s` ago and not expired, else None."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        principal, until = hit
        if self._clock() >= until:
            return None
        return principal

    def principal(self, token: str) -> Principal:
        """Verify `token` (or take it from the cache); raises InvalidToken, or KeysUnavailable when
        the OIDC issuer's key set cannot be fetched."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        if token in self._revoked:
            raise InvalidToken("this session has been signed out: sign in again")
        principal = self._verify(token)
        until = min(principal.expires_at, self._clock() + self._recheck_s)
        with self._lock:
            self._cache[token] = (principal, until)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return principal

    def revoke(self, token: str) -> None:
        """Sign a token out in this process (until it expires)."""
        now = self._clock()
        with self._lock:
            self._cache.pop(token, None)
            self._revoked = {t: exp for t, exp in self._revoked.items() if exp > now}
            try:
                exp = float(jwt.decode(token, options={"verify_signature": False}).get("exp", now))
            except jwt.PyJWTError:
                return
            self._revoked[token] = exp

    def _verify(self, token: str) -> Principal:
        if not token or len(token) > 8192:
            raise InvalidToken("invalid token: empty or too long")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        if self.oidc is not None and issuer == self.oidc.settings.issuer:
            return self.oidc.principal(token)
        if issuer != self.local.issuer:
            raise InvalidToken(f"tokens of issuer {issuer!r} are not accepted here")
        claims = self.local.decode(token)
        user = self._users.get_user(str(claims["sub"]))
        if user is None or user.disabled:
            raise InvalidToken(f"user {claims['sub']!r} is unknown or disabled")
        return principal_of(user, float(claims["exp"]))
