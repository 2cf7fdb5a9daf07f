"""Kafka is authenticated (issue 12): every connection logs in (SASL), and ACLs let each role do its
work only. Before, any local process could write to the readings topic, and a forged reading from
a device that is not in the venue became a critical alert.

Each test gives its own SCRAM logins the role's rights on its own topics (tower/kafka_acl.py,
as `beffroi stack-init` does for the configured ones) and removes them afterwards.
"""

from __future__ import annotations

import gc
import uuid
import warnings
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from pydantic import SecretStr

from beffroi.bus import BusError
from beffroi.bus_factory import kafka_bus_for, make_bus
from beffroi.records import reading_record
from tower import kafka_acl
from tower.settings import Settings
from tower.testing import collect, payload, reading

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _collect_refused_clients() -> Iterator[None]:
    """A client the broker refused leaves kafka-python's wake-up socket pair to the garbage collector;
    collect it here, after each test, rather than inside whichever test runs next."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


CLIENTS = ["kafka-python", "confluent-kafka"]


@pytest.fixture
def logins(stack_settings: Settings) -> Iterator[dict[str, tuple[str, str]]]:
    """role -> (user, password), granted on this test's topics, revoked at teardown."""
    tag = uuid.uuid4().hex[:8]
    principals = {role: (f"t-{tag}-{role}", uuid.uuid4().hex) for role in kafka_acl.roles(stack_settings)}
    with make_bus(stack_settings):  # the test's topics, created by the admin
        pass
    kafka_acl.grant(stack_settings, principals)
    yield principals
    kafka_acl.revoke(stack_settings, [user for user, _ in principals.values()])


def as_user(settings: Settings, client: str, user: str | None, password: str | None) -> Settings:
    kafka = settings.kafka.model_copy(
        update={
            "client": client,
            "username": user,
            "password": SecretStr(password) if password is not None else None,
            "sasl_mechanism": "SCRAM-SHA-512",
        }
    )
    return settings.model_copy(update={"kafka": kafka})


def try_send(settings: Settings, topic: str, value: bytes) -> str:
    """'stored', or why the bus refused (short timeouts: a refusal must not look like a wait)."""
    # kafka-python waits 30 s by default for a first contact, which a refused login never makes
    bootstrap = {"bootstrap_timeout_ms": 4_000} if settings.kafka.client == "kafka-python" else {}
    try:
        with kafka_bus_for(settings, max_block_ms=4_000, request_timeout_ms=4_000, **bootstrap) as bus:
            bus.send(topic, value, key=b"k")
            bus.flush(timeout=6.0)
    except BusError as exc:
        return f"refused: {exc}"
    return "stored"


@pytest.mark.parametrize("client", CLIENTS)
def test_only_the_bridge_writes_readings(stack_settings, logins, client):
    readings = stack_settings.kafka.topic("readings")
    forged = reading_record(readings, reading("ghost-panic-1", {"pressed": 1.0})).value  # not in any venue
    bridge_user, bridge_pw = logins["bridge"]
    worker_user, worker_pw = logins["worker"]
    outcomes = {
        "anonymous": try_send(as_user(stack_settings, client, None, None), readings, forged),
        "wrong password": try_send(as_user(stack_settings, client, bridge_user, "not-it"), readings, forged),
        "worker": try_send(as_user(stack_settings, client, worker_user, worker_pw), readings, forged),
        "api": try_send(as_user(stack_settings, client, *logins["api"]), readings, forged),
        "bridge": try_send(as_user(stack_settings, client, bridge_user, bridge_pw), readings, b"{}"),
    }
    with make_bus(stack_settings, ensure_topics=False) as admin_bus:
        stored = collect(admin_bus, readings, expect=1)
    print(f"writes to readings ({client}): " + ", ".join(f"{k}: {v[:60]}" for k, v in outcomes.items()))
    assert outcomes["bridge"] == "stored"
    for who in ("anonymous", "wrong password", "worker", "api"):
        assert outcomes[who].startswith("refused"), (who, outcomes[who])
    assert [r.value for r in stored] == [b"{}"]  # the forged reading never reached the topic


@pytest.mark.parametrize("client", CLIENTS)
def test_each_role_writes_only_its_own_topics(stack_settings, logins, client):
    topic = stack_settings.kafka.topic
    cases = {
        ("worker", "alerts"): "stored",
        ("worker", "scores"): "stored",
        ("video", "zone_state"): "stored",
        ("bridge", "deadletter"): "stored",
        ("bridge", "alerts"): "refused",
        ("video", "readings"): "refused",
        ("api", "alerts"): "refused",
    }
    raw = payload("x", {"pressed": 1})
    got = {
        (role, name): try_send(as_user(stack_settings, client, *logins[role]), topic(name), raw)
        for role, name in cases
    }
    assert {k: v.split(":")[0] for k, v in got.items()} == cases, got


def test_the_roles_of_stack_init_exist_on_the_stack(stack_settings):
    """deploy/local/up ran stack-init as the admin: the configured topics carry the roles' ACLs."""
    admin = AdminClient(kafka_acl.admin_config(stack_settings.kafka))
    bindings = admin.describe_acls(
        AclBindingFilter(
            ResourceType.TOPIC,
            "beffroi.readings",
            ResourcePatternType.LITERAL,
            None,  # type: ignore[arg-type]  # any principal
            None,  # type: ignore[arg-type]  # any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        ),
        request_timeout=15,
    ).result()
    writers = {b.principal for b in bindings if b.operation == AclOperation.WRITE}
    readers = {b.principal for b in bindings if b.operation == AclOperation.READ}
    assert writers == {"User:beffroi-bridge"}
    assert readers == {"User:beffroi-worker"}
