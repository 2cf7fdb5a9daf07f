"""One typed settings tree, validated once. File values come from YAML, secrets from the environment.

Environment variables use the prefix BEFFROI_ and `__` between levels, e.g.
BEFFROI_MQTT__PASSWORD or BEFFROI_POSTGRES__PASSWORD. Precedence, highest first: values passed
in code (`load_settings(path, mode="stack")`, command-line flags), the environment, the file.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from analytics.detectors.engine import EngineConfig
from analytics.rules.crowd_density import CrowdDensityConfig
from analytics.rules.density_trend import DensityTrendConfig
from analytics.rules.gate_flow import GateFlowConfig
from analytics.rules.registry import RuleConfig, ZoneRuleConfig
from analytics.rules.threshold import ThresholdConfig
from beffroi.yamlconf import ConfigError, ConfigIssue, line_of, load_yaml

Mode = Literal["embedded", "stack"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicSpec(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=6, ge=1, le=1024)


class TopicsSettings(_Section):
    readings: TopicSpec = TopicSpec(name="beffroi.readings", partitions=12)
    deadletter: TopicSpec = TopicSpec(name="beffroi.deadletter", partitions=3)
    alerts: TopicSpec = TopicSpec(name="beffroi.alerts", partitions=6)
    scores: TopicSpec = TopicSpec(name="beffroi.scores", partitions=6)
    zone_state: TopicSpec = TopicSpec(name="beffroi.zone_state", partitions=6)

    def all(self) -> dict[str, TopicSpec]:
        return {name: getattr(self, name) for name in type(self).model_fields}


KafkaClient = Literal["kafka-python", "confluent-kafka"]


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client: KafkaClient = Field(
        default="kafka-python",
        description="the Kafka client library behind the bus: kafka-python (pure Python, the default) "
        "or confluent-kafka (librdkafka, about ten times the throughput per core)",
    )
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topics: TopicsSettings = TopicsSettings()
    linger_ms: int = Field(default=5, ge=0)
    request_timeout_ms: int = Field(default=30_000, ge=1000)

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic ('readings', 'deadletter', ...)."""
        return self.topic_prefix + self.topics.all()[name].name

    def partitions(self) -> dict[str, int]:
        return {self.topic_prefix + spec.name: spec.partitions for spec in self.topics.all().values()}


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = "beffroi-bridge"
    password: SecretStr | None = None
    client_id: str = "beffroi-bridge"
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


class PostgresSettings(_Section):
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


class MetricsSettings(_Section):
    """This process's Prometheus endpoint (beffroi/metrics.py). `beffroi run --mode stack` gives its
    i-th process `port + i`; a component started alone serves on `port` (unset: no endpoint)."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class SqliteSettings(_Section):
    path: Path = Path("var/beffroi.db")


class IngestSettings(_Section):
    max_payload_bytes: int = Field(default=8192, ge=256)
    max_future_s: float = Field(default=300.0, ge=0)
    max_past_s: float = Field(default=7 * 86400.0, ge=0)
    batch_size: int = Field(default=1000, ge=1)
    batch_linger_ms: int = Field(default=20, ge=0)


def _default_rules() -> list[RuleConfig]:
    def rule(name: str, model: str, field: str, above: float, severity: str = "high") -> RuleConfig:
        return ThresholdConfig.model_validate(
            {"name": name, "model": model, "field": field, "above": above, "severity": severity}
        )

    return [
        rule("panic-button", "beffroi.panic_button.v1", "pressed", 0.5, "critical"),
        rule("smoke-pm25", "beffroi.air_quality.v1", "pm25", 150.0),
        rule("co-level", "beffroi.air_quality.v1", "co", 50.0),
        rule("sound-spike", "beffroi.acoustic.v1", "dba", 110.0, "medium"),
        rule("fence-vibration", "beffroi.perimeter.v1", "vibration", 2.0),
        rule("crowd-density", "beffroi.camera.v1", "density", 5.0, "critical"),
    ]


class WorkerSettings(_Section):
    group: str = "beffroi-analytics"
    batch_size: int = Field(default=2000, ge=1)
    poll_timeout_s: float = Field(default=0.5, gt=0)
    rules: list[RuleConfig] = Field(default_factory=_default_rules)


class DetectorsSettings(_Section):
    """The streaming anomaly detectors (analytics/detect_worker.py), a consumer group of their own."""

    enabled: bool = True
    group: str = "beffroi-detectors"
    snapshot_path: Path | None = Field(
        default=Path("var/detectors.snapshot"), description="state snapshot, restored at start"
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)


def _default_zone_rules() -> list[ZoneRuleConfig]:
    return [CrowdDensityConfig(), DensityTrendConfig(), GateFlowConfig()]


class CrowdSettings(_Section):
    """Crowd-safety rules over the video pipeline's zone states (analytics/crowd_worker.py), a
    consumer group of their own on the zone_state topic: a backlog of readings never delays them."""

    enabled: bool = True
    group: str = "beffroi-crowd"
    batch_size: int = Field(default=2000, ge=1)
    poll_timeout_s: float = Field(default=0.5, gt=0)
    resume_s: float = Field(
        default=900.0,
        ge=0,
        description="after a restart, an open alert of the same rule, subject and level raised this "
        "recently is taken as the episode in progress (no second alert)",
    )
    rules: list[ZoneRuleConfig] = Field(default_factory=_default_zone_rules)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings`, once, at start-up."""

    model_config = SettingsConfigDict(env_prefix="BEFFROI_", env_nested_delimiter="__", extra="forbid")

    mode: Mode = "embedded"
    venue: Path | None = None
    kafka: KafkaSettings = KafkaSettings()
    mqtt: MqttSettings = MqttSettings()
    postgres: PostgresSettings = PostgresSettings()
    sqlite: SqliteSettings = SqliteSettings()
    ingest: IngestSettings = IngestSettings()
    worker: WorkerSettings = WorkerSettings()
    detectors: DetectorsSettings = DetectorsSettings()
    crowd: CrowdSettings = CrowdSettings()
    api: ApiSettings = ApiSettings()
    metrics: MetricsSettings = MetricsSettings()

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


_file_data: ContextVar[dict[str, Any] | None] = ContextVar("beffroi_settings_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The settings file, below the environment and explicit values."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_file_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get() or {})


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Validate the settings file (if any) plus the environment; errors name the key and the line."""
    if path is None:
        return Settings(**overrides)
    doc = load_yaml(path)
    data = dict(doc) if isinstance(doc, dict) else doc
    if not isinstance(data, dict):
        raise ConfigError(path, [ConfigIssue("<root>", getattr(doc, "line", 1), "expected a mapping")])
    token = _file_data.set(data)
    try:
        return Settings(**overrides)
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
