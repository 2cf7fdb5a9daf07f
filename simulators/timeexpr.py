"""Durations and time expressions used by scenario files.

A duration is seconds (`90`), units (`90s`, `25m`, `1h30m`) or a clock span (`01:30:00`).
A time is one of:
- a clock time on the scenario's start date, in the start's zone: `"18:30"`, `"18:30:15"`;
- an ISO 8601 datetime with a zone;
- an offset from the start: `"+45m"`, `"-10m"`;
- a timeline event, optionally shifted: `kick_off`, `kick_off-40m`, `half_time+2m`.
Clock times must be quoted: YAML 1.1 reads a bare 18:30 as the number 1110.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)(?:m|min))?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_CLOCK = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}(?:\.\d+)?))?$")
EVENT_ID = r"^[a-z][a-z0-9_]*$"
_EVENT = re.compile(r"^(?P<ref>[a-z][a-z0-9_]*)(?:(?P<sign>[+-])(?P<dur>[0-9][0-9hms:.in]*))?$")


def parse_duration(value: Any) -> float:
    """Seconds in a duration; raises ValueError with what was expected."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '90s', '25m', '1h30m' or '01:30:00'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        text = value.strip()
        if text:
            m = _UNITS.match(text)
            if m and any(m.group(k) for k in "hms"):
                return sum(float(m.group(k) or 0) * f for k, f in (("h", 3600), ("m", 60), ("s", 1)))
            c = _CLOCK.match(text)
            if c:
                return int(c["h"]) * 3600 + int(c["m"]) * 60 + float(c["s"] or 0)
            try:
                return float(text)
            except ValueError:
                pass
    raise ValueError(f"expected a duration such as 90, '90s', '25m', '1h30m' or '01:30:00', got {value!r}")


def _check_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(_check_duration)]
"""Seconds, from any duration spelling."""


def _check_time(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime needs a time zone, e.g. 2024-08-10T21:00:00+02:00")
        return value.isoformat()
    if isinstance(value, int | float):
        raise ValueError(
            "a time must be a string: quote clock times ('18:30'), or write an offset ('+90s') or an event"
        )
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a time ('18:30', '+45m', 'kick_off-30m' or ISO 8601), got {value!r}")
    text = value.strip()
    if text[0] in "+-":
        parse_duration(text[1:])
        return text
    if _CLOCK.match(text):
        c = _CLOCK.match(text)
        assert c is not None
        if int(c["h"]) > 23 or int(c["m"]) > 59:
            raise ValueError(f"not a clock time: {text!r}")
        return text
    if text[:4].isdigit():
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 datetime: {text!r}") from exc
        if parsed.tzinfo is None:
            raise ValueError("a datetime needs a time zone, e.g. 2024-08-10T21:00:00+02:00")
        return text
    m = _EVENT.match(text)
    if m is None:
        raise ValueError(f"expected a time ('18:30', '+45m', 'kick_off-30m' or ISO 8601), got {value!r}")
    if m["dur"] is not None:
        parse_duration(m["dur"])
    return text


TimeExpr = Annotated[str, BeforeValidator(_check_time)]
"""A time expression, syntax-checked; `resolve_time` turns it into seconds since the start."""


def event_ref(expr: str) -> str | None:
    """The timeline event an expression refers to, if any."""
    if expr[0] in "+-" or _CLOCK.match(expr) or expr[:4].isdigit():
        return None
    m = _EVENT.match(expr)
    return m["ref"] if m else None


def resolve_time(expr: str, *, start: datetime, events: dict[str, float]) -> float:
    """Seconds after `start` for a checked expression; KeyError names an unknown event."""
    if expr[0] in "+-":
        sign = -1.0 if expr[0] == "-" else 1.0
        return sign * parse_duration(expr[1:])
    c = _CLOCK.match(expr)
    if c:
        at = start.replace(hour=int(c["h"]), minute=int(c["m"]), second=0, microsecond=0)
        at += timedelta(seconds=float(c["s"] or 0))
        if at < start - timedelta(hours=12):
            at += timedelta(days=1)
        return (at - start).total_seconds()
    if expr[:4].isdigit():
        return (datetime.fromisoformat(expr) - start).total_seconds()
    m = _EVENT.match(expr)
    assert m is not None
    ref = m["ref"]
    if ref not in events:
        raise KeyError(ref)
    shift = 0.0
    if m["dur"] is not None:
        shift = parse_duration(m["dur"]) * (-1.0 if m["sign"] == "-" else 1.0)
    return events[ref] + shift
