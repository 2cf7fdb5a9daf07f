"""Sensor models: every device of a kind computed in one batch from the true state of the world.

A `Bank` holds the devices of one kind (zone, exit, site of each, per-device gains, offsets and noise
state) and returns the values of the devices due this tick as an (n, fields) array, clamped to the
kind's physical range. Each bank draws from its own generator, the same in every process, so a
device's values do not depend on how devices are split across processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.venue import CameraView, Device, ZoneKind
from simulators.crowd import CrowdModel, Network
from simulators.geometry import camera_coverage
from simulators.incidents import Effects
from simulators.world import World

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

LOUD_ZONES = {ZoneKind.STAND, ZoneKind.VIEWING, ZoneKind.STAGE_FRONT, ZoneKind.QUAY}
TRAFFIC_ZONES = {ZoneKind.STREET, ZoneKind.FORECOURT, ZoneKind.PLATFORM}


@dataclass
class Context:
    """What the sensors measure at the end of a tick."""

    t: float
    hour: float
    model: CrowdModel
    excitement: F64  # per site, 0 (quiet) .. 1+ (a goal)
    fireworks: F64  # per site, 0 .. 1
    wind: F64  # per site, 0 .. 1
    effects: Effects


@dataclass
class PlacedDevices:
    devices: list[Device]
    site: I64
    zone: I64  # global zone, -1 if none
    exit: I64  # global exit, -1 if none
    zone_kind: list[ZoneKind | None]


class Bank:
    """The devices of one kind."""

    kind: DeviceKind

    def __init__(self, kind: DeviceKind, placed: PlacedDevices, seed: int) -> None:
        self.kind = kind
        self.spec = KIND_SPECS[kind]
        self.devices = placed.devices
        self.ids = [d.id for d in placed.devices]
        self.n = len(placed.devices)
        self.site, self.zone, self.exit = placed.site, placed.zone, placed.exit
        self.zone_kind = placed.zone_kind
        self.rng = np.random.default_rng([seed, 0x5E45, list(DeviceKind).index(kind)])
        self.low = np.array([f.low for f in self.spec.fields])
        self.high = np.array([f.high for f in self.spec.fields])
        self.integer = np.array([f.integer for f in self.spec.fields])
        self._any_integer = bool(self.integer.any())
        self.last = np.full((self.n, len(self.spec.fields)), np.nan)

    def values(self, due: I64, ctx: Context) -> F64:
        out = self.compute(due, ctx)
        return self.bound(out)

    def bound(self, out: F64) -> F64:
        """Clamp to the physical range and round integer fields, in place."""
        np.minimum(np.maximum(out, self.low, out=out), self.high, out=out)
        if self._any_integer:
            out[:, self.integer] = np.rint(out[:, self.integer])
        return out

    def compute(self, due: I64, ctx: Context) -> F64:
        raise NotImplementedError

    def resync(self, ctx: Context) -> None:
        """Forget what happened before `ctx` (used after fast-forwarding the crowd)."""

    def _ar(self, state: F64, due: I64, phi: float, sigma: float) -> F64:
        """Advance per-device AR(1) noise of the due devices and return it."""
        state[due] = phi * state[due] + math.sqrt(1 - phi * phi) * sigma * self.rng.standard_normal(len(due))
        return state[due]

    def zone_density(self, due: I64, ctx: Context) -> F64:
        z = self.zone[due]
        return np.where(z >= 0, ctx.model.density[np.maximum(z, 0)], 0.0)


class GateCounters(Bank):
    """Persons through the device's exit since its last report: `in` along from_zone -> to_zone."""

    def __init__(self, kind: DeviceKind, placed: PlacedDevices, seed: int) -> None:
        super().__init__(kind, placed, seed)
        self.gain = self.rng.uniform(0.96, 1.0, self.n)
        self.count = np.zeros((self.n, 2))

    def compute(self, due: I64, ctx: Context) -> F64:
        cum = np.floor(ctx.model.cum_exit_flow[self.exit[due]] * self.gain[due, None])
        out = cum - self.count[due]
        self.count[due] = cum
        return out

    def resync(self, ctx: Context) -> None:
        self.count = np.floor(ctx.model.cum_exit_flow[self.exit] * self.gain[:, None])


