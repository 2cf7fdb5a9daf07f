"""The engine's per-stream state is declared once (`Rows` of `Column`s): growing, snapshotting and
restoring follow from the declaration, for the engine's own columns and any a part adds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analytics.detectors.engine import DetectEngine, TickResult
from analytics.detectors.rows import Column, Rows
from beffroi.devices import DeviceKind
from beffroi.events import Reading
from tower.testing import reading

T0 = datetime(2024, 7, 26, 18, 0, tzinfo=UTC)


def sound(seconds: int) -> list[Reading]:
    """Four sound meters, one reading every 2 s; snd-1 40 dB loud from 200 s."""
    rng = np.random.default_rng(11)
    return [
        reading(
            f"snd-{i}",
            {"dba": round(float(70.0 + rng.normal(0, 1.5) + (40.0 if i == 1 and s >= 200 else 0.0)), 1)},
            kind=DeviceKind.ACOUSTIC,
            ts=T0 + timedelta(seconds=s),
        )
        for s in range(0, seconds, 2)
        for i in range(4)
    ]


def outcome(
    results: list[TickResult],
) -> list[tuple[str, list[str], list[tuple[str, dict[str, tuple[float, float]]]]]]:
    return [
        (r.tick.isoformat(), [a.alert_id for a in r.alerts], [(s.site_id, s.streams) for s in r.scores])
        for r in results
    ]


def test_rows_grow_export_and_load_every_declared_column() -> None:
    rows = Rows({"t": Column(np.float64, -math.inf), "msg": Column(object, "")})
    rows.grow(2)
    rows["t"][1] = 3.0
    rows["msg"][0] = "m-0"
    rows.declare({"count": Column(np.int64, 7)})  # declared after rows exist: they take its fill
    assert rows["count"].tolist() == [7, 7]
    arrays, texts = rows.export()
    assert set(arrays) == {"t", "count"}
    assert texts == {"msg": ["m-0", ""]}

    again = Rows(
        {"t": Column(np.float64, -math.inf), "msg": Column(object, ""), "count": Column(np.int64, 7)}
    )
    again.load(arrays, texts)
    again.grow(3)
    assert again["t"].tolist() == [-math.inf, 3.0, -math.inf]
    assert again["msg"].tolist() == ["m-0", "", ""]
    assert again["count"].dtype == np.int64
    with pytest.raises(ValueError, match="shape"):
        again["t"] = np.zeros(2)


def test_a_snapshot_without_a_column_fills_it_or_does_not_fit() -> None:
    rows = Rows({"t": Column(np.float64), "added": Column(np.float64, 5.0, restore="fill")})
    rows.load({"t": np.zeros(3)}, {})
    assert rows["added"].tolist() == [5.0, 5.0, 5.0]
    strict = Rows({"t": Column(np.float64), "added": Column(np.float64)})
    with pytest.raises(ValueError, match="lacks per-stream state 'added'"):
        strict.load({"t": np.zeros(3)}, {})
    with pytest.raises(ValueError, match="disagree in length"):
        rows.load({"t": np.zeros(3), "added": np.zeros(2)}, {})
    assert len(rows) == 3  # a load that fails changes nothing
    with pytest.raises(ValueError, match="declared twice"):
        rows.declare({"t": Column(np.float64)})


def test_a_column_a_part_declares_travels_with_the_engine_snapshot() -> None:
    """A part added to the engine declares its column and nothing else: the column grows with new
    streams and survives export and load; a restored engine goes on exactly as one never stopped."""
    readings = sound(400)
    cut = len(readings) // 2
    straight = DetectEngine()
    expected = outcome(straight.add(readings) + straight.flush())

    first = DetectEngine()
    first.rows.declare({"part.seen": Column(np.int64, 0)})
    head = first.add(readings[:cut])
    first.rows["part.seen"] += 1
    arrays, meta = first.export_state()
    assert arrays["part.seen"].tolist() == [1, 1, 1, 1]
    second = DetectEngine()
    second.rows.declare({"part.seen": Column(np.int64, 0)})
    second.load_state(arrays, meta)
    assert second.rows["part.seen"].tolist() == [1, 1, 1, 1]
    assert outcome(head + second.add(readings[cut:]) + second.flush()) == expected
    assert any(a for _, a, _ in expected)  # the loud meter raised an alert


def test_engine_snapshots_from_before_a_fill_column_load_others_do_not_fit() -> None:
    engine = DetectEngine()
    engine.add(sound(100))
    arrays, meta = engine.export_state()
    older = {k: v for k, v in arrays.items() if k not in ("high_run", "high_at", "held_until")}
    restored = DetectEngine()
    restored.load_state(older, meta)
    assert restored.rows["high_at"].tolist() == [-math.inf] * 4
    for key in ("last_ts", "incidents.active", "stack.origin"):
        with pytest.raises((KeyError, ValueError)):
            DetectEngine().load_state({k: v for k, v in arrays.items() if k != key}, meta)
    with pytest.raises(ValueError, match="lacks per-stream state 'last_message'"):
        DetectEngine().load_state(arrays, {k: v for k, v in meta.items() if k != "last_message"})
