"""`beffroi simulate` end to end in dry mode: files written, deterministic, processes agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tower.cli import main

from .conftest import SHORT


def _run(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    args = ["simulate", str(SHORT), "--mode", "dry", "--speed", "0", "--duration", "4m", "--out", str(out)]
    assert main([*args, *extra]) == 0
    return out


def test_simulate_writes_ground_truth_and_payloads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(tmp_path, "one", "--payloads", "--digest")
    text = capsys.readouterr().out
    assert "3 sites" in text
    assert "sha256 partition 0" in text
    for name in (
        "zones.csv",
        "exits.csv",
        "labels.json",
        "faults.json",
        "venue.yaml",
        "manifest.json",
        "payloads.jsonl",
    ):
        assert (out / name).stat().st_size > 0, name
    manifest = json.loads((out / "manifest.json").read_text())
    lines = (out / "payloads.jsonl").read_bytes().splitlines()
    assert manifest["ticks"] == 240
    assert len(lines) >= manifest["readings"] > 1000
    assert json.loads(lines[0])["timestamp"].startswith("2024-08-11T16:00:")


def test_two_processes_publish_the_same_payloads_as_one(tmp_path: Path) -> None:
    one = _run(tmp_path, "one", "--payloads")
    two = _run(tmp_path, "two", "--payloads", "--processes", "2")
    whole = sorted((one / "payloads.jsonl").read_bytes().splitlines())
    parts = [(two / f"payloads-p{p}.jsonl").read_bytes().splitlines() for p in range(2)]
    assert all(parts)
    assert sorted(parts[0] + parts[1]) == whole
    assert (one / "zones.csv").read_bytes() == (two / "zones.csv").read_bytes()


def test_from_and_start_options(tmp_path: Path) -> None:
    out = _run(tmp_path, "late", "--from", "kick_off-5m", "--start", "2030-01-01T00:00:00Z", "--payloads")
    first = json.loads((out / "payloads.jsonl").read_bytes().splitlines()[0])
    assert first["timestamp"].startswith("2030-01-01T00:25:")


def test_unknown_from_time_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", str(SHORT), "--mode", "dry", "--from", "tea_time", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "tea_time" in capsys.readouterr().err


def test_auto_start_keeps_every_timestamp_in_the_past_of_the_wall_clock() -> None:
    from datetime import UTC, datetime, timedelta

    from simulators.scenario_file import load_scenario
    from tower.runner import RunOptions, plan_start

    sc = load_scenario(SHORT)
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    opts = RunOptions(scenario=SHORT, mode="stack", speed=60, duration_s=1200, from_time="kick_off-20m")
    start = plan_start(sc, opts, now=now)
    t0, t1 = sc.at("kick_off-20m"), sc.at("kick_off-20m") + 1200
    # at simulated t the wall clock reads now + (t - t0) / speed: the stamp start + t is never later
    for t in (t0, (t0 + t1) / 2, t1):
        wall = now + timedelta(seconds=(t - t0) / 60)
        assert start + timedelta(seconds=t) <= wall
    assert (now + timedelta(seconds=20) - (start + timedelta(seconds=t1))).total_seconds() < 1
    # dry runs keep the scenario's own dates
    assert plan_start(sc, RunOptions(scenario=SHORT, mode="dry"), now=now) == sc.spec.start


def test_ground_truth_reads_back_as_camera_conditions(tmp_path: Path) -> None:
    from simulators.truth import SiteConditions

    out = _run(tmp_path, "truth")
    cond = SiteConditions(out, "fz-hdv")
    assert "lawn" in cond.zones()
    assert cond.density("lawn", 120.0) > 0.5  # 15,000 people on 12,000 m2
    inbound = [cond.gate_flow("entry-north", t) for t in range(0, 240, 5)]
    assert max(inbound) > 0  # arrivals come in, from_zone (outside) to to_zone
    with pytest.raises(KeyError):
        SiteConditions(out, "nowhere")


def test_embedded_mode_feeds_the_in_process_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import sqlite3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "beffroi.db"
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"sqlite: {{path: {db}}}\napi: {{port: {port}}}\n")
    monkeypatch.delenv("BEFFROI_MODE", raising=False)
    out = tmp_path / "truth"
    args = ["simulate", str(SHORT), "--mode", "embedded", "--settings", str(settings), "--speed", "0"]
    assert main([*args, "--duration", "2m", "--out", str(out)]) == 0
    readings = json.loads((out / "manifest.json").read_text())["readings"]
    with sqlite3.connect(db) as conn:
        stored = conn.execute("select count(*) from readings").fetchone()[0]
    assert stored == readings  # every reading stored once (duplicates share a message id)
