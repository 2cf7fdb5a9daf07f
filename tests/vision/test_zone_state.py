import json
from datetime import UTC, datetime, timedelta

import pytest

from analytics.vision.counting import CameraObservation, ZoneObservation
from analytics.vision.publish import ZoneStatePublisher
from analytics.vision.tracking import Crossing
from analytics.vision.zone_state import GateInfo, ZoneAggregator, ZoneInfo
from beffroi.records import ZoneState

T0 = datetime(2024, 7, 26, 19, 30, tzinfo=UTC)


def obs(camera, t_s, count, area, *, weight=0.0, crossings=()):
    z = ZoneObservation(count=count, area_m2=area, detected=round(count), density_weight=weight, score=0.7)
    return CameraObservation(
        camera_id=camera, site_id="stade", t_s=t_s, zones={"plaza": z}, crossings=list(crossings)
    )


def aggregator(**kw):
    return ZoneAggregator(
        zones={("stade", "plaza"): ZoneInfo(area_m2=1000.0), ("other", "plaza"): ZoneInfo(area_m2=10.0)},
        gates={("stade", "g1"): GateInfo(width_m=4.0, zone_in="plaza", zone_out=None)},
        **kw,
    )


def test_one_state_per_zone_per_second_from_all_cameras():
    agg = aggregator()
    out = []
    for k in range(5):  # 5 frames/s for 2 s from two cameras seeing different parts
        t = T0 + timedelta(seconds=k * 0.2)
        out += agg.add(obs("cam1", k * 0.2, 300.0, 100.0), t)
        out += agg.add(obs("cam2", k * 0.2, 100.0, 100.0), t)
    assert out == []  # the window stays open until an observation comes a second after its end
    out += agg.add(obs("cam1", 2.1, 300.0, 100.0), T0 + timedelta(seconds=2.1))
    assert out == []  # and for every camera's
    out += agg.add(obs("cam2", 2.1, 100.0, 100.0), T0 + timedelta(seconds=2.1))
    assert len(out) == 1
    s = out[0]
    assert s.zone_id == "plaza"
    assert s.site_id == "stade"
    assert s.ts == T0 + timedelta(seconds=1)
    assert s.density == pytest.approx(2.0)  # (300 + 100) persons / 200 m²
    assert s.count == pytest.approx(2000.0)  # extrapolated to the whole zone
    assert s.observed_area_m2 == 200.0
    assert s.coverage == pytest.approx(0.2)
    assert s.los == "D"
    assert s.method == "detection"
    assert s.cameras == ["cam1", "cam2"]
    assert s.frames == 10
    assert 0 < s.confidence < 1
    rest = agg.flush()
    assert [x.ts for x in rest] == [T0 + timedelta(seconds=3)]
    assert rest[0].density == pytest.approx(2.0)


def test_flow_through_gates_in_persons_per_minute_per_metre():
    agg = aggregator(flow_window_s=10.0)
    states = []
    for k in range(10):
        crossings = [Crossing("g1", k, +1), Crossing("g1", k, +1), Crossing("g1", k, -1)]
        states += agg.add(obs("cam1", k, 10.0, 100.0, crossings=crossings), T0 + timedelta(seconds=k))
    states += agg.flush()
    last = states[-1]
    assert last.gates[0].entered == 2
    assert last.gates[0].left == 1
    # 30 crossings in 10 s through 4 m: 180 per minute / 4 m
    assert last.flow_ppm_per_m == pytest.approx(45.0)
    assert last.flow_los == "C"


def test_density_model_share_shows_in_method_and_late_frames_are_counted():
    agg = aggregator()
    agg.add(obs("cam1", 0.0, 600.0, 100.0, weight=1.0), T0)
    (s,) = agg.add(obs("cam1", 2.5, 500.0, 100.0, weight=0.5), T0 + timedelta(seconds=2.5))
    assert s.method == "density"
    assert s.los == "F"
    assert agg.add(obs("cam1", 0.1, 1.0, 100.0), T0 + timedelta(seconds=0.1)) == []
    assert agg.late_observations == 1
    (s2,) = agg.flush()
    assert s2.method == "fused"


