"""The `api.auth` settings section. The signing key comes from the environment
(BEFFROI_API__AUTH__SECRET_KEY), never from a file in the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from beffroi.identity import Role


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OidcSettings(_Section):
    """An external identity provider whose tokens the API accepts."""

    issuer: str = Field(min_length=1, description="the tokens' `iss`")
    audience: str = Field(min_length=1, description="the `aud` the tokens must carry")
    jwks_file: Path | None = Field(default=None, description="the issuer's public keys (a JWKS file)")
    jwks_url: str | None = Field(default=None, pattern=r"^https?://", description="or their address")
    jwks_cache_s: float = Field(default=300.0, gt=0, description="how long keys read from jwks_url are kept")
    jwks_refetch_s: float = Field(
        default=30.0, ge=0, description="at most one new fetch per this time for a token of an unknown kid"
    )
    jwks_timeout_s: float = Field(default=5.0, gt=0, le=60, description="the fetch's time limit")
    algorithms: list[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]] = ["RS256", "ES256"]
    username_claim: str = "preferred_username"
    roles_claim: str = "roles"
    role_map: dict[str, Role] = Field(
        default_factory=dict,
        description="the issuer's role names -> Beffroi roles (the highest one wins); unmapped names "
        "that are Beffroi role names map to themselves",
    )
    sites_claim: str = "sites"
    """A list of site ids, or '*' for every site."""

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcSettings:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_file and jwks_url")
        return self


class PasswordHashSettings(_Section):
    """argon2id parameters (defaults: RFC 9106's second recommended option)."""

    time_cost: int = Field(default=3, ge=1)
    memory_kib: int = Field(default=65536, ge=8)
    parallelism: int = Field(default=4, ge=1)


class SignInLimits(_Section):
    """Failed sign-ins allowed per `window_s`, per user name and per client address, before 429."""

    per_user: int = Field(default=5, ge=1)
    per_address: int = Field(default=20, ge=1)
    window_s: float = Field(default=300.0, gt=0)


class AuthSettings(_Section):
    secret_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for the API's own tokens (at least 32 characters); from the environment",
    )
    token_ttl_s: int = Field(default=900, ge=30, le=86400)
    issuer: str = "beffroi"
    audience: str = "beffroi-api"
    cookie_name: str = Field(default="beffroi_session", pattern=r"^[A-Za-z0-9_-]+$")
    cookie_secure: bool = Field(default=False, description="set when the API is served over HTTPS")
    recheck_s: float = Field(
        default=30.0, ge=0, description="how long a verified token is trusted before its user is read again"
    )
    password_hash: PasswordHashSettings = PasswordHashSettings()
    sign_in_limits: SignInLimits = SignInLimits()
    oidc: OidcSettings | None = None

    @model_validator(mode="after")
    def _key_long_enough(self) -> AuthSettings:
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        return self
