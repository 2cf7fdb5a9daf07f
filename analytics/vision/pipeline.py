"""The video pipeline: batches of camera frames in, zone states out.

`VisionPipeline.process` is synchronous and free of I/O: detect people in the whole batch (one
detector call across cameras), run the density model on the frames whose crowd is dense, count per
camera on the ground, and fold the counts into per-zone, per-second states. `run_pipeline` drives
it from the ingest queue and publishes the states.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from analytics.vision.counting import CameraCounter, CameraObservation
from analytics.vision.density.model import DensityEstimator, DensityMap
from analytics.vision.detectors.base import PersonDetector
from analytics.vision.framecount import CountCalibration
from analytics.vision.publish import ZoneStatePublisher
from analytics.vision.zone_state import ZoneAggregator
from beffroi.records import ZoneState
from ingest.video.batching import FrameQueue
from ingest.video.source import FrameSample

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    frames: int = 0
    batches: int = 0
    density_frames: int = 0
    unknown_camera: int = 0
    states: int = 0


@dataclass
class VisionPipeline:
    detector: PersonDetector
    counters: Mapping[str, CameraCounter]
    aggregator: ZoneAggregator
    density: DensityEstimator | None = None
    #: count calibration of the density model (`CountCalibration`, from its weights), applied per cell
    calibration: CountCalibration = field(default_factory=CountCalibration)
    stats: PipelineStats = field(default_factory=PipelineStats)

    def observe(self, batch: Sequence[FrameSample]) -> list[tuple[FrameSample, CameraObservation]]:
        """Counts on the ground for each frame of the batch (frames of unknown cameras are skipped)."""
        known = [s for s in batch if s.camera_id in self.counters]
        self.stats.unknown_camera += len(batch) - len(known)
        if not known:
            return []
        detections = self.detector.detect([s.image for s in known])
        maps: dict[int, DensityMap] = {}
        if self.density is not None:
            dense = [
                i
                for i, (s, d) in enumerate(zip(known, detections, strict=True))
                if self.counters[s.camera_id].needs_density(d)
            ]
            if dense:
                maps_dense = self.density.estimate(
                    [known[i].image for i in dense],
                    from_rows=[self.counters[known[i].camera_id].density_from_row for i in dense],
                )
                for i, m in zip(dense, maps_dense, strict=True):
                    maps[i] = self.calibration.scale_map(m)
                self.stats.density_frames += len(dense)
        out = []
        for i, (s, d) in enumerate(zip(known, detections, strict=True)):
            out.append((s, self.counters[s.camera_id].observe(s.source_time_s, d, maps.get(i))))
        self.stats.frames += len(known)
        self.stats.batches += 1
        return out

    def process(self, batch: Sequence[FrameSample]) -> list[ZoneState]:
        states: list[ZoneState] = []
        for sample, obs in self.observe(batch):
            states.extend(self.aggregator.add(obs, sample.captured_at))
        self.stats.states += len(states)
        return states

    def flush(self) -> list[ZoneState]:
        states = self.aggregator.flush()
        self.stats.states += len(states)
        return states


def run_pipeline(
    pipeline: VisionPipeline,
    queue: FrameQueue,
    publisher: ZoneStatePublisher,
    *,
    stop: threading.Event,
    batch: int = 32,
    linger_s: float = 0.05,
    log_every_s: float = 30.0,
) -> None:
    """Drain `queue` in batches until `stop` is set or the queue is closed and empty; publish states."""
    started = last_log = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now - last_log >= log_every_s:
            s = pipeline.stats
            log.info(
                "vision: %d frames (%.1f/s), %d with the density model, %d zone states, %d dropped",
                s.frames,
                s.frames / (now - started),
                s.density_frames,
                s.states,
                sum(queue.dropped.values()),
            )
            last_log = now
        frames = queue.get_batch(batch, timeout=0.5, linger_s=linger_s)
        if not frames:
            if queue.closed:
                break
            continue
        states = pipeline.process(frames)
        if states:
            publisher.publish(states)
            publisher.flush()
    publisher.publish(pipeline.flush())
    publisher.flush()
