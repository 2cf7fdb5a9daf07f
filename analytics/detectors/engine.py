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

Per-stream state is declared once, as `Column`s of one `Rows` table (`ENGINE_COLUMNS`, and each
`Episodes` its own): growing for new streams, `export_state` and `load_state` are generic, so a
part added to the engine brings its state by declaring its columns. Alerts and per-site scores are
built from each scored tick by `analytics.detectors.alerts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.alerts import AlertInfo, ScoredTick, aware, site_scores, tick_alerts
from analytics.detectors.base import DetectorError, Phase
from analytics.detectors.rows import Column, Rows
from analytics.detectors.stack import DetectorStack, StackConfig
from analytics.detectors.streams import StreamTable
from beffroi.events import Alert, Reading
from beffroi.records import SiteScores

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
class TickResult:
    tick: datetime
    readings: int
    alerts: list[Alert] = field(default_factory=list)
    scores: list[SiteScores] = field(default_factory=list)
    info: dict[str, AlertInfo] = field(default_factory=dict)


class Episodes:
    """Hysteresis per stream for one alert category, in the columns `{name}.active`, `.quiet`
    (ticks below the off level) and `.start` (epoch seconds) of `rows`."""

    def __init__(self, rows: Rows, name: str) -> None:
        self.rows = rows
        self.active, self.quiet, self.start = (f"{name}.{c}" for c in ("active", "quiet", "start"))
        rows.declare(
            {
                self.active: Column(np.bool_, False),
                self.quiet: Column(np.int64, 0),
                self.start: Column(np.float64, 0.0),
            }
        )

    def step(self, hot: NDArray, cold: NDArray, now: float, cooldown_ticks: int) -> NDArray:
        """Update with this tick; returns the rows whose episode starts now."""
        rows = self.rows
        active = rows[self.active]
        onset = hot & ~active
        active |= onset
        rows[self.start][onset] = now
        quiet = np.where(hot, 0, np.where(active & cold, rows[self.quiet] + 1, rows[self.quiet]))
        ended = active & (quiet > cooldown_ticks)
        active &= ~ended
        quiet[ended] = 0
        rows[self.quiet] = quiet
        return np.flatnonzero(onset)


# the engine's own per-stream state (the episodes declare theirs); "fill" columns were added after
# the first snapshots were written, which restore without them
ENGINE_COLUMNS: dict[str, Column] = {
    "last_ts": Column(np.float64, -math.inf),  # sensor time of the latest reading (duplicates)
    "last_value": Column(np.float64, math.nan),
    "last_message": Column(object, ""),  # message id of the latest reading
    "skewed_until": Column(np.float64, 0.0),  # clock-skew fault held until
    "recent_dups": Column(np.float64, 0.0),  # decaying count of duplicate readings
    "held_until": Column(np.float64, 0.0, restore="fill"),  # incident alerts held until (faults)
    "high_run": Column(np.float64, 0.0, restore="fill"),  # readings in a row at the incident level
    "high_at": Column(np.float64, -math.inf, restore="fill"),  # latest tick at the incident level
}
_META_KEYS = frozenset({"streams", "pending", "next_tick", "max_ts", "late", "duplicates", "untrusted"})


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
        self.rows = Rows(ENGINE_COLUMNS)
        self.incidents = Episodes(self.rows, "incidents")
        self.faults = Episodes(self.rows, "faults")
        clash = _META_KEYS & {k for k, c in self.rows.columns.items() if c.text}
        if clash:
            raise ValueError(f"text columns {sorted(clash)} clash with the engine's snapshot metadata")
        self.pending: dict[int, list[Reading]] = {}
        self.next_tick: int | None = None
        self.max_ts = -math.inf
        self.late = 0
        self.duplicates = 0
        self.untrusted = 0
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
        skewed_until = self.rows["skewed_until"]
        for row in rows:
            skewed_until[row] = max(skewed_until[row], received + self.config.skew_hold_s)

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
        self.stack.grow(self.table.meta)
        self.rows.grow(len(self.table))
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

    def _take(self, readings: list[Reading]) -> tuple[NDArray, NDArray]:
        """A tick's readings as per-stream (values, present); a repeated timestamp is a duplicate."""
        rows: list[tuple[int, float, Reading]] = []
        for r in readings:
            for name, v in StreamTable.fields_of(r):
                rows.append((self.table.add(r, name), v, r))
        if len(self.table) != self.stack.n:
            self._grow()
        n = len(self.table)
        values = np.full(n, np.nan)
        present = np.zeros(n, np.float32)
        last_ts, last_value = self.rows["last_ts"], self.rows["last_value"]
        last_message, recent_dups = self.rows["last_message"], self.rows["recent_dups"]
        for row, v, r in rows:
            t = r.ts.timestamp()
            if t <= last_ts[row]:
                self.duplicates += 1
                recent_dups[row] += 1.0
                continue
            last_ts[row] = t
            last_value[row] = v
            last_message[row] = r.message_id
            values[row] = v
            present[row] = 1.0
        return values, present

    def _score_tick(self, index: int, readings: list[Reading]) -> TickResult:
        tick_end = (index + 1) * self.config.tick_s
        readings.sort(key=lambda r: (r.ts, r.device_id, r.message_id))
        values, present = self._take(readings)
        result = TickResult(tick=aware(tick_end), readings=len(readings))
        if len(self.table) == 0:
            return result
        scored = self._score(tick_end, values, present)
        result.alerts, result.info = tick_alerts(scored, self.table.streams)
        result.scores = site_scores(scored, self.table.streams)
        return result

    def _score(self, tick_end: float, values: NDArray, present: NDArray) -> ScoredTick:
        """Step the detector stack, add the delivery faults, hold and confirm, step the episodes."""
        cfg = self.config
        rows = self.rows
        n = len(self.table)
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
        rows["recent_dups"] *= 0.5 ** (cfg.tick_s / cfg.duplicate_half_life_s)
        for key, severity in (
            ("clock_skew", np.where(rows["skewed_until"] > tick_end, 2.0, 0.0)),
            ("duplicate", rows["recent_dups"] / cfg.duplicates_for_fault),
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
        held_until = rows["held_until"]
        held_until[unhealthy] = tick_end + cfg.recovery_s
        score[unhealthy | (held_until > tick_end)] = 0.0
        cool_i = int(cfg.cooldown_s / cfg.tick_s)
        cool_f = int(cfg.fault_cooldown_s / cfg.tick_s)
        threshold = np.where(settling[self._site_rows], cfg.settle_on, cfg.incident_on)
        raise_ = self._confirmed(score >= threshold, present > 0, tick_end)
        inc_rows = self.incidents.step(raise_, score < cfg.incident_off, tick_end, cool_i)
        fault_rows = self.faults.step(fault >= 1.0, fault < 1.0, tick_end, cool_f)
        return ScoredTick(
            end=tick_end,
            present=present > 0,
            score=score,
            raw=ops.to_numpy(out.raw),
            fault=fault,
            fault_key=fault_key,
            incident_rows=inc_rows,
            fault_rows=fault_rows,
            direction=self._direction() if len(inc_rows) else None,
            last_value=rows["last_value"],
            last_message=rows["last_message"],
        )

    def _confirmed(self, hot: NDArray, present: NDArray, tick_end: float) -> NDArray:
        """Which rows at the incident level may raise: confirmed by their own readings in a row, or
        corroborated by another device of the zone."""
        cfg = self.config
        rows = self.rows
        run = np.where(present, np.where(hot, rows["high_run"] + 1.0, 0.0), rows["high_run"])
        rows["high_run"] = run
        high_at = rows["high_at"]
        high_at[hot] = tick_end
        if cfg.confirm_readings <= 1:
            return hot
        recent = (run >= 1.0) & (tick_end - high_at <= cfg.corroborate_s)
        n_dev = len(self._device_zone)
        dev_hot = np.bincount(self._device_rows, weights=recent, minlength=n_dev) > 0
        zone_hot = np.bincount(self._device_zone, weights=dev_hot, minlength=self._n_zones)
        others = zone_hot[self._device_zone[self._device_rows]] - dev_hot[self._device_rows]
        return hot & ((run >= cfg.confirm_readings) | (others >= 1))

    def _direction(self) -> NDArray | None:
        """Sign of each stream's last value against its baseline location (None without a baseline)."""
        ops = self.stack.ops
        for d in self.stack.incident:
            if "loc" in d.state and d.state["loc"].ndim == 1:
                loc = ops.to_numpy(d.state["loc"]).astype(np.float64)
                seen = ops.to_numpy(self.stack.transform(ops.asarray(self.rows["last_value"])))
                sign: NDArray = np.sign(seen - loc)
                return sign
        return None

    # state -----------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, NDArray], dict[str, Any]]:
        """(arrays, JSON-able metadata): everything needed to resume exactly here."""
        arrays = {f"stack.{k}": v for k, v in self.stack.export_state().items()}
        columns, texts = self.rows.export()
        arrays.update(columns)
        meta = {
            "streams": self.table.to_json(),
            **texts,
            "pending": {str(k): [r.model_dump(mode="json") for r in v] for k, v in self.pending.items()},
            "next_tick": self.next_tick,
            "max_ts": None if math.isinf(self.max_ts) else self.max_ts,
            "late": self.late,
            "duplicates": self.duplicates,
            "untrusted": self.untrusted,
        }
        return arrays, meta

    def load_state(self, arrays: Mapping[str, NDArray], meta: Mapping[str, Any]) -> None:
        """Resume from what `export_state` returned. Raises `KeyError`, `TypeError` or `ValueError`
        when it does not fit this engine (another version, another detector stack)."""
        self.table = StreamTable.from_json(meta["streams"], zone_kinds=self.zone_kinds)
        self.stack = DetectorStack(self.config.stack, meta=self.table.meta)
        try:
            self.stack.load_state(
                {k[len("stack.") :]: v for k, v in arrays.items() if k.startswith("stack.")}
            )
        except DetectorError as exc:  # a detector added, removed or reshaped since the snapshot
            raise ValueError(str(exc)) from exc
        self.rows.load(arrays, meta)
        self.pending = {
            int(k): [Reading.model_validate(r) for r in v] for k, v in dict(meta["pending"]).items()
        }
        self.next_tick = meta["next_tick"]
        self.max_ts = -math.inf if meta["max_ts"] is None else float(meta["max_ts"])
        self.late = int(meta["late"])
        self.duplicates = int(meta["duplicates"])
        self.untrusted = int(meta["untrusted"])
        if len(self.rows) > len(self.table):
            raise ValueError(f"per-stream state has {len(self.rows)} rows for {len(self.table)} streams")
        self._grow()  # state saved before its streams' rows were grown
        self._index_rows()
