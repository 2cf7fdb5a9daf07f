"""A replay against a simulator's ground truth (`beffroi replay --truth DIR`): the recorded and the
replayed alerts scored as the detector evaluation scores them (`analytics.scoring.metrics`): the
NAB-style windowed score of each profile, precision and recall of the incident alerts, and the
sensor-fault windows found.

DIR is what the simulators write (`beffroi simulate --out DIR`, `tower.testing.record_scenario`):
`labels.json` (incident windows: type, site, zone, devices, start, end) and `faults.json` (sensor
faults, optional). Only the labels of the replayed sites overlapping the window are scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics.replay import ReplayResult
from analytics.scoring.evaluate import EvalRun, Label
from analytics.scoring.metrics import Evaluation, evaluate
from beffroi.clock import parse_iso
from beffroi.events import Alert

SIDES = ("recorded", "replayed")


class TruthError(ValueError):
    """The ground-truth directory cannot be read (the message says which file and why)."""


@dataclass(frozen=True)
class Truth:
    directory: Path
    incidents: list[Label]
    faults: list[Label]


def load_truth(directory: Path) -> Truth:
    """Incident windows from DIR/labels.json and fault windows from DIR/faults.json (if there)."""
    labels = directory / "labels.json"
    if not labels.is_file():
        raise TruthError(f"{labels}: no such file (a simulator's output directory has labels.json)")
    incidents = [_label(row, "incident", labels) for row in _rows(labels, "incidents")]
    faults_path = directory / "faults.json"
    faults = (
        [_label(row, "fault", faults_path) for row in _rows(faults_path, "faults")]
        if (faults_path.is_file())
        else []
    )
    return Truth(directory, incidents, faults)


def _rows(path: Path, key: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: not readable JSON: {exc}") from exc
    rows = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TruthError(f"{path}: no {key!r} list of objects")
    return rows


def _label(row: dict[str, Any], category: str, path: Path) -> Label:
    try:
        devices = row["devices"] if category == "incident" else [row["device"]]
        return Label(
            id=str(row["id"]),
            category=category,
            type=str(row["type"]),
            site=str(row["site"]),
            zone=row.get("zone"),
            devices=tuple(str(d) for d in devices),
            start=parse_iso(str(row["start"]), what="start"),
            end=parse_iso(str(row["end"]), what="end"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TruthError(f"{path}: label {row.get('id', '?')!r}: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class TruthScores:
    truth: Truth
    sides: dict[str, Evaluation]
    """"recorded" and "replayed"."""

    @property
    def incidents(self) -> int:
        return len(next(iter(self.sides.values())).incidents)

    @property
    def faults(self) -> int:
        return len(next(iter(self.sides.values())).faults)


def precision(ev: Evaluation) -> float | None:
    """Incident alerts inside some incident window (or its grace) / all incident alerts."""
    n = ev.incident_alerts
    return (n - ev.false_incident_alerts) / n if n else None


def recall(ev: Evaluation) -> float | None:
    """Incident windows with at least one matching alert / incident windows."""
    return sum(o.detected for o in ev.incidents) / len(ev.incidents) if ev.incidents else None


def score(result: ReplayResult, truth: Truth, *, tick_s: float = 10.0) -> TruthScores:
    """Both sides of `result` against `truth`, over the replayed window and sites (NAB rows: one
    per `tick_s` of the window)."""
    w = result.window
    sites = set(result.sites)

    def inside(label: Label) -> bool:
        return label.site in sites and label.start < w.until and label.end > w.since

    incidents = [x for x in truth.incidents if inside(x)]
    faults = [x for x in truth.faults if inside(x)]
    ticks = np.arange(w.since.timestamp() + tick_s, w.until.timestamp() + tick_s / 2, tick_s)
    sides = {
        side: evaluate(
            _run(alerts, sorted(sites | {a.site_id for a in alerts}), ticks, tick_s, incidents, faults),
            probation=0,  # the recording is already warm: the window is scored from its start
        )
        for side, alerts in zip(SIDES, (result.recorded, result.alerts), strict=True)
    }
    return TruthScores(truth, sides)


def _run(
    alerts: list[Alert],
    sites: list[str],
    ticks: np.ndarray[Any, Any],
    tick_s: float,
    incidents: list[Label],
    faults: list[Label],
) -> EvalRun:
    return EvalRun(
        scenario="replay",
        scale=1.0,
        sites=sites,
        devices=0,
        tick_s=tick_s,
        ticks=ticks,
        site_score=np.zeros((len(ticks), len(sites))),
        alerts=list(alerts),
        incidents=incidents,
        faults=faults,
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _ttd(ev: Evaluation) -> str:
    times = sorted(t for o in ev.incidents if (t := o.time_to_detect_s) is not None)
    return f"{times[len(times) // 2]:.0f} s" if times else "n/a"


def report_lines(scores: TruthScores) -> list[str]:
    """The report's "Against the ground truth" section."""
    rec, rep = scores.sides["recorded"], scores.sides["replayed"]

    def row(name: str, f: Any) -> str:
        return f"| {name} | {f(rec)} | {f(rep)} |"

    def found(ev: Evaluation) -> str:
        return f"{sum(o.detected for o in ev.incidents)}/{len(ev.incidents)} ({_pct(recall(ev))})"

    lines = [
        "## Against the ground truth",
        "",
        f"Ground truth {scores.truth.directory}: {scores.incidents} incident windows and "
        f"{scores.faults} sensor-fault windows of the replayed sites overlap the window. An incident "
        "alert matches a window of its site from 10 s before its start to 2 min after its end, on a "
        "device the incident affects or in its zone. NAB: one file per site, a zone's alerts less than "
        "2 min apart counted as one detection, normalised (never "
        "detecting = 0, perfect = 100), with no probationary period: the replayed window is scored whole.",
        "",
        "| | recorded | replayed |",
        "|---|---:|---:|",
        row("incident alerts", lambda ev: ev.incident_alerts),
        row("precision", lambda ev: _pct(precision(ev))),
        row("recall (windows found)", found),
        row("median time to detect", _ttd),
        *[row(f"NAB {name}", lambda ev, n=name: f"{ev.nab[n].score:.1f}") for name in rec.nab],
        row("fault windows found", lambda ev: f"{sum(o.detected for o in ev.faults)}/{len(ev.faults)}"),
        "",
    ]
    types = sorted({o.label.type for o in rec.incidents})
    if types:
        lines += [
            "Recall per incident type:",
            "",
            "| type | windows | recorded | replayed |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {t} | {rec.types[t].windows} | {_pct(rec.types[t].recall)} | {_pct(rep.types[t].recall)} |"
            for t in types
        ]
        lines.append("")
    return lines
