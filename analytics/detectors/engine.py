"""The detection engine: readings in, per-tick scores and alerts out. Pure logic, no I/O.

Readings are grouped into event-time ticks of `tick_s`. A tick is scored once the watermark
(latest reading time minus `lateness_s`) has passed its end; readings for a tick already scored
are counted as late and skipped (the store keeps them; detectors never go back in time). Every
tick is scored, with or without readings, so silences are seen. Within a tick the latest value
of each stream wins; a repeat of a stream's previous timestamp (a duplicate message) is dropped.

Two delivery faults are judged here, where the readings are: a reading whose sensor time is
`clock_skew_s` away from its receive time is not trusted (not scored) and raises a clock-skew fault;
repeated duplicates of a stream's readings raise a duplicate fault.

A single stream's first wild value may be a failing sensor as well as an incident: an incident
alert raises when the stream has scored at the incident level for `confirm_readings` readings in a
row, or at once when another device of its zone (of its site, for streams without a zone) has
scored that high within `corroborate_s`. A failing sensor confirms neither: its next value is
rough noise that the fault checks are learning, and its neighbours see nothing.

A sensor fault is never an incident: while any fault severity of a stream is at least
`fault_gate` (a fault building up, or raised), and for `recovery_s` after, the stream and the
other fields of its device raise no incident alert (its first values after a repair, a restart or a
resync are not news).

Alerts follow an episode per stream and category: raised when the incident score reaches
`incident_on` (or a fault severity 1), closed after `cooldown_s` below `incident_off`. An alert id
derives from (category, stream, episode start), so replaying the same readings raises the same ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.base import Phase
from analytics.detectors.stack import DetectorStack, StackConfig
from analytics.detectors.streams import StreamTable
from beffroi.events import Alert, AlertCategory, Reading, Severity, derived_id

NDArray = np.ndarray[Any, Any]


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tick_s: float = Field(default=1.0, gt=0, le=3600)
    lateness_s: float = Field(default=10.0, ge=0, description="how long a tick waits for late readings")
    max_empty_ticks: int = Field(
        default=3600, ge=1, description="longest run of empty ticks scored one by one"
    )
    incident_on: float = Field(default=0.9, gt=0, le=1, description="incident score that raises an alert")
    incident_off: float = Field(default=0.3, ge=0, le=1)
    settle_s: float = Field(
        default=300.0,
        ge=0,
        description="after a scheduled timeline event (gates open, kick-off, a goal...) "
        "the crowd surges as expected: for this long, incidents need `settle_on`",
    )
    settle_on: float = Field(default=0.97, gt=0, le=1)
    cooldown_s: float = Field(default=120.0, ge=0, description="quiet time that ends an incident episode")
    fault_cooldown_s: float = Field(default=300.0, ge=0)
    fault_gate: float = Field(
        default=0.5, gt=0, le=1, description="fault severity from which a stream's incident alerts are held"
    )
    recovery_s: float = Field(
        default=300.0, ge=0, description="incident alerts stay held this long after a fault clears"
    )
    confirm_readings: int = Field(
        default=2, ge=1, description="readings in a row at the incident level that raise an alert alone"
    )
    corroborate_s: float = Field(
        default=30.0, ge=0, description="how recent another device's incident-level score corroborates"
    )
    clock_skew_s: float = Field(
        default=120.0, gt=0, description="|sensor time - receive time| beyond which a reading is not trusted"
    )
    skew_hold_s: float = Field(default=300.0, ge=0, description="a clock-skew fault holds this long")
    duplicate_half_life_s: float = Field(default=120.0, gt=0)
    duplicates_for_fault: float = Field(default=3.0, gt=0, description="recent repeats that make a fault")
    stack: StackConfig = Field(default_factory=StackConfig)


class PhaseSource(Protocol):
    def phase_of(self, site_id: str, t: float) -> int:
        """Event phase of `site_id` at epoch seconds `t`."""

    def since_event(self, site_id: str, t: float) -> float:
        """Seconds since the latest scheduled timeline event of the site (inf when none)."""


class NoPhase:
    """Every site is always in the same phase (no timeline known)."""

    def __init__(self, phase: Phase = Phase.IDLE) -> None:
        self.phase = int(phase)

    def phase_of(self, site_id: str, t: float) -> int:
        return self.phase

    def since_event(self, site_id: str, t: float) -> float:
        return math.inf


@dataclass
class TimelinePhases:
    """Per site: phase changes, sorted (epoch seconds, phase), before the first one `initial`; and
    the times of every scheduled event (phase changes and others, such as goals)."""

    changes: Mapping[str, list[tuple[float, int]]]
    events: Mapping[str, list[float]] = field(default_factory=dict)
    initial: int = int(Phase.IDLE)

    def phase_of(self, site_id: str, t: float) -> int:
        current = self.initial
        for at, phase in self.changes.get(site_id, ()):
            if at > t:
                break
            current = phase
        return current

    def since_event(self, site_id: str, t: float) -> float:
        times = [
            at for at in self.events.get(site_id, [c[0] for c in self.changes.get(site_id, ())]) if at <= t
        ]
        return t - max(times) if times else math.inf


@dataclass
class SiteScores:
    site_id: str
    tick: datetime
    streams: dict[str, tuple[float, float]]  # key -> (incident score, fault severity)


@dataclass(frozen=True)
class AlertInfo:
    """What the engine knows about an alert beyond the `Alert` itself (for evaluation)."""

    stream: str
    model: str
    direction: int  # +1 value above its baseline, -1 below, 0 unknown (faults)
    score: float


@dataclass
class TickResult:
    tick: datetime
    readings: int
    alerts: list[Alert] = field(default_factory=list)
    scores: list[SiteScores] = field(default_factory=list)
    info: dict[str, AlertInfo] = field(default_factory=dict)


@dataclass
class _Episodes:
    """Hysteresis per stream for one alert category (host arrays)."""

    active: NDArray = field(default_factory=lambda: np.zeros(0, bool))
    quiet: NDArray = field(default_factory=lambda: np.zeros(0, np.int64))
    start: NDArray = field(default_factory=lambda: np.zeros(0, np.float64))

    def grow(self, n: int) -> None:
        extra = n - len(self.active)
        if extra > 0:
            self.active = np.concatenate([self.active, np.zeros(extra, bool)])
            self.quiet = np.concatenate([self.quiet, np.zeros(extra, np.int64)])
            self.start = np.concatenate([self.start, np.zeros(extra, np.float64)])

    def step(self, hot: NDArray, cold: NDArray, now: float, cooldown_ticks: int) -> NDArray:
        """Update with this tick; returns the rows whose episode starts now."""
        onset = hot & ~self.active
        self.active |= onset
        self.start[onset] = now
        self.quiet = np.where(hot, 0, np.where(self.active & cold, self.quiet + 1, self.quiet))
        ended = self.active & (self.quiet > cooldown_ticks)
        self.active &= ~ended
        self.quiet[ended] = 0
        return np.flatnonzero(onset)


def _aware(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


class DetectEngine:
    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        phases: PhaseSource | None = None,
        zone_kinds: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        """`zone_kinds`: (site, zone) -> kind of zone, when the venue is known (narrower peer groups)."""
        self.config = config or EngineConfig()
        self.phases: PhaseSource = phases if phases is not None else NoPhase()
        self.zone_kinds = dict(zone_kinds or {})
        self.table = StreamTable(zone_kinds=dict(self.zone_kinds))
        self.stack = DetectorStack(self.config.stack, meta=self.table.meta)
        self.pending: dict[int, list[Reading]] = {}
        self.next_tick: int | None = None
        self.max_ts = -math.inf
        self.incidents = _Episodes()
        self.faults = _Episodes()
        self.last_ts = np.zeros(0, np.float64)
        self.last_value = np.zeros(0, np.float64)
        self.last_message: list[str] = []
        self.late = 0
        self.duplicates = 0
        self.untrusted = 0
        self.skewed_until = np.zeros(0, np.float64)
        self.recent_dups = np.zeros(0, np.float64)
        self.held_until = np.zeros(0, np.float64)
        self.high_run = np.zeros(0, np.float64)
        self.high_at = np.zeros(0, np.float64)
        self._binary = np.zeros(0, bool)
        self._site_rows = np.zeros(0, np.int64)
        self._device_rows = np.zeros(0, np.int64)
        self._device_zone = np.zeros(0, np.int64)
        self._n_zones = 0

    # feeding ---------------------------------------------------------------
    def add(self, readings: Iterable[Reading], *, watermark: float | None = None) -> list[TickResult]:
        """Buffer readings; score and return every tick the watermark has passed.

        The watermark (epoch seconds up to which no more readings are expected) defaults to the
        latest reading time minus `lateness_s`; a consumer of several partitions passes its own.
        """
        tick_s = self.config.tick_s
        for r in readings:
            t = r.ts.timestamp()
            received = r.received_at.timestamp()
            if abs(received - t) > self.config.clock_skew_s:
                self._mark_skewed(r, received)
                continue
            index = math.floor(t / tick_s)
            if self.next_tick is not None and index < self.next_tick:
                self.late += 1
                continue
            self.pending.setdefault(index, []).append(r)
            self.max_ts = max(self.max_ts, t)
        return self._close(self.max_ts - self.config.lateness_s if watermark is None else watermark)

    def trusted(self, reading: Reading) -> bool:
        """Whether the reading's own timestamp can be believed (see `clock_skew_s`)."""
        return abs(reading.received_at.timestamp() - reading.ts.timestamp()) <= self.config.clock_skew_s

    def _mark_skewed(self, reading: Reading, received: float) -> None:
        self.untrusted += 1
        rows = [self.table.add(reading, name) for name, _ in StreamTable.fields_of(reading)]
        if len(self.table) != self.stack.n:
            self._grow()
        for row in rows:
            self.skewed_until[row] = max(self.skewed_until[row], received + self.config.skew_hold_s)

    def flush(self) -> list[TickResult]:
        """Score every buffered tick (end of input)."""
        if not self.pending:
            return []
        return self._close((max(self.pending) + 1) * self.config.tick_s)

    def _close(self, watermark: float) -> list[TickResult]:
        tick_s = self.config.tick_s
        if not self.pending and self.next_tick is None:
            return []
        if self.next_tick is None:
            self.next_tick = min(self.pending)
        results = []
        while (self.next_tick + 1) * tick_s <= watermark:
            if not self.pending:
                break
            first_pending = min(self.pending)
            if first_pending - self.next_tick > self.config.max_empty_ticks:
                self.next_tick = first_pending - 1  # one empty tick stands for the long silence
            results.append(self._score_tick(self.next_tick, self.pending.pop(self.next_tick, [])))
            self.next_tick += 1
        return results

    # one tick --------------------------------------------------------------
    def _grow(self) -> None:
        n = len(self.table)
        self.stack.grow(self.table.meta)
        self.incidents.grow(n)
        self.faults.grow(n)
        extra = n - len(self.last_ts)
        self.skewed_until = np.concatenate([self.skewed_until, np.zeros(extra)])
        self.recent_dups = np.concatenate([self.recent_dups, np.zeros(extra)])
        self.held_until = np.concatenate([self.held_until, np.zeros(extra)])
        self.high_run = np.concatenate([self.high_run, np.zeros(extra)])
        self.high_at = np.concatenate([self.high_at, np.full(extra, -math.inf)])
        self.last_ts = np.concatenate([self.last_ts, np.full(extra, -math.inf)])
        self.last_value = np.concatenate([self.last_value, np.full(extra, math.nan)])
        self.last_message += [""] * extra
        self._index_rows()

    def _index_rows(self) -> None:
        self._binary = self.table.binary_mask()
        self._site_rows = self.table.site_rows()
        devices: dict[str, int] = {}
        zones: dict[tuple[str, str | None], int] = {}
        device_zone: list[int] = []
        rows = []
        for info in self.table.streams:
            if info.device_id not in devices:
                devices[info.device_id] = len(devices)
                device_zone.append(zones.setdefault((info.site_id, info.zone_id), len(zones)))
            rows.append(devices[info.device_id])
        self._device_rows = np.array(rows, dtype=np.int64)
        self._device_zone = np.array(device_zone, dtype=np.int64)
        self._n_zones = len(zones)

    def _confirmed(self, hot: NDArray, present: NDArray, tick_end: float) -> NDArray:
        """Which rows at the incident level may raise: confirmed by their own readings in a row, or
        corroborated by another device of the zone."""
        cfg = self.config
        self.high_run = np.where(present, np.where(hot, self.high_run + 1.0, 0.0), self.high_run)
        self.high_at[hot] = tick_end
        if cfg.confirm_readings <= 1:
            return hot
        recent = (self.high_run >= 1.0) & (tick_end - self.high_at <= cfg.corroborate_s)
        n_dev = len(self._device_zone)
        dev_hot = np.bincount(self._device_rows, weights=recent, minlength=n_dev) > 0
        zone_hot = np.bincount(self._device_zone, weights=dev_hot, minlength=self._n_zones)
        others = zone_hot[self._device_zone[self._device_rows]] - dev_hot[self._device_rows]
        return hot & ((self.high_run >= cfg.confirm_readings) | (others >= 1))

    def _score_tick(self, index: int, readings: list[Reading]) -> TickResult:
        cfg = self.config
        tick_end = (index + 1) * cfg.tick_s
        readings.sort(key=lambda r: (r.ts, r.device_id, r.message_id))
        rows: list[tuple[int, float, Reading]] = []
        for r in readings:
            for name, v in StreamTable.fields_of(r):
                rows.append((self.table.add(r, name), v, r))
        if len(self.table) != self.stack.n:
            self._grow()
        n = len(self.table)
        values = np.full(n, np.nan)
        present = np.zeros(n, np.float32)
        for row, v, r in rows:
            t = r.ts.timestamp()
            if t <= self.last_ts[row]:
                self.duplicates += 1
                self.recent_dups[row] += 1.0
                continue
            self.last_ts[row] = t
            self.last_value[row] = v
            self.last_message[row] = r.message_id
            values[row] = v
            present[row] = 1.0
        result = TickResult(tick=_aware(tick_end), readings=len(readings))
        if n == 0:
            return result
        site_phase = np.array(
            [self.phases.phase_of(site, tick_end) for site in self.table.sites], dtype=np.int64
        )
        settling = np.array(
            [self.phases.since_event(site, tick_end) < cfg.settle_s for site in self.table.sites], dtype=bool
        )
        out = self.stack.step(tick_end, values, present, site_phase[self._site_rows])
        ops = self.stack.ops
        score = ops.to_numpy(out.score).astype(np.float64)
        score[self._binary] = 0.0
        fault = ops.to_numpy(out.fault).astype(np.float64)
        keys = list(self.stack.fault_keys)
        fault_key = [keys[k] for k in ops.to_numpy(out.fault_kind)] if keys else ["none"] * n
        self.recent_dups *= 0.5 ** (cfg.tick_s / cfg.duplicate_half_life_s)
        for key, severity in (
            ("clock_skew", np.where(self.skewed_until > tick_end, 2.0, 0.0)),
            ("duplicate", self.recent_dups / cfg.duplicates_for_fault),
        ):
            worse = severity > fault
            if worse.any():
                fault = np.where(worse, severity, fault)
                for row in np.flatnonzero(worse).tolist():
                    fault_key[row] = key
        # a device's fields share its hardware: one failing field puts the whole device on hold
        failing = np.bincount(
            self._device_rows, weights=fault >= cfg.fault_gate, minlength=len(self._device_zone)
        )
        unhealthy = failing[self._device_rows] > 0
        self.held_until[unhealthy] = tick_end + cfg.recovery_s
        score[unhealthy | (self.held_until > tick_end)] = 0.0
        cool_i = int(cfg.cooldown_s / cfg.tick_s)
        cool_f = int(cfg.fault_cooldown_s / cfg.tick_s)
        threshold = np.where(settling[self._site_rows], cfg.settle_on, cfg.incident_on)
        raise_ = self._confirmed(score >= threshold, present > 0, tick_end)
        inc_rows = self.incidents.step(raise_, score < cfg.incident_off, tick_end, cool_i)
        fault_rows = self.faults.step(fault >= 1.0, fault < 1.0, tick_end, cool_f)
        raw = ops.to_numpy(out.raw)
        loc = self._baseline_location() if len(inc_rows) else None
        seen = ops.to_numpy(self.stack.transform(ops.asarray(self.last_value))) if loc is not None else None
        for row in inc_rows:
            alert = self._incident_alert(int(row), tick_end, float(score[row]), float(raw[row]))
            result.alerts.append(alert)
            info = self.table.streams[int(row)]
            direction = 0 if loc is None or seen is None else int(np.sign(float(seen[row]) - loc[row]))
            result.info[alert.alert_id] = AlertInfo(info.key, info.model, direction, float(score[row]))
        for row in fault_rows:
            key = fault_key[int(row)]
            alert = self._fault_alert(int(row), tick_end, key, float(fault[row]))
            result.alerts.append(alert)
            info = self.table.streams[int(row)]
            result.info[alert.alert_id] = AlertInfo(info.key, info.model, 0, float(fault[row]))
        result.scores = self._site_scores(result.tick, present > 0, score, fault)
        return result

    def _baseline_location(self) -> NDArray | None:
        for d in self.stack.incident:
            if "loc" in d.state and d.state["loc"].ndim == 1:
                return self.stack.ops.to_numpy(d.state["loc"]).astype(np.float64)
        return None

    def _incident_alert(self, row: int, t: float, score: float, raw: float) -> Alert:
        info = self.table.streams[row]
        value = float(self.last_value[row])
        return Alert(
            alert_id=derived_id("detector", "incident", info.key, repr(t)),
            site_id=info.site_id,
            zone_id=info.zone_id,
            device_id=info.device_id,
            rule="detector:anomaly",
            category=AlertCategory.INCIDENT,
            severity=Severity.HIGH if score >= 0.9 else Severity.MEDIUM,
            raised_at=_aware(t),
            title=f"Unusual {info.field} at {info.device_id}",
            detail=f"stream {info.key}: anomaly score {score:.2f} (robust z {raw:.1f}), value {value:g}",
            value=None if math.isnan(value) else value,
            source_ids=(self.last_message[row],) if self.last_message[row] else (),
        )

    def _fault_alert(self, row: int, t: float, key: str, severity: float) -> Alert:
        info = self.table.streams[row]
        value = float(self.last_value[row])
        return Alert(
            alert_id=derived_id("detector", "fault", info.key, repr(t)),
            site_id=info.site_id,
            zone_id=info.zone_id,
            device_id=info.device_id,
            rule=f"fault:{key}",
            category=AlertCategory.FAULT,
            severity=Severity.LOW,
            raised_at=_aware(t),
            title=f"Sensor fault ({key.replace('_', ' ')}) on {info.device_id}",
            detail=f"stream {info.key}: {key} severity {severity:.2f}, last value {value:g}",
            value=None if math.isnan(value) else value,
            source_ids=(self.last_message[row],) if self.last_message[row] else (),
        )

    def _site_scores(
        self, tick: datetime, present: NDArray, score: NDArray, fault: NDArray
    ) -> list[SiteScores]:
        by_site: dict[str, SiteScores] = {}
        for row in np.flatnonzero(present | (fault >= 1.0)):
            info = self.table.streams[row]
            entry = by_site.setdefault(info.site_id, SiteScores(info.site_id, tick, {}))
            entry.streams[info.key] = (round(float(score[row]), 6), round(float(fault[row]), 4))
        return list(by_site.values())

    # state -----------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, NDArray], dict[str, Any]]:
        """(arrays, JSON-able metadata): everything needed to resume exactly here."""
        arrays = {f"stack.{k}": v for k, v in self.stack.export_state().items()}
        for name, ep in (("incidents", self.incidents), ("faults", self.faults)):
            arrays[f"{name}.active"] = ep.active.copy()
            arrays[f"{name}.quiet"] = ep.quiet.copy()
            arrays[f"{name}.start"] = ep.start.copy()
        arrays["last_ts"] = self.last_ts.copy()
        arrays["skewed_until"] = self.skewed_until.copy()
        arrays["recent_dups"] = self.recent_dups.copy()
        arrays["held_until"] = self.held_until.copy()
        arrays["high_run"] = self.high_run.copy()
        arrays["high_at"] = self.high_at.copy()
        arrays["last_value"] = self.last_value.copy()
        meta = {
            "streams": self.table.to_json(),
            "last_message": list(self.last_message),
            "pending": {str(k): [r.model_dump(mode="json") for r in v] for k, v in self.pending.items()},
            "next_tick": self.next_tick,
            "max_ts": None if math.isinf(self.max_ts) else self.max_ts,
            "late": self.late,
            "duplicates": self.duplicates,
            "untrusted": self.untrusted,
        }
        return arrays, meta

    def load_state(self, arrays: Mapping[str, NDArray], meta: Mapping[str, Any]) -> None:
        self.table = StreamTable.from_json(meta["streams"], zone_kinds=self.zone_kinds)
        self.stack = DetectorStack(self.config.stack, meta=self.table.meta)
        self.stack.load_state({k[len("stack.") :]: v for k, v in arrays.items() if k.startswith("stack.")})
        for name, ep in (("incidents", self.incidents), ("faults", self.faults)):
            ep.active = np.asarray(arrays[f"{name}.active"], bool).copy()
            ep.quiet = np.asarray(arrays[f"{name}.quiet"], np.int64).copy()
            ep.start = np.asarray(arrays[f"{name}.start"], np.float64).copy()
        self.last_ts = np.asarray(arrays["last_ts"], np.float64).copy()
        self.skewed_until = np.asarray(arrays["skewed_until"], np.float64).copy()
        self.recent_dups = np.asarray(arrays["recent_dups"], np.float64).copy()
        held = arrays.get("held_until")
        self.held_until = (
            np.zeros(len(self.recent_dups)) if held is None else np.asarray(held, np.float64).copy()
        )
        self.last_value = np.asarray(arrays["last_value"], np.float64).copy()
        n = len(self.last_value)
        run, at = arrays.get("high_run"), arrays.get("high_at")
        self.high_run = np.zeros(n) if run is None else np.asarray(run, np.float64).copy()
        self.high_at = np.full(n, -math.inf) if at is None else np.asarray(at, np.float64).copy()
        self.last_message = list(meta["last_message"])
        self.pending = {
            int(k): [Reading.model_validate(r) for r in v] for k, v in dict(meta["pending"]).items()
        }
        self.next_tick = meta["next_tick"]
        self.max_ts = -math.inf if meta["max_ts"] is None else float(meta["max_ts"])
        self.late = int(meta["late"])
        self.duplicates = int(meta["duplicates"])
        self.untrusted = int(meta["untrusted"])
        streams = len(self.table)
        sizes = {
            "last_ts": len(self.last_ts),
            "skewed_until": len(self.skewed_until),
            "recent_dups": len(self.recent_dups),
            "held_until": len(self.held_until),
            "last_value": n,
            "high_run": len(self.high_run),
            "high_at": len(self.high_at),
            "incidents.active": len(self.incidents.active),
            "faults.active": len(self.faults.active),
        }
        if len(set(sizes.values())) > 1 or n > streams:
            raise ValueError(f"per-stream state does not fit {streams} streams: sizes {sizes}")
        self._grow()  # state saved before its streams' rows were grown
        self._index_rows()
