"""The ingest component's section of the settings tree (`ingest`), and what the bridge reads of the tree."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field

from beffroi.settings import PlatformSettings, Section

MQTT_PACKET_OVERHEAD = 1024
"""Bytes of an MQTT PUBLISH besides its payload that the broker's limit allows (fixed header, topic,
properties): Mosquitto refuses any packet over `max_payload_bytes + MQTT_PACKET_OVERHEAD`."""


class IngestSettings(Section):
    max_payload_bytes: int = Field(
        default=8192,
        ge=256,
        le=1_000_000,
        description="larger messages are dead-lettered; Mosquitto's max_packet_size is this plus "
        "MQTT_PACKET_OVERHEAD (deploy/local/up renders it from BEFFROI_INGEST__MAX_PAYLOAD_BYTES)",
    )
    deadletter_prefix_bytes: int = Field(
        default=1024,
        ge=0,
        le=65_536,
        description="a dead letter of an oversized message keeps only this prefix (plus size and SHA-256)",
    )
    max_future_s: float = Field(default=300.0, ge=0)
    max_past_s: float = Field(default=7 * 86400.0, ge=0)
    batch_size: int = Field(default=1000, ge=1)
    batch_linger_ms: int = Field(default=20, ge=0)
    flush_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="how long the bridge waits for the bus to confirm a batch before it sends it again "
        "(short: a flush that cannot succeed must not hold the path once the broker is back)",
    )
    quarantine_dir: Path | None = Field(
        default=None,
        description="where a message the bus refuses even as a dead letter is kept "
        "(default: $BEFFROI_STATE_DIR/quarantine)",
    )

    def mqtt_max_packet_size(self) -> int:
        """The `max_packet_size` of the broker's listener that agrees with `max_payload_bytes`."""
        return self.max_payload_bytes + MQTT_PACKET_OVERHEAD


class IngestPlatformSettings(PlatformSettings, Protocol):
    """The settings tree as the bridge reads it (tower.settings.Settings provides it)."""

    @property
    def ingest(self) -> IngestSettings: ...
