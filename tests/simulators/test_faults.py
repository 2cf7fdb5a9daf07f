"""Sensor faults are where their labels say, do what their type says, and touch nothing else: the
faulty run is compared with the same seed's run without faults."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import simulators.faults as faults_module
from beffroi.devices import KIND_SPECS, DeviceKind
from simulators.faults import observable, place_faults, typical_span
from simulators.scenario import FaultType, RandomFaults, Scenario
from simulators.scenario_file import load_scenario
from simulators.world import build_world

from .conftest import SHIPPED, ShortRun


def _fault(run: ShortRun, kind: str) -> dict[str, Any]:
    return next(f for f in run.faults()["faults"] if f["type"] == kind)


def _by_tick(run: ShortRun, device: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for d in run.series(device):
        out.setdefault(round(d["t"]), []).append(d)
    return out


def test_fault_labels_are_separate_and_complete(short_run: ShortRun) -> None:
    faults = short_run.faults()["faults"]
    assert {f["type"] for f in faults} == {
        "stuck",
        "drift",
        "dropout",
        "noise_burst",
        "clock_skew",
        "duplicate",
    }
    for f in faults:
        assert f["device"] in short_run.sim.world.venue.devices
        assert f["start_s"] < f["end_s"]


def test_outside_fault_windows_readings_equal_the_clean_run(
    short_run: ShortRun, short_run_clean: ShortRun
) -> None:
    for f in short_run.faults()["faults"]:
        if f["type"] == "clock_skew":
            continue
        faulty = {
            round(d["t"]): d["value"]
            for d in short_run.series(f["device"])
            if not f["start_s"] <= d["t"] < f["end_s"] + 1
        }
        clean = {
            round(d["t"]): d["value"]
            for d in short_run_clean.series(f["device"])
            if not f["start_s"] <= d["t"] < f["end_s"] + 1
        }
        assert faulty == clean


def test_stuck_sensor_repeats_one_value(short_run: ShortRun, short_run_clean: ShortRun) -> None:
    f = _fault(short_run, "stuck")
    inside = [d["value"]["dba"] for d in short_run.series(f["device"]) if f["start_s"] < d["t"] < f["end_s"]]
    assert len(inside) > 10
    assert len(set(inside)) == 1
    clean = [
        d["value"]["dba"] for d in short_run_clean.series(f["device"]) if f["start_s"] < d["t"] < f["end_s"]
    ]
    assert len(set(clean)) > 5


def test_drift_grows_linearly_by_its_magnitude(short_run: ShortRun, short_run_clean: ShortRun) -> None:
    f = _fault(short_run, "drift")
    span = typical_span(KIND_SPECS[short_run.sim.world.venue.devices[f["device"]].device.kind].fields)[0]
    faulty = {round(d["t"]): d["value"]["celsius"] for d in short_run.series(f["device"])}
    clean = {round(d["t"]): d["value"]["celsius"] for d in short_run_clean.series(f["device"])}
    for t in faulty:
        if f["start_s"] < t < f["end_s"]:
            expected = f["magnitude"] * span * (t - f["start_s"]) / 3600.0
            assert abs(faulty[t] - clean[t] - expected) < 0.011  # both rounded to 0.01


def test_dropout_sends_nothing_in_its_window(short_run: ShortRun) -> None:
    f = _fault(short_run, "dropout")
    ts = [d["t"] for d in short_run.series(f["device"])]
    assert not [t for t in ts if f["start_s"] + 1 < t < f["end_s"]]
    assert [t for t in ts if t < f["start_s"]]
    assert [t for t in ts if t > f["end_s"] + 1]


def test_noise_burst_adds_noise_of_its_size(short_run: ShortRun, short_run_clean: ShortRun) -> None:
    f = _fault(short_run, "noise_burst")
    faulty = {round(d["t"]): d["value"]["pm25"] for d in short_run.series(f["device"])}
    clean = {round(d["t"]): d["value"]["pm25"] for d in short_run_clean.series(f["device"])}
    diff = np.array([faulty[t] - clean[t] for t in faulty if f["start_s"] < t < f["end_s"]])
    sigma = (
        f["magnitude"]
        * typical_span(KIND_SPECS[short_run.sim.world.venue.devices[f["device"]].device.kind].fields)[0]
    )
    assert len(diff) > 30
    assert 0.5 * sigma < diff.std() < 2.0 * sigma


def test_clock_skew_shifts_timestamps_by_its_offset(short_run: ShortRun, short_run_clean: ShortRun) -> None:
    f = _fault(short_run, "clock_skew")
    faulty = [d["t"] for d in short_run.series(f["device"])]
    clean = [d["t"] for d in short_run_clean.series(f["device"])]
    assert len(faulty) == len(clean)
    shifts = {round(a - b) for a, b in zip(faulty, clean, strict=True)}
    assert shifts == {0, round(f["magnitude"])}
    skewed = [b for a, b in zip(faulty, clean, strict=True) if round(a - b) != 0]
    assert min(skewed) >= f["start_s"]
    assert max(skewed) <= f["end_s"] + 1


def test_duplicates_are_byte_identical_and_only_in_the_window(short_run: ShortRun) -> None:
    f = _fault(short_run, "duplicate")
    payloads = [p for d, p in short_run.payloads if d == f["device"]]
    seen: dict[bytes, int] = {}
    for p in payloads:
        seen[p] = seen.get(p, 0) + 1
    doubled = [p for p, n in seen.items() if n == 2]
    assert doubled
    assert all(n <= 2 for n in seen.values())
    by_tick = _by_tick(short_run, f["device"])
    for t, docs in by_tick.items():
        assert len(docs) == (2 if f["start_s"] < t <= f["end_s"] else 1)


def test_random_value_faults_skip_on_off_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck, drifting or noisy door contact or panic button reports what it always does: random
    placement skips them, and leaves every other random fault where the same seed put it."""
    sc = load_scenario(SHIPPED[0])
    rf = RandomFaults(per_device_per_hour=0.2, types=list(FaultType))
    busy = Scenario(
        spec=sc.spec.model_copy(update={"random_faults": rf}), venue=sc.venue, path=sc.path, events=sc.events
    )
    placed = [f for f in place_faults(build_world(busy, scale=0.01)) if f.source == "random"]
    kinds = {d.id: d.kind for inst in build_world(busy, scale=0.01).instances for d in inst.site.devices}
    on_off = {DeviceKind.DOOR_CONTACT, DeviceKind.PANIC_BUTTON}
    value = {FaultType.STUCK, FaultType.DRIFT, FaultType.NOISE_BURST}
    assert any(kinds[f.device] in on_off for f in placed)  # delivery faults still reach them
    assert not [f.id for f in placed if kinds[f.device] in on_off and f.type in value]
    assert {f.type for f in placed} == set(FaultType)
    assert not observable(FaultType.STUCK, DeviceKind.DOOR_CONTACT)
    assert observable(FaultType.DROPOUT, DeviceKind.PANIC_BUTTON)
    assert observable(FaultType.NOISE_BURST, DeviceKind.TELCO_CELL)  # its count moves; `suppressed` aside
    monkeypatch.setattr(faults_module, "observable", lambda ftype, kind: True)
    unfiltered = [f for f in place_faults(build_world(busy, scale=0.01)) if f.source == "random"]
    skipped = [f for f in unfiltered if kinds[f.device] in on_off and f.type in value]
    assert skipped
    assert set(unfiltered) - set(skipped) <= set(placed)
    # the only newcomers: faults the skipped ones no longer crowd out on the same device
    assert {f.device for f in set(placed) - set(unfiltered)} <= {f.device for f in skipped}
