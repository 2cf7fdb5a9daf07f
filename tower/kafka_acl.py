"""Who may do what on Kafka: one principal per role, SCRAM-SHA-512 logins, ACLs on the topics.

- bridge: writes readings and dead letters;
- worker: reads readings, dead letters and zone states (its groups), writes alerts and scores;
- video: writes zone states;
- api: reads alerts (in groups named `beffroi-api-*`).
Nobody else writes; `admin` (a super user, SASL/PLAIN, see deploy/kafka) creates topics, logins and
ACLs. `beffroi stack-init` applies this matrix (idempotent); the passwords come from the
environment: BEFFROI_KAFKA_<ROLE>_PASSWORD (deploy/local/up generates them in secrets.env).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka.admin import AdminClient

# the package re-exports these without declaring them: import them from where they are defined
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from beffroi.bus import BusError
from beffroi.settings import KafkaSettings
from tower.settings import Settings

API_GROUP_PREFIX: Final = "beffroi-api"


@dataclass(frozen=True)
class Role:
    """A principal's rights: logical topics (names of `kafka.topics`) and consumer groups."""

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # literal group names
    group_prefixes: tuple[str, ...] = field(default=())


def roles(settings: Settings) -> dict[str, Role]:
    """The matrix of the module docstring, with the group names of `settings`."""
    return {
        "bridge": Role("bridge", writes=("readings", "deadletter")),
        "worker": Role(
            "worker",
            reads=("readings", "deadletter", "zone_state"),
            writes=("alerts", "scores"),
            groups=(settings.worker.group, settings.detectors.group, settings.crowd.group),
        ),
        "video": Role("video", writes=("zone_state",)),
        "api": Role("api", reads=("alerts",), group_prefixes=(API_GROUP_PREFIX,)),
    }


def default_user(role: str) -> str:
    return f"beffroi-{role}"


def password_from_env(role: str) -> str | None:
    return os.environ.get(f"BEFFROI_KAFKA_{role.upper()}_PASSWORD") or None


def admin_config(kafka: KafkaSettings) -> dict[str, str | int | float | bool]:
    """librdkafka properties of a client authenticated as `kafka.username` (if any)."""
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "socket.timeout.ms": str(kafka.request_timeout_ms),
    }
    return config | kafka.librdkafka_security()


def bindings(settings: Settings, role: Role, user: str) -> list[AclBinding]:
    principal = f"User:{user}"
    out: list[AclBinding] = []

    def allow(kind: ResourceType, name: str, pattern: ResourcePatternType, op: AclOperation) -> None:
        out.append(AclBinding(kind, name, pattern, principal, "*", op, AclPermissionType.ALLOW))

    for topic in role.reads:
        allow(ResourceType.TOPIC, settings.kafka.topic(topic), ResourcePatternType.LITERAL, AclOperation.READ)
    for topic in role.writes:
        allow(
            ResourceType.TOPIC, settings.kafka.topic(topic), ResourcePatternType.LITERAL, AclOperation.WRITE
        )
    for group in role.groups:
        allow(ResourceType.GROUP, group, ResourcePatternType.LITERAL, AclOperation.READ)
    for prefix in role.group_prefixes:
        allow(ResourceType.GROUP, prefix, ResourcePatternType.PREFIXED, AclOperation.READ)
    return out


def grant(settings: Settings, principals: Mapping[str, tuple[str, str]], *, timeout_s: float = 30.0) -> int:
    """Create (or update) each role's login and ACLs: `principals` maps role -> (user, password).
    Authenticates with `settings.kafka` (the admin). Returns how many ACL bindings were applied."""
    matrix = roles(settings)
    admin = AdminClient(admin_config(settings.kafka))
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
        )
        for user, password in principals.values()
    ]
    acls = [b for role, (user, _) in principals.items() for b in bindings(settings, matrix[role], user)]
    try:
        if upserts:
            for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).values():
                future.result()
        if acls:
            for future in admin.create_acls(acls, request_timeout=timeout_s).values():
                future.result()
    except Exception as exc:  # KafkaException, or a timeout: the admin API's errors are not typed
        raise BusError(f"kafka logins and ACLs for {sorted(principals)}: {exc}") from exc
    return len(acls)


def revoke(settings: Settings, users: list[str], *, timeout_s: float = 30.0) -> None:
    """Delete these logins and every ACL of their principals (tests remove what they created)."""
    admin = AdminClient(admin_config(settings.kafka))
    try:
        filters = [
            AclBindingFilter(
                ResourceType.ANY,
                None,  # type: ignore[arg-type]  # None matches any resource name
                ResourcePatternType.ANY,
                f"User:{user}",
                None,  # type: ignore[arg-type]  # None matches any host
                AclOperation.ANY,
                AclPermissionType.ANY,
            )
            for user in users
        ]
        for future in admin.delete_acls(filters, request_timeout=timeout_s).values():
            future.result()
        deletions: list[UserScramCredentialAlteration] = [
            UserScramCredentialDeletion(u, ScramMechanism.SCRAM_SHA_512) for u in users
        ]
        for future in admin.alter_user_scram_credentials(deletions, request_timeout=timeout_s).values():
            future.result()
    except Exception as exc:
        raise BusError(f"kafka logins {users}: removal failed: {exc}") from exc
