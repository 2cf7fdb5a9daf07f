"""The Prometheus metrics: what the bridge, the worker and the API count, served over HTTP."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta

import pytest

from api.app import create_app
from beffroi import metrics
from beffroi.clock import utcnow
from beffroi.devices import DeviceKind
from beffroi.identity import Role
from beffroi.settings import MetricsSettings
from beffroi.sqlite_store import SqliteStore
from tests.fixtures.api import sign_in, with_auth
from tower.settings import Settings
from tower.testing import alert_on_every_reading, pipeline, tiny_venue

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DEVICES = {"pb-1": DeviceKind.PANIC_BUTTON, "aq-1": DeviceKind.AIR_QUALITY}
LATENCY = "beffroi_latency_seconds"


def now_samples() -> list[metrics.Sample]:
    return metrics.parse(metrics.exposition()[0].decode())


def delta(before: list[metrics.Sample], after: list[metrics.Sample], name: str, **labels: str) -> float:
    return metrics.total(after, name, **labels) - metrics.total(before, name, **labels)


def test_the_slice_counts_messages_dead_letters_alerts_latency_and_lag() -> None:
    with pipeline(DEVICES, settings=alert_on_every_reading()) as p:
        before = now_samples()
        p.publish("pb-1", {"pressed": 1}, ts=utcnow() - timedelta(seconds=2))
        p.publish("aq-1", {"pm25": 20, "co": 1})
        p.send_raw("aq-1", b"not json")
        p.drain()
        after = now_samples()

    assert delta(before, after, "beffroi_messages_in_total", component="bridge") == 3
    assert delta(before, after, "beffroi_messages_out_total", component="bridge") == 3
    assert delta(before, after, "beffroi_dead_letters_total", stage="bridge", reason="malformed_json") == 1
    assert delta(before, after, "beffroi_messages_in_total", component="worker") == 3  # 2 readings, 1 letter
    assert delta(before, after, "beffroi_messages_out_total", component="worker") == 3
    assert delta(before, after, "beffroi_alerts_raised_total", rule="panic-button") == 1
    for stage, count in (("forwarded", 2), ("stored", 2), ("alerted", 1)):
        assert delta(before, after, f"{LATENCY}_count", stage=stage) == count, stage
    # the panic press is two seconds old: its alert is counted between 2 and 3 s
    alerted = metrics.difference(
        metrics.buckets(after, LATENCY, stage="alerted"), metrics.buckets(before, LATENCY, stage="alerted")
    )
    assert alerted[2.0] == 0
    assert alerted[3.0] == 1
    assert 2.0 < metrics.quantile(alerted, 0.5) <= 3.0
    # the worker caught up: every partition it polled is at its end (the gauges go once it closed)
    # this pipeline's topics only: another test's worker in this process may still hold its gauges
    topics = {p.settings.kafka.topic(name) for name in p.settings.kafka.topics.all()}
    lags = [
        s
        for s in after
        if s.name == "beffroi_consumer_lag"
        and s.labels["component"] == "worker"
        and s.labels["topic"] in topics
    ]
    assert lags
    assert {s.value for s in lags} == {0.0}
    assert not [
        s
        for s in now_samples()
        if s.name == "beffroi_consumer_lag"
        and s.labels["group"] == p.worker.config.group
        and s.labels["topic"] in topics
    ]


def test_a_component_serves_its_metrics_over_http() -> None:
    port = metrics.serve(MetricsSettings(port=0))
    assert port is not None
    metrics.FAILURES.labels("test-http", "probe").inc()
    samples = metrics.scrape(f"http://127.0.0.1:{port}/metrics")
    assert metrics.total(samples, "beffroi_failures_total", component="test-http", step="probe") == 1
    assert metrics.serve(MetricsSettings()) is None


def test_the_api_serves_metrics_with_its_sse_listeners(tmp_path) -> None:
    store = SqliteStore(tmp_path / "api.db")
    store.migrate()
    app = create_app(
        with_auth(Settings()),
        store=store,
        venue=tiny_venue({"pb-1": "panic_button"}),
        live_alerts=False,
    )
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401, "a scraper signs in too (a viewer's token)"
        answer = client.get("/metrics", headers=sign_in(client, "scraper", role=Role.VIEWER))
    store.close()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    names = {s.name for s in metrics.parse(answer.text)}
    assert {"beffroi_sse_listeners", "beffroi_messages_in_total"} <= names


def test_quantile_interpolates_within_the_bucket_as_promql_does() -> None:
    cumulative = {0.1: 50.0, 0.2: 90.0, 0.5: 100.0, math.inf: 100.0}
    assert metrics.quantile(cumulative, 0.5) == pytest.approx(0.1)
    assert metrics.quantile(cumulative, 0.7) == pytest.approx(0.15)
    assert metrics.quantile(cumulative, 0.95) == pytest.approx(0.35)
    assert metrics.quantile({0.1: 0.0, math.inf: 0.0}, 0.5) != metrics.quantile(
        {0.1: 0.0, math.inf: 0.0}, 0.5
    )
