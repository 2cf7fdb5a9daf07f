"""Every bus record format: an encode/decode pair per topic (the wire format of the platform).

- readings: key = device id, value = `Reading` JSON, header `message_id`.
- alerts: key = site id, value = `Alert` JSON, header `alert_id`.
- dead letters: key = device id (or the source topic), value = the ORIGINAL bytes exactly (only a
  prefix for an oversized message, see `ingest.validate.make_dead_letter`), headers `reason`,
  `detail`, `source`, `received_at` (ISO 8601), `dead_letter_id`, `stage`.
- zone states: key = `site/zone` (or the zone), value = `ZoneState` JSON, header `schema`.
- scores: key = site id, value = JSON {tick, site_id, streams: {stream: [incident score, fault
  severity]}}, one record per site and tick of the detectors.

Encoders never fail on the text they carry (a lone surrogate is written as an escape); decoders
raise only `BadRecord`, and what they return is safe to store (no NUL or other control character
in a reading's strings, finite values).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from beffroi.bus import Headers, Record
from beffroi.clock import parse_iso
from beffroi.events import (
    Alert,
    AwareDatetime,
    DeadLetter,
    DeadLetterReason,
    Reading,
    derived_id,
    escape_unprintable,
    message_id_for,
    unprintable_char,
)

_TOPIC_PREFIX = "dev/"
_TOPIC_SUFFIX = "/data"
DEAD_LETTER_HEADERS = ("reason", "detail", "source", "received_at", "dead_letter_id", "stage")


def device_of_topic(topic: str) -> str | None:
    """The device id in `dev/{device_id}/data`, or None when the topic has another shape."""
    if not (topic.startswith(_TOPIC_PREFIX) and topic.endswith(_TOPIC_SUFFIX)):
        return None
    device_id = topic[len(_TOPIC_PREFIX) : -len(_TOPIC_SUFFIX)]
    if not device_id or "/" in device_id:
        return None
    return device_id


def dead_letter_id(source: str, payload: bytes) -> str:
    """Stable id of a rejected message: a redelivery is stored once."""
    return derived_id("deadletter", message_id_for(source, payload))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: what `Bus.send` takes."""

    topic: str
    value: bytes
    key: bytes | None
    headers: Headers = ()


def reading_record(topic: str, reading: Reading) -> Outgoing:
    return Outgoing(
        topic,
        reading.model_dump_json().encode(),
        reading.device_id.encode(),
        (("message_id", reading.message_id.encode()),),
    )


def alert_record(topic: str, alert: Alert) -> Outgoing:
    return Outgoing(
        topic,
        alert.model_dump_json().encode(),
        alert.site_id.encode(),
        (("alert_id", alert.alert_id.encode()),),
    )


def _text(value: str) -> bytes:
    return escape_unprintable(value).encode()


def dead_letter_record(topic: str, letter: DeadLetter) -> Outgoing:
    key = device_of_topic(letter.source) or letter.source
    headers: Headers = (
        ("reason", letter.reason.value.encode()),
        ("detail", _text(letter.detail)),
        ("source", _text(letter.source)),
        ("received_at", letter.received_at.isoformat().encode()),
        ("dead_letter_id", _text(letter.dead_letter_id)),
        ("stage", letter.stage.encode()),
    )
    return Outgoing(topic, letter.payload, _text(key), headers)


class BadRecord(ValueError):
    """A record on a topic does not decode as what that topic carries."""


def _where(record: Record) -> str:
    return f"{escape_unprintable(record.topic, 300)}[{record.partition}]@{record.offset}"


def decode_reading(record: Record) -> Reading:
    """The reading a record of the readings topic carries; `BadRecord` for anything a store could not
    hold (control characters, non-finite values), whoever wrote it."""
    try:
        reading = Reading.model_validate_json(record.value)
        texts = [
            reading.message_id,
            reading.device_id,
            reading.site_id,
            reading.zone_id or "",
            reading.stream_id,
        ]
        texts += [reading.model, *reading.tags, *reading.value]
        for text in texts:
            bad = unprintable_char(text)
            if bad is not None:
                raise ValueError(f"a string holds the character U+{ord(bad):04X}")
        if not all(math.isfinite(v) for v in reading.value.values()):
            raise ValueError("a value is not finite")
        return reading
    except (ValueError, OverflowError) as exc:
        raise BadRecord(f"{_where(record)}: not a reading: {escape_unprintable(str(exc), 500)}") from exc


