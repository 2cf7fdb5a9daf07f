"""PostgresStore: the Store on PostgreSQL (psycopg 3), every object inside `settings.db_schema`.

One connection, guarded by a lock, per instance; a worker and the API each make their own. Readings
are written by a binary COPY into a per-session temporary table, then one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING` in key order (so that concurrent writers of
overlapping batches wait on each other instead of deadlocking). Daily partitions of `readings` are
created ahead of the writes that need them; see beffroi/migrations/postgres/0001_readings.sql.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row
from pydantic import BaseModel

from beffroi.clock import ensure_aware, utcnow
from beffroi.events import (
    Alert,
    AlertCase,
    AlertStatus,
    AuditEntry,
    DeadLetter,
    DeadLetterReason,
    LatLon,
    OperatorAction,
    Reading,
)
from beffroi.migrations import check_applied, migrations_for
from beffroi.settings import PostgresSettings
from beffroi.store import (
    Store,
    StoreError,
    TransitionRefused,
    UnknownAlertError,
    check_limit,
    next_owner,
    next_status,
    nul_free,
    open_filter,
    value_json,
)

T = TypeVar("T")

# pg_advisory_lock key held while migrating, database-wide (CREATE EXTENSION is database-wide too).
MIGRATION_LOCK_KEY: Final = 0x6265_6666_726F_6900  # "beffroi\0"

_READING_COLUMNS: Final = (
    "message_id, device_id, site_id, zone_id, stream_id, model, ts, received_at, value, lat, lon, tags"
)
# value travels as JSON text and is cast to jsonb by the INSERT
_STAGING_TABLE: Final = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS readings_staging ("
    " message_id text, device_id text, site_id text, zone_id text, stream_id text, model text,"
    " ts timestamptz, received_at timestamptz, value text, lat float8, lon float8, tags text[]"
    ") ON COMMIT DELETE ROWS"
)
_STAGING_TYPES: Final = [*["text"] * 6, "timestamptz", "timestamptz", "text", "float8", "float8", "text[]"]
_STAGED_COLUMNS: Final = (
    "message_id, device_id, site_id, zone_id, stream_id, model, ts, received_at, value::jsonb, lat, lon, tags"
)
_ALERT_COLUMNS: Final = ", ".join(Alert.model_fields)
_DEAD_LETTER_COLUMNS: Final = ", ".join(DeadLetter.model_fields)
_AUDIT_COLUMNS: Final = ", ".join(AuditEntry.model_fields)
_AUDIT_INSERT: Final = (
    "INSERT INTO alert_audit (alert_id, at, operator, action, from_status, to_status, comment) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_RETRYABLE: Final = (errors.DeadlockDetected, errors.SerializationFailure)


class PostgresStore(Store):
    """The Store on PostgreSQL.

    Readings whose UTC day lies within `partition_past_days` before today and `partition_ahead_days`
    after it get their own daily partition; any other timestamp lands in the DEFAULT partition.
    """

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        connect_timeout_s: int = 10,
        partition_past_days: int = 366,
        partition_ahead_days: int = 7,
    ) -> None:
        self._settings = settings
        self._schema = settings.db_schema
        self._connect_timeout_s = connect_timeout_s
        self._past = timedelta(days=partition_past_days)
        self._ahead = timedelta(days=partition_ahead_days)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._staging_ready = False
        self._days_ready: set[date] = set()

    @property
    def where(self) -> str:
        """host:port/dbname, schema — for messages (never the password)."""
        s = self._settings
        return f"postgresql://{s.user}@{s.host}:{s.port}/{s.dbname}, schema {self._schema}"

    # -- connection -------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop_connection()
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

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._staging_ready = False

    def _run(self, step: str, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `action` under the lock; retry on deadlock/serialization failure and once on a lost
        connection (every write is idempotent, so a retried write stores nothing twice)."""
        with self._lock:
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
                    self._drop_connection()
                except psycopg.Error as exc:
                    raise StoreError(f"{step} on {self.where}: {exc}") from exc
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    # -- migrations -------------------------------------------------------------------------------

    def migrate(self) -> None:
        self._run("migrate", self._migrate)
        today = utcnow().date()
        self._ensure_days({today + timedelta(days=d) for d in range(-1, self._ahead.days + 1)})

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
            applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
            for migration in migrations_for("postgres"):
                if migration.version in applied:
                    check_applied("postgres", migration, applied[migration.version])
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    where = f"beffroi/migrations/postgres/{migration.filename}"
                    raise StoreError(f"migration {where} failed on {self.where}: {exc}") from exc
        finally:
            if not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        self._staging_ready = False

    def _ensure_days(self, days: set[date]) -> None:
        """Create the daily partitions of `days` within the window that this instance has not seen yet."""
        today = utcnow().date()
        wanted = {d for d in days if today - self._past <= d <= today + self._ahead} - self._days_ready
        if not wanted:
            return

        def ensure(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT readings_ensure_partitions(%s::date[])", (sorted(wanted),))

        self._run("create readings partitions", ensure)
        self._days_ready |= wanted

    # -- writes -----------------------------------------------------------------------------------

    def write_readings(self, readings: Sequence[Reading]) -> int:
        if not readings:
            return 0
        self._ensure_days({r.ts.astimezone(UTC).date() for r in readings})
        rows = [_reading_row(r) for r in readings]
        return self._run("write_readings", lambda conn: self._copy_readings(conn, rows))

    def _copy_readings(self, conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> int:
        if not self._staging_ready:
            conn.execute(_STAGING_TABLE)
            self._staging_ready = True
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY readings_staging ({_READING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_STAGING_TYPES)
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO readings ({_READING_COLUMNS}) SELECT {_STAGED_COLUMNS} FROM readings_staging "
                "ORDER BY message_id, ts ON CONFLICT DO NOTHING"
            )
            return max(cur.rowcount, 0)

    def write_alerts(self, alerts: Sequence[Alert]) -> int:
        rows = sorted((_db_row(a) for a in alerts), key=_first)
        return self._insert_many("write_alerts", _insert_query("alerts", _ALERT_COLUMNS), rows)

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        rows = sorted((_db_row(d) for d in letters), key=_first)
        query = _insert_query("dead_letters", _DEAD_LETTER_COLUMNS)
        return self._insert_many("write_dead_letters", query, rows)

    def _insert_many(self, step: str, query: str, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0

        def insert(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(query, rows)  # pipelined; rowcount adds up the new rows
                return max(cur.rowcount, 0)

        return self._run(step, insert)

    # -- reads ------------------------------------------------------------------------------------

    def _fetch(self, step: str, query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        def fetch(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(query, params)
                return cur.fetchall()

        return self._run(step, fetch)

    def _count(self, table: str, where: str, params: Sequence[Any]) -> int:
        rows = self._fetch(f"count {table}", f"SELECT count(*) AS n FROM {table} WHERE {where}", params)
        return int(rows[0]["n"])

    def list_alerts(
        self,
        site_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        status: AlertStatus | None = None,
        is_open: bool | None = None,
        zone_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        where, params = _filters(
            ("site_id = %s", site_id),
            ("raised_at >= %s", since),
            ("raised_at < %s", until),
            ("status = %s", status.value if status is not None else None),
            ("status = ANY(%s)", open_filter(is_open)),
            ("zone_id = %s", zone_id),
        )
        rows = self._fetch(
            "list_alerts",
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where} "
            "ORDER BY raised_at DESC, alert_id DESC LIMIT %s",
            [*params, check_limit(limit)],
        )
        return [Alert.model_validate(row) for row in rows]

    def get_alert(self, alert_id: str) -> Alert | None:
        rows = self._fetch(
            "get_alert", f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = %s", [nul_free(alert_id)]
        )
        return Alert.model_validate(rows[0]) if rows else None

    def count_alerts(
        self, site_id: str | None = None, *, status: AlertStatus | None = None, is_open: bool | None = None
    ) -> int:
        where, params = _filters(
            ("site_id = %s", site_id),
            ("status = %s", status.value if status is not None else None),
            ("status = ANY(%s)", open_filter(is_open)),
        )
        return self._count("alerts", where, params)

    # -- the alert lifecycle ----------------------------------------------------------------------

    def act_on_alert(
        self, alert_id: str, action: OperatorAction, *, at: datetime | None = None
    ) -> AuditEntry:
        when = ensure_aware(at, what="at") if at is not None else utcnow()
        alert_id = nul_free(alert_id)
        comment = nul_free(action.comment) if action.comment is not None else None
        operator = nul_free(action.operator)

        def act(conn: psycopg.Connection[Any]) -> AuditEntry:
            with conn.transaction(), conn.cursor() as cur:
                # the row lock makes a concurrent action on this alert wait, then see our status
                cur.execute("SELECT status, owner FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
                row = cur.fetchone()
                if row is None:
                    raise UnknownAlertError(f"unknown alert {alert_id!r}")
                status, owner = AlertStatus(row[0]), row[1]
                target = next_status(action, alert_id=alert_id, status=status, owner=owner)
                cur.execute(
                    "UPDATE alerts SET status = %s, owner = %s, updated_at = %s "
                    "WHERE alert_id = %s AND status = %s",
                    (target.value, next_owner(action, owner), when, alert_id, status.value),
                )
                if cur.rowcount != 1:
                    raise TransitionRefused(
                        f"alert {alert_id} changed while {action.action.value} was applied; try again",
                        alert_id=alert_id,
                        status=status,
                        owner=owner,
                    )
                cur.execute(
                    _AUDIT_INSERT + " RETURNING seq",
                    (alert_id, when, operator, action.action.value, status.value, target.value, comment),
                )
                returned = cur.fetchone()
                assert returned is not None, "INSERT ... RETURNING gives a row"
                seq = int(returned[0])
            return AuditEntry(
                seq=seq,
                alert_id=alert_id,
                at=when,
                operator=operator,
                action=action.action,
                from_status=status,
                to_status=target,
                comment=comment,
            )

        return self._run("act_on_alert", act)

    def get_alert_case(self, alert_id: str) -> AlertCase | None:
        alert_id = nul_free(alert_id)

        def read(conn: psycopg.Connection[Any]) -> AlertCase | None:
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                # one snapshot: the history matches the status
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute(
                    f"SELECT {_ALERT_COLUMNS}, owner, updated_at FROM alerts WHERE alert_id = %s", (alert_id,)
                )
                row = cur.fetchone()
                if row is None:
                    return None
                cur.execute(
                    f"SELECT {_AUDIT_COLUMNS} FROM alert_audit WHERE alert_id = %s ORDER BY seq", (alert_id,)
                )
                history = tuple(AuditEntry.model_validate(entry) for entry in cur.fetchall())
            owner, updated_at = row.pop("owner"), row.pop("updated_at")
            return AlertCase(
                alert=Alert.model_validate(row), owner=owner, updated_at=updated_at, history=history
            )

        return self._run("get_alert_case", read)

    def list_readings(
        self,
        site_id: str,
        *,
        device_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[Reading]:
        where, params = _filters(
            ("site_id = %s", site_id), ("device_id = %s", device_id), ("ts >= %s", since), ("ts < %s", until)
        )
        rows = self._fetch(
            "list_readings",
            f"SELECT {_READING_COLUMNS} FROM readings WHERE {where} ORDER BY ts, message_id LIMIT %s",
            [*params, check_limit(limit)],
        )
        return [_reading_from_row(row) for row in rows]

    def count_readings(self, site_id: str | None = None) -> int:
        where, params = _filters(("site_id = %s", site_id))
        return self._count("readings", where, params)

    def list_dead_letters(
        self, *, reason: DeadLetterReason | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        where, params = _filters(("reason = %s", reason.value if reason is not None else None))
        rows = self._fetch(
            "list_dead_letters",
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters WHERE {where} "
            "ORDER BY received_at DESC, dead_letter_id DESC LIMIT %s",
            [*params, check_limit(limit)],
        )
        return [DeadLetter.model_validate(row) for row in rows]

    def count_dead_letters(self, reason: str | None = None) -> int:
        where, params = _filters(("reason = %s", reason))
        return self._count("dead_letters", where, params)


def _filters(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """AND of the conditions whose value is not None ('TRUE' when none is)."""
    used = [(clause, value) for clause, value in conditions if value is not None]
    return " AND ".join(clause for clause, _ in used) or "TRUE", [value for _, value in used]


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _insert_query(table: str, columns: str) -> str:
    placeholders = ", ".join(["%s"] * len(columns.split(",")))
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"


def _db_value(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str):
        return nul_free(value)
    if isinstance(value, tuple | list):
        return [nul_free(v) for v in value]
    return value


def _db_row(model: BaseModel) -> tuple[Any, ...]:
    """The model's fields, in declaration order (the table's column order), as PostgreSQL values."""
    return tuple(_db_value(getattr(model, name)) for name in type(model).model_fields)


def _reading_row(r: Reading) -> tuple[Any, ...]:
    """The reading as a row of readings_staging (the hot path of write_readings)."""
    location = r.location
    row = (
        r.message_id,
        r.device_id,
        r.site_id,
        r.zone_id,
        r.stream_id,
        r.model,
        r.ts,
        r.received_at,
        value_json(r.value),
        location.lat if location is not None else None,
        location.lon if location is not None else None,
        list(r.tags),  # a list: psycopg dumps lists as arrays
    )
    if "\x00" in f"{r.message_id}{r.device_id}{r.site_id}{r.zone_id}{r.stream_id}{r.model}{''.join(r.tags)}":
        return tuple(_db_value(v) for v in row)
    return row


def _reading_from_row(row: dict[str, Any]) -> Reading:
    lat, lon = row.pop("lat"), row.pop("lon")
    row["location"] = LatLon(lat=lat, lon=lon) if lat is not None and lon is not None else None
    return Reading.model_validate(row)
