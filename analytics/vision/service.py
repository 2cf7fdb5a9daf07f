"""The video service: camera streams of a venue in, per-zone aggregates out on the bus.

`VisionSettings` is its configuration (a YAML file validated with line numbers). `VisionService`
starts one reader thread per camera, a cross-camera queue, and the pipeline loop; counting views
are built from the venue when a camera's first frame gives its resolution.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.vision.counting import CameraCounter, FusionConfig
from analytics.vision.density.model import DensityEstimator, density_meta
from analytics.vision.detectors.plugins.yolo import YoloConfig
from analytics.vision.detectors.registry import DetectorConfig, create_detector
from analytics.vision.framecount import CountCalibration
from analytics.vision.los import STANDING_KINDS
from analytics.vision.pipeline import PipelineStats, VisionPipeline, run_pipeline
from analytics.vision.publish import ZoneStatePublisher
from analytics.vision.view import counting_view
from analytics.vision.zone_state import GateInfo, SiteKey, ZoneAggregator, ZoneInfo
from beffroi.bus import Bus
from beffroi.clock import utcnow
from beffroi.events import AwareDatetime
from beffroi.sites import site_gates
from beffroi.venue import Venue
from ingest.video.batching import FrameQueue
from ingest.video.source import CameraReader, CameraSource, FrameSample, source_kind

log = logging.getLogger(__name__)

#: the committed models (analytics/vision/weights/README.md): trained by our commands, never downloaded
WEIGHTS = Path(__file__).resolve().parent / "weights"


def default_detector() -> YoloConfig:
    """The detector that meets the accuracy bar on 640x360 frames on the CPU: ours, at 320 px."""
    return YoloConfig(weights=WEIGHTS / "person-320.pt", imgsz=320)


class FusionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detect_below: float = Field(default=0.6, ge=0, description="persons/m²: detection alone below")
    density_above: float = Field(default=1.2, ge=0, description="persons/m²: density map alone above")
    min_score: float = Field(default=0.35, ge=0, le=1)


class VisionSettings(BaseModel):
    """Configuration of the video pipeline."""

    model_config = ConfigDict(extra="forbid")

    cameras: dict[str, str] = Field(
        default_factory=dict, description="camera device id -> rtsp/http/file URL"
    )
    recorded_start: AwareDatetime | None = Field(
        default=None, description="for video files: the wall time of their first frame (replays)"
    )
    detector: DetectorConfig = Field(default_factory=default_detector)
    density_weights: Path | None = Field(
        default=WEIGHTS / "density.pt", description="density-map model for dense crowds; null: boxes only"
    )
    sample_fps: float = Field(default=5.0, gt=0)
    batch: int = Field(default=16, ge=1)
    queue_size: int = Field(default=256, ge=1)
    min_person_px: float = Field(
        default=48.0,
        ge=0,
        description="count only where a standing person is this tall, in pixels of the frames as read "
        "(48 suits 640x360 frames with the 320 px detector: people at least 24 px at its input)",
    )
    window_s: float = Field(default=1.0, gt=0)
    max_skew_s: float | None = Field(
        default=None,
        gt=0,
        description="how far behind the newest camera a camera may fall before zone states stop waiting "
        "for it; default: 5 s for live streams, 600 s when replaying files",
    )
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    track: bool = True
    backpressure: Literal["auto", "drop_oldest", "block"] = Field(
        default="auto",
        description="when the detector lags: drop the oldest frames (live streams), or make readers wait "
        "(recorded files); auto: wait only if every source is a file",
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for the models (1 is best on a machine busy with other work)",
    )


def zone_infos(venue: Venue) -> dict[SiteKey, ZoneInfo]:
    """Every zone of the venue, with Fruin's queuing scale for standing areas, walkway elsewhere."""
    return {
        (s.id, z.id): ZoneInfo(
            area_m2=z.area, los_table="queuing" if z.kind.value in STANDING_KINDS else "walkway"
        )
        for s in venue.sites
        for z in s.zones
    }


def gate_infos(venue: Venue) -> dict[SiteKey, GateInfo]:
    return {
        (s.id, g.id): GateInfo(width_m=g.width_m, zone_in=g.zone_in, zone_out=g.zone_out)
        for s in venue.sites
        for g in site_gates(s)
    }


