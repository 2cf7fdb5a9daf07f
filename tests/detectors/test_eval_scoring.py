"""Evaluation scoring on a hand-made run (known matches), the report it writes, and `beffroi eval`
on the shipped stadium scenario (a short stretch; the whole scenario under the `slow` marker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analytics.detectors.alerts import AlertInfo
from analytics.scoring.evaluate import EvalRun, Label
from analytics.scoring.metrics import evaluate
from analytics.scoring.report import write_report
from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.events import Alert, AlertCategory, Severity
from tower.cli import main

T0 = datetime(2024, 8, 10, 18, 0, tzinfo=UTC)
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "stadium.yaml"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def alert(
    i: int,
    s: float,
    *,
    site: str,
    device: str,
    zone: str,
    kind: DeviceKind,
    category: str = "incident",
    direction: int = 1,
) -> tuple[Alert, AlertInfo]:
    a = Alert(
        alert_id=f"a{i}",
        site_id=site,
        zone_id=zone,
        device_id=device,
        rule="detector:anomaly" if category == "incident" else "fault:stuck",
        category=AlertCategory(category),
        severity=Severity.HIGH,
        raised_at=at(s),
        title="t",
    )
    return a, AlertInfo(f"{device}/x", KIND_SPECS[kind].model, direction, 1.0)


def hand_made_run() -> EvalRun:
    ticks = T0.timestamp() + np.arange(1, 3601, dtype=float)
    pairs = [
        alert(1, 1010, site="a", device="aq-1", zone="z1", kind=DeviceKind.AIR_QUALITY),  # smoke, 10 s in
        alert(2, 1015, site="a", device="aq-2", zone="z1", kind=DeviceKind.AIR_QUALITY),  # same incident
        alert(
            3, 600, site="a", device="snd-stuck", zone="z2", kind=DeviceKind.ACOUSTIC
        ),  # a fault taken for one
        alert(4, 520, site="a", device="snd-stuck", zone="z2", kind=DeviceKind.ACOUSTIC, category="fault"),
        alert(5, 3000, site="b", device="gc-1", zone="z9", kind=DeviceKind.GATE_COUNTER, direction=-1),  # FP
    ]
    score = np.zeros((len(ticks), 2))
    score[1009:1020, 0] = 1.0
    return EvalRun(
        scenario="hand-made",
        scale=1.0,
        sites=["a", "b"],
        devices=5,
        tick_s=1.0,
        ticks=ticks,
        site_score=score,
        alerts=[p[0] for p in pairs],
        info={p[0].alert_id: p[1] for p in pairs},
        incidents=[
            Label("smoke-1", "incident", "smoke", "a", "z1", ("aq-1", "aq-2"), at(1000), at(1300)),
            Label("breach-1", "incident", "perimeter_breach", "b", "z5", ("fence-1",), at(2000), at(2300)),
        ],
        faults=[Label("stuck-1", "fault", "stuck", "a", "z2", ("snd-stuck",), at(500), at(900))],
    )


def test_matching_recall_precision_and_time_to_detect():
    ev = evaluate(hand_made_run())
    smoke, breach = ev.incidents
    assert smoke.detected
    assert smoke.time_to_detect_s == 10.0
    assert smoke.alerts == 2
    assert not breach.detected
    assert ev.types["smoke"].recall == 1.0
    assert ev.types["perimeter_breach"].recall == 0.0
    assert ev.types["smoke"].precision == 1.0
    assert ev.types["sudden_dispersal"].claimed == 1  # a counter going down claims a dispersal ...
    assert ev.types["sudden_dispersal"].precision == 0.0  # ... outside every window
    assert ev.types["sound_spike"].precision == 0.0  # the stuck sensor's alert
    [stuck] = ev.faults
    assert stuck.detected
    assert stuck.time_to_detect_s == 20.0
    assert stuck.as_incident == 1
    assert ev.incident_alerts == 4
    assert ev.false_incident_alerts == 2


def test_nab_scores_group_alerts_and_stay_in_range():
    ev = evaluate(hand_made_run())
    std = ev.nab["standard"]
    assert std.windows == 2
    assert std.detected == 1
    assert std.false_positives == 2  # alert 2 joins alert 1's incident; the stuck sensor and the FP remain
    assert 0.0 < std.score < 50.0
    threshold, best = ev.nab_best["standard"]
    assert best.detected == 1
    assert threshold > 0.0


def test_report_has_the_tables_and_plots(tmp_path):
    report = write_report(evaluate(hand_made_run()), tmp_path)
    text = report.read_text()
    for heading in ("## NAB-style windowed score", "### Per incident type", "## Sensor faults"):
        assert heading in text
    assert "| smoke-1 | smoke | a / z1 |" in text
    assert "| breach-1 | perimeter_breach | b / z5 |" in text
    assert "**no**" in text
    for png in ("timeline.png", "time_to_detect.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_command_on_a_stretch_of_the_stadium_scenario(tmp_path, capsys):
    assert main(["eval", str(SCENARIO), "--out", str(tmp_path), "--duration", "900"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "stade-de-france-final" in text
    assert "| reward_low_FP_rate |" in text
    assert "NAB standard" in capsys.readouterr().out


@pytest.mark.slow
def test_every_incident_type_of_the_stadium_scenario_is_detected_and_faults_stay_faults(stadium_evaluation):
    ev = stadium_evaluation  # the whole scenario at scale 0.01, simulated once (conftest.py)
    assert {o.label.type for o in ev.incidents if o.detected} == {
        "crowd_crush",
        "smoke",
        "perimeter_breach",
        "sudden_dispersal",
        "sound_spike",
    }
    assert all(o.time_to_detect_s is not None and o.time_to_detect_s < 120 for o in ev.incidents)
    value_faults = [o for o in ev.faults if o.label.type in ("stuck", "dropout", "clock_skew", "duplicate")]
    assert all(o.detected for o in value_faults)
    assert sum(o.as_incident for o in ev.faults) <= 3
    assert ev.nab["standard"].score > 0.0  # better than never detecting, false positives counted
