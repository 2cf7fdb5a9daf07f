"""Fixtures shared by the detector tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.scoring.metrics import Evaluation, evaluate
from tower.evaluate import simulate

STADIUM = Path(__file__).resolve().parents[2] / "scenarios" / "stadium.yaml"


@pytest.fixture(scope="session")
def stadium_evaluation() -> Evaluation:
    """The whole stadium scenario at scale 0.01 through the engine, evaluated: simulated once per
    session (minutes of CPU), read by several test modules. Tests only read it."""
    return evaluate(simulate(STADIUM, scale=0.01))
