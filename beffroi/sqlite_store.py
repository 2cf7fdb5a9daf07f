"""SqliteStore: the Store in one SQLite file, for the embedded mode (no servers).

`SqlStore` over `SqliteDialect`. WAL journal, so that readers never block the writer; every write is
one `BEGIN IMMEDIATE` transaction (the write lock is taken up front and waited for, up to
`busy_timeout_s`), which lets several processes or instances share the file. Times are stored as
fixed-width UTC text, which sorts like the instants it names; text arrays and JSON as JSON text.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from beffroi.migrations import Dialect as DialectName
from beffroi.migrations import Migration, sqlite_statements
from beffroi.sql_dialect import SqlDialect
from beffroi.sql_store import SqlStore
from beffroi.store import StoreError

T = TypeVar("T")


def sqlite_time(value: datetime) -> str:
    """'YYYY-MM-DDTHH:MM:SS.ffffffZ' in UTC: fixed width, so text order is time order."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class SqliteDialect(SqlDialect[sqlite3.Connection]):
    """SQLite: `?` placeholders, the write lock taken up front (no row locks), times as UTC text,
    text arrays and JSON as JSON text, WAL (with its retry while another connection switches)."""

    name: ClassVar[DialectName] = "sqlite"
    time_type: ClassVar[str] = "text"
    error: ClassVar[type[Exception]] = sqlite3.Error

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    @property
    def place(self) -> str:
        return f"in {self._path}"

    # -- connection -------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self._path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
                )
                self._enter_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open SQLite store {self._path}: {exc}") from exc
            self._conn = conn
        return self._conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL. While another connection makes the same switch SQLite answers "locked"
        at once, without waiting on the busy timeout: retry until that timeout."""
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def run(self, step: str, action: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        try:
            return action(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"{step} in {self._path}: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- transactions -----------------------------------------------------------------------------

    @contextmanager
    def write(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")  # the write lock: no other writer until COMMIT
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def snapshot(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN")  # WAL: the snapshot of the first read holds until COMMIT
        try:
            yield
        finally:
            conn.execute("COMMIT")

    # -- type conversion --------------------------------------------------------------------------

    time = staticmethod(sqlite_time)

    @staticmethod
    def from_time(raw: Any) -> datetime:
        return datetime.fromisoformat(raw)

    @staticmethod
    def text_list(values: Sequence[str]) -> Any:
        return json.dumps(list(values))

    @staticmethod
    def from_text_list(raw: Any) -> Any:
        return json.loads(raw)

    from_json = from_text_list

    # -- migrations -------------------------------------------------------------------------------

    def statements(self, migration: Migration) -> list[str]:
        return sqlite_statements(migration)


class SqliteStore(SqlStore[sqlite3.Connection]):
    """The Store in the SQLite file at `path` (its folder is created if missing)."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__(SqliteDialect(path, busy_timeout_s=busy_timeout_s))
