"""Shared runs of the simulator tests: a short scenario (every incident and fault type), run once."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulators.engine import Simulation
from simulators.scenario import Scenario
from simulators.scenario_file import load_scenario

DATA = Path(__file__).parent / "data"
SHORT = DATA / "short.yaml"
REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "scenarios").glob("*.yaml"))


class Collect:
    """A sink that keeps every payload, in order."""

    def __init__(self) -> None:
        self.payloads: list[tuple[str, bytes]] = []

    def publish(self, device_id: str, payload: bytes) -> None:
        self.payloads.append((device_id, payload))

    def flush(self, timeout: float | None = None) -> None:
        pass


@dataclass
class ShortRun:
    scenario: Scenario
    sim: Simulation
    out: Path
    payloads: list[tuple[str, bytes]]
    by_device: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def series(self, device_id: str) -> list[dict[str, Any]]:
        """The device's decoded payloads, each with `t` (seconds after the start) added."""
        return self.by_device[device_id]

    def labels(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.out / "labels.json").read_text())
        return doc

    def faults(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.out / "faults.json").read_text())
        return doc


def run_short(
    out: Path, *, seed: int | None = None, faults: bool = True, scenario: Scenario | None = None
) -> ShortRun:
    sc = scenario if scenario is not None else load_scenario(SHORT)
    if not faults:
        sc = Scenario(
            spec=sc.spec.model_copy(update={"faults": [], "random_faults": None}),
            venue=sc.venue,
            path=sc.path,
            events=sc.events,
        )
    sim = Simulation(sc, seed=seed, out_dir=out)
    sink = Collect()
    sim.run(sink)
    run = ShortRun(sc, sim, out, sink.payloads)
    start = sim.start
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    from beffroi.clock import parse_iso

    for device, payload in sink.payloads:
        doc = json.loads(payload)
        doc["t"] = (parse_iso(doc["timestamp"]) - start).total_seconds()
        by_device[device].append(doc)
    run.by_device = dict(by_device)
    return run


@pytest.fixture(scope="session")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> ShortRun:
    return run_short(tmp_path_factory.mktemp("short"))


@pytest.fixture(scope="session")
def short_run_clean(tmp_path_factory: pytest.TempPathFactory) -> ShortRun:
    """The same run without its sensor faults."""
    return run_short(tmp_path_factory.mktemp("short-clean"), faults=False)
