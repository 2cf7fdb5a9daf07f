"""Benchmark of the sensor path in stack mode: Mosquitto -> bridge -> Kafka -> worker -> PostgreSQL.

    source ~/.local/state/beffroi/stack.env
    python -m bench.bench_slice                          # saturation, then 60 s paced at 4,200/s
    python -m bench.bench_slice --duration 300           # the 5-minute paced figure
    python -m bench.bench_slice --only scaleout --scale 1,2,4
    python -m bench.bench_slice --client confluent-kafka # the bus on librdkafka (default: settings)
    python -m bench.bench_slice --only bridge            # the bridge alone against bare paho

Phases, each printing its figures and its ratio in the same run, with the same publishers
(`--publishers` processes of their own, one MQTT connection per device):
1. saturation: a bare paho subscriber (QoS 1, `dev/+/data`) receives N messages -> msgs/s; then
   the bridge and the worker (each its own process, as deployed) take N readings into PostgreSQL
   -> readings/s end to end, and the ratio pipeline / bare subscriber;
2. latency: readings paced at `--rate` (4,200/s: the Paris 2024 venues' 4,200 devices at 1 Hz) for
   `--duration` seconds, one in `--alert-every` alerting -> sensor -> stored-alert latency p50,
   p99, p99.9 (from the worker's `beffroi_latency_seconds{stage="alerted"}` histogram, and exactly
   from an alert tap on the alerts topic), and the backlog (published - committed by the worker)
   sampled every 2 s, at the end and its trend;
3. bridge: the bare paho subscriber again, then the bridge alone (no worker) takes N readings into
   Kafka -> readings/s confirmed by Kafka and acknowledged to MQTT, and the ratio bridge / bare
   subscriber: the bridge's own share of the saturation figure;
4. scaleout: 1, 2, 4... bridges (MQTT shared subscription) and as many workers (one consumer
   group), each N taking M readings flat out -> readings/s and the speed-up over N = 1.
Backlog and latency come from the components' Prometheus endpoints (beffroi/metrics.py). The run
uses topics, a schema, devices and MQTT sessions of its own, removed after it. The machine's other
load shows in every figure: compare the ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from beffroi import metrics
from beffroi.bus_factory import make_bus
from beffroi.clock import utcnow
from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.records import decode_alert
from beffroi.store_factory import make_store
from ingest.mqtt_source import end_session, open_session
from tower.settings import Settings, load_settings
from tower.testing import (
    ComponentProcess,
    alert_on_every_reading,
    provision_devices,
    remove_test_logins,
    tiny_venue,
    write_settings,
    write_venue,
)

DEVICE_KIND = DeviceKind.AIR_QUALITY
MODEL = KIND_SPECS[DEVICE_KIND].model
LATENCY = "beffroi_latency_seconds"


# -- the publisher process ---------------------------------------------------------------------


def publisher_main(argv: list[str]) -> int:
    """`python -m bench.bench_slice publish ...`: publish paced or flat out, timestamps = publish time.

    Prints one JSON line at the start, one per second ({"published": n}) and one at the end."""
    p = argparse.ArgumentParser()
    p.add_argument("--settings", required=True)
    p.add_argument("--devices", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--alert-every", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = as fast as possible")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    from simulators.publish import MqttPublisher, live_objects_payload

    settings = load_settings(args.settings)
    devices = args.devices.split(",")
    publisher = MqttPublisher(settings.mqtt, max_in_flight=20_000)
    print(json.dumps({"start": time.time()}), flush=True)
    t0 = time.monotonic()
    next_report = t0 + 1.0
    for i in range(args.count):
        device = devices[i % len(devices)]
        pm25 = 400.0 if args.alert_every and i % args.alert_every == 0 else 10.0 + i % 50
        raw = live_objects_payload(
            device, model=MODEL, value={"pm25": pm25, "co": 1.0}, ts=utcnow(), tags=[f"{args.tag}{i}"]
        )
        publisher.publish(device, raw)
        if args.rate and i % 20 == 0:
            time.sleep(max(0.0, t0 + i / args.rate - time.monotonic()))
        if i % 200 == 0 and time.monotonic() >= next_report:
            print(json.dumps({"published": i + 1}), flush=True)
            next_report += 1.0
    publisher.flush(timeout=600)
    elapsed = time.monotonic() - t0
    publisher.close()
    print(json.dumps({"published": args.count, "seconds": elapsed}), flush=True)
    return 0


class Publishers:
    """`k` publisher processes, each publishing its share of `count` from its share of the devices."""

    def __init__(self, settings_file: Path, devices: list[str], count: int, k: int, **opts: object) -> None:
        share = count // k
        self.count = count
        self.procs: list[subprocess.Popen[str]] = []
        self.published = [0] * k
        self.seconds = [0.0] * k
        self.starts: list[float] = []
        self._started = threading.Event()
        for i in range(k):
            n = share + (count - share * k if i == 0 else 0)
            cmd = [
                *(sys.executable, "-m", "bench.bench_slice", "publish", "--settings", str(settings_file)),
                *("--devices", ",".join(devices[i::k]), "--count", str(n)),
            ]
            for key, v in opts.items():
                cmd += [f"--{key.replace('_', '-')}", str(v)]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        self._readers = [threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(k)]
        for t in self._readers:
            t.start()

    def _read(self, i: int) -> None:
        stdout = self.procs[i].stdout
        assert stdout is not None
        for line in stdout:
            msg = json.loads(line)
            if "start" in msg:
                self.starts.append(float(msg["start"]))
                if len(self.starts) == len(self.procs):
                    self._started.set()
            self.published[i] = int(msg.get("published", self.published[i]))
            self.seconds[i] = float(msg.get("seconds", self.seconds[i]))

    def started(self) -> float:
        """Wall-clock time at which the first process started publishing."""
        if not self._started.wait(120):
            raise SystemExit(f"publishers did not start ({[p.poll() for p in self.procs]})")
        return min(self.starts)

    def total(self) -> int:
        return sum(self.published)

    def wait(self) -> float:
        """Seconds the slowest process took; raises if one failed."""
        for proc in self.procs:
            if proc.wait(timeout=900) != 0:
                raise SystemExit(f"publisher failed ({proc.returncode})")
        for t in self._readers:
            t.join(timeout=10)
        return max(self.seconds)


# -- the components under test -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Components:
    """`bridges` bridge processes and `workers` worker processes, each with its metrics endpoint."""

    settings: Settings
    settings_file: Path
    log_dir: Path
    bridges: int = 1
    workers: int = 1
    procs: dict[str, list[tuple[ComponentProcess, int]]] = field(default_factory=dict)

    def client_ids(self) -> list[str]:
        base = self.settings.mqtt.client_id
        return [base] if self.bridges == 1 else [f"{base}-{i}" for i in range(self.bridges)]

    def start(self) -> None:
        for client_id in self.client_ids():
            open_session(self.settings.mqtt, client_id=client_id)  # the broker queues from now on
        self.procs = {"bridge": [], "worker": []}
        for kind, module, count in (
            ("bridge", "tower.processes.bridge", self.bridges),
            ("worker", "tower.processes.worker", self.workers),
        ):
            for i in range(count):
                port = free_port()
                env = {"BEFFROI_METRICS__PORT": str(port)}
                if kind == "bridge":
                    env["BEFFROI_MQTT__CLIENT_ID"] = self.client_ids()[i]
                proc = ComponentProcess(
                    module,
                    settings_file=self.settings_file,
                    log_dir=self.log_dir,
                    env=env,
                    name=f"{kind}-{i}",
                )
                proc.start()
                self.procs[kind].append((proc, port))

    def scrape(self, kind: str) -> list[metrics.Sample]:
        out: list[metrics.Sample] = []
        for proc, port in self.procs.get(kind, []):
            try:
                out += metrics.scrape(f"http://127.0.0.1:{port}/metrics", timeout_s=5)
            except OSError as exc:
                if proc.alive:
                    raise SystemExit(f"{proc.module} metrics unreadable: {exc}\n{proc.log_tail()}") from exc
                raise SystemExit(f"{proc.module} exited:\n{proc.log_tail()}") from exc
        return out

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.scrape("bridge")
                self.scrape("worker")
                return
            except SystemExit:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        for procs in self.procs.values():
            for proc, _ in procs:
                proc.stop()
        for client_id in self.client_ids():
            end_session(self.settings.mqtt, client_id=client_id)


class AlertTap:
    """Reads the alerts topic in a group of its own; records sensor->alert latency for our site."""

    def __init__(self, settings: Settings, site: str) -> None:
        self.bus = make_bus(settings, ensure_topics=False)
        self.site = site
        self.latencies_ms: list[float] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        group = f"{settings.kafka.topic_prefix}tap"
        self._sub = self.bus.subscribe(group, [settings.kafka.topic("alerts")])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            records = self._sub.poll(1000, timeout=0.1)
            now = utcnow()
            for r in records:
                alert = decode_alert(r)
                if alert.site_id == self.site and alert.alert_id not in self.seen:
                    self.seen.add(alert.alert_id)
                    self.latencies_ms.append((now - alert.raised_at).total_seconds() * 1000)

    def reset(self) -> None:
        self.latencies_ms = []

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sub.close()
        self.bus.close()


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else math.nan


def committed(stack: Components) -> float:
    return metrics.total(stack.scrape("worker"), "beffroi_messages_out_total", component="worker")


def wait_committed(stack: Components, target: float, timeout: float = 900.0) -> float:
    """Wall-clock time at which the workers had committed `target` records in all."""
    deadline = time.monotonic() + timeout
    while (c := committed(stack)) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {c:.0f}/{target:.0f} records committed after {timeout:.0f}s")
        time.sleep(0.1)
    return time.time()


def load() -> str:
    return "load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def latency_line(label: str, cumulative: dict[float, float]) -> str:
    n = max(cumulative.values(), default=0.0)
    if not n:
        return f"  {label}: no alert observed"
    within = cumulative.get(0.25, 0.0) / n
    q = [metrics.quantile(cumulative, x) * 1000 for x in (0.5, 0.99, 0.999)]
    return (
        f"  {label}: p50 {q[0]:.0f} ms, p99 {q[1]:.0f} ms, p99.9 {q[2]:.0f} ms "
        f"({n:.0f} alerts, {within:.1%} within 250 ms; from the worker's histogram)"
    )


# -- phases ------------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    settings: Settings
    settings_file: Path
    tmp: Path
    site: str
    devices: list[str]

    def components(self, n: int = 1, *, workers: int | None = None) -> Components:
        settings, settings_file = self.settings, self.settings_file
        if n > 1:  # the bridges share the sensor topics: MQTT v5 shared subscription
            mqtt_settings = settings.mqtt.model_copy(update={"share_group": settings.mqtt.client_id})
            settings = settings.model_copy(update={"mqtt": mqtt_settings})
            settings_file = write_settings(settings, self.tmp / f"settings-{n}.yaml")
        return Components(
            settings, settings_file, self.tmp, bridges=n, workers=n if workers is None else workers
        )


def bare_paho(run: Run, n: int) -> tuple[float, float]:
    """A bare paho loop: subscribe dev/+/data at QoS 1 and count our messages. Returns (msgs/s, pub/s)."""
    settings = run.settings
    got = 0
    last = 0.0
    done = threading.Event()
    ours = "dev/" + run.devices[0].rsplit("-", 1)[0] + "-"

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got, last
        if not msg.topic.startswith(ours):
            return
        got += 1
        last = time.time()
        if got >= n:
            done.set()

    subscribed = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv311,
        clean_session=True,
    )
    if settings.mqtt.password is not None:
        client.username_pw_set(settings.mqtt.username, settings.mqtt.password.get_secret_value())
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(settings.mqtt.data_topic, qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(settings.mqtt.host, settings.mqtt.bridge_port, keepalive=30)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("bare paho subscriber: no SUBACK")
    pubs = Publishers(run.settings_file, run.devices, n, run.args.publishers)
    t0 = pubs.started()
    if not done.wait(600):
        raise SystemExit(f"bare paho subscriber got {got}/{n}")
    seconds = pubs.wait()
    client.disconnect()
    client.loop_stop()
    return n / (last - t0), n / seconds


def saturate(run: Run, stack: Components, n: int, *, tag: str) -> tuple[float, float]:
    """N readings flat out through a started stack: (readings/s end to end, seconds)."""
    before = committed(stack)
    pubs = Publishers(
        run.settings_file, run.devices, n, run.args.publishers, alert_every=run.args.alert_every, tag=tag
    )
    t0 = pubs.started()
    t_end = wait_committed(stack, before + n)
    pubs.wait()
    return n / (t_end - t0), t_end - t0


def warm_up(run: Run, stack: Components) -> None:
    before = committed(stack)
    Publishers(run.settings_file, run.devices, 2_000, 1, alert_every=10, tag="warm").wait()
    wait_committed(stack, before + 2_000, timeout=180)


def baseline(run: Run, n: int) -> float:
    """The bare paho subscriber's rate on the same broker, printed; the ratio's denominator."""
    bare, pub = bare_paho(run, n)
    print(
        f"  baseline  bare paho subscriber (QoS 1): {bare:>10,.0f} msgs/s "
        f"(publishers alone: {pub:,.0f} msgs/s)  [{load()}]",
        flush=True,
    )
    return bare


def phase_saturation(run: Run) -> None:
    n = run.args.readings
    bare = baseline(run, n)
    stack = run.components()
    stack.start()
    try:
        stack.wait_ready()
        warm_up(run, stack)
        before = metrics.buckets(stack.scrape("worker"), LATENCY, stage="alerted")
        rate, seconds = saturate(run, stack, n, tag="bulk")
        after = metrics.buckets(stack.scrape("worker"), LATENCY, stage="alerted")
    finally:
        stack.stop()
    print(
        f"  pipeline  MQTT -> bridge -> Kafka -> worker -> PostgreSQL: {rate:>8,.0f} readings/s "
        f"({n:,} in {seconds:.1f} s)  [{load()}]",
        flush=True,
    )
    print(f"  ratio     pipeline / bare paho subscriber: {rate / bare:.2f}  (target >= 0.8)", flush=True)
    print(latency_line("latency under saturation, sensor -> stored alert", metrics.difference(after, before)))


def forwarded(stack: Components) -> float:
    return metrics.total(stack.scrape("bridge"), "beffroi_messages_out_total", component="bridge")


def phase_bridge(run: Run) -> None:
    n = run.args.readings
    bare = baseline(run, n)
    stack = run.components(workers=0)
    stack.start()
    try:
        stack.wait_ready()
        before = forwarded(stack)
        Publishers(run.settings_file, run.devices, 2_000, 1, tag="warm").wait()
        _wait_for(lambda: forwarded(stack) >= before + 2_000, 180)
        before = forwarded(stack)
        cpu = bridge_cpu(stack)
        pubs = Publishers(run.settings_file, run.devices, n, run.args.publishers, tag="bridge")
        t0 = pubs.started()
        _wait_for(lambda: forwarded(stack) >= before + n, 900)
        seconds = time.time() - t0
        cpu = bridge_cpu(stack) - cpu
        pubs.wait()
    finally:
        stack.stop()
    rate = n / seconds
    print(
        f"  bridge    MQTT -> bridge -> Kafka (confirmed, acknowledged): {rate:>8,.0f} readings/s "
        f"({n:,} in {seconds:.1f} s)  [{load()}]",
        flush=True,
    )
    print(f"  ratio     bridge / bare paho subscriber: {rate / bare:.2f}", flush=True)
    print(
        f"  cpu       the bridge process: {cpu / n * 1e6:,.0f} us of CPU per reading "
        f"(whatever the load: {n / cpu:,.0f} readings per CPU second)",
        flush=True,
    )


def bridge_cpu(stack: Components) -> float:
    """CPU seconds the bridge processes used so far (their `process_cpu_seconds_total`)."""
    return metrics.total(stack.scrape("bridge"), "process_cpu_seconds_total")


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s")
        time.sleep(0.1)


def phase_latency(run: Run) -> None:
    args = run.args
    count = int(args.rate * args.duration)
    stack = run.components()
    stack.start()
    tap = AlertTap(run.settings, run.site)
    samples: list[tuple[float, float, float, float]] = []  # (t, backlog, kafka lag, bridge pending)
    end = (math.nan, math.nan, math.nan)
    try:
        stack.wait_ready()
        warm_up(run, stack)
        start_committed = committed(stack)
        start_in = metrics.total(stack.scrape("bridge"), "beffroi_messages_in_total", component="bridge")
        before = metrics.buckets(stack.scrape("worker"), LATENCY, stage="alerted")
        tap.reset()
        pubs = Publishers(
            run.settings_file,
            run.devices,
            count,
            args.publishers,
            alert_every=args.alert_every,
            rate=args.rate / args.publishers,
            tag="paced",
        )
        t0 = pubs.started()
        end: tuple[float, float, float] | None = (
            None  # (backlog, MQTT backlog, Kafka lag) at the last publish
        )
        while end is None:
            finished = all(pubs.seconds) or all(p.poll() is not None for p in pubs.procs)
            if not finished:
                time.sleep(2.0)
            workers, bridges = stack.scrape("worker"), stack.scrape("bridge")
            done = metrics.total(workers, "beffroi_messages_out_total", component="worker") - start_committed
            received = metrics.total(bridges, "beffroi_messages_in_total", component="bridge") - start_in
            lag = metrics.total(workers, "beffroi_consumer_lag")
            samples.append(
                (
                    time.time() - t0,
                    pubs.total() - done,
                    lag,
                    metrics.total(bridges, "beffroi_pending_messages"),
                )
            )
            if finished:
                end = (count - done, count - received, lag)
        seconds = pubs.wait()
        wait_committed(stack, start_committed + count)
        time.sleep(1.0)
        after = metrics.buckets(stack.scrape("worker"), LATENCY, stage="alerted")
    finally:
        tap.close()
        stack.stop()
    print(
        f"  paced     {count:,} readings at {args.rate:,.0f}/s for {args.duration:.0f} s "
        f"(published at {count / seconds:,.0f}/s)  [{load()}]",
        flush=True,
    )
    print(latency_line("latency   sensor -> stored alert", metrics.difference(after, before)))
    lat = tap.latencies_ms
    if lat:
        print(
            f"  latency   sensor -> alert on the alerts topic (tap, exact): p50 {pct(lat, 0.5):.0f} ms, "
            f"p99 {pct(lat, 0.99):.0f} ms, p99.9 {pct(lat, 0.999):.0f} ms ({len(lat)} alerts, "
            f"mean {statistics.fmean(lat):.0f} ms)"
        )
    if samples:
        half = len(samples) // 2
        first = statistics.fmean(s[1] for s in samples[:half]) if half else math.nan
        second = statistics.fmean(s[1] for s in samples[half:])
        slope = _slope([(s[0], s[1]) for s in samples])
        print(
            f"  backlog   published - committed, every 2 s: max {max(s[1] for s in samples):,.0f}, "
            f"mean {first:,.0f} (first half) -> {second:,.0f} (second half), trend {slope:+,.1f} readings/s "
            f"(ratio trend / rate: {slope / args.rate:+.3f})"
        )
    print(
        f"  backlog   when the publishers finished: {end[0]:,.0f} readings "
        f"(MQTT {end[1]:,.0f}, Kafka lag {end[2]:,.0f}; from the metrics)",
        flush=True,
    )


def phase_scaleout(run: Run) -> None:
    counts = [int(c) for c in run.args.scale.split(",")]
    n = run.args.scale_readings
    rates: dict[int, float] = {}
    for k in counts:
        stack = run.components(k)
        stack.start()
        try:
            stack.wait_ready()
            warm_up(run, stack)
            rate, seconds = saturate(run, stack, n, tag=f"scale{k}-")
        finally:
            stack.stop()
        rates[k] = rate
        speedup = rate / rates[counts[0]] * counts[0]
        print(
            f"  scaleout  {k} bridge(s) + {k} worker(s): {rate:>8,.0f} readings/s ({seconds:.1f} s), "
            f"speed-up {speedup:.2f} = {speedup / k:.2f} x N  [{load()}, {os.cpu_count()} cores]",
            flush=True,
        )


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


PHASES: dict[str, Callable[[Run], None]] = {
    "saturation": phase_saturation,
    "bridge": phase_bridge,
    "latency": phase_latency,
    "scaleout": phase_scaleout,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["publish"]:
        return publisher_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_slice",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", action="append", choices=sorted(PHASES), help="run only these phases")
    p.add_argument("--client", choices=["kafka-python", "confluent-kafka"], help="the bus's Kafka client")
    p.add_argument("--readings", type=int, default=50_000, help="N of the saturation phase")
    p.add_argument("--devices", type=int, default=4_200, help="devices (one MQTT connection each)")
    p.add_argument("--publishers", type=int, default=2, help="publisher processes")
    p.add_argument("--alert-every", type=int, default=100, help="one alerting reading in so many")
    p.add_argument("--rate", type=float, default=4_200.0, help="readings/s of the paced phase")
    p.add_argument(
        "--duration",
        "--seconds",
        type=float,
        default=60.0,
        help="seconds of the paced phase (300: the JO figure)",
    )
    p.add_argument("--scale", default="1,2,4", help="bridges (and workers) of the scale-out phase")
    p.add_argument("--scale-readings", type=int, default=30_000)
    args = p.parse_args(argv)
    phases = args.only or ["saturation", "latency"]

    run_id = uuid.uuid4().hex[:8]
    site = f"bench-{run_id}"
    base = load_settings()
    kafka = base.kafka.model_copy(update={"topic_prefix": f"bench.{run_id}."})
    if args.client:
        kafka = kafka.model_copy(update={"client": args.client})
    settings = alert_on_every_reading(
        base.model_copy(
            update={
                "mode": "stack",
                "kafka": kafka,
                "postgres": base.postgres.model_copy(update={"db_schema": f"bench_{run_id}"}),
                "mqtt": base.mqtt.model_copy(update={"client_id": f"beffroi-bridge-bench-{run_id}"}),
                "worker": base.worker.model_copy(update={"group": f"bench.{run_id}.analytics"}),
            }
        )
    )
    devices = [f"{site}-aq{i}" for i in range(args.devices)]
    venue = tiny_venue(dict.fromkeys(devices, DEVICE_KIND), site_id=site)
    with tempfile.TemporaryDirectory(prefix="bench-slice-") as tmp_name:
        tmp = Path(tmp_name)
        settings = settings.model_copy(update={"venue": write_venue(venue, tmp / "venue.yaml")})
        settings_file = write_settings(settings, tmp / "settings.yaml")
        print(
            f"slice benchmark, run {run_id}: bus client {settings.kafka.client}, {args.devices:,} devices, "
            f"1 reading in {args.alert_every} alerting, phases {', '.join(phases)}  [{load()}]",
            flush=True,
        )
        provision_devices(settings, devices)
        make_bus(settings).close()  # creates the run's topics
        with make_store(settings) as store:
            store.migrate()
        run = Run(args, settings, settings_file, tmp, site, devices)
        try:
            for name in phases:
                PHASES[name](run)
        finally:
            _drop_schema(settings)
            _drop_topics(settings)
            remove_test_logins()
    return 0


def _drop_topics(settings: Settings) -> None:
    """Best effort: the run's topics and consumer groups (all named with its prefix)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient

    prefix = settings.kafka.topic_prefix
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        client_id=f"{prefix}cleanup",
        **settings.kafka.kafka_python_security(),
    )
    try:
        groups = [g["group_id"] for g in admin.list_groups() if str(g["group_id"]).startswith(prefix)]
        if groups:
            admin.delete_groups(groups)
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
    except Exception as exc:
        print(f"  (clean-up of {prefix}* incomplete: {exc!r})")
    finally:
        admin.close()


def _drop_schema(settings: Settings) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.postgres.db_schema))
        )


if __name__ == "__main__":
    sys.exit(main())
