"""The bridge's validation: one good message, and every reason a message is dead-lettered."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from beffroi.clock import parse_iso
from beffroi.devices import DeviceKind
from beffroi.events import DeadLetter, DeadLetterReason, Reading, message_id_for
from ingest.validate import Limits, validate_message
from tower.testing import payload, tiny_venue

NOW = parse_iso("2024-07-26T19:30:00+00:00")
VENUE = tiny_venue({"pb-1": DeviceKind.PANIC_BUTTON, "aq-1": DeviceKind.AIR_QUALITY, "gc-1": "gate_counter"})
LIMITS = Limits(max_payload_bytes=1024, max_future_s=300, max_past_s=3600)
R = DeadLetterReason


def check(raw: bytes, topic: str = "dev/aq-1/data") -> Reading | DeadLetter:
    return validate_message(raw, topic=topic, devices=VENUE.devices, now=NOW, limits=LIMITS)


def aq(**fields) -> bytes:
    return payload("aq-1", {"pm25": 12.5, "co": 1}, ts=NOW, **fields)


def test_a_good_message_becomes_a_reading_placed_by_the_venue():
    raw = aq(tags=["site:elsewhere"])
    r = check(raw)
    assert isinstance(r, Reading)
    assert (r.device_id, r.site_id, r.zone_id) == ("aq-1", "site-1", "zone-1")
    assert r.value == {"pm25": 12.5, "co": 1.0}
    assert r.ts == NOW
    assert r.received_at == NOW
    assert r.message_id == message_id_for("aq-1", raw)
    assert r.tags == ("site:elsewhere",)


def test_booleans_are_accepted_for_on_off_fields():
    r = check(payload("pb-1", {"pressed": True}, ts=NOW), "dev/pb-1/data")
    assert isinstance(r, Reading)
    assert r.value == {"pressed": 1.0}


def _with_value(value: object) -> bytes:
    doc = json.loads(aq())
    doc["value"] = value
    return json.dumps(doc).encode()


BAD = {
    "oversized": (aq(tags=["x" * 60] * 20), R.OVERSIZED),
    "not json": (b'{"streamId": "urn:lo', R.MALFORMED_JSON),
    "not utf-8": (b"\xff\xfe{}", R.MALFORMED_JSON),
    "NaN literal": (aq().replace(b'"co":1', b'"co":NaN'), R.MALFORMED_JSON),
    "json array": (b"[1, 2]", R.WRONG_TYPE),
    "no timestamp": (aq(timestamp=None), R.MISSING_FIELD),
    "no value": (aq(value=None), R.MISSING_FIELD),
    "no model": (aq(model=None), R.MISSING_FIELD),
    "value field missing": (_with_value({"pm25": 3.0}), R.MISSING_FIELD),
    "value is a string": (_with_value({"pm25": "12", "co": 1}), R.WRONG_TYPE),
    "value not an object": (_with_value([1, 2]), R.WRONG_TYPE),
    "timestamp is a number": (aq(timestamp=1721999999), R.WRONG_TYPE),
    "boolean for a level": (_with_value({"pm25": True, "co": 1}), R.WRONG_TYPE),
    "unknown model": (aq(model="acme.widget.v9"), R.UNKNOWN_MODEL),
    "model of another kind": (aq(model="beffroi.panic_button.v1"), R.UNKNOWN_MODEL),
    "timestamp far ahead": (
        payload("aq-1", {"pm25": 1, "co": 1}, ts=NOW + timedelta(hours=1)),
        R.TIMESTAMP_FUTURE,
    ),
    "timestamp far behind": (
        payload("aq-1", {"pm25": 1, "co": 1}, ts=NOW - timedelta(days=2)),
        R.TIMESTAMP_PAST,
    ),
    "timestamp without zone": (aq(timestamp="2024-07-26T19:30:00"), R.INVALID),
    "timestamp not ISO": (aq(timestamp="yesterday"), R.INVALID),
    "out of physical range": (_with_value({"pm25": 5000, "co": 1}), R.INVALID),
    "extra value field": (_with_value({"pm25": 1, "co": 1, "o3": 2}), R.INVALID),
    "streamId of another device": (aq(streamId="urn:lo:nsid:beffroi:pb-1!data"), R.INVALID),
    "unknown top-level key": (aq(firmware="1.2"), R.INVALID),
    "latitude out of range": (aq(location={"lat": 91, "lon": 2}), R.INVALID),
}


@pytest.mark.parametrize(("raw", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_messages_are_dead_lettered_with_their_reason_and_exact_bytes(raw, reason):
    dl = check(raw)
    assert isinstance(dl, DeadLetter), dl
    assert dl.reason is reason, dl.detail
    # exact bytes, but an oversized message keeps its prefix only (its detail names size and SHA-256)
    kept = raw if len(raw) <= LIMITS.max_payload_bytes else raw[: LIMITS.deadletter_prefix_bytes]
    assert dl.payload == kept
    assert dl.source == "dev/aq-1/data"
    assert dl.stage == "bridge"
    assert dl.received_at == NOW
    assert dl.detail


def test_an_unknown_device_is_dead_lettered():
    raw = payload("zz-9", {"pressed": 0}, ts=NOW)
    dl = check(raw, "dev/zz-9/data")
    assert isinstance(dl, DeadLetter)
    assert dl.reason is R.UNKNOWN_SENSOR
    assert "zz-9" in dl.detail


def test_the_topic_names_the_device_not_the_payload():
    raw = payload("aq-1", {"pm25": 1, "co": 1}, ts=NOW)
    dl = check(raw, "dev/pb-1/data")
    assert isinstance(dl, DeadLetter)
    assert dl.reason is R.UNKNOWN_MODEL


def test_size_is_checked_before_parsing():
    raw = b"\xff" * (LIMITS.max_payload_bytes + 1)
    dl = check(raw)
    assert isinstance(dl, DeadLetter)
    assert dl.reason is R.OVERSIZED


def test_the_same_bad_bytes_get_the_same_dead_letter_id():
    a, b = check(b"{oops"), check(b"{oops")
    c = check(b"{oops!")
    assert isinstance(a, DeadLetter)
    assert isinstance(b, DeadLetter)
    assert isinstance(c, DeadLetter)
    assert a.dead_letter_id == b.dead_letter_id != c.dead_letter_id
