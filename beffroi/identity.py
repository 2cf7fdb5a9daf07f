"""Who may do what, and the record of what they did: users, roles, site scopes and the audit log.

A user has one role and a set of sites (`*`: every site). Roles are ordered, each one can do what
the ones below it can: viewer (read) < operator (act on alerts) < supervisor (assign, escalate,
procedures, audit) < admin (users). The audit log is append-only: sign-ins, alert actions,
procedure steps, escalations, user changes and exports, each with its actor, client and site.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from beffroi.events import AwareDatetime

ALL_SITES = "*"
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

UserName = Annotated[str, Field(pattern=USER_NAME_PATTERN, max_length=64)]
SiteId = Annotated[str, Field(pattern=SITE_ID_PATTERN, max_length=64)]
SiteGrant = tuple[Literal["*"]] | Annotated[list[SiteId], Field(min_length=1, max_length=1000)]
"""['*'] for every site, or site ids."""


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """True when this role can do what `needed` can (roles are ordered)."""
        return self.rank >= needed.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}


def check_sites(sites: tuple[str, ...]) -> tuple[str, ...]:
    """A site scope: `("*",)` for every site, else distinct site ids, sorted."""
    if ALL_SITES in sites:
        if len(sites) != 1:
            raise ValueError("'*' (every site) cannot be combined with named sites")
        return sites
    if not sites:
        raise ValueError("a user needs at least one site, or '*' for every site")
    for site in sites:
        if not re.match(SITE_ID_PATTERN, site) or len(site) > 64:
            raise ValueError(f"{site!r} is not a site id (lowercase letters, digits, '-' and '_')")
    return tuple(sorted(set(sites)))


class User(BaseModel):
    """A local user. `password_hash` is an argon2 hash (None: cannot sign in with a password)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: UserName
    role: Role
    sites: tuple[str, ...]
    password_hash: str | None = Field(default=None, repr=False)
    disabled: bool = False
    created_at: AwareDatetime

    @field_validator("sites")
    @classmethod
    def _sites(cls, sites: tuple[str, ...]) -> tuple[str, ...]:
        return check_sites(sites)

    @property
    def all_sites(self) -> bool:
        return self.sites == (ALL_SITES,)


class AuditKind(StrEnum):
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    ALERT_ACTION = "alert_action"
    ALERT_ASSIGNED = "alert_assigned"
    ALERT_ESCALATED = "alert_escalated"
    STEP_DONE = "step_done"
    USER_ADDED = "user_added"
    USER_DISABLED = "user_disabled"
    PROCEDURES_LOADED = "procedures_loaded"
    EXPORT = "export"


class AuditRecord(BaseModel):
    """One line of the audit log. `seq` is given by the store (None before it is written)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int | None = None
    at: AwareDatetime
    kind: AuditKind
    actor: str = Field(max_length=128)
    """The user name (for a failed sign-in: the name as typed, at most 128 characters)."""
    site_id: str | None = None
    target: str | None = Field(default=None, max_length=256)
    """What was acted on: an alert id, a user name, a procedure file."""
    client: str | None = Field(default=None, max_length=64)
    """The client's address, for what came through the API."""
    detail: str = Field(default="", max_length=2000)


@dataclass(frozen=True, slots=True)
class RequestKey:
    """A live claim of an Idempotency-Key: the request it came with and its answer (`status` None:
    still being answered)."""

    fingerprint: str
    status: int | None
    body: bytes | None


@runtime_checkable
class IdentityStore(Protocol):
    """Where users and the audit log are kept (the Store implements it; both backends), and what
    several API processes on one store share about requests: failed sign-ins and Idempotency-Keys."""

    def add_user(self, user: User) -> None:
        """Raises ValueError when a user of that name exists."""

    def get_user(self, name: str) -> User | None: ...

    def list_users(self) -> list[User]: ...

    def set_user_disabled(self, name: str, disabled: bool) -> bool:
        """Returns False for an unknown user."""

    def append_audit(self, records: list[AuditRecord]) -> None: ...

    def list_audit(
        self,
        *,
        sites: frozenset[str] | None = None,
        kind: AuditKind | None = None,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Newest first. `sites` None: every record; else only the records of those sites."""

    def sign_in_failures(self, key: str, *, since: datetime, limit: int) -> list[datetime]:
        """The times of `key`'s failed sign-ins after `since`, newest first, at most `limit`."""

    def add_sign_in_failure(self, keys: Sequence[str], *, at: datetime, forget_before: datetime) -> None:
        """Note a failed sign-in for each key; failures of any key before `forget_before` are dropped."""

    def clear_sign_in_failures(self, key: str) -> None: ...

    def claim_request_key(
        self, owner: str, key: str, fingerprint: str, *, now: datetime, expires_at: datetime
    ) -> RequestKey | None:
        """Claim `owner`'s `key` until `expires_at`: None when this call got it (no live claim existed,
        atomically across processes), else the live claim as it stands."""

    def finish_request_key(
        self, owner: str, key: str, *, status: int, body: bytes, expires_at: datetime
    ) -> None:
        """Keep the answer of a claimed key."""

    def release_request_key(self, owner: str, key: str) -> None:
        """Drop a claim (the request failed before acting)."""
