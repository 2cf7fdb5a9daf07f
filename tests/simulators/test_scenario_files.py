"""The shipped scenarios validate, reach JO scale at scale 1, and their venues match the generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from beffroi.devices import DeviceKind
from beffroi.venue import load_venue
from simulators.layouts import VENUES, render
from simulators.scenario_file import load_scenario
from simulators.world import build_world
from tower.cli import main

from .conftest import REPO, SHIPPED


def test_three_shipped_scenarios_validate_with_beffroi_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(SHIPPED) >= 3
    assert main(["validate", *map(str, SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok (scenario)") == len(SHIPPED)
    kinds = {load_scenario(p).venue.sites[0].kind.value for p in SHIPPED}
    assert {"stadium", "riverside", "fan_zone"} <= kinds


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_scale_1_is_jo_scale(path: Path) -> None:
    world = build_world(load_scenario(path), scale=1)
    assert len(world.instances) >= 50
    assert world.device_count >= 3000
    kinds = {d.device.kind for d in world.venue.devices.values()}
    assert kinds == set(DeviceKind)
    assert len(world.venue.devices) == world.device_count  # ids stay unique across clones


def test_scale_10_is_ten_times_jo_scale() -> None:
    world = build_world(load_scenario(REPO / "scenarios" / "stadium.yaml"), scale=10)
    assert len(world.instances) == 500
    assert world.device_count >= 30_000


def test_riverside_segment_is_several_km_long() -> None:
    from beffroi.venue import distance_m

    site = load_scenario(REPO / "scenarios" / "riverside.yaml").venue.sites[0]
    points = [p for z in site.zones for p in z.polygon]
    span = max(distance_m(a, b) for a in points[::7] for b in points[::7])
    assert span > 4000


@pytest.mark.parametrize("name", sorted(VENUES))
def test_shipped_venue_files_are_what_the_generator_writes(name: str) -> None:
    path = REPO / "scenarios" / "venues" / name
    assert path.read_text(encoding="utf-8") == render(name), (
        "run: python -m simulators.layouts scenarios/venues"
    )
    venue = load_venue(path)
    cameras = [d for d in venue.devices.values() if d.device.kind is DeviceKind.CAMERA]
    assert len(cameras) >= 8
