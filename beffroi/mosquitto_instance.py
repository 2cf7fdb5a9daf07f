"""A Mosquitto broker of its own, rendered from deploy/mosquitto (the shipped configuration), for tests
and benchmarks that kill or reconfigure a broker: own port, own state directory, never the shared
stack's. Needs the `mosquitto` and `mosquitto_passwd` binaries (deploy/local/up installs them).

    with MosquittoInstance(tmp_path, users={"dev-1": pw}, bridge_users={"beffroi-bridge": pw}) as broker:
        mqtt = broker.apply(settings.mqtt)   # the same settings, the broker's two ports
        broker.kill()                         # SIGKILL: what was not saved is lost
        broker.start()                        # the same state directory again
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from beffroi.settings import MqttSettings

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
DEFAULT_AUTOSAVE_ON_CHANGES = True
DEFAULT_AUTOSAVE_INTERVAL = 100
"""deploy/local/lib.sh's defaults: save after every 100 changes, so a SIGKILL loses at most 100
acknowledged messages (bench/bench_mqtt_persistence.py measures each choice)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def render_config(
    directory: Path,
    *,
    port: int,
    bridge_port: int,
    max_packet_size: int,
    autosave_on_changes: bool = DEFAULT_AUTOSAVE_ON_CHANGES,
    autosave_interval: int = DEFAULT_AUTOSAVE_INTERVAL,
    user: str | None = None,
) -> str:
    """deploy/mosquitto/mosquitto.conf.in with its placeholders replaced, as deploy/local/up does."""
    text = (DEPLOY_DIR / "mosquitto.conf.in").read_text()
    for name, value in {
        "DIR": str(directory),
        "LOGS": str(directory),
        "PORT": str(port),
        "BRIDGE_PORT": str(bridge_port),
        "MAX_PACKET_SIZE": str(max_packet_size),
        "AUTOSAVE_ON_CHANGES": "true" if autosave_on_changes else "false",
        "AUTOSAVE_INTERVAL": str(autosave_interval),
        "USER": user or "root",
    }.items():
        text = text.replace(f"@{name}@", value)
    return text


class MosquittoInstance:
    """One `mosquitto -c` process over `directory` (config, password files, ACL, persistence):
    `users` log in on the devices' port, `bridge_users` on the bridge's."""

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, str],
        bridge_users: Mapping[str, str],
        port: int | None = None,
        bridge_port: int | None = None,
        max_packet_size: int = 8192 + 1024,
        autosave_on_changes: bool = DEFAULT_AUTOSAVE_ON_CHANGES,
        autosave_interval: int = DEFAULT_AUTOSAVE_INTERVAL,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.bridge_port = bridge_port or free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            render_config(
                directory,
                port=self.port,
                bridge_port=self.bridge_port,
                max_packet_size=max_packet_size,
                autosave_on_changes=autosave_on_changes,
                autosave_interval=autosave_interval,
            )
        )
        (directory / "acl").write_text((DEPLOY_DIR / "acl").read_text())
        for name, logins in (("passwd", users), ("bridge_passwd", bridge_users)):
            passwd = directory / name
            passwd.write_text("".join(f"{u}:{p}\n" for u, p in logins.items()))
            os.chmod(passwd, 0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
        self._proc: subprocess.Popen[bytes] | None = None

    def apply(self, mqtt: MqttSettings) -> MqttSettings:
        """`mqtt` pointed at this broker."""
        return mqtt.model_copy(update={"port": self.port, "bridge_port": self.bridge_port})

    def start(self, timeout_s: float = 15.0) -> None:
        log = open(self.directory / "stderr.log", "ab")  # noqa: SIM115 - the broker's, closed with it
        self._proc = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not (self._answers(self.port) and self._answers(self.bridge_port)):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto on {self.port} did not start: {self.log_tail()}")
            time.sleep(0.05)

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            self._proc.wait(timeout=30)

    def reload(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for name in ("mosquitto.log", "stderr.log"):
            path = self.directory / name
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