class _Counters(dict[str, CameraCounter]):
    """Counters built on demand from the venue, at the resolution of each camera's first frame."""

    def __init__(
        self, venue: Venue, settings: VisionSettings, *, density_anchor: Literal["feet", "head"] = "feet"
    ) -> None:
        super().__init__()
        self.venue = venue
        self.settings = settings
        self.density_anchor: Literal["feet", "head"] = density_anchor
        f = settings.fusion
        self.fusion = FusionConfig(
            detect_below=f.detect_below, density_above=f.density_above, min_score=f.min_score
        )

    def prepare(self, sample: FrameSample) -> None:
        if sample.camera_id in self or sample.camera_id not in self.venue.devices:
            return
        view = counting_view(
            self.venue,
            sample.camera_id,
            width=sample.image.shape[1],
            min_person_px=self.settings.min_person_px,
        )
        self[sample.camera_id] = CameraCounter.for_view(
            view, fusion=self.fusion, track=self.settings.track, density_anchor=self.density_anchor
        )
        log.info(
            "camera %s: %d zones in view, counting below row %.0f",
            view.camera_id,
            sum(1 for a in view.zone_area.values() if a > 0),
            view.top_row,
        )


def _replay(settings: VisionSettings) -> bool:
    return bool(settings.cameras) and all(source_kind(u) == "file" for u in settings.cameras.values())


def build_pipeline(venue: Venue, settings: VisionSettings) -> tuple[VisionPipeline, _Counters]:
    if settings.torch_threads is not None:
        import torch

        torch.set_num_threads(settings.torch_threads)
    density: DensityEstimator | None = None
    anchor: Literal["feet", "head"] = "feet"
    calibration = CountCalibration()
    if settings.density_weights is not None:
        density = DensityEstimator(settings.density_weights)
        anchor = "head" if density_meta(settings.density_weights).get("anchor") == "head" else "feet"
        calibration = CountCalibration.of_weights(settings.density_weights)
    counters = _Counters(venue, settings, density_anchor=anchor)
    skew = settings.max_skew_s if settings.max_skew_s is not None else (600.0 if _replay(settings) else 5.0)
    aggregator = ZoneAggregator(
        zones=zone_infos(venue), gates=gate_infos(venue), window_s=settings.window_s, max_skew_s=skew
    )
    pipeline = VisionPipeline(
        detector=create_detector(settings.detector),
        counters=counters,
        aggregator=aggregator,
        density=density,
        calibration=calibration,
    )
    return pipeline, counters


class VisionService:
    """Readers, queue and pipeline loop, publishing `ZoneState`s on `topic`; live frames are stamped
    with `clock()` as they are read."""

    def __init__(
        self,
        *,
        venue: Venue,
        settings: VisionSettings,
        bus: Bus,
        topic: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        unknown = [c for c in settings.cameras if c not in venue.devices]
        if unknown:
            raise ValueError(f"vision: camera(s) not in venue {venue.id!r}: {', '.join(unknown)}")
        self.settings = settings
        self.pipeline, self._counters = build_pipeline(venue, settings)
        policy = settings.backpressure
        if policy == "auto":
            policy = "block" if _replay(settings) else "drop_oldest"
        self.queue = FrameQueue(settings.queue_size, policy=policy)
        self.publisher = ZoneStatePublisher(bus, topic)
        self.readers = [
            CameraReader(
                CameraSource(cid, url, sample_fps=settings.sample_fps, start_at=settings.recorded_start),
                sink=self._accept,
                clock=clock,
            )
            for cid, url in settings.cameras.items()
        ]
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None

    def _accept(self, sample: FrameSample) -> bool:
        self._counters.prepare(sample)
        return self.queue.put(sample)

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def start(self) -> VisionService:
        for r in self.readers:
            r.start()
        self._loop = threading.Thread(target=self._run, name="vision-pipeline", daemon=True)
        self._loop.start()
        return self

    def _run(self) -> None:
        run_pipeline(self.pipeline, self.queue, self.publisher, stop=self._stop, batch=self.settings.batch)

    def wait_sources(self, timeout: float | None = None) -> bool:
        """Wait until every reader has finished (files read to the end); True if they all did."""
        return all(r.finished.wait(timeout) for r in self.readers)

    def stop(self, *, drain: bool = True) -> None:
        for r in self.readers:
            r.stop()
        self.queue.close()
        if not drain:
            self._stop.set()
        if self._loop is not None:
            self._loop.join()

    def describe(self) -> dict[str, Any]:
        return {
            "frames": self.stats.frames,
            "states": self.stats.states,
            "dropped": dict(self.queue.dropped),
            "readers": {r.source.camera_id: r.stats.__dict__ for r in self.readers},
        }
