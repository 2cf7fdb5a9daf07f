"""The Store seam: where readings, alerts and dead letters are kept (PostgreSQL, or SQLite).

Every write is idempotent on the record's id: writing the same batch twice stores it once, and
the write methods return how many rows were new. Checked by tests/contract/test_store_contract.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from beffroi.events import Alert, AlertStatus, DeadLetter, Reading


class StoreError(RuntimeError):
    """A store operation failed; the message names the table or step."""


class Store(ABC):
    """Implementations: `beffroi.sqlite_store.SqliteStore`, `beffroi.postgres_store.PostgresStore`."""

    @abstractmethod
    def migrate(self) -> None:
        """Apply every pending versioned migration; safe to call at every start."""

    @abstractmethod
    def write_readings(self, readings: Sequence[Reading]) -> int: ...

    @abstractmethod
    def write_alerts(self, alerts: Sequence[Alert]) -> int: ...

    @abstractmethod
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int: ...

    @abstractmethod
    def list_alerts(
        self,
        site_id: str,
        *,
        since: datetime | None = None,
        status: AlertStatus | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts of one site, newest first."""

    @abstractmethod
    def get_alert(self, alert_id: str) -> Alert | None: ...

    @abstractmethod
    def count_readings(self, site_id: str | None = None) -> int: ...

    @abstractmethod
    def count_dead_letters(self, reason: str | None = None) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
