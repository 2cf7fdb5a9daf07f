"""Tracking (ultralytics ByteTrack, fed by any backend's boxes) and gate line-crossing counts.

`LineCrossingCounter` counts a crossing when a track's ground position moves from one side of the
gate line to the other by more than a hysteresis band, within the gate's width. Tracks that vanish
leave their side behind for a short while: a new track that appears close by inherits it, so an
ID switch next to the line neither loses nor doubles a crossing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.vision.detectors.base import Detections, FloatArray
from analytics.vision.offline import ultralytics_offline
from beffroi.sites import ViewGate


@dataclass(frozen=True)
class TrackerConfig:
    track_high_thresh: float = 0.35
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.4
    track_buffer: int = 15  # frames a lost track is kept
    match_thresh: float = 0.8
    fuse_score: bool = True


class _Boxes:
    """The slice of ultralytics' `Boxes` interface that BYTETracker reads."""

    def __init__(self, xyxy: FloatArray, conf: FloatArray) -> None:
        self.xyxy = xyxy
        self.conf = conf
        self.cls = np.zeros(len(conf))

    @property
    def xywh(self) -> FloatArray:
        b = self.xyxy
        out: FloatArray = np.column_stack(
            [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]]
        )
        return out

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: Any) -> _Boxes:
        return _Boxes(self.xyxy[mask], self.conf[mask])


@dataclass(frozen=True)
class Tracks:
    ids: npt.NDArray[np.int64]
    boxes: FloatArray

    def feet(self) -> FloatArray:
        f: FloatArray = np.column_stack([(self.boxes[:, 0] + self.boxes[:, 2]) / 2.0, self.boxes[:, 3]])
        return f


class PersonTracker:
    """ByteTrack over one camera's detections."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        ultralytics_offline()
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import IterableSimpleNamespace

        args = IterableSimpleNamespace(tracker_type="bytetrack", **config.__dict__)
        self._tracker = BYTETracker(args)  # type: ignore[no-untyped-call]

    def update(self, detections: Detections) -> Tracks:
        out = self._tracker.update(
            _Boxes(detections.boxes.astype(np.float32), detections.scores.astype(np.float32))
        )
        if len(out) == 0:
            return Tracks(ids=np.zeros(0, dtype=np.int64), boxes=np.zeros((0, 4)))
        return Tracks(ids=out[:, 4].astype(np.int64), boxes=out[:, :4].astype(np.float64))


@dataclass
class _TrackSide:
    side: int  # -1, +1, or 0 while unknown
    pos: FloatArray
    seen_s: float


@dataclass(frozen=True)
class Crossing:
    gate_id: str
    t_s: float
    direction: int  # +1 in (towards the gate's normal side), -1 out


@dataclass
class LineCrossingCounter:
    gate: ViewGate
    hysteresis_m: float = 0.4
    margin_m: float = 0.5  # beyond the gate's ends that still counts
    stitch_radius_m: float = 1.2
    stitch_window_s: float = 2.0
    crossings_in: int = 0
    crossings_out: int = 0
    _tracks: dict[int, _TrackSide] = field(default_factory=dict)

    def _stitch(self, pos: FloatArray, t_s: float, live: set[int]) -> _TrackSide | None:
        best, best_d = None, self.stitch_radius_m
        for tid, st in self._tracks.items():
            if tid in live or t_s - st.seen_s > self.stitch_window_s or st.seen_s >= t_s:
                continue
            d = float(np.hypot(*(st.pos - pos)))
            if d <= best_d:
                best, best_d = tid, d
        return self._tracks.pop(best) if best is not None else None

    def update(self, t_s: float, ids: npt.NDArray[np.int64], ground: FloatArray) -> list[Crossing]:
        """Feed one frame's tracks (ids and ground positions of their feet); returns new crossings."""
        found: list[Crossing] = []
        if len(ids):
            d = self.gate.signed_distance(ground)
            along = self.gate.along(ground)
            live = {int(i) for i in ids}
            for tid, pos, di, ai in zip(ids.tolist(), ground, d.tolist(), along.tolist(), strict=True):
                st = self._tracks.get(tid)
                if st is None:
                    st = self._stitch(pos, t_s, live)
                    if st is None:
                        st = _TrackSide(side=int(np.sign(di)), pos=pos, seen_s=t_s)
                    self._tracks[tid] = st
                if abs(di) >= self.hysteresis_m:
                    side = 1 if di > 0 else -1
                    within = -self.margin_m <= ai <= self.gate.width_m + self.margin_m
                    if st.side != 0 and side != st.side and within:
                        c = Crossing(gate_id=self.gate.id, t_s=t_s, direction=side)
                        found.append(c)
                        if side > 0:
                            self.crossings_in += 1
                        else:
                            self.crossings_out += 1
                    st.side = side
                st.pos, st.seen_s = pos, t_s
        for tid in [k for k, v in self._tracks.items() if t_s - v.seen_s > self.stitch_window_s]:
            del self._tracks[tid]
        return found
