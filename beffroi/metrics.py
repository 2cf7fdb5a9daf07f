"""Prometheus metrics of the sensor path, defined once for every component (prometheus-client).

Each process serves them with `serve(settings.metrics)` (the bridge and the workers) or under
`/metrics` of the API. The `component` label tells the bridge, worker, crowd worker... apart when
several run in one process (embedded mode). Latencies are measured from the sensor's own timestamp
(`Reading.ts`, `Alert.raised_at`), so a sensor whose clock is off shifts them.

`parse` and `quantile` read an endpoint's text back (benchmarks, the JO-scale run).
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.parser import text_string_to_metric_families

from beffroi.bus import TopicPartition
from beffroi.clock import utcnow
from beffroi.settings import MetricsSettings

# seconds: fine between 10 ms and 1 s, where the latency targets lie; coarse up to 10 minutes
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip

MESSAGES_IN: Final = Counter(
    "beffroi_messages_in", "Messages taken in: MQTT messages (bridge), bus records (workers)", ["component"]
)
MESSAGES_OUT: Final = Counter(
    "beffroi_messages_out",
    "Messages done with: acknowledged to MQTT once Kafka stored them (bridge), committed (workers)",
    ["component"],
)
DEAD_LETTERS: Final = Counter(
    "beffroi_dead_letters", "Messages set aside as dead letters, by stage and reason", ["stage", "reason"]
)
FAILURES: Final = Counter(
    "beffroi_failures",
    "Failed steps (each retried: nothing acknowledged or committed)",
    ["component", "step"],
)
PENDING: Final = Gauge(
    "beffroi_pending_messages", "Messages received and not acknowledged yet (bridge)", ["component"]
)
CONSUMER_LAG: Final = Gauge(
    "beffroi_consumer_lag",
    "Records between the group's position and the end of each assigned partition",
    ["component", "group", "topic", "partition"],
)
LATENCY: Final = Histogram(
    "beffroi_latency_seconds",
    "Sensor timestamp to: stored in Kafka (forwarded), stored in the store (stored), alert stored and "
    "published (alerted)",
    ["component", "stage"],
    buckets=LATENCY_BUCKETS,
)
ALERTS_RAISED: Final = Counter(
    "beffroi_alerts_raised",
    "Alerts raised by the rules (a redelivered batch raises its alerts again)",
    ["rule"],
)
SSE_LISTENERS: Final = Gauge("beffroi_sse_listeners", "Clients following the live alerts (SSE)")


def serve(settings: MetricsSettings) -> int | None:
    """Serve this process's metrics on `settings.host:settings.port` in a daemon thread; returns the
    port (None when `port` is unset). Port 0 picks a free one."""
    if settings.port is None:
        return None
    server, _ = start_http_server(settings.port, addr=settings.host, registry=REGISTRY)
    return int(server.server_port)


def exposition() -> tuple[bytes, str]:
    """This process's metrics in the text format, and its content type (for an HTTP answer)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_latency(
    component: str, stage: str, since: Iterable[datetime], *, now: datetime | None = None
) -> None:
    """One latency observation per sensor timestamp in `since`, up to `now`."""
    histogram = LATENCY.labels(component, stage)
    now = now or utcnow()
    for ts in since:
        histogram.observe(max(0.0, (now - ts).total_seconds()))


class LagGauge:
    """Sets `beffroi_consumer_lag` of one consumer's partitions (and forgets those it lost)."""

    def __init__(self, component: str, group: str) -> None:
        self.component = component
        self.group = group
        self._known: set[TopicPartition] = set()

    def update(self, lag: Mapping[TopicPartition, int]) -> None:
        for tp, records in lag.items():
            CONSUMER_LAG.labels(self.component, self.group, tp.topic, str(tp.partition)).set(records)
        for tp in self._known - set(lag):
            CONSUMER_LAG.remove(self.component, self.group, tp.topic, str(tp.partition))
        self._known = set(lag)

    def clear(self) -> None:
        self.update({})


# -- reading an endpoint back ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def scrape(url: str, *, timeout_s: float = 5.0) -> list[Sample]:
    """The samples of a /metrics endpoint (`http://host:port/metrics`)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return parse(response.read().decode())


def parse(text: str) -> list[Sample]:
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    return sum(
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def buckets(samples: Iterable[Sample], name: str, **labels: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram (summed over the samples matching `labels`)."""
    out: dict[float, float] = {}
    for s in samples:
        if s.name == f"{name}_bucket" and _has(s, labels):
            bound = float(s.labels["le"])
            out[bound] = out.get(bound, 0.0) + s.value
    return dict(sorted(out.items()))


def quantile(cumulative: Mapping[float, float], q: float) -> float:
    """PromQL's histogram_quantile: linear within the bucket holding the q-th observation (NaN if none)."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] == 0:
        return math.nan
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


def difference(after: Mapping[float, float], before: Mapping[float, float]) -> dict[float, float]:
    """The observations between two scrapes of the same histogram."""
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def _has(sample: Sample, labels: Mapping[str, str]) -> bool:
    return all(sample.labels.get(k) == v for k, v in labels.items())
