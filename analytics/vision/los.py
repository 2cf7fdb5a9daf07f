"""Fruin's levels of service (A-F): for standing/queuing areas and walkways from density, and for
flows through exits from persons per metre of width per minute."""

from __future__ import annotations

from typing import Literal

from beffroi.records import LevelOfService

DensityTable = Literal["queuing", "walkway"]

_LEVELS: tuple[LevelOfService, ...] = ("A", "B", "C", "D", "E", "F")

# upper density bound (persons/m²) of levels A..E; above the last is F.
# Fruin's area per person (m²): queuing 1.21 / 0.93 / 0.65 / 0.28 / 0.19;
# walkway 3.25 / 2.32 / 1.39 / 0.93 / 0.46
DENSITY_BOUNDS: dict[DensityTable, tuple[float, ...]] = {
    "queuing": tuple(1.0 / a for a in (1.21, 0.93, 0.65, 0.28, 0.19)),
    "walkway": tuple(1.0 / a for a in (3.25, 2.32, 1.39, 0.93, 0.46)),
}

# flow (persons per metre per minute) where levels B..F start: A < 23, B 23-33, ..., F > 82
FLOW_BOUNDS: tuple[float, ...] = (23.0, 33.0, 49.0, 66.0, 82.0)


def _level(value: float, bounds: tuple[float, ...], *, inclusive: bool) -> LevelOfService:
    for level, bound in zip(_LEVELS, bounds, strict=False):
        if value < bound or (inclusive and value == bound):
            return level
    return "F"


def density_los(persons_per_m2: float, table: DensityTable = "queuing") -> LevelOfService:
    if persons_per_m2 < 0:
        raise ValueError(f"density must be >= 0, got {persons_per_m2}")
    return _level(persons_per_m2, DENSITY_BOUNDS[table], inclusive=True)


def flow_los(persons_per_m_per_min: float) -> LevelOfService:
    if persons_per_m_per_min < 0:
        raise ValueError(f"flow must be >= 0, got {persons_per_m_per_min}")
    return _level(persons_per_m_per_min, FLOW_BOUNDS, inclusive=False)


#: zone kinds where people stand or queue (Fruin's queuing scale applies); walkway scale elsewhere
STANDING_KINDS = frozenset({"stand", "viewing", "stage_front", "quay", "plaza", "platform"})
