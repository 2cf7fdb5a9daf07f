"""The ingest component's section of the settings tree (`ingest`), and what the bridge reads of the tree."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field

from beffroi.settings import PlatformSettings, Section


class IngestSettings(Section):
    max_payload_bytes: int = Field(default=8192, ge=256)
    max_future_s: float = Field(default=300.0, ge=0)
    max_past_s: float = Field(default=7 * 86400.0, ge=0)
    batch_size: int = Field(default=1000, ge=1)
    batch_linger_ms: int = Field(default=20, ge=0)


class IngestPlatformSettings(PlatformSettings, Protocol):
    """The settings tree as the bridge reads it (tower.settings.Settings provides it)."""

    @property
    def ingest(self) -> IngestSettings: ...
