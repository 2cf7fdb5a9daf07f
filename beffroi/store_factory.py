"""Build the Store that the settings' mode asks for: SQLite when embedded, PostgreSQL in stack mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from beffroi.postgres_store import PostgresStore
from beffroi.settings import Mode, PlatformSettings
from beffroi.sqlite_store import SqliteStore
from beffroi.store import Store

STORES: Final[dict[Mode, Callable[[PlatformSettings], Store]]] = {
    "embedded": lambda settings: SqliteStore(settings.sqlite.path),
    "stack": lambda settings: PostgresStore(settings.postgres),
}


def make_store(settings: PlatformSettings, *, migrate: bool = True) -> Store:
    """A new Store for `settings.mode`, its migrations applied unless `migrate` is False.

    Each caller (worker, API) makes its own instance; close it when done (it is a context manager).
    """
    store = STORES[settings.mode](settings)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
