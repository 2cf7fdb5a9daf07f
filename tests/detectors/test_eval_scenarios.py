"""Lock-in of the evaluation on a shipped scenario: every injected incident type is detected, every
fault type is reported as a fault, no fault raises an incident alert, and operators are not drowned
in fault alerts that no fault explains."""

from __future__ import annotations

import pytest

from analytics.scoring.metrics import Evaluation

# fault alerts no labelled fault explains, over the whole match day (465 streams): 120 before the
# noise-burst check was limited to smooth kinds, about 70 since
MAX_FALSE_FAULT_ALERTS = 100


@pytest.fixture
def stadium(stadium_evaluation: Evaluation) -> Evaluation:
    """The whole scenario, simulated once per session (tests/detectors/conftest.py)."""
    return stadium_evaluation


@pytest.mark.slow
def test_every_incident_type_is_detected(stadium: Evaluation) -> None:
    types = {o.label.type for o in stadium.incidents}
    assert types == {"crowd_crush", "perimeter_breach", "sound_spike", "smoke", "sudden_dispersal"}
    missed = [o.label.id for o in stadium.incidents if not o.detected]
    assert not missed


@pytest.mark.slow
def test_faults_are_faults_and_never_incidents(stadium: Evaluation) -> None:
    assert {o.label.type for o in stadium.faults} >= {
        "stuck",
        "drift",
        "dropout",
        "noise_burst",
        "clock_skew",
        "duplicate",
    }
    missed = [(o.label.type, o.label.devices) for o in stadium.faults if not o.detected]
    assert not missed
    as_incident = [(o.label.type, o.label.devices) for o in stadium.faults if o.as_incident]
    assert not as_incident


@pytest.mark.slow
def test_few_fault_alerts_without_a_fault(stadium: Evaluation) -> None:
    assert stadium.fault_alerts > stadium.unexplained_fault_alerts  # the labelled faults raise theirs
    assert stadium.unexplained_fault_alerts <= MAX_FALSE_FAULT_ALERTS


@pytest.mark.slow
def test_incident_alerts_are_mostly_in_windows(stadium: Evaluation) -> None:
    assert stadium.false_incident_alerts <= stadium.incident_alerts // 2
    assert stadium.nab["standard"].score > 60.0
