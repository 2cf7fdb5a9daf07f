"""Versioned schema migrations, shipped as package data: `<dialect>/NNNN_name.sql`.

Each store applies the pending ones in version order, one transaction each, and records them in
`schema_migrations` with a checksum, so a migration edited after it was applied is reported
instead of silently skipped. Never edit an applied migration: add the next number.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from beffroi.store import StoreError

Dialect = Literal["postgres", "sqlite"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(StoreError):
    """A migration file is misnamed or duplicated, or differs from the one applied; names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_for(dialect: Dialect) -> list[Migration]:
    """The migrations of one dialect, ordered by version."""
    folder = resources.files(__package__).joinpath(dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"beffroi/migrations/{dialect}/{entry.name}: expected NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"beffroi/migrations/{dialect}/{entry.name}: version {version} already used by "
                f"{found[version].filename}"
            )
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def check_applied(dialect: Dialect, migration: Migration, applied_checksum: str) -> None:
    if applied_checksum != migration.checksum:
        raise MigrationError(
            f"beffroi/migrations/{dialect}/{migration.filename} changed after it was applied; "
            "add a new migration instead"
        )


def sqlite_statements(migration: Migration) -> list[str]:
    """The migration's SQLite script as complete statements (triggers included), each ending a line."""
    statements: list[str] = []
    buffer = ""
    for line in migration.sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if any(line.strip() and not line.strip().startswith("--") for line in buffer.splitlines()):
        raise MigrationError(
            f"beffroi/migrations/sqlite/{migration.filename}: unterminated statement {buffer.strip()[:80]!r}"
        )
    return statements
