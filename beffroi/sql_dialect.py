"""The narrow seam below `beffroi.sql_store.SqlStore`: what differs between the SQL databases.

`SqlStore` writes each query once, with `?` placeholders, against the DB-API subset of `Connection`.
A dialect supplies the rest (`beffroi.postgres_store.PostgresDialect`,
`beffroi.sqlite_store.SqliteDialect`):
- connection handling: `run` (connect, reconnect, retry, map driver errors to StoreError) and `close`;
- spelling: `sql` (placeholders), `for_update` (the row lock of a read-then-update), `time_type`;
- transactions: `write` (locks taken as the database needs them) and `snapshot` (a consistent read);
- type conversion: timestamps (`time` / `from_time`), text arrays (`text_list` / `from_text_list`),
  JSON (`from_json`); bytes pass as they are in both;
- migrations: `migrations` (the versioned files of `beffroi/migrations/<name>/`), `statements`,
  `migrating` (a lock around the whole run) and `after_migrate`;
- the bulk insert hook `insert_new`, which a dialect may specialise per `Table` (PostgreSQL: COPY,
  and the partitions a time-partitioned table needs).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from beffroi.migrations import Dialect as DialectName
from beffroi.migrations import Migration, migrations_for

T = TypeVar("T")

Kind = Literal["text", "time", "json", "float", "text_list", "bytes"]
"""A column's kind, for a dialect that needs column types (PostgreSQL's COPY staging table)."""

Row = tuple[Any, ...]


class Cursor(Protocol):
    """The DB-API cursor subset that SqlStore uses (psycopg 3 and sqlite3 both have it)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def executemany(self, query: str, params_seq: Iterable[Sequence[Any]], /) -> Any: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """The DB-API connection subset that SqlStore uses (`execute` returns a cursor, as both do)."""

    def execute(self, query: str, params: Sequence[Any] = ..., /) -> Any: ...

    def cursor(self) -> Any: ...


C = TypeVar("C", bound=Connection)


@dataclass(frozen=True)
class Table:
    """A table that SqlStore inserts into: its columns in row order and its unique key.

    `bulk`, the column kinds, marks a table written in large batches: a dialect may then take a bulk
    path for it (PostgreSQL: binary COPY into a staging table). `partition_by` names the time column
    of a time-partitioned table (PostgreSQL creates the partitions the rows need).
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    bulk: tuple[Kind, ...] | None = None
    partition_by: str | None = None
    column_list: str = field(init=False)
    insert: str = field(init=False)
    """INSERT ... ON CONFLICT DO NOTHING of one row, with `?` placeholders."""

    def __post_init__(self) -> None:
        if self.bulk is not None and len(self.bulk) != len(self.columns):
            raise ValueError(f"table {self.name}: {len(self.columns)} columns but {len(self.bulk)} kinds")
        columns = ", ".join(self.columns)
        placeholders = ", ".join("?" * len(self.columns))
        object.__setattr__(self, "column_list", columns)
        object.__setattr__(
            self,
            "insert",
            f"INSERT INTO {self.name} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING",
        )

    def key_of(self) -> Callable[[Row], Any]:
        """A sort key giving a row's unique key."""
        return operator.itemgetter(*(self.columns.index(c) for c in self.key))


class SqlDialect(ABC, Generic[C]):
    """One SQL database under SqlStore. Its methods run under the store's lock (one at a time)."""

    name: ClassVar[DialectName]
    """Also the folder of its migrations: beffroi/migrations/<name>/."""
    for_update: ClassVar[str] = ""
    """Appended to the SELECT of a read-then-update: a row lock where `write` does not lock enough."""
    time_type: ClassVar[str]
    """The column type of timestamps (for the tables the store creates itself)."""
    error: ClassVar[type[Exception]]
    """The driver's base exception."""

    @property
    @abstractmethod
    def place(self) -> str:
        """Where the data lives, for messages: 'on postgresql://...' or 'in /path/store.db'."""

    # -- connection -------------------------------------------------------------------------------

    @abstractmethod
    def run(self, step: str, action: Callable[[C], T]) -> T:
        """`action` on a live connection (opened or reopened as needed); driver errors become
        StoreError naming `step` and the place. A dialect may retry `action`: writes are idempotent."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; the next `run` opens a new one."""

    # -- spelling and transactions ----------------------------------------------------------------

    def sql(self, query: str) -> str:
        """`query`, written with `?` placeholders, in the driver's placeholder style."""
        return query

    def execute(self, conn: C, query: str, params: Sequence[Any] = ()) -> Any:
        """Run one query (with `?` placeholders); returns the driver's cursor."""
        return conn.execute(self.sql(query), params)

    @abstractmethod
    def write(self, conn: C) -> AbstractContextManager[None]:
        """A write transaction; commits on exit, rolls back on an exception."""

    @abstractmethod
    def snapshot(self, conn: C) -> AbstractContextManager[None]:
        """A read transaction in which every query sees the same committed state."""

    # -- type conversion (parameters and results) -------------------------------------------------

    @staticmethod
    def time(value: datetime) -> Any:
        """An aware datetime as a parameter."""
        return value

    @staticmethod
    def from_time(raw: Any) -> datetime:
        """A timestamp column's value as a UTC datetime."""
        assert isinstance(raw, datetime)
        return raw

    @staticmethod
    def text_list(values: Sequence[str]) -> Any:
        """A sequence of strings as a parameter."""
        return list(values)

    @staticmethod
    def from_text_list(raw: Any) -> Any:
        """A text-array column's value as a sequence of strings."""
        return raw

    @staticmethod
    def from_json(raw: Any) -> Any:
        """A JSON column's value as Python data."""
        return raw

    # -- migrations -------------------------------------------------------------------------------

    def migrations(self) -> list[Migration]:
        """This dialect's versioned migrations, in version order."""
        return migrations_for(self.name)

    def statements(self, migration: Migration) -> list[str]:
        """The migration's SQL as the statements to execute (one, where the driver runs scripts)."""
        return [migration.sql]

    @contextmanager
    def migrating(self, conn: C) -> Iterator[None]:
        """Held around a whole migration run (where concurrent migrators need more than `write`)."""
        yield

    def after_migrate(self, conn: C) -> None:
        """Work after the migrations are applied (PostgreSQL: the partitions ahead)."""

    # -- the bulk insert hook ---------------------------------------------------------------------

    def insert_new(self, conn: C, table: Table, rows: Sequence[Row]) -> int:
        """Insert `rows` (parameters in `table.columns` order) in one transaction, skipping those
        whose key is already stored; returns how many were new. Rows go in key order, so that
        concurrent writers of overlapping batches wait on each other instead of deadlocking."""
        ordered = sorted(rows, key=table.key_of())
        with self.write(conn):
            cursor = conn.cursor()
            try:
                cursor.executemany(self.sql(table.insert), ordered)
                return max(int(cursor.rowcount), 0)  # the new rows, summed over the batch
            finally:
                cursor.close()
