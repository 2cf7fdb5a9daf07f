"""The extra bridge and worker processes of `beffroi run --mode stack --bridges N --workers N`.

The run command's own process holds bridge 0 and worker 0 (and the API); the others run as
`python -m tower.processes.bridge` / `tower.processes.worker` children on the same settings file. Bridges
share the sensor topics through an MQTT shared subscription (`mqtt.share_group`, "beffroi" unless
set), each with client id `<mqtt.client_id>-<i>` (a persistent session of its own: a bridge
restarted under its id gets back what it had not acknowledged); workers share the readings
through their consumer group. A child that exits is started again after a pause. With
`metrics.port` P, member i of each kind serves on P + 2i (bridges) and P + 2i + 1 (workers), the
run process on P.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tower.settings import Settings, write_settings

log = logging.getLogger(__name__)

DEFAULT_SHARE_GROUP = "beffroi"
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class ChildSpec:
    name: str
    module: str
    env: Mapping[str, str] = field(default_factory=dict)


def scale_out(settings: Settings, *, bridges: int, workers: int) -> tuple[Settings, list[ChildSpec]]:
    """The settings of this process's members (bridge 0, worker 0) and the other members' specs."""
    if bridges < 1 or workers < 1:
        raise ValueError(f"--bridges and --workers must be >= 1, got {bridges} and {workers}")
    if bridges == 1 and workers == 1:
        return settings, []
    if settings.mode != "stack":
        raise ValueError("--bridges/--workers above 1 need stack mode (MQTT and Kafka share the load)")
    mqtt = settings.mqtt
    base_id = mqtt.client_id
    if bridges > 1:
        mqtt = mqtt.model_copy(
            update={"share_group": mqtt.share_group or DEFAULT_SHARE_GROUP, "client_id": f"{base_id}-0"}
        )
    own = settings.model_copy(update={"mqtt": mqtt})
    port = settings.metrics.port
    children: list[ChildSpec] = []
    for i in range(1, bridges):
        env = {"BEFFROI_MQTT__CLIENT_ID": f"{base_id}-{i}"}
        if port:
            env["BEFFROI_METRICS__PORT"] = str(port + 2 * i)
        children.append(ChildSpec(f"bridge-{i}", "tower.processes.bridge", env))
    for i in range(1, workers):
        env = {"BEFFROI_METRICS__PORT": str(port + 2 * i + 1)} if port else {}
        children.append(ChildSpec(f"worker-{i}", "tower.processes.worker", env))
    return own, children


class Children:
    """Runs `python -m MODULE --settings FILE` for each spec; restarts one that exits; stops them.

    The settings are written to `settings_file` for them (secrets stay in the environment)."""

    def __init__(self, specs: Sequence[ChildSpec], *, settings: Settings, settings_file: Path) -> None:
        self.specs = list(specs)
        self.settings_file = write_settings(settings, settings_file)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._restarts: dict[str, int] = {}
        self._due: dict[str, float] = {}

    def start(self) -> None:
        for spec in self.specs:
            self._start(spec)

    def _start(self, spec: ChildSpec) -> None:
        self._procs[spec.name] = subprocess.Popen(
            [sys.executable, "-m", spec.module, "--settings", str(self.settings_file)],
            env={**os.environ, **spec.env},
            start_new_session=True,  # a Ctrl-C reaches this process, which stops them in order
        )
        log.info("started %s (pid %d)", spec.name, self._procs[spec.name].pid)

    def check(self) -> list[str]:
        """Restart the children that exited (each after a growing pause); returns what happened."""
        events: list[str] = []
        now = time.monotonic()
        for spec in self.specs:
            proc = self._procs.get(spec.name)
            if proc is None or proc.poll() is None:
                continue
            due = self._due.get(spec.name)
            if due is None:
                n = self._restarts.get(spec.name, 0)
                delay = RESTART_DELAYS_S[min(n, len(RESTART_DELAYS_S) - 1)]
                self._due[spec.name] = now + delay
                events.append(f"{spec.name} exited with {proc.returncode}; restart in {delay:.0f}s")
            elif now >= due:
                del self._due[spec.name]
                self._restarts[spec.name] = self._restarts.get(spec.name, 0) + 1
                self._start(spec)
        return events

    def stop(self, timeout_s: float = 20.0) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
