"""SqlStore: the Store written once in SQL, over a dialect (`beffroi.sql_dialect.SqlDialect`).

Each query is written here, once, with `?` placeholders; the dialect runs it on its database (see
sql_dialect.py for what a dialect holds). `PostgresStore` and `SqliteStore` are this class over
their dialect.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Generic, TypeVar

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
    Severity,
    raised_severity,
)
from beffroi.identity import AuditKind, AuditRecord, RequestKey, User
from beffroi.migrations import check_applied
from beffroi.records import SiteScores, ZoneState
from beffroi.sql_dialect import C, Row, SqlDialect, Table
from beffroi.store import (
    ESCALATION_ACTOR,
    AlertMark,
    Escalation,
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

READINGS: Final = Table(
    "readings",
    (
        "message_id",
        "device_id",
        "site_id",
        "zone_id",
        "stream_id",
        "model",
        "ts",
        "received_at",
        "value",
        "lat",
        "lon",
        "tags",
    ),
    key=("message_id", "ts"),
    bulk=(
        "text",
        "text",
        "text",
        "text",
        "text",
        "text",
        "time",
        "time",
        "json",
        "float",
        "float",
        "text_list",
    ),
    partition_by="ts",
)
ALERTS: Final = Table("alerts", tuple(Alert.model_fields), key=("alert_id",))
DEAD_LETTERS: Final = Table("dead_letters", tuple(DeadLetter.model_fields), key=("dead_letter_id",))
ZONE_STATES: Final = Table(
    "zone_states", ("site_id", "zone_id", "ts", "state"), key=("site_id", "zone_id", "ts")
)
SCORES: Final = Table("scores", ("site_id", "tick", "streams"), key=("site_id", "tick"))

_ALERT_COLUMNS: Final = ALERTS.column_list
_AUDIT_COLUMNS: Final = ", ".join(AuditEntry.model_fields)
_IN_CHUNK: Final = 500
"""Ids per `IN (...)` query."""
_AUDIT_INSERT: Final = (
    "INSERT INTO alert_audit (alert_id, at, operator, action, from_status, to_status, comment) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq"
)


_USER_COLUMNS: Final = ", ".join(User.model_fields)
_USER_INSERT: Final = (
    f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING"
)
_AUDIT_LOG_COLUMNS: Final = ", ".join(AuditRecord.model_fields)
_AUDIT_LOG_INSERT: Final = (
    "INSERT INTO audit_log (at, kind, actor, site_id, target, client, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_REQUEST_KEY_CLAIM: Final = (
    "INSERT INTO request_keys (owner, key, fingerprint, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (owner, key) DO NOTHING"
)


class SqlStore(Store, Generic[C]):
    """The Store on the database of `dialect`; one connection per instance, guarded by a lock."""

    def __init__(self, dialect: SqlDialect[C]) -> None:
        self._dialect = dialect
        self._lock = threading.Lock()

    @property
    def dialect(self) -> SqlDialect[C]:
        return self._dialect

    def _run(self, step: str, action: Callable[[C], T]) -> T:
        with self._lock:
            return self._dialect.run(step, action)

    def close(self) -> None:
        with self._lock:
            self._dialect.close()

    # -- migrations -------------------------------------------------------------------------------

    def migrate(self) -> None:
        self._run("migrate", self._migrate)

    def _migrate(self, conn: C) -> None:
        d = self._dialect
        with d.migrating(conn):
            with d.write(conn):
                d.execute(
                    conn,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                    f" name text NOT NULL, checksum text NOT NULL, applied_at {d.time_type} NOT NULL)",
                )
            # one migration per write transaction, re-reading what is applied inside it, so that
            # concurrent migrators apply each migration exactly once
            for migration in d.migrations():
                with d.write(conn):
                    row = d.execute(
                        conn, "SELECT checksum FROM schema_migrations WHERE version = ?", (migration.version,)
                    ).fetchone()
                    if row is not None:
                        check_applied(d.name, migration, row[0])
                        continue
                    try:
                        for statement in d.statements(migration):
                            conn.execute(statement)
                    except d.error as exc:
                        where = f"beffroi/migrations/{d.name}/{migration.filename}"
                        raise StoreError(f"migration {where} failed {d.place}: {exc}") from exc
                    d.execute(
                        conn,
                        "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                        " VALUES (?, ?, ?, ?)",
                        (migration.version, migration.name, migration.checksum, d.time(datetime.now(UTC))),
                    )
        d.after_migrate(conn)

    # -- writes -----------------------------------------------------------------------------------

    def _insert_new(self, step: str, table: Table, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        return self._run(step, lambda conn: self._dialect.insert_new(conn, table, rows))

    def write_readings(self, readings: Sequence[Reading]) -> int:
        time, text_list = self._dialect.time, self._dialect.text_list
        rows = [reading_row(r, time, text_list) for r in readings]
        return self._insert_new("write_readings", READINGS, rows)

    def write_alerts(self, alerts: Sequence[Alert]) -> int:
        return self._insert_new("write_alerts", ALERTS, [self._db_row(a) for a in alerts])

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        return self._insert_new("write_dead_letters", DEAD_LETTERS, [self._db_row(d) for d in letters])

    def write_zone_states(self, states: Sequence[ZoneState]) -> int:
        time = self._dialect.time
        rows = [
            (nul_free(s.site_id or ""), nul_free(s.zone_id), time(s.ts), s.model_dump_json(by_alias=True))
            for s in states
        ]
        return self._insert_new("write_zone_states", ZONE_STATES, rows)

    def write_scores(self, scores: Sequence[SiteScores]) -> int:
        time = self._dialect.time
        rows = [
            (nul_free(s.site_id), time(s.tick), json.dumps(s.streams, separators=(",", ":"))) for s in scores
        ]
        return self._insert_new("write_scores", SCORES, rows)

    def _db_value(self, value: Any) -> Any:
        if isinstance(value, StrEnum):
            return value.value
        if isinstance(value, str):
            return nul_free(value)
        if isinstance(value, datetime):
            return self._dialect.time(value)
        if isinstance(value, tuple | list):
            return self._dialect.text_list([nul_free(v) for v in value])
        return value  # numbers, bytes, None

    def _db_row(self, model: BaseModel) -> Row:
        """The model's fields, in declaration order (the table's column order), as parameters."""
        return tuple(self._db_value(getattr(model, name)) for name in type(model).model_fields)

    # -- reads ------------------------------------------------------------------------------------

    def _fetch(self, step: str, query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return self._run(step, lambda conn: _dicts(self._dialect.execute(conn, query, params)))

    def _count(self, table: str, *conditions: tuple[str, Any]) -> int:
        where, params = self._filters(*conditions)
        rows = self._fetch(f"count {table}", f"SELECT count(*) AS n FROM {table} WHERE {where}", params)
        return int(rows[0]["n"])

    def _filters(self, *conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
        """AND of the conditions whose value is not None ('1 = 1' when none is); a list value fills
        as many placeholders as it has items (`status IN (?, ?)`, see `_status_in`)."""
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in conditions:
            if value is None:
                continue
            clauses.append(clause)
            params.extend(self._db_value(v) for v in (value if isinstance(value, list) else [value]))
        return " AND ".join(clauses) or "1 = 1", params

    def _alert(self, row: dict[str, Any]) -> Alert:
        d = self._dialect
        row["raised_at"] = d.from_time(row["raised_at"])
        row["source_ids"] = d.from_text_list(row["source_ids"])
        return Alert.model_validate(row)

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
        where, params = self._filters(
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
        return [self._alert(row) for row in rows]

    def get_alert(self, alert_id: str) -> Alert | None:
        rows = self._fetch(
            "get_alert", f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", [nul_free(alert_id)]
        )
        return self._alert(rows[0]) if rows else None

    def count_alerts(
        self, site_id: str | None = None, *, status: AlertStatus | None = None, is_open: bool | None = None
    ) -> int:
        return self._count(
            "alerts", ("site_id = ?", site_id), ("status = ?", status), _status_in(open_filter(is_open))
        )

    # -- the alert lifecycle ----------------------------------------------------------------------

    def act_on_alert(
        self, alert_id: str, action: OperatorAction, *, at: datetime | None = None
    ) -> AuditEntry:
        when = ensure_aware(at, what="at") if at is not None else utcnow()
        alert_id = nul_free(alert_id)
        comment = nul_free(action.comment) if action.comment is not None else None
        if action.assignee is not None:
            comment = f"to {nul_free(action.assignee)}" + (f": {comment}" if comment else "")
        operator = nul_free(action.operator)
        d = self._dialect

        def act(conn: C) -> AuditEntry:
            # the write transaction (and the row lock where the dialect needs one) makes a concurrent
            # action on this alert wait, then see our status
            with d.write(conn):
                row = d.execute(
                    conn, "SELECT status, owner FROM alerts WHERE alert_id = ?" + d.for_update, (alert_id,)
                ).fetchone()
                if row is None:
                    raise UnknownAlertError(f"unknown alert {alert_id!r}")
                status, owner = AlertStatus(row[0]), row[1]
                target = next_status(action, alert_id=alert_id, status=status, owner=owner)
                updated = d.execute(
                    conn,
                    "UPDATE alerts SET status = ?, owner = ?, updated_at = ? "
                    "WHERE alert_id = ? AND status = ?",
                    (target.value, next_owner(action, owner), d.time(when), alert_id, status.value),
                )
                if updated.rowcount != 1:
                    raise TransitionRefused(
                        f"alert {alert_id} changed while {action.action.value} was applied; try again",
                        alert_id=alert_id,
                        status=status,
                        owner=owner,
                    )
                audit = (alert_id, d.time(when), operator, action.action.value, status.value, target.value)
                [(seq,)] = d.execute(conn, _AUDIT_INSERT, (*audit, comment)).fetchall()
            return AuditEntry(
                seq=int(seq),
                alert_id=alert_id,
                at=when,
                operator=operator,
                action=action.action,
                from_status=status,
                to_status=target,
                comment=comment,
            )

        return self._run("act_on_alert", act)

    def escalate_due(
        self, now: datetime, after_s: Mapping[Severity, float], *, limit: int = 100
    ) -> list[Escalation]:
        now = ensure_aware(now, what="now").astimezone(UTC)
        d = self._dialect
        due: list[tuple[datetime, str, str, Severity, datetime]] = []
        for severity, seconds in after_s.items():
            rows = self._fetch(
                "escalate_due",
                "SELECT alert_id, site_id, raised_at, escalated_at FROM alerts WHERE status = ? "
                "AND severity = ? AND COALESCE(escalated_at, raised_at) <= ? "
                "AND (escalated_from IS NULL OR escalated_from <> severity) "
                "ORDER BY raised_at, alert_id LIMIT ?",
                [AlertStatus.NEW.value, severity.value, d.time(now - timedelta(seconds=seconds)), limit],
            )
            for r in rows:
                raised = d.from_time(r["raised_at"])
                since = d.from_time(r["escalated_at"]) if r["escalated_at"] is not None else raised
                due.append((raised, r["alert_id"], r["site_id"], severity, since))
        due.sort(key=lambda x: (x[0], x[1]))
        done: list[Escalation] = []
        for _, alert_id, site_id, severity, since in due[:limit]:
            target = raised_severity(severity)
            waited = (now - since).total_seconds()
            detail = f"{severity.value} -> {target.value}: not acknowledged within {after_s[severity]:g} s"
            escalation = Escalation(alert_id, site_id, severity, target, now, waited)
            if self._escalate(escalation, detail):
                done.append(escalation)
        return done

    def _escalate(self, e: Escalation, detail: str) -> bool:
        """One escalation and its audit record, if the alert is still new at `e.from_severity` and
        not escalated at that level (False: acknowledged, or escalated by another process)."""
        d = self._dialect
        update = (
            "UPDATE alerts SET severity = ?, escalated_from = ?, escalated_at = ?, "
            "escalations = escalations + 1 WHERE alert_id = ? AND status = ? AND severity = ? "
            "AND (escalated_from IS NULL OR escalated_from <> severity)"
        )
        new = AlertStatus.NEW.value
        record = (d.time(e.at), AuditKind.ALERT_ESCALATED.value, ESCALATION_ACTOR, e.site_id, e.alert_id)

        def escalate(conn: C) -> bool:
            with d.write(conn):
                values = (e.to_severity.value, e.from_severity.value, d.time(e.at), e.alert_id, new)
                updated = d.execute(conn, update, (*values, e.from_severity.value))
                if updated.rowcount != 1:
                    return False
                d.execute(conn, _AUDIT_LOG_INSERT, (*record, None, detail))
                return True

        return self._run("escalate_due", escalate)

    def alert_marks(self, alert_ids: Sequence[str]) -> dict[str, AlertMark]:
        ids = [nul_free(a) for a in alert_ids]
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        query = (
            "SELECT alert_id, owner, escalations FROM alerts "
            f"WHERE (owner IS NOT NULL OR escalations > 0) AND alert_id IN ({marks})"
        )
        rows = self._fetch("alert_marks", query, ids)
        return {row["alert_id"]: AlertMark(row["owner"], int(row["escalations"])) for row in rows}

    def alert_owners(self, alert_ids: Sequence[str]) -> dict[str, str]:
        ids = [nul_free(a) for a in alert_ids]
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        query = f"SELECT alert_id, owner FROM alerts WHERE owner IS NOT NULL AND alert_id IN ({marks})"
        rows = self._fetch("alert_owners", query, ids)
        return {row["alert_id"]: row["owner"] for row in rows}

    def alert_trails(self, alert_ids: Sequence[str]) -> dict[str, list[AuditEntry]]:
        ids = sorted({nul_free(a) for a in alert_ids})
        trails: dict[str, list[AuditEntry]] = {}
        d = self._dialect
        for k in range(0, len(ids), _IN_CHUNK):
            chunk = ids[k : k + _IN_CHUNK]
            rows = self._fetch(
                "alert_trails",
                f"SELECT {_AUDIT_COLUMNS} FROM alert_audit WHERE alert_id IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY seq",
                chunk,
            )
            for e in rows:
                entry = AuditEntry.model_validate({**e, "at": d.from_time(e["at"])})
                trails.setdefault(entry.alert_id, []).append(entry)
        return trails

    def get_alert_case(self, alert_id: str) -> AlertCase | None:
        alert_id = nul_free(alert_id)
        d = self._dialect

        def read(conn: C) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
            with d.snapshot(conn):  # the history matches the status
                alert = _dicts(
                    d.execute(
                        conn,
                        f"SELECT {_ALERT_COLUMNS}, owner, updated_at, escalations, escalated_at "
                        "FROM alerts WHERE alert_id = ?",
                        (alert_id,),
                    )
                )
                history = _dicts(
                    d.execute(
                        conn,
                        f"SELECT {_AUDIT_COLUMNS} FROM alert_audit WHERE alert_id = ? ORDER BY seq",
                        (alert_id,),
                    )
                )
            return (alert[0] if alert else None), history

        row, history = self._run("get_alert_case", read)
        if row is None:
            return None
        owner, updated_at = row.pop("owner"), row.pop("updated_at")
        escalations, escalated_at = row.pop("escalations"), row.pop("escalated_at")
        return AlertCase(
            alert=self._alert(row),
            owner=owner,
            updated_at=d.from_time(updated_at) if updated_at is not None else None,
            escalations=int(escalations),
            escalated_at=d.from_time(escalated_at) if escalated_at is not None else None,
            history=tuple(AuditEntry.model_validate({**e, "at": d.from_time(e["at"])}) for e in history),
        )

    def list_readings(
        self,
        site_id: str,
        *,
        device_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[Reading]:
        where, params = self._filters(
            ("site_id = ?", site_id), ("device_id = ?", device_id), ("ts >= ?", since), ("ts < ?", until)
        )
        rows = self._fetch(
            "list_readings",
            f"SELECT {READINGS.column_list} FROM readings WHERE {where} ORDER BY ts, message_id LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [self._reading(row) for row in rows]

    def _reading(self, row: dict[str, Any]) -> Reading:
        d = self._dialect
        lat, lon = row.pop("lat"), row.pop("lon")
        row["location"] = LatLon(lat=lat, lon=lon) if lat is not None and lon is not None else None
        row["ts"], row["received_at"] = d.from_time(row["ts"]), d.from_time(row["received_at"])
        row["value"], row["tags"] = d.from_json(row["value"]), d.from_text_list(row["tags"])
        return Reading.model_validate(row)

    def scan_readings(
        self,
        since: datetime,
        until: datetime,
        *,
        site_ids: Sequence[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 5000,
    ) -> list[Reading]:
        where, params = self._filters(
            ("ts >= ?", since),
            ("ts < ?", until),
            _in("site_id", site_ids),
            ("(ts > ? OR (ts = ? AND message_id > ?))", None if after is None else [after[0], *after]),
        )
        rows = self._fetch(
            "scan_readings",
            f"SELECT {READINGS.column_list} FROM readings WHERE {where} ORDER BY ts, message_id LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [self._reading(row) for row in rows]

    def list_zone_states(
        self,
        since: datetime,
        until: datetime,
        *,
        site_ids: Sequence[str] | None = None,
        limit: int = 10_000,
    ) -> list[ZoneState]:
        where, params = self._filters(("ts >= ?", since), ("ts < ?", until), _in("site_id", site_ids))
        rows = self._fetch(
            "list_zone_states",
            f"SELECT state FROM zone_states WHERE {where} ORDER BY ts, site_id, zone_id LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [ZoneState.model_validate_json(row["state"]) for row in rows]

    def list_scores(
        self,
        since: datetime,
        until: datetime,
        *,
        site_ids: Sequence[str] | None = None,
        limit: int = 10_000,
    ) -> list[SiteScores]:
        where, params = self._filters(("tick >= ?", since), ("tick < ?", until), _in("site_id", site_ids))
        rows = self._fetch(
            "list_scores",
            f"SELECT site_id, tick, streams FROM scores WHERE {where} ORDER BY tick, site_id LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [
            SiteScores(
                site_id=row["site_id"],
                tick=self._dialect.from_time(row["tick"]),
                streams={k: (float(v[0]), float(v[1])) for k, v in json.loads(row["streams"]).items()},
            )
            for row in rows
        ]

    def count_readings(self, site_id: str | None = None) -> int:
        return self._count("readings", ("site_id = ?", site_id))

    def list_dead_letters(
        self, *, reason: DeadLetterReason | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        where, params = self._filters(("reason = ?", reason))
        rows = self._fetch(
            "list_dead_letters",
            f"SELECT {DEAD_LETTERS.column_list} FROM dead_letters WHERE {where} "
            "ORDER BY received_at DESC, dead_letter_id DESC LIMIT ?",
            [*params, check_limit(limit)],
        )
        from_time = self._dialect.from_time
        return [
            DeadLetter.model_validate({**row, "received_at": from_time(row["received_at"])}) for row in rows
        ]

    def count_dead_letters(self, reason: str | None = None) -> int:
        return self._count("dead_letters", ("reason = ?", reason))

    # -- users and the audit log ------------------------------------------------------------------

    def add_user(self, user: User) -> None:
        d = self._dialect
        row = (
            user.name,
            user.role.value,
            d.text_list(user.sites),
            user.password_hash,
            user.disabled,
            d.time(user.created_at),
        )

        def add(conn: C) -> int:
            with d.write(conn):
                return int(d.execute(conn, _USER_INSERT, row).rowcount)

        if self._run("add_user", add) != 1:
            raise ValueError(f"a user named {user.name!r} exists")

    def _user(self, row: dict[str, Any]) -> User:
        d = self._dialect
        row["sites"] = tuple(d.from_text_list(row["sites"]))
        row["disabled"] = bool(row["disabled"])
        row["created_at"] = d.from_time(row["created_at"])
        return User.model_validate(row)

    def get_user(self, name: str) -> User | None:
        rows = self._fetch("get_user", f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [nul_free(name)])
        return self._user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        rows = self._fetch("list_users", f"SELECT {_USER_COLUMNS} FROM users ORDER BY name", [])
        return [self._user(row) for row in rows]

    def set_user_disabled(self, name: str, disabled: bool) -> bool:
        d = self._dialect

        def update(conn: C) -> int:
            with d.write(conn):
                return int(
                    d.execute(
                        conn, "UPDATE users SET disabled = ? WHERE name = ?", (disabled, nul_free(name))
                    ).rowcount
                )

        return self._run("set_user_disabled", update) == 1

    def set_user_password(self, name: str, password_hash: str) -> bool:
        d = self._dialect

        def update(conn: C) -> int:
            with d.write(conn):
                query = "UPDATE users SET password_hash = ? WHERE name = ?"
                return int(d.execute(conn, query, (password_hash, nul_free(name))).rowcount)

        return self._run("set_user_password", update) == 1

    def append_audit(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        d = self._dialect
        rows = [
            (
                d.time(r.at),
                r.kind.value,
                nul_free(r.actor),
                r.site_id,
                None if r.target is None else nul_free(r.target),
                r.client,
                nul_free(r.detail),
            )
            for r in records
        ]

        def append(conn: C) -> None:
            with d.write(conn):
                cursor = conn.cursor()
                try:
                    cursor.executemany(d.sql(_AUDIT_LOG_INSERT), rows)
                finally:
                    cursor.close()

        self._run("append_audit", append)

    def list_audit(
        self,
        *,
        sites: frozenset[str] | None = None,
        kind: AuditKind | None = None,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        if sites is not None and not sites:
            return []
        where, params = self._filters(
            (f"site_id IN ({', '.join('?' * len(sites))})", sorted(sites))
            if sites is not None
            else ("", None),
            ("kind = ?", kind),
            ("actor = ?", actor),
            ("target = ?", target),
            ("at >= ?", since),
        )
        rows = self._fetch(
            "list_audit",
            f"SELECT {_AUDIT_LOG_COLUMNS} FROM audit_log WHERE {where} ORDER BY seq DESC LIMIT ?",
            [*params, check_limit(limit)],
        )
        from_time = self._dialect.from_time
        return [AuditRecord.model_validate({**row, "at": from_time(row["at"])}) for row in rows]

    # -- what API processes share about requests --------------------------------------------------

    def sign_in_failures(self, key: str, *, since: datetime, limit: int) -> list[datetime]:
        rows = self._fetch(
            "sign_in_failures",
            "SELECT at FROM sign_in_failures WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?",
            [nul_free(key), self._dialect.time(since), check_limit(limit)],
        )
        return [self._dialect.from_time(row["at"]) for row in rows]

    def add_sign_in_failure(self, keys: Sequence[str], *, at: datetime, forget_before: datetime) -> None:
        d = self._dialect

        def add(conn: C) -> None:
            with d.write(conn):
                d.execute(conn, "DELETE FROM sign_in_failures WHERE at < ?", (d.time(forget_before),))
                for key in keys:
                    d.execute(
                        conn,
                        "INSERT INTO sign_in_failures (key, at) VALUES (?, ?)",
                        (nul_free(key), d.time(at)),
                    )

        self._run("add_sign_in_failure", add)

    def clear_sign_in_failures(self, key: str) -> None:
        d = self._dialect

        def clear(conn: C) -> None:
            with d.write(conn):
                d.execute(conn, "DELETE FROM sign_in_failures WHERE key = ?", (nul_free(key),))

        self._run("clear_sign_in_failures", clear)

    def claim_request_key(
        self, owner: str, key: str, fingerprint: str, *, now: datetime, expires_at: datetime
    ) -> RequestKey | None:
        d = self._dialect
        ids = (nul_free(owner), nul_free(key))

        def claim(conn: C) -> RequestKey | None:
            with d.write(conn):
                d.execute(conn, "DELETE FROM request_keys WHERE expires_at <= ?", (d.time(now),))
                # a live claim (another process's too) wins the conflict: nothing is written then
                cursor = d.execute(
                    conn, _REQUEST_KEY_CLAIM, (*ids, nul_free(fingerprint), d.time(expires_at))
                )
                if int(cursor.rowcount) == 1:
                    return None
                rows = _dicts(
                    d.execute(
                        conn,
                        "SELECT fingerprint, status, body FROM request_keys WHERE owner = ? AND key = ?",
                        ids,
                    )
                )
            row = rows[0]
            body = row["body"]
            return RequestKey(row["fingerprint"], row["status"], None if body is None else bytes(body))

        return self._run("claim_request_key", claim)

    def finish_request_key(
        self, owner: str, key: str, *, status: int, body: bytes, expires_at: datetime
    ) -> None:
        d = self._dialect

        def finish(conn: C) -> None:
            with d.write(conn):
                query = (
                    "UPDATE request_keys SET status = ?, body = ?, expires_at = ? WHERE owner = ? AND key = ?"
                )
                d.execute(conn, query, (status, body, d.time(expires_at), nul_free(owner), nul_free(key)))

        self._run("finish_request_key", finish)

    def release_request_key(self, owner: str, key: str) -> None:
        d = self._dialect

        def release(conn: C) -> None:
            with d.write(conn):
                query = "DELETE FROM request_keys WHERE owner = ? AND key = ? AND status IS NULL"
                d.execute(conn, query, (nul_free(owner), nul_free(key)))

        self._run("release_request_key", release)


def reading_row(
    r: Reading, time: Callable[[datetime], Any], text_list: Callable[[Sequence[str]], Any]
) -> Row:
    """The reading as a row of `READINGS` (the hot path of write_readings), its times and tags
    converted by the dialect's `time` and `text_list`, NUL characters replaced."""
    if "\x00" in f"{r.message_id}{r.device_id}{r.site_id}{r.zone_id}{r.stream_id}{r.model}{''.join(r.tags)}":
        r = r.model_copy(
            update={
                name: nul_free(text)
                for name in ("message_id", "device_id", "site_id", "zone_id", "stream_id", "model")
                if (text := getattr(r, name)) is not None
            }
            | {"tags": tuple(nul_free(t) for t in r.tags)}
        )
    location = r.location
    return (
        r.message_id,
        r.device_id,
        r.site_id,
        r.zone_id,
        r.stream_id,
        r.model,
        time(r.ts),
        time(r.received_at),
        value_json(r.value),
        location.lat if location is not None else None,
        location.lon if location is not None else None,
        text_list(r.tags),
    )


def _in(column: str, values: Sequence[str] | None) -> tuple[str, Any]:
    """A `column IN (...)` condition for `_filters` (None: no condition; empty: matches nothing)."""
    if values is None:
        return ("", None)
    if not values:
        return ("1 = 0", [])
    return (f"{column} IN ({', '.join('?' * len(values))})", list(values))


def _status_in(values: list[str] | None) -> tuple[str, Any]:
    """A `status IN (...)` condition for `_filters` (no values: no condition)."""
    if values is None:
        return ("", None)
    return (f"status IN ({', '.join('?' * len(values))})", values)


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    """The cursor's rows as dicts keyed by column name."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
