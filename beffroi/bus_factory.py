"""Pick the `Bus` backend: embedded -> MemoryBus; stack -> the Kafka client of `kafka.client`.

The Kafka backends register here by their `KEY` (one file each): kafka-python (`KafkaBus`, the
default) and confluent-kafka (`ConfluentBus`, librdkafka).
"""

from __future__ import annotations

from typing import Any, Protocol

from beffroi import confluent_bus, kafka_bus
from beffroi.bus import Bus
from beffroi.memory_bus import MemoryBus
from beffroi.settings import PlatformSettings


class KafkaBackend(Protocol):
    def __call__(self, settings: PlatformSettings, **overrides: Any) -> Bus: ...


KAFKA_BACKENDS: dict[str, KafkaBackend] = {
    kafka_bus.KEY: kafka_bus.KafkaBus.from_settings,
    confluent_bus.KEY: confluent_bus.ConfluentBus.from_settings,
}


def kafka_bus_for(settings: PlatformSettings, **overrides: Any) -> Bus:
    """A Kafka bus of the client named by `settings.kafka.client` (no topic created)."""
    return KAFKA_BACKENDS[settings.kafka.client](settings, **overrides)


def make_bus(settings: PlatformSettings, *, ensure_topics: bool = True) -> Bus:
    """The bus for `settings.mode`, with the configured topics created unless `ensure_topics` is False.

    Embedded mode needs one MemoryBus shared by every component of the process: call this once.
    """
    bus: Bus = MemoryBus() if settings.mode == "embedded" else kafka_bus_for(settings)
    if ensure_topics:
        try:
            bus.ensure_topics(settings.kafka.partitions())
        except BaseException:
            bus.close()
            raise
    return bus
