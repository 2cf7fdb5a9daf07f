"""The validator is total, and the record formats round-trip: properties over generated input.

For ANY bytes on any topic, `validate_message` returns a reading or a dead letter with a reason and
never raises, through its own checks (never its catch-all). What it accepts is safe downstream:
finite values in the field's physical range, a timestamp in the window, printable strings. Every
result encodes as a bus record and decodes back to itself. The `slow` tests run the same
properties at scale: $BEFFROI_FUZZ_EXAMPLES examples each (default 3,000; a longer fuzz run:
BEFFROI_FUZZ_EXAMPLES=50000 pytest -m slow tests/pipeline/test_validate_properties.py).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beffroi.bus import Record
from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.events import DeadLetter, Reading, unprintable_char
from beffroi.records import dead_letter_record, decode_dead_letter, decode_reading, reading_record
from ingest.validate import UNEXPECTED, Limits, validate_message
from tower.testing import payload, tiny_venue

NOW = datetime(2026, 7, 26, 19, 30, tzinfo=UTC)
KINDS = {f"{k.value}-1": k for k in DeviceKind if KIND_SPECS[k].fields and k is not DeviceKind.CAMERA}
VENUE = tiny_venue(KINDS)
LIMITS = Limits(max_payload_bytes=2048, max_future_s=300, max_past_s=3600, deadletter_prefix_bytes=256)
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
SCALE = settings(
    max_examples=int(os.environ.get("BEFFROI_FUZZ_EXAMPLES", "3000")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# -- what a device (or an attacker) can send -------------------------------------------------------

NASTY_TEXT = st.sampled_from(["\x00", "\u202e", "\ud800", "\udfff", "\x1b[31m", "\u2028", "\ufeff", "\x7f"])
text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), NASTY_TEXT, st.text(max_size=8)),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just(10**400),
    st.just(-(10**400)),
)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
timestamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets),
    st.datetimes().map(datetime.isoformat),  # naive
    st.sampled_from(
        ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-07-26T19:30:00Z", "now"]
    ),
    st.builds(lambda s: (NOW + timedelta(seconds=s)).isoformat(), st.floats(-7200, 7200)),
    text,
)
json_leaf = st.one_of(st.none(), numbers, text)
json_any = st.recursive(
    json_leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(text, kids, max_size=4)),
    max_leaves=20,
)


@st.composite
def live_objects_docs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A Live Objects message of a venue device with some fields bent out of shape."""
    device = draw(st.sampled_from(sorted(KINDS)))
    spec = KIND_SPECS[KINDS[device]]
    value: dict[str, Any] = {
        f.name: draw(st.one_of(st.floats(f.low, f.high), numbers))
        if not f.integer
        else draw(st.one_of(st.integers(int(f.low), int(f.high)), numbers))
        for f in spec.fields
    }
    doc: dict[str, Any] = json.loads(
        payload(device, {f.name: f.low for f in spec.fields}, kind=KINDS[device], ts=NOW)
    )
    doc["value"] = value
    doc["timestamp"] = draw(timestamps)
    if draw(st.booleans()):
        doc["tags"] = draw(st.lists(text, max_size=5))
    if draw(st.booleans()):
        doc["streamId"] = doc["streamId"] + draw(text)
    if draw(st.booleans()):
        doc["location"] = {"lat": draw(numbers), "lon": draw(numbers)}
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["value", "model", "streamId", "timestamp", "tags", "extra"]))] = draw(
            json_any
        )
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode(
        "utf-8", errors=draw(st.sampled_from(["surrogatepass", "replace"]))
    )
    if draw(st.integers(0, 9)) == 0:  # deep nesting
        depth = draw(st.integers(1, 5000))
        raw = b'{"value": ' + b"[" * depth + b"]" * depth + b"}"
    return f"dev/{device}/data", raw


