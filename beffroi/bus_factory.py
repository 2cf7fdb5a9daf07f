"""Pick the `Bus` backend for a mode: embedded -> MemoryBus, stack -> KafkaBus."""

from __future__ import annotations

from beffroi.bus import Bus
from beffroi.settings import Settings


def make_bus(settings: Settings, *, ensure_topics: bool = True) -> Bus:
    """The bus for `settings.mode`, with the configured topics created unless `ensure_topics` is False.

    Embedded mode needs one MemoryBus shared by every component of the process: call this once.
    """
    bus: Bus
    if settings.mode == "embedded":
        from beffroi.memory_bus import MemoryBus

        bus = MemoryBus()
    else:
        from beffroi.kafka_bus import KafkaBus

        bus = KafkaBus.from_settings(settings)
    if ensure_topics:
        try:
            bus.ensure_topics(settings.kafka.partitions())
        except BaseException:
            bus.close()
            raise
    return bus
