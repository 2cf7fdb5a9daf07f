"""Memory stays flat over a long run at JO scale: ground truth goes to disk, nothing accumulates.

A behavioural bound on a shortened run: Python allocations after a warm-up grow by less than a
small fixed amount while the simulated time quadruples.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from simulators.engine import Simulation
from simulators.scenario_file import load_scenario

from .conftest import REPO


class Discard:
    def __init__(self) -> None:
        self.n = 0

    def publish(self, device_id: str, payload: bytes) -> None:
        self.n += 1

    def flush(self, timeout: float | None = None) -> None:
        pass


def test_memory_is_flat_at_jo_scale(tmp_path: Path) -> None:
    sc = load_scenario(REPO / "scenarios" / "stadium.yaml")
    sim = Simulation(sc, scale=1, out_dir=tmp_path)
    assert len(sim.world.instances) >= 50
    assert sim.world.device_count >= 3000
    sink = Discard()
    # fast-forward the crowd to an hour before kick-off untraced (tracing it costs minutes and
    # nothing of it is measured), then warm up traced: every code path and cache
    from_s = sc.at("kick_off-60m")
    sim.run(None, from_s=from_s, duration_s=0)
    assert abs(sim.model.t - from_s) < sim.dt
    tracemalloc.start()
    try:
        sim.run(sink, from_s=sim.model.t, duration_s=300)
        warm, _ = tracemalloc.get_traced_memory()
        sim2_sink = Discard()
        sim.run(sim2_sink, duration_s=1200, from_s=sim.model.t)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sim2_sink.n > 100_000
    assert after - warm < 2_000_000, f"grew by {(after - warm) / 1e6:.1f} MB over 20 simulated minutes"
    assert (tmp_path / "zones.csv").stat().st_size > 1_000_000  # the truth went to disk