@st.composite
def good_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A message every check must accept: a venue device, values in range, a timestamp in the window."""
    device = draw(st.sampled_from(sorted(KINDS)))
    spec = KIND_SPECS[KINDS[device]]
    value = {
        f.name: draw(st.integers(int(f.low), int(f.high))) if f.integer else draw(st.floats(f.low, f.high))
        for f in spec.fields
    }
    offset = draw(offsets)
    ts = NOW + timedelta(seconds=draw(st.floats(-LIMITS.max_past_s, LIMITS.max_future_s)))
    printable = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=20)
    tags = draw(st.lists(printable, max_size=5))
    raw = payload(device, value, kind=KINDS[device], ts=ts.astimezone(offset), tags=tags)
    return f"dev/{device}/data", raw


topics = st.one_of(st.sampled_from([f"dev/{d}/data" for d in KINDS]), text, st.just("dev/\x00/data"))


def check(topic: str, raw: bytes) -> Reading | DeadLetter:
    result = validate_message(raw, topic=topic, devices=VENUE.devices, now=NOW, limits=LIMITS)
    if isinstance(result, DeadLetter):
        assert not result.detail.startswith(UNEXPECTED), result.detail  # a real check decided
        assert unprintable_char(result.detail) is None
        assert unprintable_char(result.source) is None
        assert len(result.payload) <= LIMITS.max_payload_bytes
        if len(raw) > LIMITS.max_payload_bytes:
            assert result.payload == raw[: LIMITS.deadletter_prefix_bytes]
        else:
            assert result.payload == raw
        record = dead_letter_record("dl", result)
        assert decode_dead_letter(Record(record.topic, record.value, record.key, record.headers)) == result
    else:
        spec = KIND_SPECS[VENUE.devices[result.device_id].device.kind]
        for f in spec.fields:
            x = result.value[f.name]
            assert math.isfinite(x)
            assert f.low <= x <= f.high
        assert -LIMITS.max_past_s <= (result.ts - NOW).total_seconds() <= LIMITS.max_future_s
        assert result.ts.utcoffset() == timedelta(0)
        for s in (result.stream_id, result.model, *result.tags):
            assert unprintable_char(s) is None
        record = reading_record("readings", result)
        assert decode_reading(Record(record.topic, record.value, record.key, record.headers)) == result
    return result


def _any_bytes(topic: str, raw: bytes) -> None:
    check(topic, raw)


def _shaped(message: tuple[str, bytes]) -> None:
    check(*message)


def _good(message: tuple[str, bytes]) -> None:
    assert isinstance(check(*message), Reading)


@FAST
@given(topics, st.binary(max_size=3000))
def test_any_bytes_on_any_topic_give_a_reading_or_a_dead_letter(topic: str, raw: bytes) -> None:
    _any_bytes(topic, raw)


@FAST
@given(live_objects_docs())
def test_bent_live_objects_messages_give_a_reading_or_a_dead_letter(message: tuple[str, bytes]) -> None:
    _shaped(message)


@FAST
@given(good_messages())
def test_every_good_message_is_accepted_and_round_trips(message: tuple[str, bytes]) -> None:
    _good(message)


@pytest.mark.parametrize(
    ("value", "timestamp", "tags", "reason"),
    [
        ({"celsius": 10**400}, None, None, "invalid"),
        ({"celsius": 20.0}, "0001-01-01T00:00:00+14:00", None, "timestamp_past"),
        ({"celsius": 20.0}, "9999-12-31T23:59:59-14:00", None, "timestamp_future"),
        ({"celsius": 20.0}, None, ["\ud800"], "invalid"),
        ({"celsius": 20.0}, None, ["a\x00b"], "invalid"),
        ({"celsius": 20.0}, None, ["\u202egnp.exe"], "invalid"),
        ({"celsius": 1e308 * 10}, None, None, "malformed_json"),  # inf: json.dumps writes Infinity
        ({"celsius": 81}, None, None, "invalid"),
    ],
)
def test_the_crash_messages_of_issue_12_are_dead_lettered(
    value: dict[str, float], timestamp: str | None, tags: list[str] | None, reason: str
) -> None:
    doc = json.loads(payload("temperature-1", {"celsius": 20.0}, ts=NOW))
    doc["value"] = value
    if timestamp is not None:
        doc["timestamp"] = timestamp
    if tags is not None:
        doc["tags"] = tags
    raw = json.dumps(doc).encode()
    result = check("dev/temperature-1/data", raw)
    assert isinstance(result, DeadLetter)
    assert result.reason.value == reason, result.detail


def test_a_control_character_in_the_stream_id_is_refused() -> None:
    doc = json.loads(payload("temperature-1", {"celsius": 20.0}, ts=NOW))
    doc["streamId"] += "\u202e"
    result = check("dev/temperature-1/data", json.dumps(doc).encode())
    assert isinstance(result, DeadLetter)
    assert "U+202E" in result.detail


@pytest.mark.slow
@pytest.mark.timeout(3600)
@SCALE
@given(topics, st.binary(max_size=3000))
def test_fuzz_any_bytes_at_scale(topic: str, raw: bytes) -> None:
    _any_bytes(topic, raw)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@SCALE
@given(live_objects_docs())
def test_fuzz_bent_messages_at_scale(message: tuple[str, bytes]) -> None:
    _shaped(message)
