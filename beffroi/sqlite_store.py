"""SqliteStore: the Store in one SQLite file, for the embedded mode (no servers).

WAL journal, so that readers never block the writer; every write is one `BEGIN IMMEDIATE`
transaction (the write lock is taken up front and waited for, up to `busy_timeout_s`), which lets
several processes or instances share the file. Times are stored as fixed-width UTC text, which
sorts like the instants it names.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar

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
from beffroi.migrations import check_applied, migrations_for, sqlite_statements
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

_READING_COLUMNS: Final = (
    "message_id, device_id, site_id, zone_id, stream_id, model, ts, received_at, value, lat, lon, tags"
)
_ALERT_COLUMNS: Final = ", ".join(Alert.model_fields)
_DEAD_LETTER_COLUMNS: Final = ", ".join(DeadLetter.model_fields)
_AUDIT_COLUMNS: Final = ", ".join(AuditEntry.model_fields)
_AUDIT_INSERT: Final = (
    "INSERT INTO alert_audit (alert_id, at, operator, action, from_status, to_status, comment) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def sqlite_time(value: datetime) -> str:
    """'YYYY-MM-DDTHH:MM:SS.ffffffZ' in UTC: fixed width, so text order is time order."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class SqliteStore(Store):
    """The Store in the SQLite file at `path` (its folder is created if missing)."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

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

    def _run(self, step: str, action: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()
            try:
                return action(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"{step} in {self._path}: {exc}") from exc

    @staticmethod
    @contextmanager
    def _write(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- migrations -------------------------------------------------------------------------------

    def migrate(self) -> None:
        self._run("migrate", self._migrate)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # one migration per write transaction, re-reading what is applied under the write lock,
        # so that concurrent migrators apply each migration exactly once
        for migration in migrations_for("sqlite"):
            with self._write(conn):
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                row = conn.execute(
                    "SELECT checksum FROM schema_migrations WHERE version = ?", (migration.version,)
                ).fetchone()
                if row is not None:
                    check_applied("sqlite", migration, row[0])
                    continue
                try:
                    for statement in sqlite_statements(migration):
                        conn.execute(statement)
                except sqlite3.Error as exc:
                    where = f"beffroi/migrations/sqlite/{migration.filename}"
                    raise StoreError(f"migration {where} failed in {self._path}: {exc}") from exc
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, sqlite_time(datetime.now(UTC))),
                )

    # -- writes -----------------------------------------------------------------------------------

    def _insert(self, step: str, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        placeholders = ", ".join("?" * len(columns.split(",")))
        query = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"

        def insert(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            with self._write(conn):
                conn.executemany(query, rows)
            return conn.total_changes - before

        return self._run(step, insert)

    def write_readings(self, readings: Sequence[Reading]) -> int:
        rows = [_reading_row(r) for r in readings]
        return self._insert("write_readings", "readings", _READING_COLUMNS, rows)

    def write_alerts(self, alerts: Sequence[Alert]) -> int:
        rows = [_db_row(a) for a in alerts]
        return self._insert("write_alerts", "alerts", _ALERT_COLUMNS, rows)

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        rows = [_db_row(d) for d in letters]
        return self._insert("write_dead_letters", "dead_letters", _DEAD_LETTER_COLUMNS, rows)

    # -- reads ------------------------------------------------------------------------------------

    def _fetch(self, step: str, query: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        def fetch(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            cur = conn.execute(query, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

        return self._run(step, fetch)

    def _count(self, table: str, where: str, params: Sequence[Any]) -> int:
        rows = self._fetch(f"count {table}", f"SELECT count(*) AS n FROM {table} WHERE {where}", params)
        return int(rows[0][0])

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
            ("site_id = ?", site_id),
            ("raised_at >= ?", since),
            ("raised_at < ?", until),
            ("status = ?", status),
            _status_in(open_filter(is_open)),
            ("zone_id = ?", zone_id),
        )
        rows = self._fetch(
            "list_alerts",
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where} "
            "ORDER BY raised_at DESC, alert_id DESC LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [_alert_from_row(row) for row in rows]

    def get_alert(self, alert_id: str) -> Alert | None:
        rows = self._fetch("get_alert", f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", [alert_id])
        return _alert_from_row(rows[0]) if rows else None

    def count_alerts(
        self, site_id: str | None = None, *, status: AlertStatus | None = None, is_open: bool | None = None
    ) -> int:
        where, params = _filters(
            ("site_id = ?", site_id), ("status = ?", status), _status_in(open_filter(is_open))
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

        def act(conn: sqlite3.Connection) -> AuditEntry:
            with self._write(conn):  # the write lock: no other writer between the read and the update
                row = conn.execute(
                    "SELECT status, owner FROM alerts WHERE alert_id = ?", (alert_id,)
                ).fetchone()
                if row is None:
                    raise UnknownAlertError(f"unknown alert {alert_id!r}")
                status, owner = AlertStatus(row[0]), row[1]
                target = next_status(action, alert_id=alert_id, status=status, owner=owner)
                updated = conn.execute(
                    "UPDATE alerts SET status = ?, owner = ?, updated_at = ? "
                    "WHERE alert_id = ? AND status = ?",
                    (target.value, next_owner(action, owner), sqlite_time(when), alert_id, status.value),
                )
                if updated.rowcount != 1:
                    raise TransitionRefused(
                        f"alert {alert_id} changed while {action.action.value} was applied; try again",
                        alert_id=alert_id,
                        status=status,
                        owner=owner,
                    )
                inserted = conn.execute(
                    _AUDIT_INSERT,
                    (
                        alert_id,
                        sqlite_time(when),
                        operator,
                        action.action.value,
                        status.value,
                        target.value,
                        comment,
                    ),
                )
                seq = inserted.lastrowid
            assert seq is not None
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

        def read(conn: sqlite3.Connection) -> AlertCase | None:
            conn.execute("BEGIN")  # one snapshot: the history matches the status
            try:
                cur = conn.execute(
                    f"SELECT {_ALERT_COLUMNS}, owner, updated_at FROM alerts WHERE alert_id = ?", (alert_id,)
                )
                cur.row_factory = sqlite3.Row
                row = cur.fetchone()
                cur = conn.execute(
                    f"SELECT {_AUDIT_COLUMNS} FROM alert_audit WHERE alert_id = ? ORDER BY seq", (alert_id,)
                )
                cur.row_factory = sqlite3.Row
                entries = cur.fetchall()
            finally:
                conn.execute("COMMIT")
            if row is None:
                return None
            data = dict(row)
            owner, updated_at = data.pop("owner"), data.pop("updated_at")
            return AlertCase(
                alert=_alert_from_row(data),
                owner=owner,
                updated_at=_time(updated_at) if updated_at is not None else None,
                history=tuple(AuditEntry.model_validate({**dict(e), "at": _time(e["at"])}) for e in entries),
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
            ("site_id = ?", site_id), ("device_id = ?", device_id), ("ts >= ?", since), ("ts < ?", until)
        )
        rows = self._fetch(
            "list_readings",
            f"SELECT {_READING_COLUMNS} FROM readings WHERE {where} ORDER BY ts, message_id LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [_reading_from_row(row) for row in rows]

    def count_readings(self, site_id: str | None = None) -> int:
        where, params = _filters(("site_id = ?", site_id))
        return self._count("readings", where, params)

    def list_dead_letters(
        self, *, reason: DeadLetterReason | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        where, params = _filters(("reason = ?", reason))
        rows = self._fetch(
            "list_dead_letters",
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters WHERE {where} "
            "ORDER BY received_at DESC, dead_letter_id DESC LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [_dead_letter_from_row(row) for row in rows]

    def count_dead_letters(self, reason: str | None = None) -> int:
        where, params = _filters(("reason = ?", reason))
        return self._count("dead_letters", where, params)


def _db_value(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str):
        return nul_free(value)
    if isinstance(value, datetime):
        return sqlite_time(value)
    if isinstance(value, tuple):
        return json.dumps([nul_free(v) for v in value])
    return value


def _db_row(model: BaseModel) -> tuple[Any, ...]:
    """The model's fields, in declaration order (the table's column order), as SQLite values."""
    return tuple(_db_value(getattr(model, name)) for name in type(model).model_fields)


def _filters(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """AND of the conditions whose value is not None ('1' when none is); a list value fills as many
    placeholders as it has items."""
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in conditions:
        if value is None:
            continue
        clauses.append(clause)
        params.extend(_db_value(v) for v in (value if isinstance(value, list) else [value]))
    return " AND ".join(clauses) or "1", params


def _status_in(values: list[str] | None) -> tuple[str, Any]:
    """A `status IN (...)` condition for `_filters` (no values: no condition)."""
    if values is None:
        return ("", None)
    return (f"status IN ({', '.join('?' * len(values))})", values)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _reading_row(r: Reading) -> tuple[Any, ...]:
    location = r.location
    return (
        nul_free(r.message_id),
        nul_free(r.device_id),
        nul_free(r.site_id),
        nul_free(r.zone_id) if r.zone_id is not None else None,
        nul_free(r.stream_id),
        nul_free(r.model),
        sqlite_time(r.ts),
        sqlite_time(r.received_at),
        value_json(r.value),
        location.lat if location is not None else None,
        location.lon if location is not None else None,
        json.dumps([nul_free(t) for t in r.tags]),
    )


def _reading_from_row(row: sqlite3.Row) -> Reading:
    lat, lon = row["lat"], row["lon"]
    return Reading(
        message_id=row["message_id"],
        device_id=row["device_id"],
        site_id=row["site_id"],
        zone_id=row["zone_id"],
        stream_id=row["stream_id"],
        model=row["model"],
        ts=_time(row["ts"]),
        received_at=_time(row["received_at"]),
        value=json.loads(row["value"]),
        location=LatLon(lat=lat, lon=lon) if lat is not None and lon is not None else None,
        tags=tuple(json.loads(row["tags"])),
    )


def _dead_letter_from_row(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter.model_validate({**dict(row), "received_at": _time(row["received_at"])})


def _alert_from_row(row: sqlite3.Row | dict[str, Any]) -> Alert:
    data = dict(row)
    data["raised_at"] = _time(data["raised_at"])
    data["source_ids"] = tuple(json.loads(data["source_ids"]))
    return Alert.model_validate(data)
