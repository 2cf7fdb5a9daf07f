"""`beffroi run --mode embedded|stack [--settings FILE] [--venue FILE] [--demo]`: run the platform.

embedded: in-process bus and SQLite, no servers (the default behind `make demo`).
stack:    Mosquitto, Kafka and PostgreSQL of deploy/local/up.
Bridge, worker and API run in this process either way; `--demo` adds the demo sensors.
In stack mode `--bridges N --workers M` adds N-1 bridge and M-1 worker processes beside them
(sharing the sensor topics through an MQTT shared subscription, the readings through the Kafka
consumer group; see tower/scale.py); one that exits is started again.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from api.auth.passwords import Passwords
from beffroi import metrics
from beffroi.identity import AuditKind, AuditRecord, Role, User
from beffroi.signals import stop_on_signals
from beffroi.store_factory import make_store
from tower.demo.control_tower import TowerDemo
from tower.scale import Children, scale_out
from tower.settings import Settings, load_settings

if TYPE_CHECKING:
    from beffroi.venue import Venue
    from tower.runtime import Runtime


def _handle(args: argparse.Namespace) -> int:
    from beffroi.settings import load_venue_for
    from tower.demo.control_tower import ControlTower
    from tower.runtime import DEMO_SETTINGS, DEMO_VENUE, compose

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings_file = args.settings if args.settings is not None else (DEMO_SETTINGS if args.demo else None)
    settings = load_settings(settings_file)
    # the command line wins over the file and over the environment (stack.env exports BEFFROI_MODE)
    overrides: dict[str, Any] = {}
    if args.mode is not None:
        overrides["mode"] = args.mode
    # `--demo` alone: the control tower (a scenario, its cameras); with a venue, the demo sensors
    tower_demo = args.demo and args.venue is None and settings.venue is None
    if args.venue is not None:
        overrides["venue"] = Path(args.venue)
    elif settings.venue is None and args.demo and not tower_demo:
        overrides["venue"] = DEMO_VENUE
    if settings.api.auth.secret_key is None:
        if not args.demo:
            print(
                "beffroi run: the API signs its tokens with api.auth.secret_key: export "
                "BEFFROI_API__AUTH__SECRET_KEY (at least 32 random characters)",
                file=sys.stderr,
            )
            return 2
        # the demo: a key for this run only (sessions end with the run); never one written down
        auth = settings.api.auth.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(32))})
        overrides["api"] = settings.api.model_copy(update={"auth": auth})
    settings = settings.model_copy(update=overrides)
    tower: ControlTower | None = None
    if tower_demo:
        if settings.mode != "embedded":
            print(
                "beffroi run: the control tower demo runs in embedded mode (--mode embedded)", file=sys.stderr
            )
            return 2
        fresh_start(settings)
        tower = ControlTower(TowerDemo(speed=args.speed))
        venue = tower.venue
    else:
        venue = load_venue_for(settings)
    try:
        settings, specs = scale_out(settings, bridges=args.bridges, workers=args.workers)
    except ValueError as exc:
        print(f"beffroi run: {exc}", file=sys.stderr)
        return 2
    sign_in = demo_administrator(settings) if args.demo else None

    runtime = compose(
        settings, venue=venue, demo=args.demo and tower is None, demo_rate_hz=args.rate, tower=tower
    )
    metrics.serve(settings.metrics)
    done = threading.Event()
    with tempfile.TemporaryDirectory(prefix="beffroi-run-") as tmp, stop_on_signals(done.set):
        children = Children(specs, settings=settings, settings_file=Path(tmp) / "settings.yaml")
        children.start()
        try:
            return _serve(
                runtime,
                settings=settings,
                venue=venue,
                demo=args.demo,
                done=done,
                children=children,
                sign_in=sign_in,
                tower_note=tower.describe() if tower is not None else None,
            )
        finally:
            children.stop()


DEMO_ADMIN = "demo-admin"


def fresh_start(settings: Settings) -> None:
    """The control tower's run starts from an empty SQLite database and no detector snapshot: its
    alerts and its detectors' state are those of this run (its simulated clock starts now)."""
    path = Path(settings.sqlite.path)
    paths = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    if settings.detectors.snapshot_path is not None:
        paths.append(Path(settings.detectors.snapshot_path))
    for p in paths:
        p.unlink(missing_ok=True)


def demo_administrator(settings: Settings) -> str:
    """Creates (or renews) the demo's administrator with a new one-time password; the line to print."""
    password = secrets.token_urlsafe(12)
    hashed = Passwords(settings.api.auth.password_hash).hash(password)
    with make_store(settings) as store:
        if not store.set_user_password(DEMO_ADMIN, hashed):
            user = User(
                name=DEMO_ADMIN,
                role=Role.ADMIN,
                sites=("*",),
                password_hash=hashed,
                created_at=datetime.now(UTC),
            )
            store.add_user(user)
        store.append_audit(
            [
                AuditRecord(
                    at=datetime.now(UTC),
                    kind=AuditKind.USER_ADDED,
                    actor="beffroi run --demo",
                    target=DEMO_ADMIN,
                    client="cli",
                    detail="demo administrator, new one-time password",
                )
            ]
        )
    return f"  sign in at the map as {DEMO_ADMIN}, password {password} (this run only)"


def _serve(
    runtime: Runtime,
    *,
    settings: Settings,
    venue: Venue,
    demo: bool,
    done: threading.Event,
    children: Children | None = None,
    sign_in: str | None = None,
    tower_note: str | None = None,
) -> int:
    try:
        runtime.start()
    except RuntimeError as exc:
        print(f"beffroi run: {exc}", file=sys.stderr)
        return 1
    try:
        base = f"http://{settings.api.host}:{settings.api.port}"
        site = venue.sites[0].id
        print(
            f"beffroi running in {settings.mode} mode on venue {venue.id!r}"
            f"{' with the demo sensors' if demo else ''}.\n"
            + (f"{tower_note}\n" if tower_note else "")
            + f"  the overview of every site: {base}/overview\n"
            f"  the live map: {base}/map\n"
            + (f"{sign_in}\n" if sign_in else "")
            + f"  TOKEN=$(curl -s -d username=NAME -d password=... {base}/auth/token | jq -r .access_token)\n"
            f'  curl -H "Authorization: Bearer $TOKEN" {base}/sites/{site}/alerts\n'
            f"  curl {base}/health\n"
            "Ctrl-C stops.",
            flush=True,
        )
        while not done.wait(1.0):
            for event in children.check() if children is not None else ():
                print(f"beffroi run: {event}", file=sys.stderr)
            failed = runtime.failed()
            if failed:
                print("stopping: " + "; ".join(failed), file=sys.stderr)
                return 1
    finally:
        runtime.stop()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the platform (bridge, worker, API) in embedded or stack mode")
    p.add_argument("--mode", choices=("embedded", "stack"), help="default: the settings' mode (embedded)")
    p.add_argument("--settings", metavar="FILE", help="settings YAML (the environment overrides it)")
    p.add_argument("--venue", metavar="FILE", help="venue YAML (default: settings.venue, or the demo venue)")
    p.add_argument("--demo", action="store_true", help="publish demo sensor readings, alerts included")
    p.add_argument(
        "--rate", type=float, default=1.0, metavar="HZ", help="demo readings per device per second"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=TowerDemo.speed,
        metavar="X",
        help="--demo without a venue (the control tower): simulated seconds per second",
    )
    p.add_argument(
        "--bridges", type=int, default=1, metavar="N", help="bridges sharing the sensor topics (stack mode)"
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="workers of the readings' consumer group (stack)"
    )
    p.set_defaults(handler=_handle)
