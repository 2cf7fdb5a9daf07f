"""The root settings tree: the kernel's infrastructure sections and each component's own section,
validated once at start-up. File values come from YAML, secrets from the environment (see
`beffroi.settings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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


def write_settings(settings: Settings, path: Path | str) -> Path:
    """Write `settings` as a YAML file (secrets left out: they come from the environment)."""
    # by alias (postgres.schema), the name the environment uses too: BEFFROI_POSTGRES__SCHEMA wins
    data = settings.model_dump(mode="json", exclude_none=True, by_alias=True)
    secrets = (
        ("mqtt", "password"),
        ("mqtt", "device_secret"),
        ("postgres", "password"),
        ("kafka", "password"),
    )
    for section, key in secrets:
        data.get(section, {}).pop(key, None)
    data.get("api", {}).get("auth", {}).pop("secret_key", None)
    path = Path(path)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
