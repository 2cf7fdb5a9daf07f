"""The Store seam: where readings, alerts and dead letters are kept (PostgreSQL, or SQLite).

Contract, shared by both backends and checked by tests/contract/test_store_contract.py:
- Every write is idempotent on the record's id: writing the same batch twice stores it once, and
  the write methods return how many rows were new. Readings are unique on (message_id, ts): the
  time column must be part of every unique key of a time-partitioned table, and a message id is a
  hash of the payload, which holds the timestamp, so this is the same as uniqueness on message_id.
- A write is all-or-nothing; concurrent writers of overlapping batches end with exactly the union.
- Readings with any timestamp are stored (far past or future ones land in a catch-all partition).
- NUL characters in text fields, which PostgreSQL cannot hold, are stored as U+FFFD in both backends,
  so that one odd message can never block a worker (dead-letter payloads keep their exact bytes).
- Reads return validated models with UTC datetimes. Listings are ordered and bounded by `limit`.
- `migrate()` applies the versioned migrations of `beffroi/migrations/`; it is safe to call at every
  start, from several processes at once. Instances are safe to share between threads.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from beffroi.events import Alert, AlertStatus, DeadLetter, DeadLetterReason, Reading


class StoreError(RuntimeError):
    """A store operation failed; the message names the table or step."""


def nul_free(text: str) -> str:
    """`text` with each NUL character replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def value_json(value: Mapping[str, float]) -> str:
    """A reading's values as a JSON object with NUL-free keys. NaN and infinities, which JSON cannot
    write, become the strings "NaN", "Infinity" and "-Infinity": PostgreSQL's float8 and pydantic
    both parse them back.
    """
    try:
        text = _JSON.encode(value)
    except ValueError:
        text = _JSON.encode({key: _json_number(number) for key, number in value.items()})
    if "\\u0000" in text:
        text = _JSON.encode({nul_free(key): _json_number(number) for key, number in value.items()})
    return text


_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _json_number(number: float) -> float | str:
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    return limit


class Store(ABC):
    """Implementations: `beffroi.sqlite_store.SqliteStore`, `beffroi.postgres_store.PostgresStore`.

    Build one from settings with `beffroi.store_factory.make_store`.
    """

    @abstractmethod
    def migrate(self) -> None:
        """Apply every pending versioned migration; safe to call at every start."""

    @abstractmethod
    def write_readings(self, readings: Sequence[Reading]) -> int:
        """Store readings; returns how many were new."""

    @abstractmethod
    def write_alerts(self, alerts: Sequence[Alert]) -> int:
        """Store alerts; returns how many were new (a known alert_id is left as it is)."""

    @abstractmethod
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Store dead letters with their exact original bytes; returns how many were new."""

    @abstractmethod
    def list_alerts(
        self,
        site_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        status: AlertStatus | None = None,
        zone_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts of one site raised in [since, until), newest first (ties by alert_id, descending)."""

    @abstractmethod
    def get_alert(self, alert_id: str) -> Alert | None: ...

    @abstractmethod
    def count_alerts(self, site_id: str | None = None, *, status: AlertStatus | None = None) -> int: ...

    @abstractmethod
    def list_readings(
        self,
        site_id: str,
        *,
        device_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[Reading]:
        """Readings of one site with ts in [since, until), oldest first (ties by message_id), for replay."""

    @abstractmethod
    def count_readings(self, site_id: str | None = None) -> int: ...

    @abstractmethod
    def list_dead_letters(
        self, *, reason: DeadLetterReason | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, newest first (ties by dead_letter_id, descending)."""

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