def test_zone_state_on_the_bus_carries_aggregates_only(bus, bus_names):
    topic = bus_names.topic("zone_state")
    bus.ensure_topics({topic: 2})
    agg = aggregator()
    crossings = [Crossing("g1", 0.0, 1)]
    agg.add(obs("cam1", 0.0, 120.0, 100.0, crossings=crossings), T0)
    states = agg.flush()
    pub = ZoneStatePublisher(bus, topic)
    assert pub.publish(states) == 1
    pub.flush()
    with bus.subscribe(bus_names.group("zs"), [topic]) as sub:
        records = []
        for _ in range(20):
            records += sub.poll(timeout=0.5)
            if records:
                break
    (rec,) = records
    assert rec.key == b"stade/plaza"
    assert rec.header("schema") == b"beffroi.zone_state.v1"
    payload = json.loads(rec.value)
    assert ZoneState.model_validate(payload) == states[0]
    assert set(payload) == AGGREGATE_FIELDS
    assert payload["gates"]
    assert all(set(g) == GATE_FIELDS for g in payload["gates"])
    assert len(rec.value) < 2048

    def leaves(x, path=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from leaves(v, f"{path}.{k}")
        elif isinstance(x, list):
            assert len(x) <= 16, f"{path}: only short lists of per-gate aggregates may travel"
            for v in x:
                yield from leaves(v, f"{path}[]")
        else:
            yield path, x

    for path, value in leaves(payload):
        name = path.rsplit(".", 1)[-1].strip("[]")
        assert name not in {"image", "frame", "jpeg", "box", "boxes", "face", "pixels", "persons"}, path
        assert not isinstance(value, str) or len(value) <= 64, f"{path}: no blobs"


def test_scoring_compares_states_with_the_truth_at_their_time(tmp_path):
    from analytics.vision.scoring import load_truth, score

    (tmp_path / "zones.csv").write_text(
        "timestamp,t_s,site,zone,occupancy,density,los\n"
        "2024-07-26T19:30:00.000Z,0,stade,plaza,1000,1.0,B\n"
        "2024-07-26T19:30:05.000Z,5,stade,plaza,2000,2.0,D\n"
    )
    agg = aggregator()
    states = []
    for k in range(8):
        states += agg.add(obs("cam1", k, 150.0, 100.0), T0 + timedelta(seconds=k))  # 1.5 p/m² throughout
    result = score([*states, *agg.flush()], load_truth(tmp_path / "zones.csv"))
    assert result.states == 8
    assert result.mae == pytest.approx(0.5)  # 5 windows against 1.0, 3 against 2.0
    assert result.mean_true == pytest.approx((5 * 1.0 + 3 * 2.0) / 8)
    assert result.per_zone["stade/plaza"][0] == 8


def test_windows_wait_for_the_slowest_camera_unless_it_stalls():
    agg2 = aggregator(max_skew_s=10.0)
    out = agg2.add(obs("cam2", 0.0, 100.0, 100.0), T0)
    for k in range(1, 6):
        out += agg2.add(obs("cam1", k, 100.0, 100.0), T0 + timedelta(seconds=k))
    assert out == []  # held back by cam2 at t=0
    out += agg2.add(obs("cam2", 3.0, 100.0, 100.0), T0 + timedelta(seconds=3))
    assert [s.ts for s in out] == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    for k in range(6, 20):  # cam2 stalls: after 10 s of skew the windows go out without it
        out += agg2.add(obs("cam1", k, 100.0, 100.0), T0 + timedelta(seconds=k))
    assert out[-1].ts >= T0 + timedelta(seconds=17)
    assert agg2.add(obs("cam2", 4.0, 100.0, 100.0), T0 + timedelta(seconds=4)) == []
    assert agg2.late_observations == 1


#: what a zone_state record may carry: aggregates and identifiers, never pixels, boxes or faces
AGGREGATE_FIELDS = {
    "schema",
    "zone_id",
    "site_id",
    "ts",
    "window_s",
    "count",
    "observed_count",
    "observed_area_m2",
    "coverage",
    "density",
    "los",
    "flow_ppm_per_m",
    "flow_los",
    "gates",
    "confidence",
    "method",
    "cameras",
    "frames",
}
GATE_FIELDS = {"gate_id", "width_m", "entered", "left", "flow_ppm_per_m", "los"}


def _leaf_types(prop, defs):
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[1]
        return {t for p in defs[name].get("properties", {}).values() for t in _leaf_types(p, defs)} or {
            defs[name].get("type", "enum")
        }
    if "anyOf" in prop:
        return {t for p in prop["anyOf"] for t in _leaf_types(p, defs)}
    if prop.get("type") == "array":
        return {f"array of {t}" for t in _leaf_types(prop["items"], defs)}
    return {prop.get("type", "enum") + (f" ({prop['format']})" if "format" in prop else "")}


def test_the_published_schema_holds_aggregates_only():
    schema = ZoneState.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    assert set(schema["properties"]) == AGGREGATE_FIELDS
    assert set(defs["GateFlow"]["properties"]) == GATE_FIELDS
    types = {t for p in schema["properties"].values() for t in _leaf_types(p, defs)}
    # numbers, ids, enums (level of service, method) and a time: nothing that can hold an image or a box
    assert types <= {
        "number",
        "integer",
        "string",
        "string (date-time)",
        "null",
        "enum",
        "array of string",
        "array of number",
        "array of integer",
    }, types
    assert ZoneState.model_config.get("extra") == "forbid"
