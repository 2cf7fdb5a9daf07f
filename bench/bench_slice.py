"""Benchmark of the thin slice in stack mode: Mosquitto -> bridge -> Kafka -> worker -> PostgreSQL.

    source ~/.local/state/beffroi/stack.env && python -m bench.bench_slice [--readings 50000]

In one run, with the same publishers (`--publishers` processes of their own) and as many messages:
1. baseline: a bare paho subscriber (QoS 1, `dev/+/data`) receives N messages -> msgs/s;
2. throughput: the bridge and the worker (each its own process, as deployed) take N readings, a
   fraction of them alerting, into PostgreSQL -> sustained readings/s end to end, and the ratio
   to the baseline;
3. latency: a paced stream (below saturation) -> p50/p99 from the sensor's timestamp (set when it
   publishes) to the alert's arrival on the alerts topic.
The run uses topics, a schema, devices and an MQTT session of its own; the schema and the session
are removed after it. Rates are measured from the first message published to the last one received
(baseline) or stored (pipeline); the machine's other load shows in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from beffroi.bus_factory import make_bus
from beffroi.clock import utcnow
from beffroi.devices import KIND_SPECS, DeviceKind
from beffroi.settings import Settings, load_settings
from beffroi.store_factory import make_store
from beffroi.testing import (
    ComponentProcess,
    provision_devices,
    tiny_venue,
    write_settings,
    write_venue,
)
from ingest.mqtt_source import end_session, open_session
from ingest.records import decode_alert

DEVICE_KIND = DeviceKind.AIR_QUALITY
MODEL = KIND_SPECS[DEVICE_KIND].model


# -- the publisher process ---------------------------------------------------------------------


def publisher_main(argv: list[str]) -> int:
    """`python -m bench.bench_slice publish ...`: publish paced or flat out, timestamps = publish time."""
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
    for i in range(args.count):
        device = devices[i % len(devices)]
        pm25 = 400.0 if args.alert_every and i % args.alert_every == 0 else 10.0 + i % 50
        raw = live_objects_payload(
            device, model=MODEL, value={"pm25": pm25, "co": 1.0}, ts=utcnow(), tags=[f"{args.tag}{i}"]
        )
        publisher.publish(device, raw)
        if args.rate and i % 50 == 0:
            time.sleep(max(0.0, t0 + i / args.rate - time.monotonic()))
    publisher.flush(timeout=300)
    elapsed = time.monotonic() - t0
    publisher.close()
    print(json.dumps({"published": args.count, "seconds": elapsed}), flush=True)
    return 0


def run_publisher(
    settings_file: Path, devices: list[str], count: int, **opts: object
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_slice",
        "publish",
        "--settings",
        str(settings_file),
        "--devices",
        ",".join(devices),
        "--count",
        str(count),
    ]
    for k, v in opts.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


class Publishers:
    """`k` publisher processes, each publishing `count / k` messages from its share of the devices."""

    def __init__(self, settings_file: Path, devices: list[str], count: int, k: int, **opts: object) -> None:
        share = count // k
        self.procs = [
            run_publisher(settings_file, devices[i::k], share + (count - share * k if i == 0 else 0), **opts)
            for i in range(k)
        ]

    def started(self) -> float:
        """Wall-clock time at which the first process sent its first message."""
        starts = []
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"publisher failed ({proc.wait()})")
            starts.append(json.loads(line)["start"])
        return float(min(starts))

    def wait(self) -> float:
        """Seconds the slowest process took; raises if one failed."""
        slowest = 0.0
        for proc in self.procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"publisher failed ({proc.returncode})")
            slowest = max(slowest, float(json.loads(out.strip().splitlines()[-1])["seconds"]))
        return slowest


# -- phases ------------------------------------------------------------------------------------


def baseline(
    settings: Settings, settings_file: Path, devices: list[str], n: int, k: int
) -> tuple[float, float]:
    """A bare paho loop: subscribe dev/+/data at QoS 1 and count our messages. Returns (msgs/s, pub/s)."""
    got = 0
    last = 0.0
    done = threading.Event()
    ours = "dev/" + devices[0].rsplit("-", 1)[0] + "-"

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
    client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("bare paho subscriber: no SUBACK")
    pubs = Publishers(settings_file, devices, n, k)
    t0 = pubs.started()
    if not done.wait(600):
        raise SystemExit(f"bare paho subscriber got {got}/{n}")
    seconds = pubs.wait()
    client.disconnect()
    client.loop_stop()
    return n / (last - t0), n / seconds


def wait_stored(count: Callable[[str], int], site: str, target: int, timeout: float = 600.0) -> float:
    deadline = time.monotonic() + timeout
    while (c := count(site)) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {c}/{target} readings stored after {timeout:.0f}s")
        time.sleep(0.05)
    return time.time()


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


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["publish"]:
        return publisher_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_slice",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--readings", type=int, default=50_000, help="N, for the baseline and the throughput run")
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--publishers", type=int, default=2, help="publisher processes (the same in both runs)")
    p.add_argument("--alert-every", type=int, default=50, help="one alerting reading in so many (2%%)")
    p.add_argument("--latency-rate", type=float, default=500.0, help="readings/s of the paced latency run")
    p.add_argument("--latency-seconds", type=float, default=10.0)
    args = p.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    site = f"bench-{run}"
    base = load_settings()
    settings = base.model_copy(
        update={
            "mode": "stack",
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"bench.{run}."}),
            "postgres": base.postgres.model_copy(update={"db_schema": f"bench_{run}"}),
            "mqtt": base.mqtt.model_copy(update={"client_id": f"bench-bridge-{run}"}),
            "worker": base.worker.model_copy(update={"group": f"bench.{run}.analytics"}),
        }
    )
    devices = [f"{site}-aq{i}" for i in range(args.devices)]
    venue = tiny_venue(dict.fromkeys(devices, DEVICE_KIND), site_id=site)
    n = args.readings
    with tempfile.TemporaryDirectory(prefix="bench-slice-") as tmp_name:
        tmp = Path(tmp_name)
        settings = settings.model_copy(update={"venue": write_venue(venue, tmp / "venue.yaml")})
        settings_file = write_settings(settings, tmp / "settings.yaml")
        print(
            f"slice benchmark, run {run}: {n:,} readings from {args.devices} devices, "
            f"1 in {args.alert_every} alerting",
            flush=True,
        )
        provision_devices(settings, devices)
        make_bus(settings).close()  # creates the run's topics
        store = make_store(settings)

        bare_rate, pub_rate = baseline(settings, settings_file, devices, n, args.publishers)
        print(
            f"  baseline  bare paho subscriber (QoS 1):     {bare_rate:>10,.0f} msgs/s "
            f"(publisher alone: {pub_rate:,.0f} msgs/s)",
            flush=True,
        )

        open_session(settings.mqtt)
        bridge = ComponentProcess("ingest.bridge", settings_file=settings_file, log_dir=tmp)
        worker = ComponentProcess("analytics.worker", settings_file=settings_file, log_dir=tmp)
        tap = AlertTap(settings, site)
        try:
            bridge.start()
            worker.start()
            warm = 2_000
            Publishers(settings_file, devices, warm, 1, alert_every=10, tag="warm").wait()
            wait_stored(store.count_readings, site, warm, timeout=120)

            pubs = Publishers(
                settings_file, devices, n, args.publishers, alert_every=args.alert_every, tag="bulk"
            )
            t0 = pubs.started()
            t_end = wait_stored(store.count_readings, site, warm + n)
            pubs.wait()
            rate = n / (t_end - t0)
            saturated = list(tap.latencies_ms)
            print(
                f"  pipeline  MQTT -> bridge -> Kafka -> worker -> PostgreSQL: {rate:>8,.0f} readings/s "
                f"end to end ({n:,} in {t_end - t0:.1f} s)",
                flush=True,
            )
            print(f"  ratio     pipeline / bare paho subscribe loop: {rate / bare_rate:.2f}", flush=True)

            tap.reset()
            paced = int(args.latency_rate * args.latency_seconds)
            Publishers(
                settings_file, devices, paced, 1, alert_every=10, rate=args.latency_rate, tag="paced"
            ).wait()
            wait_stored(store.count_readings, site, warm + n + paced)
            time.sleep(1.0)
            lat = tap.latencies_ms
            if lat:
                print(
                    f"  latency   sensor -> alert at {args.latency_rate:,.0f} readings/s: "
                    f"p50 {pct(lat, 0.5):.0f} ms, p99 {pct(lat, 0.99):.0f} ms "
                    f"({len(lat)} alerts, mean {statistics.fmean(lat):.0f} ms)",
                    flush=True,
                )
            if saturated:
                print(
                    f"  latency   under saturation (the throughput run): p50 {pct(saturated, 0.5):.0f} ms, "
                    f"p99 {pct(saturated, 0.99):.0f} ms ({len(saturated)} alerts)",
                    flush=True,
                )
        finally:
            tap.close()
            bridge.stop()
            worker.stop()
            end_session(settings.mqtt)
            _drop_schema(settings)
            _drop_topics(settings)
            store.close()
    return 0


def _drop_topics(settings: Settings) -> None:
    """Best effort: the run's topics and consumer groups (all named with its prefix)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient

    prefix = settings.kafka.topic_prefix
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers, client_id=f"{prefix}cleanup")
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
