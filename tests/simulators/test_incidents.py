"""Every labelled incident shows in the sensors of its zone during its window, and the labels say so."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

from .conftest import ShortRun


def _window(run: ShortRun, incident_id: str) -> tuple[float, float, dict[str, Any]]:
    label = next(i for i in run.labels()["incidents"] if i["id"] == incident_id)
    return label["start_s"], label["end_s"], label


def _values(run: ShortRun, device: str, field: str, t0: float, t1: float) -> np.ndarray:
    return np.array([d["value"][field] for d in run.series(device) if t0 <= d["t"] < t1])


def _occupancy(run: ShortRun, site: str, zone: str) -> tuple[np.ndarray, np.ndarray]:
    t, occ = [], []
    with (run.out / "zones.csv").open() as f:
        for row in csv.DictReader(f):
            if row["site"] == site and row["zone"] == zone:
                t.append(float(row["t_s"]))
                occ.append(float(row["density"]))
    return np.array(t), np.array(occ)


def test_labels_list_every_incident_with_window_zone_and_devices(short_run: ShortRun) -> None:
    labels = short_run.labels()["incidents"]
    assert {i["type"] for i in labels} == {
        "crowd_crush",
        "smoke",
        "perimeter_breach",
        "sudden_dispersal",
        "sound_spike",
    }
    devices = set(short_run.sim.world.venue.devices)
    for i in labels:
        assert i["start_s"] < i["end_s"]
        assert i["zone"]
        assert i["site"]
        assert i["devices"]
        assert set(i["devices"]) <= devices
        assert i["start"].endswith("Z")
    # faults are labelled apart, never as incidents
    assert not {f["id"] for f in short_run.faults()["faults"]} & {i["id"] for i in labels}


def test_smoke_raises_pm25_and_temperature_in_its_zone(short_run: ShortRun) -> None:
    t0, t1, label = _window(short_run, "fire")
    aq = [d for d in label["devices"] if "-aq-food-court-" in d]
    assert aq
    for device in aq:
        before = _values(short_run, device, "pm25", t0 - 600, t0)
        during = _values(short_run, device, "pm25", t0 + 120, t1)
        assert during.mean() > 150 > 5 * before.mean()
        co_before, co_during = (
            _values(short_run, device, "co", a, b) for a, b in ((t0 - 600, t0), (t0 + 120, t1))
        )
        assert co_during.mean() > 5 * co_before.mean()
    tmp = "fz-hdv-tmp-food-court-1"
    assert tmp in label["devices"]  # a fire warms its zone
    assert (
        _values(short_run, tmp, "celsius", t0 + 300, t1).mean()
        > _values(short_run, tmp, "celsius", t0 - 600, t0).mean() + 4
    )
    # the neighbouring lawn's sensor sees some smoke, a far zone none
    near = _values(short_run, "fz-hdv-aq-lawn-2", "pm25", t0 + 120, t1).mean()
    far = _values(short_run, "fz-villette-aq-lawn-1", "pm25", t0 + 120, t1).mean()
    assert near > 2 * far


def test_crowd_crush_builds_density_and_starves_the_gate(short_run: ShortRun) -> None:
    t0, t1, label = _window(short_run, "crush")
    t, density = _occupancy(short_run, "fz-hdv", "queue-north")
    assert density[(t >= t0) & (t < t1)].max() > 4.5
    assert density[t < t0].max() < 1.5
    counter = "fz-hdv-gc-check-north-1"
    assert counter in label["devices"]
    gate = short_run.sim.world.venue.site("fz-hdv").exit("check-north")
    jammed = gate.width_m * 0.05 * (gate.screening_flow or 0) / 6  # persons per 10 s report
    during = _values(short_run, counter, "in", t0 + 60, t1)
    assert during.mean() <= jammed * 1.05  # the queue presses on a gate that passes a trickle
    after = _values(short_run, counter, "in", t1 + 20, t1 + 300)
    assert after.mean() > 5 * during.mean()  # once fixed, the queue pours through
    cams = [d for d in label["devices"] if "-cam-queue-north-" in d]
    assert cams
    assert _values(short_run, cams[0], "density", t1 - 300, t1).mean() > 3.0
    panic = "fz-hdv-sos-queue-north-1"
    assert _values(short_run, panic, "pressed", t0 + 0.6 * (t1 - t0), t1).max() == 1
    assert _values(short_run, panic, "pressed", 0, t0).max() == 0


def test_perimeter_breach_shakes_the_nearest_fence_sensors(short_run: ShortRun) -> None:
    t0, t1, label = _window(short_run, "breach")
    fence = [d for d in label["devices"] if "-fence-" in d]
    assert len(fence) == 3
    for device in fence:
        assert _values(short_run, device, "vibration", t0, t0 + 0.6 * (t1 - t0)).max() > 2.5
        assert _values(short_run, device, "vibration", 0, t0).max() < 2.0
    # intruders add people to the lawn that no entry counter saw
    t, density = _occupancy(short_run, "fz-villette", "lawn")
    assert density[t >= t1].min() > density[t < t0].max()


def test_sudden_dispersal_empties_its_zone_loudly(short_run: ShortRun) -> None:
    t0, t1, label = _window(short_run, "dispersal")
    t, density = _occupancy(short_run, "fz-villette", "stage-front")
    before = density[(t >= t0 - 60) & (t < t0)].mean()
    assert density[(t >= t0) & (t < t1)].min() < 0.4 * before
    snd = next(d for d in label["devices"] if "-snd-stage-front-" in d)
    assert (
        _values(short_run, snd, "dba", t0, t0 + 120).mean()
        > _values(short_run, snd, "dba", t0 - 300, t0).mean() + 6
    )


def test_sound_spike_is_loud_and_moves_the_crowd(short_run: ShortRun) -> None:
    t0, t1, label = _window(short_run, "bang")
    snd = [d for d in label["devices"] if "-snd-lawn-" in d and d != "fz-hdv-snd-lawn-2"]
    for device in snd:
        assert (
            _values(short_run, device, "dba", t0, t0 + 20).max()
            > _values(short_run, device, "dba", t0 - 300, t0).max() + 15
        )
    t, density = _occupancy(short_run, "fz-hdv", "lawn")
    assert density[(t >= t0) & (t < t1)].min() < 0.8 * density[(t >= t0 - 60) & (t < t0)].mean()
