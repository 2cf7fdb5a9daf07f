"""PostgresStore: the Store on PostgreSQL (psycopg 3), every object inside `settings.db_schema`.

`SqlStore` over `PostgresDialect`. One connection per instance; a worker and the API each make their
own. A batch of a bulk table (readings) is first written by a binary COPY straight into the table,
in key order (so that concurrent writers of overlapping batches wait on each other instead of
deadlocking): all or nothing, it stores the batch at COPY speed when every row is new, the common
case. When one is already stored (a redelivery), the key refuses the COPY, which is rolled back;
the batch then goes the idempotent way: a binary COPY into a per-session temporary table, then one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING` in key order. After such a refusal the next batches
of that table (likely the rest of the redelivery) go the idempotent way at once. Daily partitions
of `readings` are created ahead of the writes that need them; see
beffroi/migrations/postgres/0001_readings.sql (a TimescaleDB hypertable where the extension is
available).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, timedelta
from typing import Any, ClassVar, Final, TypedDict, TypeVar, Unpack

import psycopg
from psycopg import errors, sql

from beffroi.clock import utcnow
from beffroi.migrations import Dialect as DialectName
from beffroi.settings import PostgresSettings
from beffroi.sql_dialect import Kind, Row, SqlDialect, Table
from beffroi.sql_store import SqlStore
from beffroi.store import StoreError

T = TypeVar("T")

PgConnection = psycopg.Connection[Any]

# pg_advisory_lock key held while migrating, database-wide (CREATE EXTENSION is database-wide too).
MIGRATION_LOCK_KEY: Final = 0x6265_6666_726F_6900  # "beffroi\0"

# JSON travels as text through the staging table and is cast to jsonb by the INSERT
_STAGING_TYPES: Final[dict[Kind, str]] = {
    "text": "text",
    "time": "timestamptz",
    "json": "text",
    "float": "float8",
    "text_list": "text[]",
    "bytes": "bytea",
}
_RETRYABLE: Final = (errors.DeadlockDetected, errors.SerializationFailure)
# a jsonb column copied straight into its table takes jsonb's binary form: a version byte, the text
_JSONB_VERSION: Final = "\x01"
# batches of a table sent the idempotent way at once after a direct COPY met a row already stored
_AFTER_A_REDELIVERY: Final = 16


class PostgresOptions(TypedDict, total=False):
    connect_timeout_s: int
    partition_past_days: int
    partition_ahead_days: int
    copy_direct: bool


class PostgresDialect(SqlDialect[PgConnection]):
    """PostgreSQL: `%s` placeholders, row locks, native timestamptz / text[] / jsonb / bytea, COPY
    for bulk tables, daily partitions for time-partitioned ones.

    Days within `partition_past_days` before today and `partition_ahead_days` after it get their own
    daily partition; any other timestamp lands in the DEFAULT partition. `copy_direct=False` writes
    every batch of a bulk table the idempotent way (for comparison).
    """

    name: ClassVar[DialectName] = "postgres"
    for_update: ClassVar[str] = " FOR UPDATE"
    time_type: ClassVar[str] = "timestamptz"
    error: ClassVar[type[Exception]] = psycopg.Error

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        connect_timeout_s: int = 10,
        partition_past_days: int = 366,
        partition_ahead_days: int = 7,
        copy_direct: bool = True,
    ) -> None:
        self._settings = settings
        self._copy_direct = copy_direct
        self._idempotent_next: dict[str, int] = {}
        self._schema = settings.db_schema
        self._connect_timeout_s = connect_timeout_s
        self._past = timedelta(days=partition_past_days)
        self._ahead = timedelta(days=partition_ahead_days)
        self._conn: PgConnection | None = None
        self._staging_ready: set[str] = set()
        self._days_ready: set[date] = set()

    @property
    def where(self) -> str:
        """host:port/dbname, schema — for messages (never the password)."""
        s = self._settings
        return f"postgresql://{s.user}@{s.host}:{s.port}/{s.dbname}, schema {self._schema}"

    @property
    def place(self) -> str:
        return f"on {self.where}"

    # -- connection -------------------------------------------------------------------------------

    def _connection(self) -> PgConnection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self.close()
        try:
            conn = psycopg.connect(
                self._settings.conninfo(),
                autocommit=True,
                connect_timeout=self._connect_timeout_s,
                application_name=f"beffroi:{self._schema}"[:63],
                options=f"-c search_path={self._schema} -c TimeZone=UTC",
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self.where}: {exc}") from exc
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def __del__(self) -> None:
        # a store dropped unclosed (a late caller reopened it after close) still closes its connection
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            conn.close()
        self._staging_ready.clear()

    def run(self, step: str, action: Callable[[PgConnection], T]) -> T:
        """Retries on deadlock/serialization failure, and once on a lost connection."""
        reconnected = False
        for attempt in range(5):
            conn = self._connection()
            try:
                return action(conn)
            except _RETRYABLE as exc:
                if attempt == 4:
                    raise StoreError(f"{step} on {self.where}: {exc}") from exc
            except psycopg.OperationalError as exc:
                if reconnected or not conn.broken:
                    raise StoreError(f"{step} on {self.where}: {exc}") from exc
                reconnected = True
                self.close()
            except psycopg.Error as exc:
                raise StoreError(f"{step} on {self.where}: {exc}") from exc
        raise AssertionError("unreachable")

    # -- spelling and transactions ----------------------------------------------------------------

    def sql(self, query: str) -> str:
        return _pyformat(query)

    @contextmanager
    def write(self, conn: PgConnection) -> Iterator[None]:
        with conn.transaction():
            yield

    @contextmanager
    def snapshot(self, conn: PgConnection) -> Iterator[None]:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    # -- migrations -------------------------------------------------------------------------------

    @contextmanager
    def migrating(self, conn: PgConnection) -> Iterator[None]:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
            yield
        finally:
            if not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        self._staging_ready.clear()

    def after_migrate(self, conn: PgConnection) -> None:
        today = utcnow().date()
        self._ensure_days(conn, {today + timedelta(days=d) for d in range(-1, self._ahead.days + 1)})

    def _ensure_days(self, conn: PgConnection, days: set[date]) -> None:
        """Create the daily partitions of `days` within the window that this instance has not seen yet."""
        today = utcnow().date()
        wanted = {d for d in days if today - self._past <= d <= today + self._ahead} - self._days_ready
        if not wanted:
            return
        with conn.transaction():
            conn.execute("SELECT readings_ensure_partitions(%s::date[])", (sorted(wanted),))
        self._days_ready |= wanted

    # -- the bulk insert hook ---------------------------------------------------------------------

    def insert_new(self, conn: PgConnection, table: Table, rows: Sequence[Row]) -> int:
        if table.partition_by is not None:
            at = table.columns.index(table.partition_by)
            self._ensure_days(conn, {row[at].astimezone(UTC).date() for row in rows})
        if table.bulk is None:
            return super().insert_new(conn, table, rows)
        return self._copy_new(conn, table, table.bulk, rows)

    def _copy_new(
        self, conn: PgConnection, table: Table, kinds: tuple[Kind, ...], rows: Sequence[Row]
    ) -> int:
        key = [table.columns.index(c) for c in table.key]
        rows = sorted(rows, key=lambda row: [row[i] for i in key])
        if self._copy_direct and self._idempotent_next.get(table.name, 0) <= 0:
            try:
                return self._copy_direct_into(conn, table, kinds, rows)
            except errors.UniqueViolation:
                self._idempotent_next[table.name] = _AFTER_A_REDELIVERY
        self._idempotent_next[table.name] = self._idempotent_next.get(table.name, 0) - 1
        staging = f"{table.name}_staging"
        if staging not in self._staging_ready:
            columns = ", ".join(f"{c} {_STAGING_TYPES[k]}" for c, k in zip(table.columns, kinds, strict=True))
            conn.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ({columns}) ON COMMIT DELETE ROWS")
            self._staging_ready.add(staging)
        staged = ", ".join(
            f"{c}::jsonb" if k == "json" else c for c, k in zip(table.columns, kinds, strict=True)
        )
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {staging} ({table.column_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([_STAGING_TYPES[k] for k in kinds])
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO {table.name} ({table.column_list}) SELECT {staged} FROM {staging} "
                f"ORDER BY {', '.join(table.key)} ON CONFLICT DO NOTHING"
            )
            return max(cur.rowcount, 0)

    def _copy_direct_into(
        self, conn: PgConnection, table: Table, kinds: tuple[Kind, ...], rows: Sequence[Row]
    ) -> int:
        """COPY `rows` (in key order) into the table itself: all stored, or `UniqueViolation`."""
        json_at = [i for i, k in enumerate(kinds) if k == "json"]
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY {table.name} ({table.column_list}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types([_STAGING_TYPES[k] for k in kinds])
            for row in rows:
                if json_at:
                    values = list(row)
                    for i in json_at:
                        values[i] = _JSONB_VERSION + values[i]
                    row = tuple(values)
                copy.write_row(row)
        return len(rows)


@functools.lru_cache(maxsize=1024)
def _pyformat(query: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return query.replace("%", "%%").replace("?", "%s")


class PostgresStore(SqlStore[PgConnection]):
    """The Store on PostgreSQL (see PostgresDialect for the options)."""

    def __init__(self, settings: PostgresSettings, **options: Unpack[PostgresOptions]) -> None:
        self._postgres = PostgresDialect(settings, **options)
        super().__init__(self._postgres)

    @property
    def where(self) -> str:
        """host:port/dbname, schema — for messages (never the password)."""
        return self._postgres.where
