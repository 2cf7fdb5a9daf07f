"""The bus record formats of the kernel: what each encoder writes decodes back to the same thing,
and a record that is not what its topic carries is a `BadRecord` naming where it sits."""

import hashlib
import json
import random
import uuid
from datetime import UTC, datetime

import pytest

from beffroi.bus import Record
from beffroi.events import _ID_NAMESPACE, derived_id, message_id_for, uuid5_text
from beffroi.records import (
    BadRecord,
    GateFlow,
    ZoneState,
    decode_score,
    decode_zone_state,
    score_record,
    zone_state_record,
)

TICK = datetime(2026, 6, 14, 20, 15, 30, tzinfo=UTC)


def as_received(out, partition=2, offset=41):
    return Record(out.topic, out.value, out.key, out.headers, partition=partition, offset=offset)


def test_zone_state_round_trip_keyed_by_site_and_zone():
    state = ZoneState(
        zone_id="north-stand",
        site_id="sdf",
        ts=TICK,
        window_s=1.0,
        count=812.0,
        observed_count=640.0,
        observed_area_m2=400.0,
        coverage=0.8,
        density=1.6,
        los="D",
        flow_ppm_per_m=12.5,
        flow_los="A",
        gates=[GateFlow(gate_id="g1", width_m=4.0, entered=30, left=5, flow_ppm_per_m=12.5, los="A")],
        confidence=0.9,
        method="fused",
        cameras=["cam-1", "cam-2"],
        frames=10,
    )
    out = zone_state_record("p.zone_state", state)
    assert (out.topic, out.key, out.headers) == (
        "p.zone_state",
        b"sdf/north-stand",
        (("schema", b"beffroi.zone_state.v1"),),
    )
    assert json.loads(out.value)["schema"] == "beffroi.zone_state.v1"
    assert decode_zone_state(as_received(out)) == state


def test_scores_round_trip_one_record_per_site():
    streams = {"sdf/cam-1/density": (0.25, 0.0), "sdf/t-3/temp": (3.5, 1.0)}
    out = score_record("p.scores", "sdf", TICK, streams)
    assert (out.topic, out.key) == ("p.scores", b"sdf")
    assert json.loads(out.value) == {
        "tick": "2026-06-14T20:15:30+00:00",
        "site_id": "sdf",
        "streams": {"sdf/cam-1/density": [0.25, 0.0], "sdf/t-3/temp": [3.5, 1.0]},
    }
    back = decode_score(as_received(out))
    assert (back.site_id, back.tick, back.streams) == ("sdf", TICK, streams)


@pytest.mark.parametrize("decode", [decode_zone_state, decode_score])
@pytest.mark.parametrize("value", [b"not json", b"{}", b'{"tick": 3}'])
def test_a_foreign_record_is_a_bad_record_naming_its_place(decode, value):
    with pytest.raises(BadRecord, match=r"^t\[2\]@41: not a "):
        decode(Record("t", value, None, partition=2, offset=41))


def test_ids_are_the_uuid5_of_their_name():
    rng = random.Random(5)
    alphabet = "az09|-_.:/é€😀\u200b"
    for _ in range(500):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert uuid5_text(name) == str(uuid.uuid5(_ID_NAMESPACE, name))
    assert derived_id("a", "b") == str(uuid.uuid5(_ID_NAMESPACE, "a|b"))
    payload = b'{"x": 1}'
    digest = hashlib.sha256(payload).hexdigest()
    assert message_id_for("t-1", payload) == str(uuid.uuid5(_ID_NAMESPACE, f"t-1|{digest}"))
