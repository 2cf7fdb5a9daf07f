"""How long the sensor path stalls once Kafka is back after a restart.

    source $STATE/stack.env     # an OWN stack (BEFFROI_STATE_DIR and ports of its own): it restarts Kafka
    python -m bench.bench_kafka_recovery [--down-s 5] [--rate 500] [--client kafka-python]

A bridge (real Kafka, in-process source) forwards readings at `--rate`/s; Kafka is stopped (SIGTERM,
controlled shutdown), left down `--down-s`, and started again by deploy/local/up. Prints when the
broker answered again and how long after that the bridge's next batch was confirmed (the issue's
figure before the fix: 20-55 s). Refuses to run on the default state directory (the shared stack).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from beffroi.bus_factory import make_bus
from ingest.bridge import Bridge, BridgeConfig
from ingest.quarantine import default_state_dir
from ingest.source import QueueSource
from tower.settings import load_settings
from tower.testing import isolated, payload, tiny_venue, unique

REPO = Path(__file__).resolve().parent.parent


def probe(port: int) -> bool:
    env = dict(
        os.environ,
        KAFKA_PROBE_USER="admin",
        KAFKA_PROBE_PASSWORD=os.environ.get("BEFFROI_KAFKA__PASSWORD", ""),
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/local/kafka_probe.py"), f"127.0.0.1:{port}"],
        env=env,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_kafka_recovery", description=__doc__)
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=500, help="readings per second")
    parser.add_argument("--client", choices=["kafka-python", "confluent-kafka"], default="kafka-python")
    args = parser.parse_args(argv)
    state = default_state_dir()
    if state == Path.home() / ".local" / "state" / "beffroi":
        raise SystemExit(
            "refusing to restart the shared stack's Kafka: set BEFFROI_STATE_DIR to an own stack"
        )
    settings = load_settings(
        mode="stack", kafka={"topic_prefix": f"bench-{unique()}-", "client": args.client}
    )
    settings = isolated(settings, name="recovery")
    port = int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1])
    site = unique("rec-")
    names = [f"{site}-t{i}" for i in range(10)]
    venue = tiny_venue(dict.fromkeys(names, "temperature"), site_id=site)
    source = QueueSource()
    stop = threading.Event()
    confirmed: list[float] = []

    with make_bus(settings) as bus, tempfile.TemporaryDirectory() as tmp:
        config = BridgeConfig.from_settings(settings)
        config = BridgeConfig(**{**config.__dict__, "quarantine_dir": Path(tmp)})
        bridge = Bridge(source=source, bus=bus, devices=venue.devices, config=config)

        def feed() -> None:
            i = 0
            while not stop.is_set():
                for _ in range(args.rate // 10):
                    device = names[i % len(names)]
                    source.offer(f"dev/{device}/data", payload(device, {"celsius": 20.0}, tags=[f"n:{i}"]))
                    i += 1
                time.sleep(0.1)

        def run() -> None:
            while not stop.is_set():
                if bridge.run_once():
                    confirmed.append(time.monotonic())

        threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=run, daemon=True)]
        for t in threads:
            t.start()
        time.sleep(3.0)
        pid = int((state / "kafka" / "kafka.pid").read_text().strip())
        t_stop = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        while probe(port) or _alive(pid):
            time.sleep(0.2)
        time.sleep(args.down_s)
        up = subprocess.Popen(
            [str(REPO / "deploy/local/up")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while not probe(port):
            time.sleep(0.1)
        t_back = time.monotonic()
        deadline = t_back + 120
        while time.monotonic() < deadline and not [t for t in confirmed if t > t_back]:
            time.sleep(0.05)
        moving = [t for t in confirmed if t > t_back]
        stop.set()
        up.wait(timeout=120)
        for t in threads:
            t.join(timeout=30)
    if not moving:
        print(f"{args.client}: Kafka back after {t_back - t_stop:.1f}s, the path did NOT move within 120 s")
        return 1
    print(
        f"{args.client}: Kafka down {t_back - t_stop:.1f}s; first batch confirmed {moving[0] - t_back:.1f}s "
        f"after the broker answered again ({bridge.stats.accepted} readings forwarded, "
        f"{bridge.stats.flush_failures} failed flushes, {bridge.stats.refused} refused)"
    )
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
