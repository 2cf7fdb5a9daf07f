"""How long the sensor path stalls once Kafka is back after a restart, for each Kafka client.

    python -m bench.bench_kafka_recovery [--down-s 5] [--rate 500] [--client kafka-python ...]
        [--kill]

On a Kafka broker of its own (`beffroi.kafka_instance`: own ports and data, never the shared
stack's), a bridge (its production `run` loop, in-process source) forwards readings at `--rate`/s;
Kafka is stopped (SIGTERM, a controlled shutdown; SIGKILL with `--kill`), left down `--down-s`, and
started again. Prints, per client, when the broker answered again and how long after that the
bridge's next batch was confirmed (the issue's figure before the fix: 20-55 s; the test is
tests/integration/test_kafka_recovery.py). No PostgreSQL, no Mosquitto needed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from beffroi.bus_factory import make_bus
from beffroi.kafka_instance import KafkaInstance
from ingest.bridge import Bridge, BridgeConfig
from tower.settings import load_settings
from tower.testing import TimedSource, payload, tiny_venue, unique

CLIENTS = ("kafka-python", "confluent-kafka")


def measure(kafka: KafkaInstance, client: str, *, down_s: float, rate: int, kill: bool, tmp: Path) -> str:
    settings = load_settings(mode="embedded", kafka={"topic_prefix": f"bench-{unique()}-", "client": client})
    settings = settings.model_copy(update={"mode": "stack", "kafka": kafka.apply(settings.kafka)})
    site = unique("rec-")
    names = [f"{site}-t{i}" for i in range(10)]
    venue = tiny_venue(dict.fromkeys(names, "temperature"), site_id=site)
    source = TimedSource()
    stop = threading.Event()
    with make_bus(settings) as bus:
        config = BridgeConfig(**{**BridgeConfig.from_settings(settings).__dict__, "quarantine_dir": tmp})
        bridge = Bridge(source=source, bus=bus, devices=venue.devices, config=config)

        def feed() -> None:
            i = 0
            while not stop.is_set():
                for _ in range(rate // 10):
                    device = names[i % len(names)]
                    source.offer(f"dev/{device}/data", payload(device, {"celsius": 20.0}, tags=[f"n:{i}"]))
                    i += 1
                time.sleep(0.1)

        threads = [threading.Thread(target=f, daemon=True) for f in (feed, bridge.run)]
        for t in threads:
            t.start()
        time.sleep(3.0)
        t_stop = time.monotonic()
        kafka.stop(signal.SIGKILL if kill else signal.SIGTERM)
        time.sleep(down_s)
        kafka.start()
        t_back = time.monotonic()
        deadline = t_back + 120
        while time.monotonic() < deadline and not [t for t in source.ack_times if t > t_back]:
            time.sleep(0.05)
        moving = [t for t in source.ack_times if t > t_back]
        stop.set()
        bridge.stop()
        for t in threads:
            t.join(timeout=30)
    if not moving:
        return f"{client}: Kafka back after {t_back - t_stop:.1f}s, the path did NOT move within 120 s"
    return (
        f"{client}: Kafka down {t_back - t_stop:.1f}s; first batch confirmed {moving[0] - t_back:.1f}s "
        f"after the broker answered again ({bridge.stats.accepted} readings forwarded, "
        f"{bridge.stats.flush_failures} failed flushes)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_kafka_recovery", description=__doc__)
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=500, help="readings per second")
    parser.add_argument("--client", choices=CLIENTS, action="append", help="default: both")
    parser.add_argument("--kill", action="store_true", help="SIGKILL instead of a controlled shutdown")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, KafkaInstance(Path(tmp) / "kafka") as kafka:
        for client in args.client or CLIENTS:
            print(
                measure(kafka, client, down_s=args.down_s, rate=args.rate, kill=args.kill, tmp=Path(tmp)),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
