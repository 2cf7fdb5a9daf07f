"""Time helpers: every datetime in Beffroi is time-zone aware (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_aware(value: datetime, *, what: str = "datetime") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must carry a time zone (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def parse_iso(text: str, *, what: str = "timestamp") -> datetime:
    """Parse an ISO 8601 timestamp; a trailing 'Z' is accepted, a missing zone is an error."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not ISO 8601: {text!r}") from exc
    return ensure_aware(value, what=what)
