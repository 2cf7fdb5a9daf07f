"""`beffroi users add|list|disable`: users in the store of the settings' mode, passwords from
standard input only, each change audited; the API signs them in."""

from __future__ import annotations

import io

import pytest

from api.app import create_app
from beffroi.identity import AuditKind
from beffroi.sqlite_store import SqliteStore
from tests.fixtures.api import TestClient, auth_settings_for_tests, with_auth
from tower import cli
from tower.settings import Settings

PASSWORD = "a long enough password"


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "users.db"
    monkeypatch.setenv("BEFFROI_SQLITE__PATH", str(path))
    monkeypatch.setenv("BEFFROI_MODE", "embedded")
    return path


def run(monkeypatch, capsys, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["users", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_users_are_added_listed_disabled_and_audited(db, monkeypatch, capsys, demo_venue):
    assert (
        run(
            monkeypatch,
            capsys,
            "add",
            "olga",
            "--role",
            "operator",
            "--sites",
            "stade-demo",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )[0]
        == 0
    )
    code, _, err = run(
        monkeypatch,
        capsys,
        "add",
        "olga",
        "--role",
        "admin",
        "--sites",
        "*",
        "--password-stdin",
        stdin=PASSWORD,
    )
    assert (code, err.strip()) == (1, "beffroi users add: a user named 'olga' exists")
    code, _, err = run(
        monkeypatch,
        capsys,
        "add",
        "x",
        "--role",
        "viewer",
        "--sites",
        "s",
        "--password-stdin",
        stdin="short\n",
    )
    assert (code, err.strip()) == (2, "beffroi users add: a password has at least 12 characters")
    code, _, err = run(monkeypatch, capsys, "add", "x", "--role", "viewer", "--sites", "s")
    assert code == 2
    assert "--password-stdin" in err
    code, out, _ = run(monkeypatch, capsys, "list")
    assert out.split("\t")[:4] == ["olga", "operator", "stade-demo", "active"]

    store = SqliteStore(db)
    try:
        app = create_app(
            with_auth(Settings(), auth_settings_for_tests()), store=store, venue=demo_venue, live_alerts=False
        )
        with TestClient(app) as client:
            r = client.post("/auth/token", data={"username": "olga", "password": PASSWORD})
            assert r.status_code == 200, "the CLI's argon2 hash signs in through the API"
            assert run(monkeypatch, capsys, "disable", "olga")[0] == 0
            assert (
                client.post("/auth/token", data={"username": "olga", "password": PASSWORD}).status_code == 401
            )
        assert run(monkeypatch, capsys, "disable", "nobody")[0] == 1
        kinds = [(r.kind, r.target, r.client) for r in reversed(store.list_audit())]
        assert kinds[:1] == [(AuditKind.USER_ADDED, "olga", "cli")]
        assert (AuditKind.USER_DISABLED, "olga", "cli") in kinds
    finally:
        store.close()