def decode_alert(record: Record) -> Alert:
    try:
        return Alert.model_validate_json(record.value)
    except (ValueError, OverflowError) as exc:
        raise BadRecord(f"{_where(record)}: not an alert: {escape_unprintable(str(exc), 500)}") from exc


def decode_dead_letter(record: Record) -> DeadLetter:
    """The dead letter a record of the dead-letter topic carries (its value is the original payload)."""
    try:
        fields = {
            name: escape_unprintable((record.header(name) or b"").decode(errors="backslashreplace"))
            for name in DEAD_LETTER_HEADERS
        }
        source = fields["source"] if record.header("source") is not None else escape_unprintable(record.topic)
        return DeadLetter(
            dead_letter_id=fields["dead_letter_id"] or dead_letter_id(source, record.value),
            source=source,
            reason=DeadLetterReason(fields["reason"]),
            detail=fields["detail"],
            received_at=parse_iso(fields["received_at"], what="received_at header"),
            payload=record.value,
            stage="worker" if fields["stage"] == "worker" else "bridge",
        )
    except (ValueError, OverflowError) as exc:
        raise BadRecord(f"{_where(record)}: not a dead letter: {escape_unprintable(str(exc), 500)}") from exc


#: Fruin's levels of service, A (free) to F (crush)
LevelOfService = Literal["A", "B", "C", "D", "E", "F"]

ZONE_STATE_SCHEMA = "beffroi.zone_state.v1"


class GateFlow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gate_id: str
    width_m: float
    entered: int = Field(ge=0, description="crossings inwards during the window")
    left: int = Field(ge=0, description="crossings outwards during the window")
    flow_ppm_per_m: float = Field(ge=0, description="persons per minute per metre, over the flow window")
    los: LevelOfService


class ZoneState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["beffroi.zone_state.v1"] = Field(default="beffroi.zone_state.v1", alias="schema")
    zone_id: str
    site_id: str | None = None
    ts: AwareDatetime  # end of the window
    window_s: float
    count: float = Field(ge=0, description="persons in the whole zone, extrapolated from the observed part")
    observed_count: float = Field(ge=0)
    observed_area_m2: float = Field(ge=0)
    coverage: float = Field(ge=0, le=1, description="share of the zone's area seen by a camera")
    density: float = Field(ge=0, description="persons/m²")
    los: LevelOfService
    flow_ppm_per_m: float = Field(ge=0, description="through the zone's gates, persons per minute per metre")
    flow_los: LevelOfService
    gates: list[GateFlow] = Field(default_factory=list)
    confidence: float = Field(ge=0, le=1)
    method: Literal["detection", "density", "fused"]
    cameras: list[str]
    frames: int = Field(ge=0)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @property
    def key(self) -> str:
        """The bus key: one partition order per zone."""
        return f"{self.site_id}/{self.zone_id}" if self.site_id else self.zone_id


def zone_state_record(topic: str, state: ZoneState) -> Outgoing:
    return Outgoing(topic, state.to_bytes(), state.key.encode(), (("schema", ZONE_STATE_SCHEMA.encode()),))


def decode_zone_state(record: Record) -> ZoneState:
    try:
        return ZoneState.model_validate_json(record.value)
    except ValueError as exc:
        raise BadRecord(
            f"{record.topic}[{record.partition}]@{record.offset}: not a zone state: {exc}"
        ) from exc


@dataclass(frozen=True)
class SiteScores:
    """The detectors' scores of one site at one tick: stream key -> (incident score, fault severity)."""

    site_id: str
    tick: datetime
    streams: dict[str, tuple[float, float]]


def score_record(
    topic: str, site_id: str, tick: datetime, streams: Mapping[str, tuple[float, float]]
) -> Outgoing:
    doc = {"tick": tick.isoformat(), "site_id": site_id, "streams": dict(streams)}
    return Outgoing(topic, json.dumps(doc, separators=(",", ":")).encode(), site_id.encode())


def decode_score(record: Record) -> SiteScores:
    try:
        doc = json.loads(record.value)
        streams = {str(k): (float(v[0]), float(v[1])) for k, v in doc["streams"].items()}
        return SiteScores(site_id=str(doc["site_id"]), tick=parse_iso(doc["tick"]), streams=streams)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise BadRecord(f"{record.topic}[{record.partition}]@{record.offset}: not a score: {exc}") from exc
