"""Validate one MQTT message into a `Reading`, or reject it as a `DeadLetter` with a reason.

A pure, total function: bytes, topic, the device registry (the venue) and the current time in; no
I/O, and for ANY input it returns a reading or a dead letter, never raises. Checks, in order: size
(before parsing), topic shape, JSON, the Live Objects schema, the device, its model, the streamId
and tags (no control, format or surrogate characters), the value fields of the device kind (finite,
in the field's physical range), the timestamp window (whatever its UTC offset).

A dead letter keeps the original bytes, except for an oversized message: then only the first
`deadletter_prefix_bytes`, and its detail names the full size and SHA-256 so the original can be
matched. Its detail and source are escaped to printable text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from beffroi.devices import KIND_BY_MODEL, KIND_SPECS, KindSpec
from beffroi.events import (
    DeadLetter,
    DeadLetterReason,
    LiveObjectsPayload,
    Reading,
    escape_unprintable,
    message_id_for,
    unprintable_char,
)
from beffroi.records import dead_letter_id, device_of_topic
from beffroi.venue import PlacedDevice
from ingest.settings import IngestSettings

_STREAM_PREFIX = "urn:lo:nsid:"
_MISSING = {"missing"}
_WRONG_TYPE_SUFFIXES = ("_type", "_parsing")
DETAIL_MAX_CHARS = 500

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """The bounds a message must respect (from `settings.ingest`)."""

    max_payload_bytes: int = 8192
    max_future_s: float = 300.0
    max_past_s: float = 7 * 86400.0
    deadletter_prefix_bytes: int = 1024

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> Limits:
        return cls(
            max_payload_bytes=ingest.max_payload_bytes,
            max_future_s=ingest.max_future_s,
            max_past_s=ingest.max_past_s,
            deadletter_prefix_bytes=ingest.deadletter_prefix_bytes,
        )


class Rejected(Exception):
    """Internal: a message failed one check."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def validate_message(
    payload: bytes,
    *,
    topic: str,
    devices: Mapping[str, PlacedDevice],
    now: datetime,
    limits: Limits,
    namespace: str = "beffroi",
) -> Reading | DeadLetter:
    """A `Reading` for a good message; a `DeadLetter` (original bytes, reason, detail) otherwise."""
    try:
        return _validate(payload, topic=topic, devices=devices, now=now, limits=limits, namespace=namespace)
    except Rejected as rej:
        return make_dead_letter(
            payload, topic=topic, reason=rej.reason, detail=rej.detail, now=now, limits=limits
        )
    except Exception as exc:  # a gap in the checks above: still a dead letter, never a crash
        log.exception("validating a message from %s failed unexpectedly", escape_unprintable(topic, 200))
        return make_dead_letter(
            payload,
            topic=topic,
            reason=DeadLetterReason.INVALID,
            detail=f"{UNEXPECTED}{type(exc).__name__}: {exc}",
            now=now,
            limits=limits,
        )


UNEXPECTED = "unexpected validation error: "


def make_dead_letter(
    payload: bytes,
    *,
    topic: str,
    reason: DeadLetterReason,
    detail: str,
    now: datetime,
    limits: Limits,
    stage: str = "bridge",
    cut_above: int | None = None,
) -> DeadLetter:
    """The dead letter of one message; it always fits on the bus (see the module docstring). Its
    payload is cut to `deadletter_prefix_bytes` above `cut_above` (default: `max_payload_bytes`)."""
    kept = payload
    if len(payload) > (limits.max_payload_bytes if cut_above is None else cut_above):
        kept = payload[: limits.deadletter_prefix_bytes]
        suffix = (
            f" [payload cut to its first {len(kept)} of {len(payload)} bytes; "
            f"sha256 {hashlib.sha256(payload).hexdigest()}]"
        )
    else:
        suffix = ""
    text = escape_unprintable(detail, DETAIL_MAX_CHARS - len(suffix)) + suffix
    source = escape_unprintable(topic, 1024)
    return DeadLetter(
        dead_letter_id=dead_letter_id(source, payload),
        source=source,
        reason=reason,
        detail=text,
        received_at=now,
        payload=kept,
        stage="worker" if stage == "worker" else "bridge",
    )


