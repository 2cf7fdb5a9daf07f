"""`beffroi stack-init [--settings FILE]`: create the Kafka topics, the Kafka logins and ACLs of
each role (when run as the Kafka admin, see tower/kafka_acl.py), and apply the PostgreSQL migrations.

Run by deploy/local/up once the services answer; safe to run again (existing topics are left
alone, logins and ACLs are set again, applied migrations are skipped).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from beffroi.bus import BusError
from beffroi.yamlconf import ConfigError
from tower.settings import Settings, load_settings

HELP = "create the Kafka topics and apply the PostgreSQL migrations"


def create_topics(settings: Settings, *, wait_s: float = 60.0) -> dict[str, int]:
    """Create every configured topic with its partition count, retrying while the broker settles."""
    from beffroi.kafka_bus import KafkaBus

    partitions = settings.kafka.partitions()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with KafkaBus.from_settings(settings, client_id="beffroi-stack-init") as bus:
                bus.ensure_topics(partitions)
            return partitions
        except BusError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"stack-init: kafka not ready yet ({exc}), retrying", file=sys.stderr)
            time.sleep(1.0)


def grant_roles(settings: Settings) -> list[str]:
    """Each role's SCRAM login and ACLs, for the roles whose password is in the environment
    (BEFFROI_KAFKA_<ROLE>_PASSWORD); nothing without a Kafka login (an unauthenticated broker)."""
    from tower import kafka_acl

    if settings.kafka.username is None:
        return []
    principals = {
        role: (kafka_acl.default_user(role), password)
        for role in kafka_acl.roles(settings)
        if (password := kafka_acl.password_from_env(role)) is not None
    }
    kafka_acl.grant(settings, principals)
    return sorted(user for user, _ in principals.values())


def apply_migrations(settings: Settings) -> None:
    """Apply the pending PostgreSQL migrations in the configured schema."""
    from beffroi.postgres_store import PostgresStore

    with PostgresStore(settings.postgres) as store:
        store.migrate()


def _handle(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings, mode="stack")
    partitions = create_topics(settings)
    print(
        f"stack-init: {len(partitions)} topics ready on {settings.kafka.bootstrap_servers}: "
        + ", ".join(f"{t}({n})" for t, n in sorted(partitions.items()))
    )
    users = grant_roles(settings)
    if users:
        print(f"stack-init: kafka logins and ACLs set for {', '.join(users)}")
    apply_migrations(settings)
    pg = settings.postgres
    print(f"stack-init: migrations applied to {pg.dbname} schema {pg.db_schema} on {pg.host}:{pg.port}")
    return 0


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settings", metavar="FILE", help="settings YAML (the environment still overrides it)")
    p.set_defaults(handler=_handle)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _arguments(sub.add_parser("stack-init", help=HELP))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tower.commands.stack_init`: the same command without loading every other command."""
    parser = argparse.ArgumentParser(prog="beffroi stack-init", description=HELP)
    _arguments(parser)
    try:
        return _handle(parser.parse_args(argv))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
