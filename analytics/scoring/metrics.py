"""Matching alerts to labelled windows: per incident type precision and recall, time to detect,
fault detection, and the NAB-style windowed score per site.

An incident alert matches an incident window when it is raised in the window's site between the
window's start (less 10 s of tick granularity) and `grace_s` after its end, on a device the
incident affects or in its zone. An alert's *claimed type* is what its sensor suggests: sound
for acoustic sensors, smoke for air quality or temperature, a breach for fence sensors, and for
crowd counters a crush when the value is above its baseline and a dispersal when below.
Precision of a type = claimed alerts of that type that match some incident window / all alerts
claiming it; recall of a type = its windows with at least one matching alert / its windows. A
fault window is detected by a fault alert on its device in the same span; an incident alert
there is a fault reported as an incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

import numpy as np

from analytics.detectors.alerts import AlertInfo
from analytics.scoring.evaluate import EvalRun, Label
from analytics.scoring.nab import PROFILES, CorpusScore, best_threshold, score_corpus, window_rows
from beffroi.devices import KIND_BY_MODEL, DeviceKind

CROWD_KINDS = {DeviceKind.GATE_COUNTER, DeviceKind.CAMERA, DeviceKind.PRESENCE, DeviceKind.TELCO_CELL}
CLAIMS = {
    DeviceKind.ACOUSTIC: "sound_spike",
    DeviceKind.AIR_QUALITY: "smoke",
    DeviceKind.TEMPERATURE: "smoke",
    DeviceKind.PERIMETER: "perimeter_breach",
}
LEAD = timedelta(seconds=10)  # tick and clock granularity: an alert this early still counts
INCIDENT_TYPES = ("crowd_crush", "smoke", "perimeter_breach", "sudden_dispersal", "sound_spike")


def claimed_type(info: AlertInfo | None) -> str:
    spec = KIND_BY_MODEL.get(info.model) if info is not None else None
    if info is None or spec is None:
        return "unknown"
    if spec.kind in CROWD_KINDS:
        return "crowd_crush" if info.direction >= 0 else "sudden_dispersal"
    return CLAIMS.get(spec.kind, "unknown")


@dataclass
class WindowOutcome:
    label: Label
    alerts: int = 0
    first: datetime | None = None
    first_device: str | None = None
    as_incident: int = 0  # faults only: incident alerts on the faulty device

    @property
    def detected(self) -> bool:
        return self.first is not None

    @property
    def time_to_detect_s(self) -> float | None:
        return None if self.first is None else (self.first - self.label.start).total_seconds()


@dataclass
class TypeScore:
    type: str
    windows: int = 0
    detected: int = 0
    claimed: int = 0
    claimed_true: int = 0
    ttd: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.detected / self.windows if self.windows else None

    @property
    def precision(self) -> float | None:
        return self.claimed_true / self.claimed if self.claimed else None

    @property
    def median_ttd_s(self) -> float | None:
        return median(self.ttd) if self.ttd else None


@dataclass
class Evaluation:
    run: EvalRun
    incidents: list[WindowOutcome]
    faults: list[WindowOutcome]
    types: dict[str, TypeScore]
    fault_types: dict[str, TypeScore]
    incident_alerts: int
    false_incident_alerts: int
    fault_alerts: int
    unexplained_fault_alerts: int
    nab: dict[str, CorpusScore]
    nab_best: dict[str, tuple[float, CorpusScore]]


def _matches(
    alert_site: str, device: str | None, zone: str | None, raised: datetime, label: Label, grace: timedelta
) -> bool:
    if alert_site != label.site or not (label.start - LEAD <= raised <= label.end + grace):
        return False
    return (device is not None and device in label.devices) or (zone is not None and zone == label.zone)


def evaluate(run: EvalRun, *, grace_s: float = 120.0, probation: int | None = None) -> Evaluation:
    """`probation`: NAB rows not scored at the start of each site (None: NAB's 15 %)."""
    grace = timedelta(seconds=grace_s)
    incidents = [WindowOutcome(label) for label in run.incidents]
    faults = [WindowOutcome(label) for label in run.faults]
    types = {t: TypeScore(t) for t in INCIDENT_TYPES}
    for o in incidents:
        types.setdefault(o.label.type, TypeScore(o.label.type)).windows += 1
    fault_types: dict[str, TypeScore] = {}
    for o in faults:
        fault_types.setdefault(o.label.type, TypeScore(o.label.type)).windows += 1

    incident_alerts = false_incidents = fault_alerts = unexplained_faults = 0
    for alert in sorted(run.alerts, key=lambda a: a.raised_at):
        if alert.category == "incident":
            incident_alerts += 1
            hit = False
            for o in incidents:
                if _matches(alert.site_id, alert.device_id, alert.zone_id, alert.raised_at, o.label, grace):
                    hit = True
                    o.alerts += 1
                    if o.first is None:
                        o.first, o.first_device = alert.raised_at, alert.device_id
            for o in faults:
                if (
                    alert.device_id in o.label.devices
                    and o.label.start - LEAD <= alert.raised_at <= o.label.end + grace
                ):
                    o.as_incident += 1
            claim = types.setdefault(claimed_type(run.info.get(alert.alert_id)), TypeScore("unknown"))
            claim.claimed += 1
            claim.claimed_true += int(hit)
            false_incidents += int(not hit)
        else:
            fault_alerts += 1
            hit = False
            for o in faults:
                if (
                    alert.device_id in o.label.devices
                    and o.label.start - LEAD <= alert.raised_at <= o.label.end + grace
                ):
                    hit = True
                    o.alerts += 1
                    if o.first is None:
                        o.first, o.first_device = alert.raised_at, alert.device_id
            unexplained_faults += int(not hit)
    for o in incidents:
        if o.detected:
            types[o.label.type].detected += 1
            types[o.label.type].ttd.append(float(o.time_to_detect_s or 0.0))
    for o in faults:
        if o.detected:
            fault_types[o.label.type].detected += 1
            fault_types[o.label.type].ttd.append(float(o.time_to_detect_s or 0.0))
    nab, nab_best = nab_scores(run, probation=probation)
    return Evaluation(
        run=run,
        incidents=incidents,
        faults=faults,
        types=types,
        fault_types=fault_types,
        incident_alerts=incident_alerts,
        false_incident_alerts=false_incidents,
        fault_alerts=fault_alerts,
        unexplained_fault_alerts=unexplained_faults,
        nab=nab,
        nab_best=nab_best,
    )


def nab_scores(
    run: EvalRun, *, group_s: float = 120.0, probation: int | None = None
) -> tuple[dict[str, CorpusScore], dict[str, tuple[float, CorpusScore]]]:
    """NAB scores with one 'file' per site (its ticks as rows).

    Detections are the site's incident alerts grouped as a control room groups them: an alert
    within `group_s` of the previous one in the same zone belongs to the same incident.
    NAB's optimiser is run too, on the site's largest score per tick: the threshold whose upward
    crossings score best."""
    ticks = run.ticks
    index = {s: k for k, s in enumerate(run.sites)}
    onsets = np.zeros((len(ticks), len(run.sites)), bool)
    last: dict[tuple[str, str | None], float] = {}
    for alert in sorted(run.alerts, key=lambda a: a.raised_at):
        if alert.category != "incident":
            continue
        t = alert.raised_at.timestamp()
        place = (alert.site_id, alert.zone_id)
        previous = last.get(place)
        last[place] = t
        if previous is not None and t - previous <= group_s:
            continue
        row = int(np.searchsorted(ticks, t - 1e-6))
        if row < len(ticks):
            onsets[row, index[alert.site_id]] = True
    files_alerts = []
    files_scores = []
    for k, site in enumerate(run.sites):
        windows = window_rows(
            ticks, [(o.start.timestamp(), o.end.timestamp()) for o in run.incidents if o.site == site]
        )
        files_alerts.append((onsets[:, k], windows))
        files_scores.append((run.site_score[:, k], windows))
    nab = {name: score_corpus(files_alerts, p, probation=probation) for name, p in PROFILES.items()}
    best = {
        name: best_threshold(files_scores, p, onsets=True, probation=probation)
        for name, p in PROFILES.items()
    }
    return nab, best
