"""Benchmark of signed-in requests: the API's authenticated GET /sites/{site}/alerts against a bare
FastAPI route serving the same JSON, in the same server and the same run; then one alert pushed to
many SSE listeners.

    python -m bench.bench_api_auth [--seconds 5] [--rounds 3] [--connections 16] [--listeners 1000]

The server (uvicorn, one process, embedded mode: SQLite with 100 alerts on the demo site, the
in-memory bus) runs in a process of its own; load comes from another process (asyncio, keep-alive
HTTP/1.1 connections, each with a bearer token of a viewer of the site). Rounds alternate bare and
authenticated so that the machine's other load weighs on both alike; the ratio is of the totals.
SSE: `--listeners` connections (in 4 client processes) follow the site's stream, signed in; the
bench then publishes alerts on the bus one at a time (a bench-only route of the bench's server),
and each listener notes when it got each one: p50/p99/max of publish -> receipt over all of them.
SSE rounds alternate the API's stream with a bare fan-out in the server process (an asyncio server
writing each event, framed once, to every connection's transport): the same clients, the same
machine load, ~no server work; its latencies are the floor that the clients and the machine set.
The server runs uvicorn as installed (uvloop and httptools when present, see pyproject.toml).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

SITE = "stade-demo"


# -- the server process ------------------------------------------------------------------------------


class BareFanOut:
    """The floor of a push to many listeners, in the server process: a bare asyncio TCP server (its
    own thread and event loop) that answers any request with SSE headers and a hello comment, then
    writes each event, framed once, straight to every connection's transport in one loop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.transports: set[asyncio.Transport] = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        fan = self

        class Stream(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                if b"\r\n\r\n" in data and self.transport not in fan.transports:
                    self.transport.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
                        b": watching alerts of " + SITE.encode() + b"\r\n\r\n"
                    )
                    fan.transports.add(self.transport)

            def connection_lost(self, exc: Exception | None) -> None:
                fan.transports.discard(self.transport)

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.loop.create_server(Stream, "127.0.0.1", self.port, backlog=4096))
        ready.set()
        self.loop.run_forever()

    def publish(self, event: bytes) -> None:
        def write_all() -> None:
            for transport in list(self.transports):
                transport.write(event)

        self.loop.call_soon_threadsafe(write_all)


def serve(port: int, db: Path, key: str, token_path: Path, list_cache_s: float, bare_port: int) -> None:
    import uvicorn
    from fastapi import APIRouter, Response
    from sse_starlette import ServerSentEvent

    from api.app import create_app
    from api.auth.settings import AuthSettings
    from api.auth.tokens import LocalTokens
    from beffroi.events import Alert, AlertCategory, Severity, derived_id
    from beffroi.identity import Role, User
    from beffroi.memory_bus import MemoryBus
    from beffroi.sqlite_store import SqliteStore
    from beffroi.venue import load_venue
    from tower.runtime import DEMO_VENUE
    from tower.settings import Settings

    venue = load_venue(DEMO_VENUE)
    base = Settings()
    api = base.api.model_copy(
        update={"auth": AuthSettings(secret_key=key), "list_cache_s": list_cache_s, "port": port}
    )
    settings = base.model_copy(update={"mode": "embedded", "api": api})
    store = SqliteStore(db)
    store.migrate()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    store.write_alerts(
        [
            Alert(
                alert_id=derived_id("bench", str(i)),
                site_id=SITE,
                zone_id="parvis",
                device_id="aq-parvis",
                rule="smoke-pm25",
                category=AlertCategory.INCIDENT,
                severity=Severity.HIGH,
                raised_at=t0 + timedelta(seconds=i),
                title=f"PM2.5 above 150 at the parvis ({i})",
                detail="pm25=182.0 (threshold 150.0)",
                value=182.0,
                source_ids=(f"m-{i}",),
            )
            for i in range(100)
        ]
    )
    identity = store
    identity.add_user(User(name="vic", role=Role.VIEWER, sites=(SITE,), created_at=datetime.now(UTC)))
    bus = MemoryBus()
    bus.ensure_topics(settings.kafka.partitions())
    bare_body: list[bytes] = []
    bare_fan_out = BareFanOut(bare_port)
    bench = APIRouter()

    @bench.get("/bare/sites/{site_id}/alerts")
    async def bare(site_id: str) -> Response:
        return Response(bare_body[0], media_type="application/json")

    @bench.get("/bench/cpu")
    async def cpu() -> dict[str, int]:
        return {"cpu_ns": time.process_time_ns()}

    @bench.post("/bench/publish")
    async def publish() -> dict[str, int]:
        sent_ns = time.time_ns()
        alert = Alert(
            alert_id=str(uuid.uuid4()),
            site_id=SITE,
            rule="bench",
            severity=Severity.HIGH,
            raised_at=datetime.now(UTC),
            title=str(sent_ns),
        )
        data = alert.model_dump_json()
        bus.send(settings.kafka.topic("alerts"), data.encode(), key=SITE.encode())
        bare_fan_out.publish(ServerSentEvent(data=data, event="alert", id=alert.alert_id).encode())
        return {"sent_ns": sent_ns}

    app = create_app(settings, store=store, bus=bus, venue=venue, identity=identity, extra_routers=[bench])
    user = identity.get_user("vic")
    assert user is not None
    token, _ = LocalTokens(settings.api.auth).issue(user)
    token_path.write_text(token)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # the authenticated route's exact answer, for the bare one
        bare_body.append(
            client.get(f"/sites/{SITE}/alerts", headers={"Authorization": f"Bearer {token}"}).content
        )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


