"""The crowd worker: the video pipeline's zone states (topic `zone_state`) through the zone rules
(density, density trend, gate flow) into alerts.

A consumer group of its own (settings `crowd`), so that a backlog of sensor readings never delays a
crowd-safety alert. Per batch, in `ConsumerLoop`'s way: decode, step every rule from its current
state, store the alerts, publish them, flush, commit, and only then keep the rules' new states. A
batch that fails is evaluated again from the same states, so it raises the same alert ids. A record
that does not decode is stored as a dead letter (stage "worker") and skipped.

After a restart (or a rebalance) the rules start empty and would alert again on an episode in
progress: the first alert of each rule, subject and level is therefore checked against the store,
and dropped when an open alert of the same episode was raised within `resume_s` before it.

Run alone with `python -m tower.processes.crowd_worker --settings FILE`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from analytics.consumer import ConsumerLoop, LoopStats, WorkerError
from analytics.provenance import rule_provenance, stamped
from analytics.rules.registry import build_zone_rules
from analytics.rules.zone import ZoneRule
from analytics.settings import AnalyticsPlatformSettings
from beffroi.bus import Bus, Record
from beffroi.events import Alert, DeadLetter
from beffroi.records import ZoneState, decode_zone_state
from beffroi.store import Store, StoreError

log = logging.getLogger(__name__)

EpisodeKey = tuple[str, str, str | None, str, tuple[str, ...]]


def episode_key(alert: Alert) -> EpisodeKey:
    """Rule, site, zone, severity (the level) and subject (`source_ids[0]`) of a zone rule's alert."""
    return (alert.rule, alert.site_id, alert.zone_id, alert.severity.value, alert.source_ids[:1])


@dataclass(frozen=True)
class CrowdWorkerConfig:
    zone_state_topic: str
    alerts_topic: str
    group: str = "beffroi-crowd"
    batch_size: int = 2000
    poll_timeout_s: float = 0.5
    resume_s: float = 900.0
    retry_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)

    @classmethod
    def from_settings(cls, settings: AnalyticsPlatformSettings) -> CrowdWorkerConfig:
        crowd = settings.crowd
        return cls(
            zone_state_topic=settings.kafka.topic("zone_state"),
            alerts_topic=settings.kafka.topic("alerts"),
            group=crowd.group,
            batch_size=crowd.batch_size,
            poll_timeout_s=crowd.poll_timeout_s,
            resume_s=crowd.resume_s,
        )


@dataclass
class CrowdStats(LoopStats):
    states: int = 0
    resumed: int = 0  # alerts not raised: an open alert of an earlier run covers their episode

    def summary(self) -> str:
        return (
            f"crowd worker: {self.states} zone states, {super().summary()}, {self.resumed} resumed episodes"
        )


@dataclass
class CrowdBatch:
    records: list[Record]
    states: list[ZoneState] = field(default_factory=list)
    state_records: list[Record] = field(default_factory=list)  # each state's record
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    rule_states: list[Any] = field(default_factory=list)  # each rule's state after the batch
    raised: list[Alert] = field(default_factory=list)  # alerts before the resume check