class Acoustic(Bank):
    def __init__(self, kind: DeviceKind, placed: PlacedDevices, seed: int) -> None:
        super().__init__(kind, placed, seed)
        self.offset = self.rng.normal(0.0, 1.5, self.n)
        self.noise = np.zeros(self.n)
        self.loud = np.array([k in LOUD_ZONES for k in self.zone_kind])
        self.traffic = np.array([k in TRAFFIC_ZONES for k in self.zone_kind])

    def compute(self, due: I64, ctx: Context) -> F64:
        rho = self.zone_density(due, ctx)
        exc = ctx.excitement[self.site[due]]
        ambient = 50.0 + 8.0 * self.traffic[due]
        crowd = 56.0 + 13.0 * np.log10(1.0 + 3.0 * rho) + np.where(self.loud[due], 24.0 * exc, 6.0 * exc)
        crowd = np.where(rho > 0.005, crowd, 0.0)
        fireworks = 82.0 * (ctx.fireworks[self.site[due]] > 0)
        level = 10.0 * np.log10(
            10 ** (ambient / 10) + 10 ** (crowd / 10) + 10 ** (fireworks / 10) * (fireworks > 0)
        )
        z = self.zone[due]
        level = level + np.where(z >= 0, ctx.effects.db[np.maximum(z, 0)], 0.0)
        level += self.offset[due] + self._ar(self.noise, due, 0.6, 1.2)
        return level[:, None]


class AirQuality(Bank):
    def __init__(self, kind: DeviceKind, placed: PlacedDevices, seed: int) -> None:
        super().__init__(kind, placed, seed)
        self.base = self.rng.uniform(8.0, 16.0, self.n)
        self.noise = np.zeros(self.n)
        self.food = np.array([k is ZoneKind.AMENITY for k in self.zone_kind])
        self.outdoor_view = np.array([k in LOUD_ZONES for k in self.zone_kind])

    def compute(self, due: I64, ctx: Context) -> F64:
        rho = self.zone_density(due, ctx)
        z = np.maximum(self.zone[due], 0)
        meal = 1.0 if 18.5 <= ctx.hour < 21.0 else 0.3
        cooking = 22.0 * meal * self.food[due]
        fireworks = 70.0 * ctx.fireworks[self.site[due]] * self.outdoor_view[due]
        drift = self._ar(self.noise, due, 0.995, 0.25)
        pm25 = (self.base[due] + 1.2 * rho + cooking + fireworks) * np.exp(0.12 * drift)
        pm25 = pm25 + ctx.effects.pm25[z] * self.rng.uniform(0.8, 1.1, len(due))
        co = (
            0.3
            + 0.06 * rho
            + 0.02 * cooking
            + 0.05 * np.abs(drift)
            + ctx.effects.co[z] * self.rng.uniform(0.8, 1.1, len(due))
        )
        return np.column_stack([pm25, co])


class Temperature(Bank):
    def __init__(
        self, kind: DeviceKind, placed: PlacedDevices, seed: int, *, mean: float, amplitude: float
    ) -> None:
        super().__init__(kind, placed, seed)
        self.mean, self.amplitude = mean, amplitude
        self.offset = self.rng.normal(0.0, 0.4, self.n)
        self.noise = np.zeros(self.n)

    def compute(self, due: I64, ctx: Context) -> F64:
        rho = self.zone_density(due, ctx)
        diurnal = self.mean + self.amplitude * math.cos(2 * math.pi * (ctx.hour - 15.5) / 24.0)
        z = np.maximum(self.zone[due], 0)
        celsius = (
            diurnal
            + 0.35 * rho
            + ctx.effects.heat[z]
            + self.offset[due]
            + self._ar(self.noise, due, 0.9, 0.08)
        )
        return celsius[:, None]


class Perimeter(Bank):
    """Peak fence vibration over the reporting interval: wind, the odd knock, and climbers."""

    def compute(self, due: I64, ctx: Context) -> F64:
        n = len(due)
        wind = ctx.wind[self.site[due]]
        rho = self.zone_density(due, ctx)
        g = 0.01 + 0.05 * wind + 0.12 * wind * self.rng.random(n) ** 3
        knock = self.rng.random(n) < 0.002 * (1.0 + 2.0 * rho)
        g = np.where(knock, g + self.rng.uniform(0.2, 1.2, n), g)
        if ctx.effects.fence_g:
            for j, i in enumerate(due.tolist()):
                extra = ctx.effects.fence_g.get(self.ids[i])
                if extra is not None:
                    g[j] = max(g[j], extra)
        return g[:, None]


