"""The crowd model is physically sensible: people are conserved, cross zones only through exits, exits
pass no more than their capacity, zones hold no more than the jam density, a stadium empties."""

from __future__ import annotations

import numpy as np
import pytest

from beffroi.venue import FRUIN_MAX_SPECIFIC_FLOW
from simulators.crowd import CrowdModel, make_model
from simulators.scenario_file import load_scenario
from simulators.world import build_world

from .conftest import REPO, SHORT


@pytest.fixture(scope="module")
def short_model() -> CrowdModel:
    return make_model(build_world(load_scenario(SHORT)))


def _zone_balance(model: CrowdModel) -> np.ndarray:
    """Persons into minus out of each zone through exits this tick, from the routes' flows."""
    net = model.net
    inflow = np.bincount(
        np.where(net.r_to_node >= 0, net.r_to_node, net.n_zones),
        weights=model.route_flow,
        minlength=net.n_zones + 1,
    )[: net.n_zones]
    src = net.x_node[net.r_src]
    outflow = np.bincount(
        np.where(src >= 0, src, net.n_zones), weights=model.route_flow, minlength=net.n_zones + 1
    )[: net.n_zones]
    return inflow - outflow


def test_people_are_conserved_and_only_cross_exits(short_model: CrowdModel) -> None:
    m = short_model
    total = m.x.sum()
    assert total > 50_000
    moved = 0.0
    for _ in range(int(50 * 60 / m.dt)):
        before = m.occupancy.copy()
        m.step()
        # everybody is somewhere: in a zone, or outside the sites (at home, or queueing to enter)
        assert m.occupancy.sum() + m.outside().sum() == pytest.approx(total, rel=1e-9)
        # a zone changes only by what crossed its exits
        np.testing.assert_allclose(m.occupancy - before, _zone_balance(m), atol=1e-6)
        assert (m.x >= -1e-9).all()
        moved += m.exit_flow.sum()
    assert moved > 10_000  # the crowd did move


def test_exit_flow_never_exceeds_width_times_max_specific_flow() -> None:
    m = make_model(build_world(load_scenario(SHORT)))
    net = m.net
    fruin = net.exit_width * FRUIN_MAX_SPECIFIC_FLOW / 60.0 * m.dt
    screened = net.exit_screen < 1.0
    saturated = 0
    for _ in range(int(50 * 60 / m.dt)):
        m.step()
        through = m.exit_flow.sum(axis=1)
        assert (through <= fruin * (1 + 1e-9)).all()
        # and no more than the exit's own capacity now (jammed or closed exits included)
        assert (through <= m.exit_capacity_now * (1 + 1e-9) + 1e-12).all()
        # screened gates admit at most width x screening flow inbound
        inbound_cap = net.exit_width * net.exit_qmax * net.exit_screen / 60.0 * m.dt * m.width_factor
        assert (m.exit_flow[screened, 0] <= inbound_cap[screened] * (1 + 1e-9) + 1e-12).all()
        saturated += int((through > 0.99 * m.exit_capacity_now).sum())
    assert saturated > 0  # some exit ran at capacity (the jammed gate at least)


def test_zones_never_exceed_the_jam_density_and_the_crush_builds_up() -> None:
    sc = load_scenario(SHORT)
    m = make_model(build_world(sc))
    zone = m.net.zone_offset[0] + [z.id for z in sc.venue.sites[0].zones].index("queue-north")
    start, end = sc.at("18:05"), sc.at("18:20")
    peak_before = peak_during = 0.0
    while m.t < end:
        m.step()
        assert (m.density <= sc.spec.crowd_model.jam_density + 1e-9).all()
        if m.t < start:
            peak_before = max(peak_before, m.density[zone])
        else:
            peak_during = max(peak_during, m.density[zone])
    assert peak_before < 1.0
    assert peak_during > 4.5  # dangerous: above 4-5 persons/m2


def test_gates_stay_closed_before_they_open() -> None:
    sc = load_scenario(REPO / "scenarios" / "stadium.yaml")
    m = make_model(build_world(sc, scale=0.01))
    gates = np.array([i.startswith("gate-") for i in m.net.exit_ids]) & (m.net.exit_site == 0)
    plazas = [i for i, z in enumerate(sc.venue.sites[0].zones) if z.kind.value == "plaza"]
    opening = sc.at("gates_open")
    while m.t < opening - m.dt:
        m.step()
        assert m.exit_flow[gates].sum() == 0.0
    waiting = m.occupancy[plazas].sum()
    assert waiting > 50  # a queue formed outside the closed gates
    for _ in range(120):
        m.step()
    assert m.exit_flow[gates].sum() > 0.0


def test_the_stadium_empties_after_the_final_whistle() -> None:
    sc = load_scenario(REPO / "scenarios" / "stadium.yaml")
    m = make_model(build_world(sc, scale=0.01))
    stadium = m.net.zone_site == 0
    whistle = sc.at("final_whistle")
    while m.t < whistle:
        m.step()
    full = m.occupancy[stadium].sum()
    assert full > 60_000
    while m.t < whistle + 20 * 60:
        m.step()
    assert m.occupancy[stadium].sum() < 0.2 * full
    while m.t < whistle + 45 * 60:
        m.step()
    assert m.occupancy[stadium].sum() < 0.02 * full
