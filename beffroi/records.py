"""How readings, alerts and dead letters travel as bus records (the wire format of the slice).

- readings: key = device id, value = `Reading` JSON, header `message_id`.
- alerts: key = site id, value = `Alert` JSON, header `alert_id`.
- dead letters: key = device id (or the source topic), value = the ORIGINAL bytes exactly,
  headers `reason`, `detail`, `source`, `received_at` (ISO 8601), `dead_letter_id`, `stage`.
"""

from __future__ import annotations

from dataclasses import dataclass

from beffroi.bus import Headers, Record
from beffroi.clock import parse_iso
from beffroi.events import Alert, DeadLetter, DeadLetterReason, Reading, derived_id, message_id_for

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


def dead_letter_record(topic: str, letter: DeadLetter) -> Outgoing:
    key = device_of_topic(letter.source) or letter.source
    headers: Headers = (
        ("reason", letter.reason.value.encode()),
        ("detail", letter.detail.encode()),
        ("source", letter.source.encode()),
        ("received_at", letter.received_at.isoformat().encode()),
        ("dead_letter_id", letter.dead_letter_id.encode()),
        ("stage", letter.stage.encode()),
    )
    return Outgoing(topic, letter.payload, key.encode(), headers)


class BadRecord(ValueError):
    """A record on a topic does not decode as what that topic carries."""


def decode_reading(record: Record) -> Reading:
    try:
        return Reading.model_validate_json(record.value)
    except ValueError as exc:
        raise BadRecord(f"{record.topic}[{record.partition}]@{record.offset}: not a reading: {exc}") from exc


def decode_alert(record: Record) -> Alert:
    try:
        return Alert.model_validate_json(record.value)
    except ValueError as exc:
        raise BadRecord(f"{record.topic}[{record.partition}]@{record.offset}: not an alert: {exc}") from exc


def decode_dead_letter(record: Record) -> DeadLetter:
    """The dead letter a record of the dead-letter topic carries (its value is the original payload)."""
    try:
        fields = {name: (record.header(name) or b"").decode() for name in DEAD_LETTER_HEADERS}
        source = fields["source"] or record.topic
        return DeadLetter(
            dead_letter_id=fields["dead_letter_id"] or dead_letter_id(source, record.value),
            source=source,
            reason=DeadLetterReason(fields["reason"]),
            detail=fields["detail"],
            received_at=parse_iso(fields["received_at"], what="received_at header"),
            payload=record.value,
            stage="worker" if fields["stage"] == "worker" else "bridge",
        )
    except ValueError as exc:
        raise BadRecord(
            f"{record.topic}[{record.partition}]@{record.offset}: not a dead letter: {exc}"
        ) from exc
