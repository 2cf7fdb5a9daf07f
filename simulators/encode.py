"""Live Objects payloads from precomputed per-device byte templates: only the timestamp and the
numbers are filled in per message, with `bytes % tuple`, so encoding costs about a microsecond.

The timestamp is the simulated event time, `YYYY-MM-DDTHH:MM:SS.mmmZ`: the second comes from the
tick, the milliseconds are the device's own fixed offset within the second.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta

from beffroi.devices import KIND_SPECS
from beffroi.venue import Device

Publish = Callable[[str, bytes], None]


def device_millis(device_id: str) -> int:
    """A device's stable millisecond offset within the second (spreads messages, stable across runs)."""
    return zlib.crc32(device_id.encode()) % 1000


def template(device: Device, *, site_id: str, namespace: str) -> bytes:
    """The payload of `device` with `%s` for the timestamp's second and `%.Nf`/`%d` for each value."""
    spec = KIND_SPECS[device.kind]
    marker = "\x00VALUE\x00"
    value = {f.name: marker for f in spec.fields}
    tags = [f"site:{site_id}"]
    if device.zone:
        tags.append(f"zone:{device.zone}")
    if device.exit:
        tags.append(f"exit:{device.exit}")
    doc: dict[str, object] = {
        "streamId": f"urn:lo:nsid:{namespace}:{device.id}!{device.kind.value}",
        "timestamp": "\x00TS\x00",
        "model": spec.model,
        "value": value,
    }
    if device.location is not None:
        doc["location"] = {"lat": device.location.lat, "lon": device.location.lon}
    doc["tags"] = tags
    text = json.dumps(doc, separators=(",", ":")).replace("%", "%%")
    text = text.replace('"\\u0000TS\\u0000"', f'"%s.{device_millis(device.id):03d}Z"')
    for f in spec.fields:
        fmt = "%d" if f.integer else f"%.{f.decimals}f"
        text = text.replace('"\\u0000VALUE\\u0000"', fmt, 1)
    return text.encode()


def second_stamp(start: datetime, t: float) -> bytes:
    """The `YYYY-MM-DDTHH:MM:SS` (UTC) of `start + t`."""
    return (start + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S").encode()


class Encoder:
    """Templates of one bank's devices; `emit` formats and publishes the due ones."""

    def __init__(self, devices: list[Device], site_ids: list[str], namespace: str) -> None:
        self.ids = [d.id for d in devices]
        self.templates = [
            template(d, site_id=s, namespace=namespace) for d, s in zip(devices, site_ids, strict=True)
        ]
        self.n_fields = len(KIND_SPECS[devices[0].kind].fields) if devices else 0

    def emit(self, idx: list[int], columns: list[list[float]], stamp: bytes, publish: Publish) -> int:
        """Publish the payloads of devices `idx` (values by field), all stamped with `stamp`."""
        ids, tm = self.ids, self.templates
        if self.n_fields == 1:
            for i, a in zip(idx, columns[0], strict=True):
                publish(ids[i], tm[i] % (stamp, a))
        else:
            for i, a, b in zip(idx, columns[0], columns[1], strict=True):
                publish(ids[i], tm[i] % (stamp, a, b))
        return len(idx)

    def one(self, i: int, row: list[float], stamp: bytes) -> bytes:
        return self.templates[i] % (stamp, *row)
