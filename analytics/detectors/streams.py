"""Stream table: which row of the detector arrays holds which sensor field, and its metadata.

A stream is one value field of one device (`gate-3/in`, `aq-1/pm25`). Rows are appended in the
order streams first appear (readings are sorted within a tick, so the order is deterministic).
Peer groups (for drift) are (site, model, field), and narrower ones (site, kind of zone, model,
field) where the venue's zone kinds are known: sensors in stands share the crowd's heat, those on
forecourts the weather. Only a rise is an incident for sound, air quality, temperature and fence
vibration (`UPWARD_KINDS`). Binary fields (door open, panic pressed, telco
`suppressed`) get fault checks but no incident scores: rules handle them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.detectors.base import KIND_ORDER, StreamMeta
from beffroi.devices import KIND_BY_MODEL, DeviceKind, Field
from beffroi.events import Reading

IGNORED_FIELDS = frozenset({"suppressed"})
UPWARD_KINDS = frozenset(
    {DeviceKind.ACOUSTIC, DeviceKind.AIR_QUALITY, DeviceKind.TEMPERATURE, DeviceKind.PERIMETER}
)


def _quantum(f: Field | None) -> float:
    """The smallest step a field reports: 1 for counts, 10**-decimals for the others."""
    if f is None:
        return 0.0
    if f.integer:
        return 1.0
    decimals = getattr(f, "decimals", None)
    return 10.0**-decimals if isinstance(decimals, int) else 0.0


@dataclass(frozen=True)
class StreamInfo:
    key: str
    device_id: str
    field: str
    site_id: str
    zone_id: str | None
    model: str
    zone_kind: str | None = None


@dataclass
class StreamTable:
    streams: list[StreamInfo] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[str, str, str], int] = field(default_factory=dict)
    sites: dict[str, int] = field(default_factory=dict)
    zone_kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    peers: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    _meta: StreamMeta = field(default_factory=StreamMeta.empty)
    _binary: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.streams)

    @staticmethod
    def fields_of(reading: Reading) -> list[tuple[str, float]]:
        """The (field, value) pairs of a reading that are streams; a suppressed telco count is no value."""
        values = reading.value
        suppressed = values.get("suppressed", 0.0) >= 0.5
        return [
            (name, v)
            for name, v in values.items()
            if name not in IGNORED_FIELDS and not (suppressed and name == "population")
        ]

    def add(self, reading: Reading, field_name: str) -> int:
        key = f"{reading.device_id}/{field_name}"
        row = self.index.get(key)
        if row is not None:
            return row
        info = StreamInfo(
            key=key,
            device_id=reading.device_id,
            field=field_name,
            site_id=reading.site_id,
            zone_id=reading.zone_id,
            model=reading.model,
            zone_kind=self.zone_kinds.get((reading.site_id, reading.zone_id or "")),
        )
        self._append([info])
        return self.index[key]

    def _append(self, infos: list[StreamInfo]) -> None:
        low, high, res, kind, group, counts, upward, peer = [], [], [], [], [], [], [], []
        for info in infos:
            self.index[info.key] = len(self.streams)
            self.streams.append(info)
            self.sites.setdefault(info.site_id, len(self.sites))
            spec = KIND_BY_MODEL.get(info.model)
            f = None
            if spec is not None:
                f = next((x for x in spec.fields if x.name == info.field), None)
            low.append(f.low if f is not None else -np.inf)
            high.append(f.high if f is not None else np.inf)
            res.append(_quantum(f))
            kind.append(KIND_ORDER.index(spec.kind) if spec is not None else -1)
            gkey = (info.site_id, info.model, info.field)
            group.append(self.groups.setdefault(gkey, len(self.groups)))
            self._binary.append(f is not None and f.integer and f.low == 0 and f.high == 1)
            counts.append(f is not None and f.integer and f.high > 1)
            upward.append(spec is not None and spec.kind in UPWARD_KINDS)
            pkey = (info.site_id, info.zone_kind or "", info.model, info.field)
            peer.append(self.peers.setdefault(pkey, len(self.peers)) if info.zone_kind else -1)
        self._meta = self._meta.extend(
            StreamMeta(
                low=np.array(low, dtype=np.float64),
                high=np.array(high, dtype=np.float64),
                resolution=np.array(res, dtype=np.float64),
                kind=np.array(kind, dtype=np.int64),
                group=np.array(group, dtype=np.int64),
                counts=np.array(counts, dtype=bool),
                upward=np.array(upward, dtype=bool),
                peer=np.array(peer, dtype=np.int64),
            )
        )

    @property
    def meta(self) -> StreamMeta:
        return self._meta

    def binary_mask(self) -> np.ndarray[Any, Any]:
        return np.array(self._binary, dtype=bool)

    def site_rows(self) -> np.ndarray[Any, Any]:
        """Index of each stream's site in `sites`."""
        return np.array([self.sites[s.site_id] for s in self.streams], dtype=np.int64)

    def to_json(self) -> list[dict[str, Any]]:
        return [s.__dict__.copy() for s in self.streams]

    @classmethod
    def from_json(
        cls, items: list[dict[str, Any]], *, zone_kinds: dict[tuple[str, str], str] | None = None
    ) -> StreamTable:
        table = cls(zone_kinds=dict(zone_kinds or {}))
        table._append([StreamInfo(**item) for item in items])
        return table