class DoorContacts(Bank):
    def compute(self, due: I64, ctx: Context) -> F64:
        e = self.exit[due]
        opened = np.where(e >= 0, ctx.model.exit_open[np.maximum(e, 0)], False)
        return opened.astype(np.float64)[:, None]


class PanicButtons(Bank):
    def compute(self, due: I64, ctx: Context) -> F64:
        out = np.zeros((len(due), 1))
        if ctx.effects.panic:
            for j, i in enumerate(due.tolist()):
                if self.ids[i] in ctx.effects.panic:
                    out[j, 0] = 1.0
        return out


class Presence(Bank):
    """Distinct phones a Wi-Fi/BLE probe counter hears in its share of the zone."""

    def __init__(self, kind: DeviceKind, placed: PlacedDevices, seed: int) -> None:
        super().__init__(kind, placed, seed)
        per_zone = np.bincount(np.maximum(self.zone, 0), minlength=int(self.zone.max(initial=0)) + 1)
        self.share = np.minimum(1.0, 1.3 / np.maximum(per_zone[np.maximum(self.zone, 0)], 1))
        self.penetration = self.rng.uniform(0.28, 0.45, self.n)

    def compute(self, due: I64, ctx: Context) -> F64:
        z = self.zone[due]
        occ = np.where(z >= 0, ctx.model.occupancy[np.maximum(z, 0)], 0.0)
        lam = occ * self.share[due] * self.penetration[due] + 2.0
        return self.rng.poisson(lam).astype(np.float64)[:, None]


class TelcoCells(Bank):
    """Flux Vision style: population of the covered zones, averaged over the interval, rounded to
    tens, withheld (population 0, suppressed 1) below the cell's minimum count."""

    def __init__(
        self, kind: DeviceKind, placed: PlacedDevices, seed: int, zone_index: dict[tuple[int, str], int]
    ) -> None:
        super().__init__(kind, placed, seed)
        pairs = [
            (i, zone_index[(int(self.site[i]), z)]) for i, d in enumerate(self.devices) for z in d.covers
        ]
        self.pair_dev = np.array([p[0] for p in pairs], dtype=np.int64)
        self.pair_zone = np.array([p[1] for p in pairs], dtype=np.int64)
        self.background = self.rng.uniform(10.0, 120.0, self.n)
        self.min_count = np.array(
            [d.min_count if d.min_count is not None else 20 for d in self.devices], dtype=float
        )
        self.acc = np.zeros(self.n)
        self.ticks = np.zeros(self.n)

    def accumulate(self, model: CrowdModel) -> None:
        if len(self.pair_dev):
            self.acc += np.bincount(self.pair_dev, weights=model.occupancy[self.pair_zone], minlength=self.n)
        self.ticks += 1

    def compute(self, due: I64, ctx: Context) -> F64:
        mean = self.acc[due] / np.maximum(self.ticks[due], 1)
        self.acc[due] = 0.0
        self.ticks[due] = 0.0
        pop = np.round((mean + self.background[due]) * self.rng.normal(1.0, 0.03, len(due)), -1)
        suppressed = pop < self.min_count[due]
        return np.column_stack([np.where(suppressed, 0.0, pop), suppressed.astype(np.float64)])


class Cameras(Bank):
    """Edge analytics of a camera over its region of interest, the part of its own zone in view:
    persons counted (undercounting dense crowds, where people hide each other) and density."""

    def __init__(
        self, kind: DeviceKind, placed: PlacedDevices, seed: int, coverage: list[dict[int, float]]
    ) -> None:
        super().__init__(kind, placed, seed)
        own = [
            cov.get(int(z), 0.0) if z >= 0 else 0.0
            for cov, z in zip(coverage, self.zone.tolist(), strict=True)
        ]
        self.roi = np.maximum(np.array(own, dtype=np.float64), 0.02)

    def compute(self, due: I64, ctx: Context) -> F64:
        z = np.maximum(self.zone[due], 0)
        density = ctx.model.density[z]
        seen = ctx.model.occupancy[z] * self.roi[due]
        count = self.rng.poisson(np.maximum(seen / (1.0 + 0.04 * density**2), 0.0))
        est = density * self.rng.normal(1.0, 0.06, len(due))
        return np.column_stack([count.astype(np.float64), np.maximum(est, 0.0)])


