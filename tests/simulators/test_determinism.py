"""Same seed, same bytes; another seed, other bytes; processes share devices without changing them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from simulators.engine import Simulation, partition_of
from simulators.scenario_file import load_scenario

from .conftest import SHORT, Collect, ShortRun, run_short


def _digest(payloads: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for _, p in payloads:
        h.update(p)
    return h.hexdigest()


def test_same_seed_gives_the_same_payload_bytes_and_ground_truth(short_run: ShortRun, tmp_path: Path) -> None:
    again = run_short(tmp_path / "again")
    assert len(again.payloads) == len(short_run.payloads) > 10_000
    assert _digest(again.payloads) == _digest(short_run.payloads)
    for name in ("zones.csv", "exits.csv", "labels.json", "faults.json"):
        assert (again.out / name).read_bytes() == (short_run.out / name).read_bytes()


def test_another_seed_gives_other_payloads(short_run: ShortRun, tmp_path: Path) -> None:
    other = run_short(tmp_path / "other", seed=8)
    assert _digest(other.payloads) != _digest(short_run.payloads)
    # same devices report, with other values
    assert {d for d, _ in other.payloads} == {d for d, _ in short_run.payloads}


def test_partitions_publish_disjoint_shares_of_the_same_payloads() -> None:
    sc = load_scenario(SHORT)
    whole = Collect()
    Simulation(sc).run(whole, duration_s=600)
    parts = []
    for p in range(3):
        sink = Collect()
        Simulation(sc, partition=p, processes=3).run(sink, duration_s=600)
        assert all(partition_of(d, 3) == p for d, _ in sink.payloads)
        parts.append(sink.payloads)
    assert sorted(p for part in parts for p in part) == sorted(whole.payloads)
    assert all(parts)
