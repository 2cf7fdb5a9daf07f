"""Users, for admins: list them, add one, disable one. An admin grants only sites of their own.
The command line does the same (`beffroi users ...`); both are audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.access import Admin
from api.audit import audit
from api.auth.passwords import Passwords
from api.auth.tokens import Principal
from api.deps import IdentityDep
from beffroi.identity import (
    ALL_SITES,
    USER_NAME_PATTERN,
    AuditKind,
    Role,
    SiteGrant,
    User,
    UserName,
    check_sites,
)

router = APIRouter(prefix="/users", tags=["users"])


class UserOut(BaseModel):
    name: str
    role: Role
    sites: list[str]
    disabled: bool
    created_at: datetime


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: UserName
    role: Role
    sites: SiteGrant = Field(description="site ids, or ['*'] for every site")
    password: str = Field(min_length=12, max_length=1024)

    @field_validator("sites")
    @classmethod
    def _sites(cls, sites: SiteGrant) -> list[str]:
        return list(check_sites(tuple(sites)))


def _out(user: User) -> UserOut:
    return UserOut(
        name=user.name,
        role=user.role,
        sites=list(user.sites),
        disabled=user.disabled,
        created_at=user.created_at,
    )


def _grants(principal: Principal, sites: list[str]) -> None:
    if principal.sites is None:
        return
    outside = sorted(set(sites) - principal.sites) if ALL_SITES not in sites else [ALL_SITES]
    if outside:
        raise HTTPException(403, f"you cannot grant sites outside your own: {', '.join(outside)}")


@router.get("")
def list_users(principal: Admin, identity: IdentityDep) -> list[UserOut]:
    return [_out(u) for u in identity.list_users()]


@router.post(
    "",
    status_code=201,
    responses={
        403: {"description": "a site outside the admin's"},
        409: {"description": "a user of that name exists"},
    },
)
def add_user(request: Request, principal: Admin, identity: IdentityDep, body: NewUser) -> UserOut:
    _grants(principal, list(body.sites))
    passwords: Passwords = request.app.state.passwords
    user = User(
        name=body.name,
        role=body.role,
        sites=tuple(body.sites),
        password_hash=passwords.hash(body.password),
        created_at=datetime.now(UTC),
    )
    try:
        identity.add_user(user)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    audit(
        request,
        AuditKind.USER_ADDED,
        actor=principal.name,
        target=user.name,
        detail=f"role {user.role.value}, sites {','.join(user.sites)}",
    )
    return _out(user)


@router.post("/{name}/disable", responses={404: {"description": "no such user"}})
def disable_user(
    request: Request,
    principal: Admin,
    identity: IdentityDep,
    name: Annotated[str, Path(pattern=USER_NAME_PATTERN, max_length=64)],
) -> UserOut:
    user = identity.get_user(name)
    if user is None:
        raise HTTPException(404, f"no user {name!r}")
    _grants(principal, list(user.sites))
    identity.set_user_disabled(name, True)
    audit(request, AuditKind.USER_DISABLED, actor=principal.name, target=name)
    return _out(user.model_copy(update={"disabled": True}))
