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
- Operators move an alert through its lifecycle with `act_on_alert` (table `TRANSITIONS`): the
  alert's status and owner change and one audit entry is written, in one transaction. The status
  change is conditional on the status that was validated (a row lock in PostgreSQL, the write lock
  in SQLite, then `UPDATE ... WHERE status = <seen>`), so of two operators racing on conflicting
  actions exactly one wins and the other gets `TransitionRefused`. Repeating an action whose status
  the alert already has (acknowledging an acknowledged alert) is refused too, naming who holds it:
  it is a 409 for the API, never a silent success, so an operator learns a colleague got there first.
  `assign` (a supervisor's) changes the owner of an open alert only; its trail entry's comment
  starts with `to NAME`; assigning to the owner is refused as a repeat.
  `escalate_due` raises the severity of alerts nobody acknowledged in time, once per level, with
  a conditional update (several API processes never escalate twice).
  Workers' `write_alerts` of a known alert_id leaves status, owner and history untouched.
- Users and the audit log (`beffroi.identity.IdentityStore`): `add_user` refuses a known name;
  `append_audit` only appends (the tables refuse UPDATE and DELETE of audit rows); `list_audit` is
  newest first, filtered by sites, kind, actor, target and time.
- Shared request state (`IdentityStore` too): failed sign-ins per key, and Idempotency-Key claims;
  `claim_request_key` is one conditional upsert, so of several API processes exactly one claims a key.
- `migrate()` applies the versioned migrations of `beffroi/migrations/`; it is safe to call at every
  start, from several processes at once. Instances are safe to share between threads.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final, Self

from beffroi.events import (
    OPEN_ALERT_STATUSES,
    Alert,
    AlertAction,
    AlertCase,
    AlertStatus,
    AuditEntry,
    DeadLetter,
    DeadLetterReason,
    OperatorAction,
    Reading,
    Severity,
)
from beffroi.identity import AuditKind, AuditRecord, RequestKey, User
from beffroi.records import SiteScores, ZoneState


class StoreError(RuntimeError):
    """A store operation failed; the message names the table or step."""


class UnknownAlertError(LookupError):
    """No alert has this id."""


class TransitionRefused(ValueError):
    """The action does not apply to the alert in its current status; `str()` says why."""

    def __init__(self, reason: str, *, alert_id: str, status: AlertStatus, owner: str | None) -> None:
        super().__init__(reason)
        self.alert_id = alert_id
        self.status = status
        self.owner = owner


_ANY_STATUS: Final = frozenset(AlertStatus)

TRANSITIONS: Final[Mapping[AlertAction, tuple[frozenset[AlertStatus], AlertStatus | None]]] = {
    AlertAction.ACKNOWLEDGE: (frozenset({AlertStatus.NEW}), AlertStatus.ACKNOWLEDGED),
    AlertAction.START: (frozenset({AlertStatus.NEW, AlertStatus.ACKNOWLEDGED}), AlertStatus.IN_PROGRESS),
    AlertAction.RESOLVE: (OPEN_ALERT_STATUSES, AlertStatus.RESOLVED),
    AlertAction.CLOSE: (frozenset({AlertStatus.RESOLVED}), AlertStatus.CLOSED),
    AlertAction.COMMENT: (_ANY_STATUS, None),  # None: the status stays as it is
    AlertAction.ASSIGN: (OPEN_ALERT_STATUSES, None),
}
"""action -> (the statuses it applies to, the status it leads to)."""


def next_status(
    action: OperatorAction, *, alert_id: str, status: AlertStatus, owner: str | None
) -> AlertStatus:
    """The status `action` moves an alert in `status` to; raises TransitionRefused when it does not
    apply (or when the alert is no longer in `action.expected_status`)."""
    held = f" (owner: {owner})" if owner else ""
    if action.expected_status is not None and action.expected_status is not status:
        raise TransitionRefused(
            f"alert {alert_id} is {status.value}{held}, not {action.expected_status.value} as expected",
            alert_id=alert_id,
            status=status,
            owner=owner,
        )
    applies_to, target = TRANSITIONS[action.action]
    if action.action is AlertAction.ASSIGN and status in applies_to and owner == action.assignee:
        raise TransitionRefused(
            f"alert {alert_id} is already assigned to {owner}", alert_id=alert_id, status=status, owner=owner
        )
    if status not in applies_to:
        if target is status:
            reason = f"alert {alert_id} is already {status.value}{held}"
        else:
            allowed = ", ".join(sorted(s.value for s in applies_to))
            reason = (
                f"cannot {action.action.value} alert {alert_id}: it is {status.value}{held}, "
                f"and {action.action.value} applies to {allowed} alerts"
            )
        raise TransitionRefused(reason, alert_id=alert_id, status=status, owner=owner)
    return status if target is None else target


def next_owner(action: OperatorAction, owner: str | None) -> str | None:
    """Acknowledging or starting takes the alert in hand; resolving an unowned alert does too;
    assigning gives it to the assignee."""
    if action.action is AlertAction.ASSIGN:
        return action.assignee
    if action.action in (AlertAction.ACKNOWLEDGE, AlertAction.START):
        return action.operator
    if action.action is AlertAction.RESOLVE and owner is None:
        return action.operator
    return owner


def open_filter(is_open: bool | None) -> list[str] | None:
    """The status values that `is_open` selects (None: no filter)."""
    if is_open is None:
        return None
    chosen = OPEN_ALERT_STATUSES if is_open else _ANY_STATUS - OPEN_ALERT_STATUSES
    return sorted(s.value for s in chosen)


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


@dataclass(frozen=True, slots=True)
class AlertMark:
    """What a list shows beside an alert: who owns it, how many times it was escalated."""

    owner: str | None
    escalations: int


def check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    return limit


ESCALATION_ACTOR: Final = "beffroi-escalation"
"""The actor of escalations in the audit log (no user does them)."""


@dataclass(frozen=True, slots=True)
class Escalation:
    """An alert escalated by `Store.escalate_due`: its severity went from `from_severity` to
    `to_severity` (equal for a critical one) at `at`."""

    alert_id: str
    site_id: str
    from_severity: Severity
    to_severity: Severity
    at: datetime
    waited_s: float


class Store(ABC):
    """Implemented once in SQL by `beffroi.sql_store.SqlStore` over a dialect:
    `beffroi.sqlite_store.SqliteStore`, `beffroi.postgres_store.PostgresStore`.

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
        is_open: bool | None = None,
        zone_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts of one site raised in [since, until), newest first (ties by alert_id, descending).
        `is_open` True keeps the open ones (new, acknowledged, in progress), False the others."""

    @abstractmethod
    def get_alert(self, alert_id: str) -> Alert | None: ...

    @abstractmethod
    def count_alerts(
        self, site_id: str | None = None, *, status: AlertStatus | None = None, is_open: bool | None = None
    ) -> int: ...

    @abstractmethod
    def act_on_alert(
        self, alert_id: str, action: OperatorAction, *, at: datetime | None = None
    ) -> AuditEntry:
        """Apply an operator's action (at `at`, default now): the alert's status and owner change and
        the returned audit entry is written, atomically. Raises UnknownAlertError, or
        TransitionRefused when the action does not apply to the alert's current status."""

    @abstractmethod
    def escalate_due(
        self, now: datetime, after_s: Mapping[Severity, float], *, limit: int = 100
    ) -> list[Escalation]:
        """Escalate the alerts still new `after_s[severity]` seconds after they were raised or last
        escalated (severities not in `after_s` never are): severity one level up, `escalations` + 1,
        at most once per severity level. Each is a conditional update that also appends an
        `alert_escalated` record to the audit log, in one transaction: of several processes calling
        this at once, exactly one escalates a given alert for a given level. Returns the escalations
        this call made, oldest alerts first (at most `limit`)."""

    @abstractmethod
    def alert_owners(self, alert_ids: Sequence[str]) -> dict[str, str]:
        """alert_id -> owner, for those of `alert_ids` that have an owner (unknown ids are left out)."""

    @abstractmethod
    def alert_marks(self, alert_ids: Sequence[str]) -> dict[str, AlertMark]:
        """alert_id -> its owner and escalations, for those of `alert_ids` that have an owner or were
        escalated (one query: what an alert list shows beside each alert)."""

    @abstractmethod
    def alert_trails(self, alert_ids: Sequence[str]) -> dict[str, list[AuditEntry]]:
        """alert_id -> its audit trail, oldest first, for those of `alert_ids` acted on (what the
        map's timeline needs to show each alert's status as it was at a past moment)."""

    @abstractmethod
    def get_alert_case(self, alert_id: str) -> AlertCase | None:
        """The alert with its owner and audit trail (oldest first); None for an unknown id."""

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
    def scan_readings(
        self,
        since: datetime,
        until: datetime,
        *,
        site_ids: Sequence[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 5000,
    ) -> list[Reading]:
        """Readings of every site (or of `site_ids`) with ts in [since, until), oldest first (ties by
        message_id), starting after the (ts, message_id) `after`: page through a window for replay."""

    @abstractmethod
    def write_zone_states(self, states: Sequence[ZoneState]) -> int:
        """Store zone states as consumed (unique on site, zone and ts); returns how many were new."""

    @abstractmethod
    def list_zone_states(
        self,
        since: datetime,
        until: datetime,
        *,
        site_ids: Sequence[str] | None = None,
        limit: int = 10_000,
    ) -> list[ZoneState]:
        """Zone states with ts in [since, until), oldest first (ties by site, then zone)."""

    @abstractmethod
    def write_scores(self, scores: Sequence[SiteScores]) -> int:
        """Store the detectors' per-site scores (unique on site and tick); returns how many were new."""

    @abstractmethod
    def list_scores(
        self,
        since: datetime,
        until: datetime,
        *,
        site_ids: Sequence[str] | None = None,
        limit: int = 10_000,
    ) -> list[SiteScores]:
        """Scores with tick in [since, until), oldest first (ties by site)."""

    @abstractmethod
    def list_dead_letters(
        self, *, reason: DeadLetterReason | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, newest first (ties by dead_letter_id, descending)."""

    @abstractmethod
    def count_dead_letters(self, reason: str | None = None) -> int: ...

    # -- users and the audit log (beffroi.identity.IdentityStore) ------------------------------------

    @abstractmethod
    def add_user(self, user: User) -> None:
        """Raises ValueError when a user of that name exists."""

    @abstractmethod
    def get_user(self, name: str) -> User | None: ...

    @abstractmethod
    def list_users(self) -> list[User]:
        """By name."""

    @abstractmethod
    def set_user_disabled(self, name: str, disabled: bool) -> bool:
        """Returns False for an unknown user."""

    @abstractmethod
    def set_user_password(self, name: str, password_hash: str) -> bool:
        """Returns False for an unknown user."""

    @abstractmethod
    def append_audit(self, records: list[AuditRecord]) -> None:
        """Append records (their `seq` is given by the store), in one transaction."""

    @abstractmethod
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
        """Newest first. `sites` None: every record; else only the records of those sites."""

    # -- what API processes share about requests (beffroi.identity.IdentityStore) ---------------------

    @abstractmethod
    def sign_in_failures(self, key: str, *, since: datetime, limit: int) -> list[datetime]:
        """The times of `key`'s failed sign-ins after `since`, newest first, at most `limit`."""

    @abstractmethod
    def add_sign_in_failure(self, keys: Sequence[str], *, at: datetime, forget_before: datetime) -> None:
        """Note a failed sign-in for each key; failures of any key before `forget_before` are dropped."""

    @abstractmethod
    def clear_sign_in_failures(self, key: str) -> None: ...

    @abstractmethod
    def claim_request_key(
        self, owner: str, key: str, fingerprint: str, *, now: datetime, expires_at: datetime
    ) -> RequestKey | None:
        """None when this call claimed `owner`'s `key` (no live claim existed), else the live claim."""

    @abstractmethod
    def finish_request_key(
        self, owner: str, key: str, *, status: int, body: bytes, expires_at: datetime
    ) -> None: ...

    @abstractmethod
    def release_request_key(self, owner: str, key: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