def _validate(
    payload: bytes,
    *,
    topic: str,
    devices: Mapping[str, PlacedDevice],
    now: datetime,
    limits: Limits,
    namespace: str,
) -> Reading:
    if len(payload) > limits.max_payload_bytes:
        raise Rejected(
            DeadLetterReason.OVERSIZED, f"{len(payload)} bytes > max_payload_bytes {limits.max_payload_bytes}"
        )
    device_id = device_of_topic(topic)
    if device_id is None:
        raise Rejected(DeadLetterReason.INVALID, f"topic {topic!r} is not dev/{{device_id}}/data")
    doc = _parse_json(payload)
    msg = _parse_schema(doc)
    placed = devices.get(device_id)
    if placed is None:
        raise Rejected(DeadLetterReason.UNKNOWN_SENSOR, f"device {device_id!r} is not in the venue")
    spec = _check_model(msg.model, placed)
    _check_stream_id(msg.stream_id, device_id=device_id, namespace=namespace)
    _check_tags(msg.tags)
    value = _check_value(msg.value, spec)
    ts = _check_timestamp(msg.timestamp, now=now, limits=limits)
    return Reading(
        message_id=message_id_for(device_id, payload),
        device_id=device_id,
        site_id=placed.site_id,
        zone_id=placed.device.zone,
        stream_id=msg.stream_id,
        model=msg.model,
        ts=ts,
        received_at=now,
        value=value,
        location=msg.location if msg.location is not None else placed.device.location,
        tags=tuple(msg.tags),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise Rejected(
            DeadLetterReason.MALFORMED_JSON, f"not UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise Rejected(DeadLetterReason.MALFORMED_JSON, str(exc)) from exc


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def _parse_schema(doc: Any) -> LiveObjectsPayload:
    if not isinstance(doc, dict):
        raise Rejected(DeadLetterReason.WRONG_TYPE, f"payload is a JSON {type(doc).__name__}, not an object")
    try:
        return LiveObjectsPayload.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        missing = [e for e in errors if e["type"] in _MISSING]
        if missing:
            fields = ", ".join(_loc(e["loc"]) for e in missing)
            raise Rejected(DeadLetterReason.MISSING_FIELD, f"missing {fields}") from exc
        first = errors[0]
        reason = (
            DeadLetterReason.WRONG_TYPE
            if first["type"].endswith(_WRONG_TYPE_SUFFIXES)
            else DeadLetterReason.INVALID
        )
        raise Rejected(reason, f"{_loc(first['loc'])}: {first['msg']}") from exc


def _check_model(model: str, placed: PlacedDevice) -> KindSpec:
    spec = KIND_BY_MODEL.get(model)
    if spec is None:
        raise Rejected(DeadLetterReason.UNKNOWN_MODEL, f"unknown model {model!r}")
    expected = KIND_SPECS[placed.device.kind]
    if spec is not expected:
        raise Rejected(
            DeadLetterReason.UNKNOWN_MODEL,
            f"model {model!r} does not match device {placed.device.id!r} ({expected.model})",
        )
    return spec


def _check_text(what: str, text: str) -> None:
    bad = unprintable_char(text)
    if bad is not None:
        raise Rejected(DeadLetterReason.INVALID, f"{what} holds the character U+{ord(bad):04X}")


def _check_stream_id(stream_id: str, *, device_id: str, namespace: str) -> None:
    _check_text("streamId", stream_id)
    head, _, _stream = stream_id.partition("!")
    expected = f"{_STREAM_PREFIX}{namespace}:{device_id}"
    if head != expected:
        raise Rejected(
            DeadLetterReason.INVALID, f"streamId {stream_id!r} does not name {expected!r} (from the topic)"
        )


def _check_tags(tags: list[str]) -> None:
    for i, tag in enumerate(tags):
        _check_text(f"tags[{i}]", tag)


def _check_value(value: Mapping[str, float | int | bool], spec: KindSpec) -> dict[str, float]:
    names = {f.name for f in spec.fields}
    extra = sorted(set(value) - names)
    if extra:
        raise Rejected(DeadLetterReason.INVALID, f"value has fields {extra} not in {spec.model}")
    out: dict[str, float] = {}
    for f in spec.fields:
        if f.name not in value:
            raise Rejected(DeadLetterReason.MISSING_FIELD, f"missing value.{f.name} ({spec.model})")
        v = value[f.name]
        if isinstance(v, bool):
            if not (f.integer and f.low == 0 and f.high == 1):
                raise Rejected(DeadLetterReason.WRONG_TYPE, f"value.{f.name} is a boolean, expected a number")
            x = 1.0 if v else 0.0
        else:
            # compared before any conversion: an integer of 400 digits is out of range, not an overflow
            if isinstance(v, float) and not math.isfinite(v):
                raise Rejected(DeadLetterReason.WRONG_TYPE, f"value.{f.name} is not a finite number")
            if not f.low <= v <= f.high:
                shown = (
                    v
                    if isinstance(v, float) or abs(v) < 10**18
                    else f"an integer of {len(str(abs(v)))} digits"
                )
                raise Rejected(
                    DeadLetterReason.INVALID,
                    f"value.{f.name}={shown} outside the physical range [{f.low:g}, {f.high:g}] {f.unit}",
                )
            x = float(v)
            if f.integer and not x.is_integer():
                raise Rejected(DeadLetterReason.WRONG_TYPE, f"value.{f.name}={v} is not an integer")
        if not f.low <= x <= f.high:
            raise Rejected(
                DeadLetterReason.INVALID,
                f"value.{f.name}={v} outside the physical range [{f.low:g}, {f.high:g}] {f.unit}",
            )
        out[f.name] = x
    return out


def _check_timestamp(text: str, *, now: datetime, limits: Limits) -> datetime:
    try:
        local = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Rejected(DeadLetterReason.INVALID, f"timestamp is not ISO 8601: {text!r}") from exc
    if local.tzinfo is None or local.utcoffset() is None:
        raise Rejected(DeadLetterReason.INVALID, f"timestamp must carry a time zone: {text!r}")
    try:
        ts = local.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+14:00: before year 1 in UTC
        reason = (
            DeadLetterReason.TIMESTAMP_PAST if local.year < now.year else DeadLetterReason.TIMESTAMP_FUTURE
        )
        raise Rejected(reason, f"timestamp {text!r} is outside the representable range in UTC") from exc
    delta = (ts - now).total_seconds()  # aware datetimes within years 1-9999: never overflows
    if delta > limits.max_future_s:
        raise Rejected(
            DeadLetterReason.TIMESTAMP_FUTURE,
            f"timestamp {text!r} is {delta:.0f}s ahead (max {limits.max_future_s:g}s)",
        )
    if -delta > limits.max_past_s:
        raise Rejected(
            DeadLetterReason.TIMESTAMP_PAST,
            f"timestamp {text!r} is {-delta:.0f}s old (max {limits.max_past_s:g}s)",
        )
    return ts