# -- load ------------------------------------------------------------------------------------------


async def _hammer(port: int, path: str, token: str, connections: int, seconds: float) -> tuple[int, int]:
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
    deadline = time.monotonic() + seconds
    done = [0]
    errors = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors[0] += 1
                done[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return done[0], errors[0]


def load_main(port: int, path: str, token: str, connections: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_hammer(port, path, token, connections, seconds)))


def load(port: int, path: str, token: str, connections: int, seconds: float) -> tuple[float, int]:
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    proc = mp.Process(target=load_main, args=(port, path, token, connections, seconds, out))
    proc.start()
    done, errors = out.get()
    proc.join()
    return done / seconds, errors


# -- SSE listeners -----------------------------------------------------------------------------------


async def _listen(port: int, token: str, count: int, alerts: int, ready: mp.Queue, out: mp.Queue) -> None:  # type: ignore[type-arg]
    request = (
        f"GET /sites/{SITE}/alerts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    latencies: list[float] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(request)
        await reader.readuntil(b"watching alerts of")
        ready.put(1)
        got = 0
        while got < alerts:
            line = await reader.readline()
            if line.startswith(b"data: "):
                now = time.time_ns()
                sent = int(json.loads(line[6:])["title"])
                latencies.append((now - sent) / 1e6)
                got += 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    out.put(latencies)


def listen_main(port: int, token: str, count: int, alerts: int, ready: mp.Queue, out: mp.Queue) -> None:  # type: ignore[type-arg]
    asyncio.run(_listen(port, token, count, alerts, ready, out))


def sse(port: int, api_port: int, token: str, listeners: int, alerts: int) -> tuple[list[float], float]:
    """Latencies (ms) of `alerts` pushes to `listeners` streams of the server at `port`, and the API
    process's CPU per delivery (us); publishing goes through the API at `api_port`."""
    import httpx

    ready: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = 4
    counts = [listeners // procs + (1 if i < listeners % procs else 0) for i in range(procs)]
    workers = [mp.Process(target=listen_main, args=(port, token, c, alerts, ready, out)) for c in counts]
    for w in workers:
        w.start()
    for _ in range(listeners):
        ready.get(timeout=120)
    before = int(httpx.get(f"http://127.0.0.1:{api_port}/bench/cpu", timeout=10).json()["cpu_ns"])
    for _ in range(alerts):
        time.sleep(1.0)
        httpx.post(f"http://127.0.0.1:{api_port}/bench/publish", timeout=10).raise_for_status()
    latencies = [x for _ in workers for x in out.get(timeout=120)]
    spent = int(httpx.get(f"http://127.0.0.1:{api_port}/bench/cpu", timeout=10).json()["cpu_ns"]) - before
    for w in workers:
        w.join()
    return latencies, spent / len(latencies) / 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_api_auth")
    p.add_argument("--seconds", type=float, default=5.0, help="per round and route")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--listeners", type=int, default=1000)
    p.add_argument("--alerts", type=int, default=5, help="alerts pushed to the listeners")
    p.add_argument("--sse-rounds", type=int, default=2, help="SSE rounds (each: bare fan-out, then the API)")
    p.add_argument("--list-cache-s", type=float, default=1.0, help="the API's alert-list cache (0: none)")
    args = p.parse_args(argv)

    import socket

    with socket.socket() as s, socket.socket() as s2:
        s.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        port, bare_port = s.getsockname()[1], s2.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        token_path = Path(tmp) / "token"
        server = mp.Process(
            target=serve,
            args=(
                port,
                Path(tmp) / "bench.db",
                secrets.token_urlsafe(32),
                token_path,
                args.list_cache_s,
                bare_port,
            ),
            daemon=True,
        )
        server.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or not server.is_alive():
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        token = token_path.read_text()
        import httpx

        def server_cpu_ns() -> int:
            return int(httpx.get(f"http://127.0.0.1:{port}/bench/cpu", timeout=10).json()["cpu_ns"])

        totals = {"bare": 0.0, "auth": 0.0}
        cpu = {"bare": 0, "auth": 0}
        served = {"bare": 0, "auth": 0}
        for r in range(args.rounds):
            for name, path in (("bare", f"/bare/sites/{SITE}/alerts"), ("auth", f"/sites/{SITE}/alerts")):
                before = server_cpu_ns()
                rate, errors = load(port, path, token, args.connections, args.seconds)
                cpu[name] += server_cpu_ns() - before
                served[name] += int(rate * args.seconds)
                totals[name] += rate
                print(f"round {r + 1} {name:>4}: {rate:8.0f} req/s ({errors} non-200)", flush=True)
        per = {name: cpu[name] / max(1, served[name]) / 1000 for name in cpu}
        if args.rounds:
            print(
                f"authenticated GET /sites/{SITE}/alerts: {totals['auth'] / args.rounds:.0f} req/s, "
                f"bare route: {totals['bare'] / args.rounds:.0f} req/s, "
                f"ratio {totals['auth'] / totals['bare']:.2f} (list cache {args.list_cache_s} s)\n"
                f"server CPU per request: authenticated {per['auth']:.0f} us, bare {per['bare']:.0f} us, "
                f"ratio (bare/authenticated, i.e. throughput on an idle core) {per['bare'] / per['auth']:.2f}"
            )
        if args.listeners:
            # rounds alternate the bare fan-out (the floor: the client processes, the kernel and the
            # machine's load, with ~nothing of the server) and the API's stream, with the same clients
            runs: dict[str, list[float]] = {"bare": [], "api": []}
            cpu_us: dict[str, list[float]] = {"bare": [], "api": []}
            for r in range(args.sse_rounds):
                for name, at in (("bare", bare_port), ("api", port)):
                    latencies, per_delivery = sse(at, port, token, args.listeners, args.alerts)
                    runs[name] += latencies
                    cpu_us[name].append(per_delivery)
                    print(
                        f"SSE round {r + 1} {name:>4}: p50 {statistics.median(latencies):.1f} ms, "
                        f"p99 {pct(latencies, 0.99):.1f} ms, server CPU per delivery {per_delivery:.0f} us",
                        flush=True,
                    )
            for name, latencies in runs.items():
                print(
                    f"SSE {name}: {args.alerts} alerts x {args.listeners} listeners x {args.sse_rounds} "
                    f"rounds = {len(latencies)} deliveries, p50 {statistics.median(latencies):.1f} ms, "
                    f"p99 {pct(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms, server CPU per "
                    f"delivery {statistics.mean(cpu_us[name]):.0f} us"
                )
        server.terminate()
        server.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
