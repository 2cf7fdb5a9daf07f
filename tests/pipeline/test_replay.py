"""Replay: recorded inputs through the same workers, in isolation (analytics/replay.py)."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.replay import ReplayWindow, compare, replay
from analytics.replay_truth import load_truth, precision, recall, score
from api.app import create_app
from beffroi.clock import utcnow
from beffroi.devices import DeviceKind
from beffroi.identity import Role
from beffroi.sqlite_store import SqliteStore
from tests.fixtures.api import token_for, with_auth
from tower.cli import main
from tower.settings import Settings
from tower.testing import (
    SITE,
    ZONE,
    Pipeline,
    alert_on_every_reading,
    pipeline,
    record_scenario,
    write_settings,
    zone_series,
)

PM25 = [40.0, 160.0, 170.0, 260.0, 90.0, 155.0, 30.0, 400.0, 180.0, 20.0, 165.0, 250.0]
"""One air-quality reading per minute: the smoke rule fires above 150, a candidate above 200."""
T0 = (utcnow() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
"""Recent enough for the bridge (it refuses week-old readings); whole hours: reproducible ids."""
WINDOW = ReplayWindow(since=T0 - timedelta(minutes=5), until=T0 + timedelta(hours=1))


def base_settings() -> Settings:
    s = Settings()
    s = s.model_copy(
        update={"mode": "embedded", "detectors": s.detectors.model_copy(update={"enabled": False})}
    )
    return alert_on_every_reading(s)  # one alert per reading over the level: countable changes


def with_smoke_above(settings: Settings, level: float) -> Settings:
    rules = [
        r.model_copy(update={"above": level}) if r.name == "smoke-pm25" else r for r in settings.worker.rules
    ]
    return settings.model_copy(update={"worker": settings.worker.model_copy(update={"rules": rules})})


@pytest.fixture
def recorded() -> Iterator[Pipeline]:
    """A short window recorded through the real embedded slice (bridge -> bus -> workers -> store)."""
    with pipeline(
        {"aq-1": DeviceKind.AIR_QUALITY, "pb-1": DeviceKind.PANIC_BUTTON}, settings=base_settings()
    ) as p:
        for i, pm25 in enumerate(PM25):
            p.publish("aq-1", {"pm25": pm25, "co": 1.0}, ts=T0 + timedelta(minutes=i))
        p.publish("pb-1", {"pressed": 1}, ts=T0 + timedelta(minutes=3, seconds=7))
        p.drain()
        p.publish_zone_states(zone_series([4.0] * 20 + [5.5] * 30, start=T0 + timedelta(minutes=2)))
        p.drain()
        yield p


def test_replay_with_the_recorded_settings_reproduces_the_recorded_alerts(recorded: Pipeline) -> None:
    result = replay(recorded.store, recorded.settings, WINDOW)
    assert len(result.recorded) >= 8  # smoke, panic and crowd alerts were recorded
    assert {a.rule for a in result.recorded} >= {"smoke-pm25", "panic-button"}
    assert any(a.source_ids[0].startswith("zone_state:") for a in result.recorded)  # crowd rules
    assert result.alerts == result.recorded  # same ids, times and provenance
    assert all(a.settings_hash for a in result.recorded)
    assert compare(result.recorded, result.alerts).identical
    assert result.readings == len(PM25) + 1
    assert result.zone_states == 50


def test_replay_is_deterministic(recorded: Pipeline) -> None:
    candidate = with_smoke_above(recorded.settings, 100.0)
    first = replay(recorded.store, candidate, WINDOW)
    second = replay(recorded.store, candidate, WINDOW)
    assert first.alerts == second.alerts
    assert first.alerts != first.recorded


def test_a_replay_writes_no_live_alert_and_pushes_nothing(recorded: Pipeline) -> None:
    live_alerts = recorded.alerts()
    published = len(recorded.topic("alerts"))
    result = replay(recorded.store, with_smoke_above(recorded.settings, 10.0), WINDOW)
    assert len(result.alerts) > len(live_alerts)  # the candidate raised more...
    assert recorded.alerts() == live_alerts  # ...but none of them reached the live store
    assert len(recorded.topic("alerts")) == published  # ...or the operators' topic
    # and the live run goes on undisturbed
    recorded.publish("pb-1", {"pressed": 1}, ts=T0 + timedelta(minutes=30))
    recorded.drain()
    assert len(recorded.alerts()) == len(live_alerts) + 1


def test_a_higher_threshold_removes_exactly_the_alerts_between_the_levels(recorded: Pipeline) -> None:
    result = replay(recorded.store, with_smoke_above(recorded.settings, 200.0), WINDOW)
    cmp = compare(result.recorded, result.alerts)
    smoke = cmp.by(lambda a: a.rule)["smoke-pm25"]
    between = sum(1 for v in PM25 if 150 < v <= 200)
    assert smoke["removed"] == between
    assert smoke["same"] == sum(1 for v in PM25 if v > 200)
    assert smoke["added"] == 0
    others = [d for d in cmp.diffs if d.alert.rule != "smoke-pm25"]
    assert others
    assert all(d.change == "same" for d in others)


def test_the_command_writes_the_report(
    recorded: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BEFFROI_MODE", raising=False)  # stack.env's mode would win over the file
    db = recorded.store.dialect.place.removeprefix("in ")
    live = recorded.settings.model_copy(
        update={"sqlite": recorded.settings.sqlite.model_copy(update={"path": Path(db)})}
    )
    live_file = write_settings(live, tmp_path / "live.yaml")
    candidate_file = write_settings(with_smoke_above(live, 200.0), tmp_path / "candidate.yaml")
    out = tmp_path / "report"
    argv = ["replay", "--live-settings", str(live_file), "--settings", str(candidate_file)]
    argv += ["--from", WINDOW.since.isoformat(), "--to", WINDOW.until.isoformat(), "--out", str(out)]
    assert main(argv) == 0
    with (out / "alerts.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sum(r["change"] == "removed" for r in rows) == sum(1 for v in PM25 if 150 < v <= 200)
    report = (out / "report.md").read_text()
    assert "x real time" in report
    assert "| smoke-pm25 |" in report
    assert (out / "changes_per_rule.png").stat().st_size > 1000


def write_truth(directory: Path) -> Path:
    """Ground truth in the simulators' format (simulators/truth.py): a smoke incident on aq-1 from
    6.5 to 8.5 minutes (its alerts count until 2 min after: the readings of minutes 7, 8 and 10), one
    from 20 to 25 minutes that no reading shows, and a fault window of pb-1."""
    directory.mkdir(parents=True, exist_ok=True)

    def at(minutes: float) -> str:
        return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    def incident(name: str, start: float, end: float) -> dict[str, object]:
        window = {"start": at(start), "end": at(end), "start_s": start * 60, "end_s": end * 60}
        return {"id": name, "type": "smoke", "site": SITE, "zone": None, "exit": None, "devices": ["aq-1"],
                **window}  # fmt: skip

    header = {"scenario": "test", "seed": 1, "scale": 1, "start": at(0), "sites": 1, "devices": 2}
    (directory / "labels.json").write_text(
        json.dumps({**header, "incidents": [incident("seen", 6.5, 8.5), incident("unseen", 20, 25)]})
    )
    fault = {"id": "f-1", "type": "stuck", "device": "pb-1", "site": SITE, "zone": ZONE,
             "start": at(30), "end": at(40)}  # fmt: skip
    (directory / "faults.json").write_text(json.dumps({**header, "faults": [fault]}))
    return directory


def test_with_the_ground_truth_both_sides_are_scored(recorded: Pipeline, tmp_path: Path) -> None:
    truth = load_truth(write_truth(tmp_path / "truth"))
    result = replay(recorded.store, with_smoke_above(recorded.settings, 200.0), WINDOW)
    scores = score(result, truth)
    rec, rep = scores.sides["recorded"], scores.sides["replayed"]
    assert (scores.incidents, scores.faults) == (2, 1)
    assert recall(rec) == recall(rep) == 0.5  # the first window found by both, the second by neither
    incidents = {side: [a for a in alerts if a.category == "incident"]
                 for side, alerts in (("rec", result.recorded), ("rep", result.alerts))}  # fmt: skip
    # recorded (above 150): minutes 7, 8 and 10 match; the candidate (above 200): minute 7 only
    assert precision(rec) == pytest.approx(3 / len(incidents["rec"]))
    assert precision(rep) == pytest.approx(1 / len(incidents["rep"]))
    assert len(incidents["rep"]) < len(incidents["rec"])
    assert [o.time_to_detect_s for o in rec.incidents] == [30.0, None]
    # NAB groups a zone's alerts less than 2 min apart as one incident: the recording's flood from
    # minute 1 on is one early detection (a false positive, the window missed); the candidate's quiet
    # spell from 3:07 to 7:00 makes minute 7 a detection of its own, inside the window
    assert (rec.nab["standard"].detected, rep.nab["standard"].detected) == (0, 1)
    for profile in rec.nab:
        assert rep.nab[profile].score > rec.nab[profile].score


def test_the_command_reports_against_the_ground_truth(
    recorded: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BEFFROI_MODE", raising=False)
    db = recorded.store.dialect.place.removeprefix("in ")
    live = recorded.settings.model_copy(
        update={"sqlite": recorded.settings.sqlite.model_copy(update={"path": Path(db)})}
    )
    live_file = write_settings(live, tmp_path / "live.yaml")
    candidate_file = write_settings(with_smoke_above(live, 1000.0), tmp_path / "candidate.yaml")
    out = tmp_path / "report"
    argv = ["replay", "--live-settings", str(live_file), "--settings", str(candidate_file)]
    argv += ["--from", WINDOW.since.isoformat(), "--to", WINDOW.until.isoformat(), "--out", str(out)]
    assert main([*argv, "--truth", str(write_truth(tmp_path / "truth"))]) == 0
    report = (out / "report.md").read_text()
    assert "## Against the ground truth" in report
    assert "| recall (windows found) | 1/2 (50 %) | 0/2 (0 %) |" in report
    assert "| fault windows found | 0/1 | 0/1 |" in report
    assert "| NAB standard |" in report
    assert "replayed: NAB standard" in capsys.readouterr().out
    assert main([*argv, "--truth", str(tmp_path / "nowhere")]) == 2
    assert "labels.json: no such file" in capsys.readouterr().err


FAN_ZONES = Path(__file__).resolve().parents[2] / "scenarios" / "fan-zone.yaml"


@pytest.mark.slow
def test_a_simulated_window_is_scored_against_the_simulators_own_truth(tmp_path: Path) -> None:
    """Five minutes of the fan zones' scenario (the food-court fire starting) recorded through
    bridge, worker and detector worker, then replayed with `--truth` on what the simulator wrote."""
    recording = record_scenario(
        FAN_ZONES, tmp_path / "rec.db", scale=0.02, from_s=26_940, duration_s=300, out_dir=tmp_path / "truth"
    )
    assert recording.alerts > 0
    truth = load_truth(tmp_path / "truth")
    assert {x.type for x in truth.incidents} >= {"smoke", "crowd_crush"}
    with SqliteStore(recording.store_path) as store:
        candidate = base_settings()  # threshold rules alone, without hold: the fire still shows
        result = replay(store, candidate, ReplayWindow(since=recording.since, until=recording.until))
    scores = score(result, truth)
    assert [x.label.id for x in scores.sides["recorded"].incidents] == ["fire-food-court"]
    for ev in scores.sides.values():
        assert recall(ev) == 1.0  # the fire is found by its smoke and CO alerts, within the window
        assert ev.nab["standard"].detected == 1


def test_the_api_runs_a_replay_in_the_background(recorded: Pipeline) -> None:
    db = Path(recorded.store.dialect.place.removeprefix("in "))
    live = recorded.settings.model_copy(
        update={"sqlite": recorded.settings.sqlite.model_copy(update={"path": db})}
    )
    candidate = with_smoke_above(live, 200.0)
    app = create_app(with_auth(live), store=recorded.store, venue=recorded.venue, live_alerts=False)
    body: dict[str, object] = {
        "from": WINDOW.since.isoformat(),
        "to": WINDOW.until.isoformat(),
        "settings": {"worker": candidate.worker.model_dump(mode="json")},
    }
    with TestClient(app) as client:
        operator = {"Authorization": f"Bearer {token_for(app, 'oscar', role=Role.OPERATOR)}"}
        assert client.post("/replays", json=body, headers=operator).status_code == 403
        client.headers["Authorization"] = f"Bearer {token_for(app, 'sonia', role=Role.SUPERVISOR)}"
        started = client.post("/replays", json=body)
        assert started.status_code == 202
        link = started.json()["links"]["self"]
        deadline = time.monotonic() + 30
        while (status := client.get(link).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status["status"] == "done", status
        assert status["summary"]["per_rule"]["smoke-pm25"]["removed"] == sum(
            1 for v in PM25 if 150 < v <= 200
        )
        assert status["summary"]["recorded"] == len(recorded.alerts())
        removed = [a for a in status["alerts"] if a["change"] == "removed"]  # for the map's timeline
        assert len(removed) == sum(1 for v in PM25 if 150 < v <= 200)
        assert all(a["alert"]["rule"] == "smoke-pm25" and a["replayed_at"] is None for a in removed)
        assert len(status["alerts"]) == sum(status["summary"]["changes"].values())
        elsewhere = {"Authorization": f"Bearer {token_for(app, 'sam', role=Role.SUPERVISOR, sites=('x',))}"}
        assert client.get(link, headers=elsewhere).json()["alerts"] == []  # none of their sites
        bad = client.post("/replays", json={**body, "to": body["from"]})
        assert bad.status_code == 202  # a schema-valid request: accepted, and failed with the reason
        assert bad.json()["status"] == "failed"
        assert "before it starts" in client.get(bad.json()["links"]["self"]).json()["error"]
        assert client.get("/replays/" + "0" * 32).status_code == 404


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        ReplayWindow(since=T0, until=T0 - timedelta(seconds=1))
