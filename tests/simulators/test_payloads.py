"""Every payload is a valid Live Objects message for the bridge, stamped with the simulated time."""

from __future__ import annotations

import json
from datetime import timedelta

from beffroi.clock import parse_iso
from beffroi.devices import KIND_SPECS
from beffroi.events import Reading
from ingest.validate import Limits, validate_message

from .conftest import ShortRun


def test_payloads_pass_the_bridge_validation(short_run: ShortRun) -> None:
    venue = short_run.sim.world.venue
    end = short_run.sim.start + timedelta(seconds=short_run.sim.model.t)
    rejected = []
    for device, payload in short_run.payloads:
        out = validate_message(
            payload, topic=f"dev/{device}/data", devices=venue.devices, now=end, limits=Limits()
        )
        if not isinstance(out, Reading):
            rejected.append((device, out.reason, out.detail))
    assert rejected == []


def test_payload_shape_and_simulated_timestamps(short_run: ShortRun) -> None:
    venue = short_run.sim.world.venue
    start = short_run.sim.start
    skewed = {f["device"] for f in short_run.faults()["faults"] if f["type"] == "clock_skew"}
    last: dict[str, float] = {}
    for device, payload in short_run.payloads[:50_000]:
        doc = json.loads(payload)
        placed = venue.devices[device]
        spec = KIND_SPECS[placed.device.kind]
        assert doc["streamId"] == f"urn:lo:nsid:{venue.namespace}:{device}!{placed.device.kind.value}"
        assert doc["model"] == spec.model
        assert set(doc["value"]) == {f.name for f in spec.fields}
        assert f"site:{placed.site_id}" in doc["tags"]
        ts = parse_iso(doc["timestamp"])
        t = (ts - start).total_seconds()
        if device not in skewed:
            assert 0 < t <= short_run.sim.model.t + 1
            assert t >= last.get(device, 0.0)  # a device's clock runs forward
            last[device] = t
