"""The infrastructure sections of the settings (bus, broker, databases) and the machinery that loads
a settings tree: file values from YAML, secrets from the environment.

The root tree, gathering every component's own section, is `tower.settings.Settings`. Components
read it through the narrow protocols they declare (`PlatformSettings` here for the kernel's
factories). Environment variables use the prefix BEFFROI_ and `__` between levels, e.g.
BEFFROI_MQTT__PASSWORD or BEFFROI_POSTGRES__PASSWORD. Precedence, highest first: values passed
in code (`load_settings(path, mode="stack")`, command-line flags), the environment, the file.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from beffroi.venue import Venue
from beffroi.yamlconf import ConfigError, ConfigIssue, line_of, load_model, load_yaml

Mode = Literal["embedded", "stack"]


class Section(BaseModel):
    """A section of the settings tree: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class TopicSpec(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=6, ge=1, le=1024)


class TopicsSettings(Section):
    readings: TopicSpec = TopicSpec(name="beffroi.readings", partitions=12)
    deadletter: TopicSpec = TopicSpec(name="beffroi.deadletter", partitions=3)
    alerts: TopicSpec = TopicSpec(name="beffroi.alerts", partitions=6)
    scores: TopicSpec = TopicSpec(name="beffroi.scores", partitions=6)
    zone_state: TopicSpec = TopicSpec(name="beffroi.zone_state", partitions=6)

    def all(self) -> dict[str, TopicSpec]:
        return {name: getattr(self, name) for name in type(self).model_fields}


KafkaClient = Literal["kafka-python", "confluent-kafka"]


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client: KafkaClient = Field(
        default="kafka-python",
        description="the Kafka client library behind the bus: kafka-python (pure Python, the default) "
        "or confluent-kafka (librdkafka, about ten times the throughput per core)",
    )
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topics: TopicsSettings = TopicsSettings()
    username: str | None = Field(
        default=None,
        description="SASL login of this process (None: no authentication); one per role (kafka_acl.py)",
    )
    password: SecretStr | None = None
    sasl_mechanism: Literal["SCRAM-SHA-512", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="PLAIN is for the admin login only (deploy/kafka)"
    )
    linger_ms: int = Field(default=5, ge=0)
    request_timeout_ms: int = Field(default=30_000, ge=1000)

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic ('readings', 'deadletter', ...)."""
        return self.topic_prefix + self.topics.all()[name].name

    def partitions(self) -> dict[str, int]:
        return {self.topic_prefix + spec.name: spec.partitions for spec in self.topics.all().values()}

    def kafka_python_security(self) -> dict[str, str]:
        """kafka-python's SASL options for `username` (empty without one)."""
        if self.username is None:
            return {}
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password.get_secret_value() if self.password else "",
        }

    def librdkafka_security(self) -> dict[str, str]:
        """librdkafka's SASL properties for `username` (empty without one)."""
        if self.username is None:
            return {}
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password.get_secret_value() if self.password else "",
        }


BRIDGE_CLIENT_PREFIX = "beffroi-bridge"
"""Bridge logins and client ids start with it; no device may be named so (see deploy/mosquitto)."""


class MqttSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535, description="the devices' port")
    bridge_port: int = Field(
        default=1884, ge=1, le=65535, description="the bridge's own port: only bridge logins exist there"
    )
    username: str = BRIDGE_CLIENT_PREFIX
    password: SecretStr | None = None
    client_id: str = Field(default=BRIDGE_CLIENT_PREFIX, pattern=rf"^{BRIDGE_CLIENT_PREFIX}")
    data_topic: str = "dev/+/data"
    share_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="several bridges share the sensor topics, each message going to one of them "
        "(MQTT v5 shared subscription $share/GROUP/data_topic); each bridge needs its own client_id",
    )
    keepalive_s: int = Field(default=30, ge=5)
    device_secret: SecretStr | None = None
    namespace: str = Field(default="beffroi", pattern=r"^[A-Za-z0-9_-]+$")

    @property
    def subscription(self) -> str:
        """The bridge's topic filter: `data_topic`, shared in `share_group` when there is one."""
        return self.data_topic if self.share_group is None else f"$share/{self.share_group}/{self.data_topic}"


class PostgresSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = "beffroi"
    user: str = "beffroi"
    password: SecretStr | None = None
    db_schema: str = Field(default="public", alias="schema", pattern=r"^[a-z_][a-z0-9_]*$")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def conninfo(self) -> str:
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={self.dbname}", f"user={self.user}"]
        if self.password is not None:
            parts.append(f"password={self.password.get_secret_value()}")
        return " ".join(parts)


class MetricsSettings(Section):
    """This process's Prometheus endpoint (beffroi/metrics.py). `beffroi run --mode stack` gives its
    i-th process `port + i`; a component started alone serves on `port` (unset: no endpoint)."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class SqliteSettings(Section):
    path: Path = Path("var/beffroi.db")


class PlatformSettings(Protocol):
    """What the kernel reads from the settings tree: the mode, the venue file and the infrastructure."""

    @property
    def mode(self) -> Mode: ...

    @property
    def venue(self) -> Path | None: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def mqtt(self) -> MqttSettings: ...

    @property
    def postgres(self) -> PostgresSettings: ...

    @property
    def sqlite(self) -> SqliteSettings: ...


def load_venue_for(settings: PlatformSettings) -> Venue:
    """The venue named by `settings.venue` (the bridge's device registry)."""
    if settings.venue is None:
        raise ConfigError(
            "<settings>", [ConfigIssue("venue", None, "a venue file is required (settings.venue)")]
        )
    return load_model(Venue, settings.venue)


class FileSettings(BaseSettings):
    """A settings tree read from the environment (BEFFROI_..., `__` between levels), then a file."""

    model_config = SettingsConfigDict(env_prefix="BEFFROI_", env_nested_delimiter="__", extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)


S = TypeVar("S", bound=FileSettings)

_file_data: ContextVar[dict[str, Any] | None] = ContextVar("beffroi_settings_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The settings file, below the environment and explicit values."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_file_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get() or {})


def load_settings_file(cls: type[S], path: Path | str | None = None, **overrides: Any) -> S:
    """Validate the settings file (if any) plus the environment; errors name the key and the line."""
    if path is None:
        return cls(**overrides)
    doc = load_yaml(path)
    data = dict(doc) if isinstance(doc, dict) else doc
    if not isinstance(data, dict):
        raise ConfigError(path, [ConfigIssue("<root>", getattr(doc, "line", 1), "expected a mapping")])
    token = _file_data.set(data)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        issues = [
            ConfigIssue(
                ".".join(str(p) for p in err["loc"]) or "<root>",
                line_of(doc, err["loc"]),
                err["msg"],
            )
            for err in exc.errors()
        ]
        raise ConfigError(path, issues) from exc
    finally:
        _file_data.reset(token)
