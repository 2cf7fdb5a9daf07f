"""Device kinds, their Live Objects `model` names and the value fields each one reports."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeviceKind(StrEnum):
    GATE_COUNTER = "gate_counter"
    ACOUSTIC = "acoustic"
    AIR_QUALITY = "air_quality"
    TEMPERATURE = "temperature"
    PERIMETER = "perimeter"
    DOOR_CONTACT = "door_contact"
    PANIC_BUTTON = "panic_button"
    PRESENCE = "presence"
    TELCO_CELL = "telco_cell"
    CAMERA = "camera"


@dataclass(frozen=True)
class Field:
    name: str
    unit: str
    low: float
    high: float
    integer: bool = False
    decimals: int = 2


@dataclass(frozen=True)
class KindSpec:
    """A device kind: its Live Objects `model`, its value fields and its default reporting interval."""

    kind: DeviceKind
    model: str
    fields: tuple[Field, ...]
    interval_s: float = 10.0

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.model} has no field {name!r}")


def _spec(kind: DeviceKind, *fields: Field, interval_s: float = 10.0) -> KindSpec:
    return KindSpec(kind, f"beffroi.{kind.value}.v1", fields, interval_s)


KIND_SPECS: dict[DeviceKind, KindSpec] = {
    s.kind: s
    for s in (
        _spec(
            DeviceKind.GATE_COUNTER,
            Field("in", "persons", 0, 100_000, integer=True),
            Field("out", "persons", 0, 100_000, integer=True),
            interval_s=10,
        ),
        _spec(DeviceKind.ACOUSTIC, Field("dba", "dBA", 20, 140, decimals=1), interval_s=5),
        _spec(
            DeviceKind.AIR_QUALITY,
            Field("pm25", "ug/m3", 0, 1000, decimals=1),
            Field("co", "ppm", 0, 500, decimals=2),
            interval_s=10,
        ),
        _spec(DeviceKind.TEMPERATURE, Field("celsius", "degC", -30, 80, decimals=2), interval_s=60),
        _spec(DeviceKind.PERIMETER, Field("vibration", "g", 0, 16, decimals=3), interval_s=5),
        _spec(DeviceKind.DOOR_CONTACT, Field("open", "bool", 0, 1, integer=True), interval_s=30),
        _spec(DeviceKind.PANIC_BUTTON, Field("pressed", "bool", 0, 1, integer=True), interval_s=30),
        _spec(DeviceKind.PRESENCE, Field("devices", "devices", 0, 1_000_000, integer=True), interval_s=30),
        # Flux Vision style: an aggregated count per cell; below the device's `min_count` the count is
        # withheld (population 0, suppressed 1) and must not be read as an empty cell.
        _spec(
            DeviceKind.TELCO_CELL,
            Field("population", "persons", 0, 10_000_000, integer=True),
            Field("suppressed", "bool", 0, 1, integer=True),
            interval_s=300,
        ),
        _spec(
            DeviceKind.CAMERA,
            Field("count", "persons", 0, 100_000, integer=True),
            Field("density", "persons/m2", 0, 12, decimals=2),
            interval_s=5,
        ),
    )
}

KIND_BY_MODEL: dict[str, KindSpec] = {s.model: s for s in KIND_SPECS.values()}
