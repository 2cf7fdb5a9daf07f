"""The detector worker: readings from the bus -> detector stack -> scores and alerts.

One member of its own consumer group on the readings topic. Per poll: decode the readings, feed
the `DetectEngine`, and for every tick it closes write the alerts through the `Store` (idempotent
on their derived ids), publish them (topic `alerts`) and the per-site scores (topic `scores`),
then `flush` the bus. Every `snapshot_every_s` it saves the engine state with the subscription's
positions (atomically, `analytics.snapshot`), and only then commits those positions.

Restart: the snapshot's state is loaded and the subscription seeks to the snapshot's positions,
so the readings after it are replayed into exactly the state that first saw them: the same
scores, the same alert ids. Without a snapshot file the worker starts cold from the group's
committed offsets. The loop (poll, process, checkpoint, start again after a failure) is
`analytics.consumer.ConsumerLoop`, the same as the other workers'; the snapshot fills its hooks.
Run alone with `python -m tower.processes.detect_worker --settings FILE`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analytics.consumer import ConsumerLoop, LoopStats, WorkerError
from analytics.detectors.engine import DetectEngine, EngineConfig, PhaseSource, TickResult
from analytics.provenance import provenance_of
from analytics.settings import AnalyticsPlatformSettings
from analytics.snapshot import SnapshotError, load_snapshot, save_snapshot
from beffroi.bus import Bus, BusError, Record, Subscription, TopicPartition
from beffroi.events import Alert
from beffroi.records import SiteScores, decode_reading, score_record
from beffroi.store import Store
from beffroi.venue import Venue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectWorkerConfig:
    readings_topic: str
    scores_topic: str
    alerts_topic: str
    group: str = "beffroi-detectors"
    batch_size: int = 2000
    poll_timeout_s: float = 0.5
    snapshot_path: Path | None = None
    snapshot_every_s: float = 30.0
    publish_scores: bool = True
    max_skew_s: float = 300.0
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry_backoff_s: tuple[float, ...] = (1.0,)

    @classmethod
    def from_settings(
        cls,
        settings: AnalyticsPlatformSettings,
        *,
        snapshot_path: Path | None = None,
        engine: EngineConfig | None = None,
    ) -> DetectWorkerConfig:
        det = settings.detectors
        return cls(
            readings_topic=settings.kafka.topic("readings"),
            scores_topic=settings.kafka.topic("scores"),
            alerts_topic=settings.kafka.topic("alerts"),
            group=det.group,
            batch_size=settings.worker.batch_size,
            poll_timeout_s=settings.worker.poll_timeout_s,
            snapshot_path=snapshot_path or det.snapshot_path,
            engine=engine or det.engine,
        )


@dataclass
class DetectStats(LoopStats):
    readings: int = 0
    ticks: int = 0
    snapshots: int = 0
    restored_from: str | None = None

    def summary(self) -> str:
        return (
            f"detect worker: {self.readings} readings, {self.ticks} ticks, {self.alerts} alerts "
            f"({self.new_alerts} new), {self.bad_records} bad records, {self.snapshots} snapshots, "
            f"{self.failures} failed batches"
        )


def zone_kinds_of(venue: Venue) -> dict[tuple[str, str], str]:
    """(site, zone) -> kind of zone: the narrower peer groups of the detectors (stands with stands)."""
    return {(site.id, zone.id): zone.kind.value for site in venue.sites for zone in site.zones}


class DetectWorker(ConsumerLoop[list[TickResult]]):
    """The detectors in `ConsumerLoop`: a subscription restores the snapshot (`on_subscribe`), a
    checkpoint snapshots then commits (`checkpoint`), a failure drops the in-memory state
    (`on_failure`) so that the next subscription restores it again."""

    config: DetectWorkerConfig
    stats: DetectStats
    RESUME_FROM = "the last snapshot"
    component = "detectors"

    def __init__(
        self,
        *,
        bus: Bus,
        store: Store,
        config: DetectWorkerConfig,
        phases: PhaseSource | None = None,
        venue: Venue | None = None,
        zone_kinds: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        """`venue` (or `zone_kinds` directly) tells the engine what each zone is for; without it drift
        compares a sensor with every same-kind sensor of its site."""
        super().__init__(bus=bus, store=store)
        self.config = config
        kinds = dict(zone_kinds or {})
        if venue is not None:
            kinds = {**zone_kinds_of(venue), **kinds}
        self.engine = DetectEngine(config.engine, phases=phases, zone_kinds=kinds)
        self.provenance = provenance_of(config.engine)
        self.stats = DetectStats()
        self._last_snapshot = time.monotonic()
        self._partition_ts: dict[str, float] = {}

    def topics(self) -> list[str]:
        return [self.config.readings_topic]

    def on_subscribe(self, subscription: Subscription) -> None:
        path = self.config.snapshot_path
        if path is None:
            return
        loaded = load_snapshot(path)
        if loaded is None:
            return
        arrays, meta = loaded
        try:
            self.engine.load_state(arrays, meta["engine"])
            partition_ts = {str(k): float(v) for k, v in meta.get("partition_ts", {}).items()}
            positions = [(str(t), int(p), int(o)) for t, p, o in meta["positions"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            # a snapshot of another version, or of another venue: detectors start cold instead
            aside = path.with_name(path.name + ".incompatible")
            path.replace(aside)
            self._fresh_engine()
            log.error(
                "detect worker: %s does not fit this detector state (%r); moved to %s, starting cold",
                path,
                exc,
                aside,
            )
            return
        self._partition_ts = partition_ts
        for topic, partition, offset in positions:
            subscription.seek(TopicPartition(topic, partition), offset)
        self.stats.restored_from = str(path)
        log.info("detect worker: restored %d streams from %s", len(self.engine.table), path)

    def process(self, records: list[Record]) -> list[TickResult]:
        """Decode the readings, feed the engine, store and publish what the ticks it closes raise."""
        readings = []
        for record in records:
            try:
                r = decode_reading(record)
            except Exception as exc:  # the analytics worker dead-letters it; here it is only skipped
                self.stats.bad_records += 1
                log.warning("%s", exc)
                continue
            readings.append(r)
            if not self.engine.trusted(r):
                continue  # a skewed sensor clock must not move the watermark
            key = f"{record.topic}:{record.partition}"
            t = r.ts.timestamp()
            self._partition_ts[key] = max(self._partition_ts.get(key, t), t)
        self.stats.readings += len(readings)
        results = self.engine.add(readings, watermark=self._watermark())
        self._emit(results)
        return results

    def checkpoint(self) -> None:
        """Commit the positions a snapshot covers: every `snapshot_every_s` a snapshot, then its
        positions; without a snapshot file, after every batch."""
        cfg = self.config
        if cfg.snapshot_path is None:
            self._commit()
        elif time.monotonic() - self._last_snapshot >= cfg.snapshot_every_s:
            self.snapshot()

    def keep(self, batch: list[TickResult]) -> None:
        self.stats.batches += 1

    def idle(self) -> None:
        self.checkpoint()

    def on_failure(self) -> None:
        self._fresh_engine()

    def _fresh_engine(self) -> None:
        self.engine = DetectEngine(
            self.config.engine, phases=self.engine.phases, zone_kinds=self.engine.zone_kinds
        )

    def _watermark(self) -> float | None:
        """Event time up to which every partition with data has delivered, minus the lateness.

        Partitions are tracked by the latest reading time each has delivered. Only partitions that
        have delivered are waited for: on a sparse venue most partitions of the readings topic stay
        empty, and waiting for them would keep detection quiet for `max_skew_s`. One far behind the
        newest (`max_skew_s`: silent devices) does not hold detection back either.
        """
        if not self._partition_ts:
            return None
        floor = max(self._partition_ts.values()) - self.config.max_skew_s
        current = [t for t in self._partition_ts.values() if t >= floor]
        return min(current) - self.config.engine.lateness_s

    def drain(self) -> None:
        """Score every buffered tick now (end of input: tests, replays)."""
        self._emit(self.engine.flush())

    def _emit(self, results: Sequence[TickResult]) -> None:
        if not results:
            return
        alerts: list[Alert] = self.provenance.stamp([a for r in results for a in r.alerts])
        scores = [SiteScores(s.site_id, s.tick, s.streams) for r in results for s in r.scores]
        self._step("store alerts", lambda: self._count_new_alerts(alerts))
        self._step("store scores", lambda: self.store.write_scores(scores) if scores else 0)
        self._step("publish", lambda: self._publish_results(alerts, results))
        self.stats.ticks += len(results)
        self.stats.alerts += len(alerts)

    def _publish_results(self, alerts: Sequence[Alert], results: Sequence[TickResult]) -> None:
        self._send_alerts(alerts)
        if self.config.publish_scores:
            for result in results:
                for site in result.scores:
                    out = score_record(self.config.scores_topic, site.site_id, site.tick, site.streams)
                    self.bus.send(out.topic, out.value, key=out.key)
        self.bus.flush()
        if alerts:
            self._published(alerts)

    def snapshot(self) -> None:
        """Save the engine state with the positions it corresponds to, then commit them."""
        sub = self.subscription
        arrays, engine_meta = self.engine.export_state()
        positions = [
            [tp.topic, tp.partition, offset]
            for tp, offset in sorted(
                sub.positions().items(), key=lambda item: (item[0].topic, item[0].partition)
            )
        ]
        assert self.config.snapshot_path is not None
        try:
            save_snapshot(
                self.config.snapshot_path,
                arrays,
                {"engine": engine_meta, "positions": positions, "partition_ts": self._partition_ts},
            )
        except SnapshotError as exc:
            raise WorkerError("snapshot", exc) from exc
        self.stats.snapshots += 1
        self._last_snapshot = time.monotonic()
        self._commit()

    def _commit(self) -> None:
        try:
            self.subscription.commit()
        except BusError as exc:  # rebalanced: the records come again to their new owner
            log.warning("detect worker: commit failed: %s", exc)

    def _reset(self) -> None:
        """Drop the in-memory state and subscription: the next poll restores from the snapshot."""
        self.on_failure()
        self.close()

    def shutdown(self) -> None:
        """Snapshot the state (when a snapshot file is configured and anything was read), then close."""
        if self.config.snapshot_path is not None and self._subscription is not None:
            try:
                self.snapshot()
            except WorkerError as exc:
                log.error("%s; the next start replays from the previous snapshot", exc)
        self.close()
