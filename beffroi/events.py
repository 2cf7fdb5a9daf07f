"""Event schemas that travel on the bus: the Live Objects payload, readings, alerts, dead letters."""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from beffroi.clock import ensure_aware

AwareDatetime = Annotated[datetime, AfterValidator(lambda v: ensure_aware(v))]

_ID_NAMESPACE = uuid.UUID("6f1d2a4e-8b0c-4c55-9a51-0be0f0b3e001")


_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def unprintable_char(text: str) -> str | None:
    """The first control, format (bidi overrides, zero-width), surrogate or line-separator character
    of `text`, or None when it holds none (what a sensor string may not carry)."""
    if text.isprintable():
        return None
    for c in text:
        if unicodedata.category(c) in _UNPRINTABLE_CATEGORIES:
            return c
    return None


def escape_unprintable(text: str, limit: int | None = None) -> str:
    """`text` cut to `limit` characters, its unprintable characters written as escapes (\\x00,
    \\u202e, \\ud800): always valid UTF-8, safe in a Kafka header, a log line or a PostgreSQL text."""
    if limit is not None and len(text) > limit:
        text = text[:limit]
    if unprintable_char(text) is None:
        return text
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c) in _UNPRINTABLE_CATEGORIES
        else c
        for c in text
    )


class LatLon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class LiveObjectsPayload(BaseModel):
    """What a device publishes on `dev/{device_id}/data`, in the Orange Live Objects style."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    stream_id: str = Field(alias="streamId", min_length=1, max_length=256)
    timestamp: str
    model: str = Field(min_length=1, max_length=128)
    value: dict[str, float | int | bool]
    location: LatLon | None = None
    tags: list[str] = Field(default_factory=list, max_length=32)


class Reading(BaseModel):
    """A validated sensor reading, keyed on the bus by device id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str
    device_id: str
    site_id: str
    zone_id: str | None = None
    stream_id: str
    model: str
    ts: AwareDatetime
    received_at: AwareDatetime
    value: dict[str, float]
    location: LatLon | None = None
    tags: tuple[str, ...] = ()


_NAMESPACE_BYTES = _ID_NAMESPACE.bytes
_UUID5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID5_SET = (0x8000 << 48) | (5 << 76)


def uuid5_text(name: str) -> str:
    """`str(uuid.uuid5(_ID_NAMESPACE, name))`, without building the UUID object (a third of the cost,
    once per reading on the bridge's hot path)."""
    n = int.from_bytes(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16], "big")
    h = f"{(n & _UUID5_CLEAR) | _UUID5_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def message_id_for(device_id: str, payload: bytes) -> str:
    """Stable id of one published message: a redelivery or a duplicate publish maps to the same id."""
    return uuid5_text(f"{device_id}|{hashlib.sha256(payload).hexdigest()}")


def derived_id(*parts: str) -> str:
    """Deterministic id for anything derived from other ids (alerts, scores)."""
    return uuid5_text("|".join(parts))


class AlertCategory(StrEnum):
    INCIDENT = "incident"
    FAULT = "fault"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Alert(BaseModel):
    """An alert raised by a rule or a detector. Its id is derived, so re-processing never doubles it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    site_id: str
    zone_id: str | None = None
    device_id: str | None = None
    rule: str
    category: AlertCategory = AlertCategory.INCIDENT
    severity: Severity
    status: AlertStatus = AlertStatus.NEW
    raised_at: AwareDatetime
    title: str
    detail: str = ""
    value: float | None = None
    source_ids: tuple[str, ...] = ()
    settings_hash: str | None = None
    """Provenance: a hash of the settings (the rule's entry, or the detectors' section) that raised it."""
    weights_hash: str | None = None
    """Provenance: a hash of the model weights behind it (None: no weights, e.g. a threshold rule)."""


OPEN_ALERT_STATUSES: frozenset[AlertStatus] = frozenset(
    {AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.IN_PROGRESS}
)
"""An alert is open until it is resolved or closed: only open alerts colour the map."""


class AlertAction(StrEnum):
    """What an operator does to an alert (the lifecycle's transitions are in beffroi/store.py)."""

    ACKNOWLEDGE = "acknowledge"
    START = "start"
    RESOLVE = "resolve"
    CLOSE = "close"
    COMMENT = "comment"
    ASSIGN = "assign"
    """A supervisor gives an open alert to an operator (`assignee`), status unchanged."""


def _printable(text: str, *, what: str, newlines: bool) -> str:
    allowed = "\n\t" if newlines else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in text):
        raise ValueError(f"{what} must not hold control characters")
    return text


def _operator_name(text: str) -> str:
    name = _printable(text.strip(), what="operator", newlines=False)
    if not name:
        raise ValueError("operator must not be blank")
    return name


OperatorName = Annotated[
    str,
    Field(min_length=1, max_length=64, description="who acts: the signed-in user's name"),
    AfterValidator(_operator_name),
]

ActionComment = Annotated[
    str | None,
    Field(max_length=2000),
    AfterValidator(lambda v: _printable(v, what="comment", newlines=True) if v is not None else v),
]


class OperatorAction(BaseModel):
    """An operator's action on an alert. `expected_status`, when given, makes the action apply only
    if the alert is still in that status (what the operator saw), so that a stale screen cannot
    overwrite a colleague's decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: AlertAction
    operator: OperatorName
    comment: ActionComment = None
    expected_status: AlertStatus | None = None
    assignee: OperatorName | None = None
    """Who an `assign` action gives the alert to (only for `assign`)."""

    @model_validator(mode="after")
    def _comment_has_text(self) -> OperatorAction:
        if self.action is AlertAction.COMMENT and not (self.comment or "").strip():
            raise ValueError("a comment action needs a non-empty comment")
        if (self.action is AlertAction.ASSIGN) != (self.assignee is not None):
            raise ValueError("an assign action, and only it, names an assignee")
        return self


class AuditEntry(BaseModel):
    """One operator action as recorded in an alert's audit trail (for a comment, from = to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    alert_id: str
    at: AwareDatetime
    operator: str
    action: AlertAction
    from_status: AlertStatus
    to_status: AlertStatus
    comment: str | None = None


class AlertCase(BaseModel):
    """An alert as the control room handles it: its current status (in `alert`), its owner, and
    its audit trail, oldest first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert: Alert
    owner: str | None = None
    updated_at: AwareDatetime | None = None
    """When an operator last acted on it (None: nobody has yet)."""
    history: tuple[AuditEntry, ...] = ()
    escalations: int = 0
    """How many times it was escalated (not acknowledged in time): its supervisors are flagged."""
    escalated_at: AwareDatetime | None = None


def raised_severity(severity: Severity) -> Severity:
    """One level up (critical stays critical)."""
    levels = list(Severity)
    return levels[min(levels.index(severity) + 1, len(levels) - 1)]


class DeadLetterReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_SENSOR = "unknown_sensor"
    UNKNOWN_MODEL = "unknown_model"
    TIMESTAMP_FUTURE = "timestamp_future"
    TIMESTAMP_PAST = "timestamp_past"
    OVERSIZED = "oversized"
    INVALID = "invalid"


class DeadLetter(BaseModel):
    """A rejected message. On the bus its value is the original bytes and these fields are headers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dead_letter_id: str
    source: str
    reason: DeadLetterReason
    detail: str
    received_at: AwareDatetime
    payload: bytes
    stage: Literal["bridge", "worker"] = "bridge"
