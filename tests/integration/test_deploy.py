"""The real stack of deploy/local/: scripts, topic creation, and Mosquitto's logins and ACL."""

from __future__ import annotations

import os
import pwd
import queue
import stat
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from beffroi.mqtt_auth import data_topic, device_client_id, device_password
from tests.fixtures.stack import kafka_admin
from tower.cli import main as cli_main
from tower.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("BEFFROI_STATE_DIR") or Path.home() / ".local" / "state" / "beffroi")
WAIT_S = 10.0


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


# -- an MQTT v5 client driven step by step --------------------------------------------------------


@dataclass
class Mqtt:
    settings: Settings
    client_id: str
    username: str | None
    password: str | None
    port: int
    received: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    _acks: dict[int, queue.Queue[Any]] = field(default_factory=dict)
    _connack: queue.Queue[ReasonCode] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = lambda c, u, flags, rc, props: self._connack.put(rc)
        self.client.on_message = lambda c, u, msg: self.received.put((msg.topic, bytes(msg.payload)))
        self.client.on_publish = lambda c, u, mid, rc, props: self._ack(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self._ack(mid, rcs)
        self._lock = threading.Lock()

    def _ack_queue(self, mid: int) -> queue.Queue[Any]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def _ack(self, mid: int, rc: Any) -> None:
        self._ack_queue(mid).put(rc)

    def connect(self) -> ReasonCode:
        self.client.connect(self.settings.mqtt.host, self.port, keepalive=30)
        self.client.loop_start()
        return self._connack.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        rc: ReasonCode = self._ack_queue(info.mid).get(timeout=WAIT_S)
        return rc

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        codes: list[ReasonCode] = self._ack_queue(mid).get(timeout=WAIT_S)
        return codes[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_clients(stack_settings: Settings):
    clients: list[Mqtt] = []

    def make(
        username: str | None, password: str | None, client_id: str | None = None, *, port: int | None = None
    ) -> Mqtt:
        c = Mqtt(
            stack_settings,
            client_id or f"{username}-{uuid.uuid4().hex[:8]}",
            username,
            password,
            port or stack_settings.mqtt.port,
        )
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def venue_devices(tmp_path: Path, stack_settings: Settings) -> tuple[Path, list[str]]:
    """A venue file with three devices of ids unique to the test, provisioned on Mosquitto."""
    tag = stack_settings.postgres.db_schema.replace("_", "-")
    devices = [f"{tag}-aq-{i}" for i in range(3)]
    venue = {
        "id": f"v{tag}",
        "sites": [
            {
                "id": "stade",
                "center": {"lat": 48.9245, "lon": 2.3602},
                "devices": [{"id": d, "kind": "air_quality"} for d in devices],
            }
        ],
    }
    path = tmp_path / "venue.yaml"
    path.write_text(yaml.safe_dump(venue))
    assert cli_main(["mqtt-provision", "--venue", str(path)]) == 0  # in process: a subprocess is slower
    users = {line.split(":")[0] for line in (STATE / "mosquitto" / "passwd").read_text().splitlines()}
    assert set(devices) <= users
    return path, devices


def _login(settings: Settings, device_id: str) -> str:
    assert settings.mqtt.device_secret is not None
    return device_password(settings.mqtt.device_secret.get_secret_value(), device_id)


def _bridge(make: Any, settings: Settings) -> Mqtt:
    assert settings.mqtt.password is not None
    bridge: Mqtt = make(
        settings.mqtt.username,
        settings.mqtt.password.get_secret_value(),
        f"beffroi-bridge-deploy-{uuid.uuid4().hex[:8]}",
        port=settings.mqtt.bridge_port,
    )
    assert bridge.connect() == "Success"
    return bridge


def _next_of(client: Mqtt, topics: set[str]) -> tuple[str, bytes]:
    """The next message on one of `topics` (other tests' devices may publish on dev/+/data too)."""
    while True:
        topic, payload = client.received.get(timeout=WAIT_S)
        if topic in topics:
            return topic, payload


# -- scripts ---------------------------------------------------------------------------------------


def test_status_reports_the_three_services_up(stack_services):
    result = run("deploy/local/status")
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name, port in stack_services.items():
        assert lines[name].split()[1:3] == ["up", f"127.0.0.1:{port}"], result.stdout


def _uid_of(pid: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # the real uid; effective and saved follow it
    raise AssertionError(f"no Uid line for pid {pid}")


def test_mosquitto_runs_as_its_own_user_and_owns_its_files(stack_services, venue_devices):
    """Started as root, the deploy runs the broker as an unprivileged user that owns what it writes
    (sessions, logins re-read on SIGHUP, also after provisioning rewrote them); started as anyone
    else, as that user."""
    pid = (STATE / "mosquitto" / "mosquitto.pid").read_text().strip()
    broker_uid = _uid_of(pid)
    if os.geteuid() == 0:
        assert broker_uid != 0
        expected = os.environ.get("BEFFROI_MQTT_RUN_AS", "mosquitto")
        assert broker_uid == pwd.getpwnam(expected).pw_uid
    else:
        assert broker_uid == os.geteuid()
    home = (STATE / "mosquitto").resolve()
    for path in (home, home / "data", home / "passwd", home / "bridge_passwd", home / "acl"):
        assert path.stat().st_uid == broker_uid, path
    assert stat.S_IMODE((home / "passwd").stat().st_mode) & 0o077 == 0


def _stack_identity(settings: Settings) -> dict[str, Any]:
    admin = kafka_admin(settings, "test-deploy")
    try:
        cluster_id = admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time(), system_identifier FROM pg_control_system()")
        started, system_id = row.fetchone() or (None, None)
    return {
        "kafka cluster id": cluster_id,
        "kafka pid": (STATE / "kafka" / "kafka.pid").read_text().strip(),
        "mosquitto pid": (STATE / "mosquitto" / "mosquitto.pid").read_text().strip(),
        "postgres started": started,
        "postgres system id": system_id,
    }


def test_up_again_is_a_noop_that_keeps_the_data(stack_settings):
    schema = stack_settings.postgres.db_schema
    with psycopg.connect(stack_settings.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.marker (note text)")
        conn.execute(f"INSERT INTO {schema}.marker VALUES ('kept')")
    before = _stack_identity(stack_settings)
    assert before["kafka cluster id"] == (STATE / "kafka" / "cluster.id").read_text().strip()

    result = run("deploy/local/up")

    assert "already running" in result.stderr
    assert "starting" not in result.stderr
    assert "formatting" not in result.stderr
    assert _stack_identity(stack_settings) == before
    with psycopg.connect(stack_settings.postgres.conninfo(), autocommit=True) as conn:
        assert conn.execute(f"SELECT note FROM {schema}.marker").fetchall() == [("kept",)]


def test_stack_init_creates_topics_with_the_configured_partitions(stack_settings, tmp_path, capsys):
    prefix = stack_settings.kafka.topic_prefix
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        yaml.safe_dump(
            {
                "kafka": {"topic_prefix": prefix, "topics": {"readings": {"name": "r", "partitions": 7}}},
                "postgres": {"db_schema": stack_settings.postgres.db_schema},
            }
        )
    )

    assert cli_main(["stack-init", "--settings", str(settings_file)]) == 0

    out = capsys.readouterr().out
    assert f"{prefix}r(7)" in out
    admin = kafka_admin(stack_settings, "test-deploy")
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([f"{prefix}r"])}
    finally:
        admin.close()
    assert described == {f"{prefix}r": 7}
    with psycopg.connect(stack_settings.postgres.conninfo(), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (stack_settings.postgres.db_schema,),
        ).fetchall()
    assert {"schema_migrations", "readings", "alerts"} <= {t for (t,) in tables}


# -- Mosquitto: logins and ACL ---------------------------------------------------------------------


def test_mqtt_provision_again_changes_nothing(venue_devices, capsys):
    path, _ = venue_devices
    passwd = STATE / "mosquitto" / "passwd"
    before = passwd.read_bytes()

    capsys.readouterr()
    assert cli_main(["mqtt-provision", "--venue", str(path)]) == 0

    assert "3 devices, 0 added or updated" in capsys.readouterr().out
    assert passwd.read_bytes() == before


def test_a_device_publishes_on_its_own_topic_only(stack_settings, venue_devices, mqtt_clients):
    _, (me, other, _) = venue_devices
    mine, theirs = data_topic(me), data_topic(other)
    bridge = _bridge(mqtt_clients, stack_settings)
    assert bridge.subscribe(stack_settings.mqtt.data_topic) == "Granted QoS 1"
    device = mqtt_clients(me, _login(stack_settings, me), device_client_id("beffroi", me))
    assert device.connect() == "Success"

    assert device.publish(mine, b'{"n": 1}') == "Success"
    assert _next_of(bridge, {mine, theirs}) == (mine, b'{"n": 1}')

    assert device.publish(theirs, b'{"forged": true}') == "Not authorized"
    assert device.publish(mine, b'{"n": 2}') == "Success"
    # the forged message would have reached the bridge before the later one from the same sender
    assert _next_of(bridge, {mine, theirs}) == (mine, b'{"n": 2}')


def test_a_device_reads_its_own_commands_only(stack_settings, venue_devices, mqtt_clients):
    _, (me, other, _) = venue_devices
    mine, theirs = f"dev/{me}/cmd", f"dev/{other}/cmd"
    device = mqtt_clients(me, _login(stack_settings, me))
    assert device.connect() == "Success"
    # Mosquitto grants subscriptions and applies `read` rules to each message it would deliver
    for topic in (mine, theirs, "dev/+/cmd"):
        assert device.subscribe(topic) == "Granted QoS 1"

    bridge = _bridge(mqtt_clients, stack_settings)
    assert bridge.publish(theirs, b"open-gate") == "Success"
    assert bridge.publish(mine, b"reboot") == "Success"

    # had the other device's command been delivered, it would have come first
    assert _next_of(device, {mine, theirs}) == (mine, b"reboot")


@pytest.mark.parametrize(
    ("who", "password"),
    [
        pytest.param("device", "0" * 64, id="wrong-password"),
        pytest.param("other-device", "own", id="another-devices-password"),
        pytest.param("unknown", "any", id="unknown-user"),
        pytest.param("bridge", "not-the-bridge-password", id="bridge-wrong-password"),
        pytest.param("anonymous", None, id="anonymous"),
    ],
)
def test_a_bad_login_is_refused_at_connect(stack_settings, venue_devices, mqtt_clients, who, password):
    _, (me, other, _) = venue_devices
    username, secret = {
        "device": (me, password),
        "other-device": (me, _login(stack_settings, other)),
        "unknown": (f"{me}-unknown", password),
        "bridge": (stack_settings.mqtt.username, password),
        "anonymous": (None, None),
    }[who]
    client = mqtt_clients(username, secret, f"bad-login-{uuid.uuid4().hex[:8]}")

    assert client.connect() in ("Bad user name or password", "Not authorized")
