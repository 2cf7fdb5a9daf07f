"""A Kafka broker of its own, rendered from deploy/kafka (the shipped configuration), for tests and
benchmarks that stop or kill a broker: own ports, own data directory, never the shared stack's.
Needs Java and the broker's jars that deploy/local/up resolved ($BEFFROI_STATE_DIR/kafka/libs).

    with KafkaInstance(tmp_path) as kafka:
        settings = settings.model_copy(update={"kafka": kafka.apply(settings.kafka)})
        kafka.stop()    # SIGTERM: a controlled shutdown (data kept)
        kafka.start()   # the same data directory again
"""

from __future__ import annotations

import base64
import os
import random
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from pydantic import SecretStr

from beffroi.settings import KafkaSettings

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy"
ADMIN = "admin"
LOG4J = """status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = error
rootLogger.appenderRef.out.ref = out
"""


def listen_port() -> int:
    """A free port below Linux's ephemeral range: a client's outgoing connection cannot take it
    between this choice and the broker's bind (which happened with an ephemeral one)."""
    while True:
        port = random.randint(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def default_libs() -> Path:
    """The jars deploy/local/up resolved for the shared stack (any stack's will do)."""
    state = Path(os.environ.get("BEFFROI_STATE_DIR") or Path.home() / ".local" / "state" / "beffroi")
    return state / "kafka" / "libs"


class KafkaInstance:
    """One KRaft broker (combined broker and controller) over `directory`; the admin logs in with
    SASL/PLAIN (a super user), as on the shared stack."""

    def __init__(self, directory: Path, *, libs: Path | None = None, heap: str = "384m") -> None:
        self.directory = directory
        self.libs = libs or default_libs()
        if not any(self.libs.glob("kafka_*.jar")):
            raise RuntimeError(f"no Kafka jars in {self.libs}: run deploy/local/up first")
        self.port = listen_port()
        self.controller_port = listen_port()
        self.password = secrets.token_hex(12)
        self.heap = heap
        self.data = directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = directory / "server.properties"
        text = (DEPLOY_DIR / "kafka" / "server.properties.in").read_text()
        for name, value in {
            "DATA_DIR": str(self.data),
            "PORT": str(self.port),
            "CONTROLLER_PORT": str(self.controller_port),
            "ADMIN_PASSWORD": self.password,
        }.items():
            text = text.replace(f"@{name}@", value)
        # a test broker: small, quick to start and to stop
        text += "\nnum.network.threads=2\nnum.io.threads=2\noffsets.topic.num.partitions=1\n"
        text += "transaction.state.log.num.partitions=1\ncontrolled.shutdown.enable=true\n"
        self.config.write_text(text)
        (directory / "log4j2.properties").write_text(LOG4J)
        self._proc: subprocess.Popen[bytes] | None = None
        self._format()

    def _java(self, *args: str, heap: str = "128m") -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    def _format(self) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {result.stdout!r} {result.stderr!r}")

    def apply(self, kafka: KafkaSettings) -> KafkaSettings:
        """`kafka` pointed at this broker, as its admin."""
        return kafka.model_copy(
            update={
                "bootstrap_servers": f"127.0.0.1:{self.port}",
                "username": ADMIN,
                "password": SecretStr(self.password),
                "sasl_mechanism": "PLAIN",
            }
        )

    def start(self, timeout_s: float = 90.0) -> None:
        log = open(self.directory / "kafka.out", "ab")  # noqa: SIM115 - the broker's, closed with it
        self._proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.config), heap=self.heap), stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"kafka on {self.port} did not start (exit {self._proc.poll()}): {self.log_tail()}"
                )
            time.sleep(0.1)

    def answers(self) -> bool:
        """The broker answers a metadata request (as the admin) and lists itself."""
        env = dict(os.environ, KAFKA_PROBE_USER=ADMIN, KAFKA_PROBE_PASSWORD=self.password)
        probe = DEPLOY_DIR / "local" / "kafka_probe.py"
        result = subprocess.run(
            ["python3", str(probe), f"127.0.0.1:{self.port}"], env=env, capture_output=True, check=False
        )
        return result.returncode == 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
        """Stop the broker (SIGTERM: a controlled shutdown) and wait until it is gone."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=30)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "kafka.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
