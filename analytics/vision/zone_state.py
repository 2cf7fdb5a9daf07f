"""Per-zone, per-second aggregates of every camera's counts: what the video pipeline publishes.

`ZoneState` (its record format in `beffroi.records`) is the only thing that leaves the pipeline:
numbers per zone (count, density, flow, level of service, confidence), never frames, boxes or faces.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from analytics.vision.los import DensityTable, density_los, flow_los
from beffroi.clock import ensure_aware
from beffroi.records import GateFlow, ZoneState

if TYPE_CHECKING:
    from analytics.vision.counting import CameraObservation


@dataclass(frozen=True)
class ZoneInfo:
    area_m2: float
    los_table: DensityTable = "queuing"


@dataclass(frozen=True)
class GateInfo:
    width_m: float
    zone_in: str | None
    zone_out: str | None


SiteKey = tuple[str | None, str]  # (site id, zone or gate id)

_Row = tuple[float, float, float, float, int]  # count, observed area, density weight, score, detected


@dataclass
class _Bucket:
    seen: dict[SiteKey, dict[str, list[_Row]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    crossings: dict[SiteKey, list[int]] = field(default_factory=lambda: defaultdict(list))


def _bucket_of(ts: datetime, window_s: float) -> int:
    return math.floor(ensure_aware(ts).timestamp() / window_s)


class ZoneAggregator:
    """Folds camera observations into one `ZoneState` per zone per window (1 s by default).

    Zones and gates are keyed by (site id, id): sites cloned at scale share zone ids. A window is
    emitted once every camera has sent a frame `lateness_s` past its end (the watermark is the
    slowest camera's time), or on `flush`. A camera more than `max_skew_s` behind the newest frame
    is left out of the watermark (a stalled stream must not hold every zone back); its frames for
    windows already emitted are dropped and counted in `late_observations`.
    """

    def __init__(
        self,
        *,
        zones: dict[SiteKey, ZoneInfo],
        gates: dict[SiteKey, GateInfo] | None = None,
        window_s: float = 1.0,
        lateness_s: float = 1.0,
        max_skew_s: float = 5.0,
        flow_window_s: float = 60.0,
    ) -> None:
        self.zones = zones
        self.gates = gates or {}
        self.window_s = window_s
        self.lateness_s = lateness_s
        self.max_skew_s = max_skew_s
        self._camera_ts: dict[str, float] = {}
        self.flow_window_s = flow_window_s
        self._buckets: dict[int, _Bucket] = {}
        self._flow: dict[SiteKey, deque[float]] = defaultdict(deque)  # gate -> crossing times (epoch s)
        self._late = 0
        self._emitted_through: int | None = None
        self._gates_of: dict[SiteKey, list[SiteKey]] = defaultdict(list)
        for (site, gate_id), g in self.gates.items():
            for zone_id in {g.zone_in, g.zone_out} - {None}:
                assert zone_id is not None
                self._gates_of[(site, zone_id)].append((site, gate_id))

    @property
    def late_observations(self) -> int:
        """Observations dropped because their window was already emitted."""
        return self._late

    def add(self, obs: CameraObservation, ts: datetime) -> list[ZoneState]:
        """Add one camera frame's observation taken at `ts`; returns the windows this closes."""
        b = _bucket_of(ts, self.window_s)
        if self._emitted_through is not None and b <= self._emitted_through:
            self._late += 1
            return []
        bucket = self._buckets.setdefault(b, _Bucket())
        for zone_id, z in obs.zones.items():
            key = (obs.site_id, zone_id)
            if key in self.zones and z.area_m2 > 0:
                bucket.seen[key][obs.camera_id].append(
                    (z.count, z.area_m2, z.density_weight, z.score, z.detected)
                )
        for c in obs.crossings:
            bucket.crossings[(obs.site_id, c.gate_id)].append(c.direction)
        t = ensure_aware(ts).timestamp()
        self._camera_ts[obs.camera_id] = max(t, self._camera_ts.get(obs.camera_id, t))
        newest = max(self._camera_ts.values())
        watermark = min(v for v in self._camera_ts.values() if v >= newest - self.max_skew_s)
        horizon = watermark - self.lateness_s
        return self._emit(lambda key: (key + 1) * self.window_s <= horizon)

    def flush(self) -> list[ZoneState]:
        """Emit every open window."""
        return self._emit(lambda key: True)

    def _emit(self, ready: Callable[[int], bool]) -> list[ZoneState]:
        out: list[ZoneState] = []
        for key in sorted(self._buckets):
            if not ready(key):
                break
            out.extend(self._states(key, self._buckets.pop(key)))
            self._emitted_through = key
        return out

    def _gate_flows(self, end_s: float, bucket: _Bucket) -> dict[SiteKey, GateFlow]:
        for key, dirs in bucket.crossings.items():
            self._flow[key].extend([end_s] * len(dirs))
        for q in self._flow.values():
            while q and q[0] <= end_s - self.flow_window_s:
                q.popleft()
        flows: dict[SiteKey, GateFlow] = {}
        for key, info in self.gates.items():
            dirs = bucket.crossings.get(key, [])
            ppm = len(self._flow[key]) * (60.0 / self.flow_window_s) / info.width_m
            flows[key] = GateFlow(
                gate_id=key[1],
                width_m=info.width_m,
                entered=sum(1 for d in dirs if d > 0),
                left=sum(1 for d in dirs if d < 0),
                flow_ppm_per_m=ppm,
                los=flow_los(ppm),
            )
        return flows

    def _states(self, key: int, bucket: _Bucket) -> list[ZoneState]:
        end_s = (key + 1) * self.window_s
        ts = datetime.fromtimestamp(end_s, UTC)
        gate_flows = self._gate_flows(end_s, bucket)
        states = []
        for zkey, cams in bucket.seen.items():
            info = self.zones[zkey]
            per_cam = []
            for rows in cams.values():
                n = len(rows)
                detected = sum(r[4] for r in rows)
                per_cam.append(
                    (
                        sum(r[0] for r in rows) / n,  # mean count over the camera's frames
                        rows[0][1],  # observed area
                        sum(r[2] for r in rows) / n,  # density weight
                        sum(r[3] * r[4] for r in rows) / max(1, detected),  # mean detection score
                        n,
                    )
                )
            area = sum(c[1] for c in per_cam)
            density = sum(c[0] for c in per_cam) / area if area > 0 else 0.0
            observed_area = min(area, info.area_m2)
            coverage = min(1.0, observed_area / info.area_m2) if info.area_m2 > 0 else 0.0
            weight = sum(c[2] * c[1] for c in per_cam) / area if area > 0 else 0.0
            score = sum(c[3] * c[1] for c in per_cam) / area if area > 0 else 0.0
            method: Literal["detection", "density", "fused"] = (
                "detection" if weight <= 0.0 else "density" if weight >= 1.0 else "fused"
            )
            zone_gates = [gate_flows[g] for g in self._gates_of.get(zkey, [])]
            width = sum(g.width_m for g in zone_gates)
            flow = sum(g.flow_ppm_per_m * g.width_m for g in zone_gates) / width if width > 0 else 0.0
            states.append(
                ZoneState(
                    zone_id=zkey[1],
                    site_id=zkey[0],
                    ts=ts,
                    window_s=self.window_s,
                    count=density * info.area_m2,
                    observed_count=density * observed_area,
                    observed_area_m2=observed_area,
                    coverage=coverage,
                    density=density,
                    los=density_los(density, info.los_table),
                    flow_ppm_per_m=flow,
                    flow_los=flow_los(flow),
                    gates=zone_gates,
                    confidence=confidence(
                        coverage=coverage,
                        density_weight=weight,
                        score=score,
                        detected=any(c[3] > 0 for c in per_cam),
                    ),
                    method=method,
                    cameras=sorted(cams),
                    frames=sum(c[4] for c in per_cam),
                )
            )
        return states


def confidence(*, coverage: float, density_weight: float, score: float, detected: bool) -> float:
    """How far to trust a zone's figures: the share of the zone seen (square root: density is an
    average, a sample of the zone says much), times the quality of the counting method
    (detection scores; a fixed 0.8 for the density model; 0.9 for an empty view)."""
    det_quality = min(1.0, 0.3 + score) if detected else 0.9
    quality = (1.0 - density_weight) * det_quality + density_weight * 0.8
    return float(max(0.0, min(1.0, math.sqrt(max(coverage, 0.0)) * quality)))
