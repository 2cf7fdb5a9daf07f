"""A broken scenario file gives an error that names the file and the line of each problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from beffroi.yamlconf import ConfigError
from simulators.scenario_file import load_scenario
from tower.cli import main

from .conftest import REPO

FANS = REPO / "scenarios" / "venues" / "fan-zones.yaml"
SEINE = REPO / "scenarios" / "venues" / "seine.yaml"

BASE = f"""\
kind: scenario
name: broken
start: 2024-08-11T18:00:00+02:00
duration: 30m
venue: {FANS}
timeline:
  - {{event: kick_off, at: "18:30"}}
crowd:
  - site: fz-hdv
    arrivals:
      - count: 1000
        to: {{zones: [lawn]}}
        curve: {{shape: uniform, start: "18:00", end: "18:20"}}
    moves:
      - {{from: [lawn], to: leave, at: kick_off+5m, fraction: 0.5}}
incidents:
  - {{id: fire, type: smoke, site: fz-hdv, zone: food-court, start: "18:10", end: "18:20"}}
faults:
  - {{type: stuck, device: fz-hdv-snd-lawn-1, start: "18:05", end: "18:15"}}
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _broken(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    assert old in BASE
    text = BASE.replace(old, new)
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path, _line_of(text, new.splitlines()[-1].strip())


def test_the_base_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(BASE)
    assert load_scenario(path).events == {"kick_off": 1800.0}


CASES = {
    "yaml syntax": ("  - {id: fire,", "  - {id: fire, [oops"),
    "unknown key": ("duration: 30m", "duration: 30m\nspeed: 10"),
    "wrong type": ("duration: 30m", "duration: a while"),
    "unknown event type": ("{event: kick_off,", "{event: kickoff,"),
    "unknown event reference": ("at: kick_off+5m", "at: kick_of+5m"),
    "unquoted clock time": ('at: "18:30"}', "at: 18:30}"),
    "unknown zone kind": ("{from: [lawn],", '{from: ["kind:stands"],'),
    "unknown zone": ("to: {zones: [lawn]}", "to: {zones: [pelouse]}"),
    "unknown site": ("  - site: fz-hdv", "  - site: fz-nowhere"),
    "incident window backwards": ('start: "18:10", end: "18:20"}', 'start: "18:20", end: "18:10"}'),
    "incident on a missing zone": ("zone: food-court,", "zone: kitchen,"),
    "crush at a gate with nothing in front": (
        "  - {id: fire, type: smoke, site: fz-hdv, zone: food-court,",
        "  - {id: fire, type: crowd_crush, site: fz-hdv, exit: entry-north,",
    ),
    "fault on an unknown device": ("device: fz-hdv-snd-lawn-1", "device: fz-hdv-snd-lawn-99"),
    "fraction above one": ("fraction: 0.5", "fraction: 1.5"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_names_file_and_line(tmp_path: Path, case: str) -> None:
    old, new = CASES[case]
    path, line = _broken(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.path == path
    assert [i.line for i in err.value.issues] == [line] * len(err.value.issues), str(err.value)
    assert f"{path}:{line}:" in str(err.value)


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = BASE.replace("zone: food-court,", "zone: kitchen,").replace("snd-lawn-1", "snd-lawn-99")
    path = tmp_path / "two.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert sorted(i.line or 0 for i in err.value.issues) == [
        _line_of(text, "kitchen"),
        _line_of(text, "lawn-99"),
    ]


def test_inline_venue_errors_point_into_the_venue(tmp_path: Path) -> None:
    text = """\
kind: scenario
name: inline
start: 2024-08-11T18:00:00+02:00
duration: 10m
venue:
  id: tiny
  sites:
    - id: s
      center: {lat: 48.0, lon: 2.0}
      zones:
        - id: a
          capacity: 100
          polygon: [{lat: 48.0, lon: 2.0}, {lat: 48.0, lon: 2.001}, {lat: 48.001, lon: 2.001}]
      exits:
        - {id: door, width_m: -2, to_zone: a}
"""
    path = tmp_path / "inline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.issues[0].line == _line_of(text, "width_m: -2")
    assert err.value.issues[0].key.startswith("venue.sites")


def test_a_broken_venue_file_is_named_with_its_line(tmp_path: Path) -> None:
    venue = tmp_path / "venue.yaml"
    lines = FANS.read_text().splitlines()
    target = next(i for i, line in enumerate(lines) if "capacity:" in line)
    lines[target] = lines[target].split("capacity:")[0] + "capacity: lots"
    venue.write_text("\n".join(lines) + "\n")
    path = tmp_path / "s.yaml"
    path.write_text(BASE.replace(str(FANS), str(venue)))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.path == venue
    assert err.value.issues[0].line == target + 1


def test_unroutable_moves_are_reported_on_their_line(tmp_path: Path) -> None:
    text = f"""\
kind: scenario
name: unroutable
start: 2024-07-26T18:00:00+02:00
duration: 10m
venue: {SEINE}
crowd:
  - site: seine-ceremony
    initial: {{upper-l01: 100}}
    moves:
      - {{from: [upper-l01], to: {{zones: [upper-r01]}}, at: "+1m", fraction: 0.5}}
"""
    path = tmp_path / "unroutable.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.issues[0].line == _line_of(text, "upper-r01]")
    assert "cannot reach" in err.value.issues[0].message


def test_beffroi_validate_prints_file_and_line_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, line = _broken(tmp_path, "zone: food-court,", "zone: kitchen,")
    assert main(["validate", str(path)]) == 1
    assert f"{path}:{line}: incidents[0].zone: site 'fz-hdv' has no zone 'kitchen'" in capsys.readouterr().err
