"""What-if: changes applied to a scenario, crowd model only, compared per site and zone (seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.scenario_file import load_scenario
from simulators.whatif import ChangeError, apply_changes, run_crowd
from tower.cli import main
from tower.whatif import compare

from .conftest import DATA

WHATIF = DATA / "whatif.yaml"
SITE = "venue.sites.fz-hdv.exits"


def _site_row(changes: list[str]) -> tuple[float, float, dict[str, tuple[float, float]]]:
    sc = load_scenario(WHATIF)
    rows = compare(run_crowd(sc), run_crowd(apply_changes(sc, changes)))
    site = next(r for r in rows if r.site == "fz-hdv" and not r.zone)
    peaks = {r.zone: (r.peak_base, r.peak_new) for r in rows if r.site == "fz-hdv" and r.zone}
    return site.egress_base, site.egress_new, peaks


def test_closing_an_exit_slows_egress_and_crowds_the_way_round() -> None:
    base, new, peaks = _site_row([f"{SITE}.entry-south=closed"])
    assert np.isfinite(base)
    assert new > base + 60
    # the lawn's crowd now leaves through the food court and the north queue
    assert peaks["food-court"][1] > peaks["food-court"][0] + 0.5
    assert peaks["queue-south"][1] < 0.01  # nobody walks through a closed exit


def test_width_zero_is_closing() -> None:
    sc = load_scenario(WHATIF)
    a = apply_changes(sc, [f"{SITE}.entry-south.width_m=0"])
    assert a.spec.crowd[0].closed_exits == ["entry-south"]


def test_widening_every_exit_speeds_egress() -> None:
    base, new, _ = _site_row([f"{SITE}.*.width_m*=2"])
    assert new <= base - 20  # walking time dominates this site's egress; the exits gain half a minute


def test_more_arrivals_and_a_later_end() -> None:
    sc = load_scenario(WHATIF)
    later = apply_changes(sc, ["timeline.show_end.at+=5m", "crowd.fz-hdv.initial.lawn*=1.2"])
    assert later.events["show_end"] == sc.events["show_end"] + 300
    assert later.spec.crowd[0].initial["lawn"] == 19200
    a, b = run_crowd(sc), run_crowd(later)
    assert b.occupancy[0].sum() == pytest.approx(a.occupancy[0].sum() + 3200)


def test_wildcards_skip_elements_without_the_field() -> None:
    sc = load_scenario(WHATIF)  # its one plan has moves but no arrivals
    more = apply_changes(sc, ["crowd.*.moves.*.fraction*=0.5", "crowd.*.initial=removed"])
    assert more.spec.crowd[0].moves[0].fraction == pytest.approx(0.495)
    assert more.spec.crowd[0].initial == {}
    with pytest.raises(ChangeError, match=r"crowd\.\*\.arrivals\.\*: matches nothing"):
        apply_changes(sc, ["crowd.*.arrivals.*.count*=1.2"])


def test_deterministic() -> None:
    sc = apply_changes(load_scenario(WHATIF), [f"{SITE}.entry-north=closed"])
    a, b = run_crowd(sc), run_crowd(sc)
    assert np.array_equal(a.occupancy, b.occupancy)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("crowd.nowhere.initial.lawn=3", "crowd.nowhere: no element 'nowhere' (have: fz-hdv"),
        ("timeline.show_end.when=18:20", "timeline[1].when: Extra inputs are not permitted"),
        ("crowd.fz-hdv.initial.lawn=many", "expected a number, got 'many'"),
        (f"{SITE}.gate-z=closed", "site 'fz-hdv' has no exit 'gate-z'"),
        ("timeline.show_end.at=never", "unknown timeline event 'never'"),
        ("crowd.fz-hdv.moves.3.at=show_end", "index 3 but the list has 1"),
        ("no-equals-sign", "expected PATH=VALUE"),
    ],
)
def test_bad_changes_name_the_path(change: str, needle: str) -> None:
    with pytest.raises(ChangeError) as exc:
        apply_changes(load_scenario(WHATIF), [change])
    assert f"--set {change}" in str(exc.value)
    assert needle in str(exc.value)


def test_error_names_the_scenario_line() -> None:
    with pytest.raises(ChangeError, match=r"whatif\.yaml:18: crowd\[0\]\.moves\[0\]\.fraction: "):
        apply_changes(load_scenario(WHATIF), ["crowd.fz-hdv.moves.0.fraction=2"])


def test_cli_writes_report_csv_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wi"
    assert main(["whatif", str(WHATIF), "--set", f"{SITE}.entry-south=closed", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| fz-hdv | food-court |" in report
    assert "![density.png](density.png)" in report
    assert (out / "density.png").stat().st_size > 1000
    assert (out / "occupancy.png").exists()
    header = (out / "comparison.csv").read_text().splitlines()[0]
    assert header.startswith("site,zone,kind,peak_density_base")
    assert main(["whatif", str(WHATIF), "--set", "crowd.x.y=1", "--out", str(out)]) == 2
    assert "no element 'x'" in capsys.readouterr().err