def _coverage(dev: Device, site_zones: dict[str, int], zones: list) -> dict[int, float]:  # type: ignore[type-arg]
    if dev.camera is None or dev.location is None:
        return {}
    cov = camera_coverage(CameraView.of(dev), zones)
    return {site_zones[z]: f for z, f in cov.items() if f > 0}


def build_banks(world: World, net: Network) -> list[Bank]:
    """One bank per device kind present, devices in venue order (site by site)."""
    spec = world.scenario.spec
    by_kind: dict[DeviceKind, list[tuple[int, Device]]] = {}
    zone_index: dict[tuple[int, str], int] = {}
    exit_index: dict[tuple[int, str], int] = {}
    zone_kind: dict[tuple[int, str], ZoneKind] = {}
    coverage_cache: dict[tuple[str, str], dict[int, float]] = {}
    camera_cov: list[dict[int, float]] = []
    for s, inst in enumerate(world.instances):
        zo, eo = int(net.zone_offset[s]), int(net.exit_offset[s])
        for k, z in enumerate(inst.site.zones):
            zone_index[(s, z.id)] = zo + k
            zone_kind[(s, z.id)] = z.kind
        for k, e in enumerate(inst.site.exits):
            exit_index[(s, e.id)] = eo + k
        for d in inst.site.devices:
            by_kind.setdefault(d.kind, []).append((s, d))
    for s, d in by_kind.get(DeviceKind.CAMERA, []):
        inst = world.instances[s]
        core_id = d.id[: -len(f"-g{inst.group:03d}")] if inst.group else d.id
        key = (inst.core.id, core_id)
        if key not in coverage_cache:
            core_dev = next(x for x in inst.core.devices if x.id == core_id)
            local = {z.id: k for k, z in enumerate(inst.core.zones)}
            coverage_cache[key] = _coverage(core_dev, local, list(inst.core.zones))
        zo = int(net.zone_offset[s])
        camera_cov.append({zo + k: f for k, f in coverage_cache[key].items()})
    banks: list[Bank] = []
    for kind in DeviceKind:
        items = by_kind.get(kind)
        if not items:
            continue
        placed = PlacedDevices(
            devices=[d for _, d in items],
            site=np.array([s for s, _ in items], dtype=np.int64),
            zone=np.array([zone_index[(s, d.zone)] if d.zone else -1 for s, d in items], dtype=np.int64),
            exit=np.array([exit_index[(s, d.exit)] if d.exit else -1 for s, d in items], dtype=np.int64),
            zone_kind=[zone_kind[(s, d.zone)] if d.zone else None for s, d in items],
        )
        seed = world.seed
        bank: Bank
        if kind is DeviceKind.GATE_COUNTER:
            bank = GateCounters(kind, placed, seed)
        elif kind is DeviceKind.ACOUSTIC:
            bank = Acoustic(kind, placed, seed)
        elif kind is DeviceKind.AIR_QUALITY:
            bank = AirQuality(kind, placed, seed)
        elif kind is DeviceKind.TEMPERATURE:
            w = spec.weather
            bank = Temperature(kind, placed, seed, mean=w.temperature_c, amplitude=w.daily_amplitude_c)
        elif kind is DeviceKind.PERIMETER:
            bank = Perimeter(kind, placed, seed)
        elif kind is DeviceKind.DOOR_CONTACT:
            bank = DoorContacts(kind, placed, seed)
        elif kind is DeviceKind.PANIC_BUTTON:
            bank = PanicButtons(kind, placed, seed)
        elif kind is DeviceKind.PRESENCE:
            bank = Presence(kind, placed, seed)
        elif kind is DeviceKind.TELCO_CELL:
            bank = TelcoCells(kind, placed, seed, zone_index)
        else:
            bank = Cameras(kind, placed, seed, camera_cov)
        banks.append(bank)
    return banks
