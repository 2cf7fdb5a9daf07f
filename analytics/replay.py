"""Replay: re-run the recorded inputs of a window through the detectors and rules, in isolation.

The recorded readings and zone states are read from the live `Store` (read only) in event-time
order and fed, slice by slice, through the SAME worker classes as the live system (`Worker`,
`DetectWorker`, `CrowdWorker`) over a private `MemoryBus` and a scratch SQLite store: no live
alert is written, nothing reaches the operators' topics. Alert ids and times derive from the
inputs and the settings only (event time, never the wall clock), so with the recorded settings
the replay raises exactly the recorded alerts; with candidate settings, `compare` says what the
change would have done.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from analytics.crowd_worker import CrowdWorker
from analytics.detect_worker import DetectWorker, DetectWorkerConfig
from analytics.settings import AnalyticsPlatformSettings
from analytics.worker import Worker
from beffroi.clock import ensure_aware
from beffroi.events import Alert
from beffroi.memory_bus import MemoryBus
from beffroi.records import reading_record, zone_state_record
from beffroi.sqlite_store import SqliteStore
from beffroi.store import Store
from beffroi.venue import Venue

PAGE = 5000
"""Readings read from the store per query."""


@dataclass(frozen=True)
class ReplayWindow:
    since: datetime
    until: datetime
    site_ids: tuple[str, ...] | None = None
    slice_s: float = 60.0
    """Event time fed per step (progress and pacing advance by slices)."""

    def __post_init__(self) -> None:
        ensure_aware(self.since, what="since")
        ensure_aware(self.until, what="until")
        if self.until <= self.since:
            raise ValueError(f"the window ends ({self.until}) before it starts ({self.since})")
        if self.slice_s <= 0:
            raise ValueError("slice_s must be positive")

    @property
    def span_s(self) -> float:
        return (self.until - self.since).total_seconds()


@dataclass(frozen=True)
class Progress:
    reached: datetime
    fraction: float
    readings: int
    zone_states: int
    alerts: int
    wall_s: float


@dataclass
class ReplayResult:
    window: ReplayWindow
    alerts: list[Alert]
    """Raised by the replay, oldest first (ties by alert_id)."""
    recorded: list[Alert]
    """Recorded in the live store for the same window and sites, oldest first."""
    sites: list[str]
    readings: int = 0
    zone_states: int = 0
    wall_s: float = 0.0

    @property
    def speedup(self) -> float:
        """Event time replayed per second of wall time."""
        return self.window.span_s / self.wall_s if self.wall_s > 0 else float("inf")


def replay(
    store: Store,
    settings: AnalyticsPlatformSettings,
    window: ReplayWindow,
    *,
    venue: Venue | None = None,
    speed: float | None = None,
    progress: Callable[[Progress], None] | None = None,
    scratch_dir: Path | None = None,
) -> ReplayResult:
    """Replay `window` with `settings` (the recorded ones, or a candidate). `speed`: event seconds
    per wall second (None: as fast as possible). `store` is only read."""
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be positive (got {speed})")
    with tempfile.TemporaryDirectory(prefix="beffroi-replay-", dir=scratch_dir) as tmp:
        scratch = SqliteStore(Path(tmp) / "replay.db")
        bus = MemoryBus()
        try:
            scratch.migrate()
            bus.ensure_topics(settings.kafka.partitions())
            return _run(store, scratch, bus, settings, window, venue, speed, progress)
        finally:
            scratch.close()
            bus.close()


def _run(
    store: Store,
    scratch: Store,
    bus: MemoryBus,
    settings: AnalyticsPlatformSettings,
    window: ReplayWindow,
    venue: Venue | None,
    speed: float | None,
    progress: Callable[[Progress], None] | None,
) -> ReplayResult:
    worker = Worker.from_settings(settings, bus=bus, store=scratch)
    detect = None
    if settings.detectors.enabled:
        config = dataclasses.replace(DetectWorkerConfig.from_settings(settings), snapshot_path=None)
        detect = DetectWorker(bus=bus, store=scratch, config=config, venue=venue)
    crowd = CrowdWorker.from_settings(settings, bus=bus, store=scratch) if settings.crowd.enabled else None
    readings_topic, zone_topic = settings.kafka.topic("readings"), settings.kafka.topic("zone_state")
    sites: set[str] = set()
    result = ReplayResult(window=window, alerts=[], recorded=[], sites=[])
    started = time.monotonic()
    alerts = 0
    t = window.since
    while t < window.until:
        end = min(t + timedelta(seconds=window.slice_s), window.until)
        after: tuple[datetime, str] | None = None
        while True:
            page = store.scan_readings(t, end, site_ids=window.site_ids, after=after, limit=PAGE)
            for r in page:
                out = reading_record(readings_topic, r)
                bus.send(out.topic, out.value, key=out.key, headers=out.headers)
                sites.add(r.site_id)
            result.readings += len(page)
            if len(page) < PAGE:
                break
            after = (page[-1].ts, page[-1].message_id)
        for s in store.list_zone_states(t, end, site_ids=window.site_ids, limit=1_000_000):
            out = zone_state_record(zone_topic, s)
            bus.send(out.topic, out.value, key=out.key, headers=out.headers)
            result.zone_states += 1
            if s.site_id:
                sites.add(s.site_id)
        bus.flush()
        while worker.run_once(timeout_s=0):
            pass
        while detect is not None and detect.run_once(timeout_s=0):
            pass
        while crowd is not None and crowd.run_once(timeout_s=0):
            pass
        alerts = (
            worker.stats.alerts
            + (detect.stats.alerts if detect else 0)
            + (crowd.stats.alerts if crowd else 0)
        )
        t = end
        wall = time.monotonic() - started
        if speed is not None:
            ahead = (t - window.since).total_seconds() / speed - wall
            if ahead > 0:
                time.sleep(ahead)
        if progress is not None:
            progress(
                Progress(
                    reached=t,
                    fraction=(t - window.since).total_seconds() / window.span_s,
                    readings=result.readings,
                    zone_states=result.zone_states,
                    alerts=alerts,
                    wall_s=time.monotonic() - started,
                )
            )
    if detect is not None:
        detect.drain()  # the end of input: the ticks still waiting for late readings
    for w in (worker, detect, crowd):
        if w is not None:
            w.close()
    result.wall_s = time.monotonic() - started
    result.sites = sorted(sites if window.site_ids is None else set(window.site_ids) | sites)
    result.alerts = _in_window(scratch, result.sites, window)
    result.recorded = _in_window(store, result.sites, window)
    return result


def _in_window(store: Store, sites: Iterable[str], window: ReplayWindow) -> list[Alert]:
    alerts = [
        a
        for site in sites
        for a in store.list_alerts(site, since=window.since, until=window.until, limit=1_000_000)
    ]
    return sorted(alerts, key=lambda a: (a.raised_at, a.alert_id))


# -- comparison ---------------------------------------------------------------------------------

Change = Literal["same", "earlier", "later", "added", "removed"]
CHANGES: tuple[Change, ...] = ("same", "earlier", "later", "added", "removed")


@dataclass(frozen=True)
class AlertDiff:
    change: Change
    recorded: Alert | None
    replayed: Alert | None

    @property
    def alert(self) -> Alert:
        a = self.replayed or self.recorded
        assert a is not None
        return a

    @property
    def shift_s(self) -> float | None:
        """Replayed minus recorded raise time (negative: earlier)."""
        if self.recorded is None or self.replayed is None:
            return None
        return (self.replayed.raised_at - self.recorded.raised_at).total_seconds()


@dataclass
class Comparison:
    diffs: list[AlertDiff] = field(default_factory=list)

    def count(self, change: Change) -> int:
        return sum(1 for d in self.diffs if d.change == change)

    def by(self, key: Callable[[Alert], str]) -> dict[str, dict[Change, int]]:
        table: dict[str, dict[Change, int]] = defaultdict(lambda: dict.fromkeys(CHANGES, 0))
        for d in self.diffs:
            table[key(d.alert)][d.change] += 1
        return dict(sorted(table.items()))

    @property
    def identical(self) -> bool:
        return all(d.change == "same" for d in self.diffs)


def _episode(a: Alert) -> tuple[str, str, str | None, str | None]:
    return (a.rule, a.site_id, a.zone_id, a.device_id)


def compare(recorded: Sequence[Alert], replayed: Sequence[Alert], *, match_s: float = 600.0) -> Comparison:
    """Pair the two sides: by alert id and time first ("same"), then the same rule and subject
    within `match_s` ("earlier"/"later"); the rest are "added" (replay only) or "removed"."""
    out = Comparison()
    by_id = {a.alert_id: a for a in replayed}
    left: list[Alert] = []
    used: set[str] = set()
    for a in recorded:
        b = by_id.get(a.alert_id)
        if b is not None and b.raised_at == a.raised_at:
            out.diffs.append(AlertDiff("same", a, b))
            used.add(b.alert_id)
        else:
            left.append(a)
    pool: dict[tuple[str, str, str | None, str | None], list[Alert]] = defaultdict(list)
    for b in replayed:
        if b.alert_id not in used:
            pool[_episode(b)].append(b)
    for a in left:
        candidates = pool.get(_episode(a), [])
        best = min(candidates, key=lambda b: abs((b.raised_at - a.raised_at).total_seconds()), default=None)
        if best is not None and abs((best.raised_at - a.raised_at).total_seconds()) <= match_s:
            candidates.remove(best)
            change: Change = "earlier" if best.raised_at < a.raised_at else "later"
            out.diffs.append(AlertDiff(change, a, best))
        else:
            out.diffs.append(AlertDiff("removed", a, None))
    for rest in pool.values():
        out.diffs.extend(AlertDiff("added", None, b) for b in rest)
    out.diffs.sort(key=lambda d: (d.alert.raised_at, d.alert.alert_id))
    return out
