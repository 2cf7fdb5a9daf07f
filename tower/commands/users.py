"""`beffroi users add|list|disable`: the API's local users, kept in the store of the settings' mode.

    beffroi users add NAME --role operator --sites stade-demo,fan-demo --password-stdin < password
    beffroi users add NAME --role admin --sites '*' --password-stdin
    beffroi users list
    beffroi users disable NAME

Passwords are read from standard input only (never from the command line, which `ps` shows), hashed
with argon2id; every change is written to the audit log.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from pydantic import ValidationError

from api.auth.passwords import Passwords
from beffroi.identity import AuditKind, AuditRecord, Role, User
from beffroi.store import Store
from beffroi.store_factory import make_store
from tower.settings import Settings, load_settings


def _store(args: argparse.Namespace) -> tuple[Settings, Store]:
    settings = load_settings(args.settings)
    return settings, make_store(settings)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _audit(store: Store, kind: AuditKind, target: str, detail: str = "") -> None:
    store.append_audit(
        [
            AuditRecord(
                at=datetime.now(UTC), kind=kind, actor=_actor(), target=target, client="cli", detail=detail
            )
        ]
    )


def _add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        print("beffroi users add: give the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("beffroi users add: a password has at least 12 characters", file=sys.stderr)
        return 2
    settings, store = _store(args)
    with store:
        try:
            user = User(
                name=args.name,
                role=Role(args.role),
                sites=tuple(s.strip() for s in args.sites.split(",") if s.strip()),
                password_hash=Passwords(settings.api.auth.password_hash).hash(password),
                created_at=datetime.now(UTC),
            )
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            print(f"beffroi users add: {reasons}", file=sys.stderr)
            return 2
        try:
            store.add_user(user)
        except ValueError as exc:
            print(f"beffroi users add: {exc}", file=sys.stderr)
            return 1
        _audit(
            store, AuditKind.USER_ADDED, user.name, f"role {user.role.value}, sites {','.join(user.sites)}"
        )
    print(f"added {user.name} ({user.role.value}, sites {','.join(user.sites)})")
    return 0


def _list(args: argparse.Namespace) -> int:
    _, store = _store(args)
    with store:
        users = store.list_users()
    for u in users:
        state = "disabled" if u.disabled else "active"
        print(f"{u.name}\t{u.role.value}\t{','.join(u.sites)}\t{state}\t{u.created_at.isoformat()}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    _, store = _store(args)
    with store:
        if not store.set_user_disabled(args.name, True):
            print(f"beffroi users disable: no user {args.name!r}", file=sys.stderr)
            return 1
        _audit(store, AuditKind.USER_DISABLED, args.name)
    print(f"disabled {args.name} (their tokens stop working within api.auth.recheck_s)")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="the API's local users: add, list, disable")
    p.add_argument("--settings", metavar="FILE", help="settings YAML (the environment overrides it)")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = users.add_parser("add", help="add a user (password on standard input)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--sites", required=True, help="site ids separated by commas, or '*' for every site")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(handler=_add)
    users.add_parser("list", help="list the users").set_defaults(handler=_list)
    disable = users.add_parser("disable", help="disable a user")
    disable.add_argument("name")
    disable.set_defaults(handler=_disable)
