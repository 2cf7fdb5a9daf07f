"""The root settings tree: the kernel's infrastructure sections and each component's own section,
validated once at start-up. File values come from YAML, secrets from the environment (see
`beffroi.settings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analytics.settings import CrowdSettings, DetectorsSettings, WorkerSettings
from api.settings import ApiSettings
from beffroi.settings import (
    FileSettings,
    KafkaSettings,
    MetricsSettings,
    Mode,
    MqttSettings,
    PostgresSettings,
    SqliteSettings,
    load_settings_file,
)
from ingest.settings import IngestSettings


class Settings(FileSettings):
    """The whole configuration. Build it with `load_settings`, once, at start-up."""

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


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Validate the settings file (if any) plus the environment; errors name the key and the line."""
    return load_settings_file(Settings, path, **overrides)
