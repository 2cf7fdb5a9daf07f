"""Validate one MQTT message into a `Reading`, or reject it as a `DeadLetter` with a reason.

A pure function: bytes, topic, the device registry (the venue) and the current time in; no I/O.
Checks, in order: size (before parsing), topic shape, JSON, the Live Objects schema, the device,
its model, the streamId, the value fields of the device kind, the timestamp window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from beffroi.clock import parse_iso
from beffroi.devices import KIND_BY_MODEL, KIND_SPECS, KindSpec
from beffroi.events import (
    DeadLetter,
    DeadLetterReason,
    LiveObjectsPayload,
    Reading,
    message_id_for,
)
from beffroi.records import dead_letter_id, device_of_topic
from beffroi.venue import PlacedDevice
from ingest.settings import IngestSettings

_STREAM_PREFIX = "urn:lo:nsid:"
_MISSING = {"missing"}
_WRONG_TYPE_SUFFIXES = ("_type", "_parsing")


@dataclass(frozen=True)
class Limits:
    """The bounds a message must respect (from `settings.ingest`)."""

    max_payload_bytes: int = 8192
    max_future_s: float = 300.0
    max_past_s: float = 7 * 86400.0

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> Limits:
        return cls(
            max_payload_bytes=ingest.max_payload_bytes,
            max_future_s=ingest.max_future_s,
            max_past_s=ingest.max_past_s,
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
        return DeadLetter(
            dead_letter_id=dead_letter_id(topic, payload),
            source=topic,
            reason=rej.reason,
            detail=rej.detail[:500],
            received_at=now,
            payload=payload,
            stage="bridge",
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


def _check_stream_id(stream_id: str, *, device_id: str, namespace: str) -> None:
    head, _, _stream = stream_id.partition("!")
    expected = f"{_STREAM_PREFIX}{namespace}:{device_id}"
    if head != expected:
        raise Rejected(
            DeadLetterReason.INVALID, f"streamId {stream_id!r} does not name {expected!r} (from the topic)"
        )


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
            x = float(v)
            if not math.isfinite(x):
                raise Rejected(DeadLetterReason.WRONG_TYPE, f"value.{f.name} is not a finite number")
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
        ts = parse_iso(text)
    except ValueError as exc:
        raise Rejected(DeadLetterReason.INVALID, str(exc)) from exc
    if ts > now + timedelta(seconds=limits.max_future_s):
        ahead = (ts - now).total_seconds()
        raise Rejected(
            DeadLetterReason.TIMESTAMP_FUTURE,
            f"timestamp {text} is {ahead:.0f}s ahead (max {limits.max_future_s:g}s)",
        )
    if ts < now - timedelta(seconds=limits.max_past_s):
        behind = (now - ts).total_seconds()
        raise Rejected(
            DeadLetterReason.TIMESTAMP_PAST,
            f"timestamp {text} is {behind:.0f}s old (max {limits.max_past_s:g}s)",
        )
    return ts