class CrowdWorker(ConsumerLoop[CrowdBatch]):
    config: CrowdWorkerConfig
    stats: CrowdStats
    component = "crowd"

    def __init__(
        self, *, bus: Bus, store: Store, rules: Sequence[ZoneRule], config: CrowdWorkerConfig
    ) -> None:
        super().__init__(bus=bus, store=store)
        self.rules = list(rules)
        self._provenance = [rule_provenance(r) for r in self.rules]
        self.config = config
        self.stats = CrowdStats()
        self.rule_states: list[Any] = [r.initial() for r in self.rules]
        self._checked: set[EpisodeKey] = set()

    @classmethod
    def from_settings(cls, settings: AnalyticsPlatformSettings, *, bus: Bus, store: Store) -> CrowdWorker:
        return cls(
            bus=bus,
            store=store,
            rules=build_zone_rules(settings.crowd.rules),
            config=CrowdWorkerConfig.from_settings(settings),
        )

    def topics(self) -> list[str]:
        return [self.config.zone_state_topic]

    def process(self, records: list[Record]) -> CrowdBatch:
        batch = self.decode(records)
        self._step("store zone states", lambda: self._store_states(batch))
        self._step("store dead letters", lambda: self.write_dead_letters(batch.dead_letters))
        new_states, raised = self.evaluate(batch.states)
        batch.alerts = self._step("resume episodes", lambda: self._resume(raised))
        self._step("store alerts", lambda: self._count_new_alerts(batch.alerts))
        self._step("publish alerts", lambda: self._publish(batch.alerts))
        batch.rule_states, batch.raised = new_states, raised
        return batch

    def keep(self, batch: CrowdBatch) -> None:
        """Committed: the rules go on from the batch's states."""
        self.rule_states = batch.rule_states
        self._checked.update(episode_key(a) for a in batch.raised)
        s = self.stats
        s.states += len(batch.states)
        s.alerts += len(batch.alerts)
        s.resumed += len(batch.raised) - len(batch.alerts)
        s.batches += 1

    def decode(self, records: Sequence[Record]) -> CrowdBatch:
        batch = CrowdBatch(list(records))
        for record in records:
            try:
                batch.states.append(decode_zone_state(record))
                batch.state_records.append(record)
            except Exception as exc:  # whatever a record holds, it never stops the worker
                batch.dead_letters.append(self._worker_dead_letter(record, exc))
        return batch

    def _store_states(self, batch: CrowdBatch) -> None:
        """Store the batch's zone states; one the store refuses alone becomes a dead letter and
        leaves the batch (the rules never see it)."""
        refused: set[int] = set()
        records = {id(s): rec for s, rec in zip(batch.states, batch.state_records, strict=True)}

        def refuse(state: ZoneState, exc: StoreError) -> None:
            refused.add(id(state))
            batch.dead_letters.append(self.refused_dead_letter(records[id(state)], exc))

        self.write_isolating(batch.states, self.store.write_zone_states, refuse)
        if refused:
            kept = [(s, rec) for s, rec in zip(batch.states, batch.state_records, strict=True)]
            kept = [(s, rec) for s, rec in kept if id(s) not in refused]
            batch.states = [s for s, _ in kept]
            batch.state_records = [rec for _, rec in kept]

    def evaluate(self, states: Sequence[ZoneState]) -> tuple[list[Any], list[Alert]]:
        """Every rule stepped from its current state (left as it is): (new states, alerts)."""
        new_states: list[Any] = []
        alerts: list[Alert] = []
        for rule, state, provenance in zip(self.rules, self.rule_states, self._provenance, strict=True):
            try:
                new, raised = rule.step(state, states)
            except Exception as exc:
                raise WorkerError(f"rule {rule.name}", exc) from exc
            new_states.append(new)
            alerts += stamped(provenance, raised)
        return new_states, alerts

    def _resume(self, alerts: Sequence[Alert]) -> list[Alert]:
        """`alerts` less those whose episode an open alert of an earlier run already reports."""
        if self.config.resume_s <= 0:
            return list(alerts)
        kept = []
        for alert in alerts:
            key = episode_key(alert)
            if key not in self._checked and self._open_before(alert, key):
                log.info("crowd worker: %s continues an open alert, not raised again", key)
                continue
            kept.append(alert)
        return kept

    def _open_before(self, alert: Alert, key: EpisodeKey) -> bool:
        earlier = self.store.list_alerts(
            alert.site_id,
            since=alert.raised_at - timedelta(seconds=self.config.resume_s),
            until=alert.raised_at,
            is_open=True,
            limit=1000,
        )
        return any(a.alert_id != alert.alert_id and episode_key(a) == key for a in earlier)
