"""Composition of a running platform: which source, bus and store feed the same Bridge, workers and API.

embedded: an in-process source (fed by `InProcessPublisher`), `MemoryBus`, `SqliteStore`.
stack:    Mosquitto (`MqttSource`), `KafkaBus`, `PostgresStore`.

`compose` only wires small services; each one owns its thread and knows how to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from analytics.crowd_worker import CrowdWorker
from analytics.detect_worker import DetectWorker, DetectWorkerConfig
from analytics.worker import Worker
from beffroi.bus import Bus
from beffroi.bus_factory import make_bus
from beffroi.clock import utcnow
from beffroi.store_factory import make_store
from beffroi.venue import Venue
from ingest.bridge import Bridge, BridgeConfig
from ingest.mqtt_source import MqttSource
from ingest.source import MessageSource, QueueSource
from simulators.publish import InProcessPublisher, MqttPublisher, Publisher
from tower.settings import Settings

if TYPE_CHECKING:
    from tower.demo.control_tower import ControlTower

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_VENUE = DEMO_DIR / "venue.yaml"
DEMO_SETTINGS = DEMO_DIR / "settings.yaml"


def provision_devices(settings: Settings, device_ids: Iterable[str]) -> None:
    """Give these devices their MQTT logins on the local broker (`beffroi mqtt-provision`'s work)."""
    from beffroi.mqtt_auth import device_password
    from tower.commands.mqtt_provision import passwd_path, provision, reload_broker, wait_login

    if settings.mqtt.device_secret is None:
        raise RuntimeError("BEFFROI_MQTT__DEVICE_SECRET is not set: source ~/.local/state/beffroi/stack.env")
    secret = settings.mqtt.device_secret.get_secret_value()
    credentials = {d: device_password(secret, d) for d in device_ids}
    if credentials and provision(passwd_path(), credentials):
        reload_broker()
        last = next(reversed(credentials))
        wait_login(settings, last, credentials[last], client_id=f"{last}-provision-check")


def deprovision_devices(device_ids: Iterable[str]) -> int:
    """Remove these devices' MQTT logins from the local broker; returns how many were removed."""
    from tower.commands.mqtt_provision import deprovision, passwd_path, reload_broker

    removed = deprovision(passwd_path(), device_ids)
    if removed:
        reload_broker()
    return removed


class Service(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class LoopService:
    """Runs `run()` of a component in a thread; `stop()` asks it to return and waits."""

    name: str
    run: Callable[[], None]
    halt: Callable[[], None]
    _thread: threading.Thread | None = None
    failure: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self.failure = exc
            log.exception("%s stopped on an error", self.name)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self.halt()
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass
class HookService:
    """A component that starts and stops its own threads (e.g. paho's network loop)."""

    name: str
    on_start: Callable[[], None]
    on_stop: Callable[[], None]

    def start(self) -> None:
        self.on_start()

    def stop(self) -> None:
        self.on_stop()


@dataclass
class ApiService:
    """The operator API under uvicorn, in a thread."""

    name: str
    app: Any
    host: str
    port: int
    _server: Any = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="info", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API could not start on {self.host}:{self.port} (see the log above)")
            time.sleep(0.02)

    @property
    def started(self) -> bool:
        return bool(self._server is not None and self._server.started)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass
class Runtime:
    """Services started in order and stopped in reverse; resources closed after them."""

    settings: Settings
    bridge: Bridge
    worker: Worker
    services: list[Service]
    resources: ExitStack
    publisher: Publisher | None = None

    def start(self) -> None:
        """Start every service; if one fails, stop those already started and re-raise."""
        started: list[Service] = []
        try:
            for s in self.services:
                log.info("starting %s", s.name)
                s.start()
                started.append(s)
        except BaseException:
            for s in reversed(started):
                s.stop()
            self.resources.close()
            raise

    def stop(self) -> None:
        for s in reversed(self.services):
            log.info("stopping %s", s.name)
            s.stop()
        self.resources.close()

    def failed(self) -> list[str]:
        return [f"{s.name}: {s.failure}" for s in self.services if isinstance(s, LoopService) and s.failure]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def bridge_for_stack(settings: Settings, venue: Venue) -> tuple[Bridge, Callable[[], None]]:
    """A stack-mode bridge (Mosquitto -> Kafka) and the function that closes what it holds."""
    bus = make_bus(settings)
    source = MqttSource(settings.mqtt)
    source.start()
    bridge = Bridge(
        source=source, bus=bus, devices=venue.devices, config=BridgeConfig.from_settings(settings)
    )

    def close() -> None:
        source.close()
        bus.close()

    return bridge, close


def _crowd_health(crowd: CrowdWorker) -> Callable[[], dict[str, Any]]:
    return lambda: {
        "zone_states": crowd.stats.states,
        "alerts": crowd.stats.alerts,
        "failures": crowd.stats.failures,
    }


def compose(
    settings: Settings,
    *,
    venue: Venue,
    demo: bool = False,
    demo_rate_hz: float = 1.0,
    api: bool = True,
    tower: ControlTower | None = None,
) -> Runtime:
    """Wire the platform for `settings.mode`. Nothing runs until `Runtime.start()`.

    With `tower` (embedded mode), its scenario, cameras and video service run beside the platform,
    and the bridge and the API's escalations follow its simulated clock."""
    from api.app import create_app
    from tower.demo.generator import DemoFeed

    services: list[Service] = []
    publisher: Publisher | None = None
    with ExitStack() as undo:
        bus: Bus = undo.enter_context(make_bus(settings))
        source: MessageSource
        if settings.mode == "embedded":
            queue_source = QueueSource()
            source = queue_source
            publisher = InProcessPublisher(queue_source.offer)
        else:
            mqtt_source = MqttSource(settings.mqtt)
            source = mqtt_source
            services.append(HookService("mqtt-source", mqtt_source.start, mqtt_source.close))
            if demo:
                provision_devices(settings, venue.devices)
                publisher = MqttPublisher(settings.mqtt)
                undo.callback(publisher.close)
        store = undo.enter_context(make_store(settings))
        worker = Worker.from_settings(settings, bus=bus, store=store)
        undo.callback(worker.close)
        clock = tower.clock if tower is not None else utcnow
        bridge = Bridge(
            source=source,
            bus=bus,
            devices=venue.devices,
            config=BridgeConfig.from_settings(settings),
            clock=clock,
        )
        services.append(LoopService("worker", worker.run, worker.stop))
        if settings.detectors.enabled:
            detectors = DetectWorker(
                bus=bus, store=store, config=DetectWorkerConfig.from_settings(settings), venue=venue
            )
            undo.callback(detectors.shutdown)
            services.append(LoopService("detectors", detectors.run, detectors.stop))
        crowd: CrowdWorker | None = None
        if settings.crowd.enabled:
            crowd = CrowdWorker.from_settings(settings, bus=bus, store=store)
            undo.callback(crowd.close)
            services.append(LoopService("crowd", crowd.run, crowd.stop))
        services.append(LoopService("bridge", bridge.run, bridge.stop))
        if api:
            app = create_app(
                settings,
                bus=bus,
                venue=venue,
                health={
                    "bridge": lambda: {
                        "accepted": bridge.stats.accepted,
                        "dead_lettered": dict(bridge.stats.rejected),
                    },
                    "worker": lambda: {
                        "readings": worker.stats.readings,
                        "alerts": worker.stats.alerts,
                        "failures": worker.stats.failures,
                    },
                    **({"crowd": _crowd_health(crowd)} if crowd is not None else {}),
                },
                clock=clock,
            )
            services.append(ApiService("api", app, settings.api.host, settings.api.port))
        if demo and publisher is not None:
            feed = DemoFeed(venue=venue, publisher=publisher, rate_hz=demo_rate_hz, namespace=venue.namespace)
            services.append(LoopService("demo-feed", feed.run, feed.stop))
        if tower is not None:
            if publisher is None:
                raise ValueError("the control tower demo runs in embedded mode")
            zone_states = settings.kafka.topic("zone_state")
            for name, run in tower.services(publisher, bus, zone_states):
                services.append(LoopService(name, run, tower.stop))
        return Runtime(
            settings,
            bridge=bridge,
            worker=worker,
            services=services,
            resources=undo.pop_all(),
            publisher=publisher,
        )
    raise AssertionError("unreachable")
