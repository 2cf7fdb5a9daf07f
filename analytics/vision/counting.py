"""Per-camera counting: detections and density maps placed on the ground, per zone, fused by density.

`CameraCounter.observe` takes one frame's detections (and, for dense scenes, a density map) and
returns per-zone counts inside the camera's counting region. Detection counts are exact for sparse
crowds; as the crowd gets denser, occlusion hides people and the density map takes over: the
weight moves from detection to density between `detect_below` and `density_above` persons/m²
of detected people, zone by zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from analytics.vision.density.model import DensityMap
from analytics.vision.detectors.base import Detections
from analytics.vision.tracking import Crossing, LineCrossingCounter, PersonTracker
from analytics.vision.view import CountingView

#: a zone seen over less ground than this does not call for the density model on its own
MIN_ZONE_AREA_M2 = 5.0
#: image rows kept above the counting region for the density model (pixels, or share of the height)
DENSITY_CONTEXT_PX = 64
DENSITY_CONTEXT_SHARE = 0.2


@dataclass(frozen=True)
class FusionConfig:
    detect_below: float = 0.6  # persons/m²: detection alone under this
    density_above: float = 1.2  # persons/m²: density map alone over this
    min_score: float = 0.35

    def density_weight(self, density: float) -> float:
        span = max(self.density_above - self.detect_below, 1e-9)
        return float(np.clip((density - self.detect_below) / span, 0.0, 1.0))


@dataclass(frozen=True)
class ZoneObservation:
    count: float  # persons in the part of the zone this camera counts
    area_m2: float  # area of that part
    detected: int  # boxes whose feet fall in it
    density_weight: float  # 0: detection only, 1: density map only
    score: float  # mean detection score there (0 when none)

    @property
    def density(self) -> float:
        return self.count / self.area_m2 if self.area_m2 > 0 else 0.0


@dataclass(frozen=True)
class CameraObservation:
    camera_id: str
    site_id: str | None
    t_s: float
    zones: dict[str, ZoneObservation]
    crossings: list[Crossing] = field(default_factory=list)

    @property
    def count(self) -> float:
        return sum(z.count for z in self.zones.values())


@dataclass
class CameraCounter:
    view: CountingView
    fusion: FusionConfig = field(default_factory=FusionConfig)
    tracker: PersonTracker | None = None
    gates: list[LineCrossingCounter] = field(default_factory=list)
    #: where the density model puts a person's mass: at the feet, or at the head (then moved down to
    #: the feet through the view's person scale before the cells are placed on the ground)
    density_anchor: Literal["feet", "head"] = "feet"

    @classmethod
    def for_view(
        cls,
        view: CountingView,
        *,
        fusion: FusionConfig | None = None,
        track: bool = True,
        density_anchor: Literal["feet", "head"] = "feet",
    ) -> CameraCounter:
        return cls(
            view=view,
            fusion=fusion or FusionConfig(),
            tracker=PersonTracker() if track and view.gates else None,
            gates=[LineCrossingCounter(g) for g in view.gates],
            density_anchor=density_anchor,
        )

    def detection_density(self, detections: Detections) -> float:
        """Persons/m² over the counting region, from boxes alone (a lower bound in dense crowds)."""
        det = detections.above(self.fusion.min_score)
        feet = det.feet()
        inside = self.view.in_region(feet)
        area = self.view.region_area
        return float(np.count_nonzero(inside)) / area if area > 0 else 0.0

    @property
    def density_from_row(self) -> int:
        """First image row the density model needs (a multiple of 8): the counting region, and above it
        room for the bodies of the people standing at its top."""
        view = self.view
        _, top, _, _ = view.bounds
        room = max(DENSITY_CONTEXT_PX, DENSITY_CONTEXT_SHARE * view.height)
        return max(0, int(top - room) // 8 * 8)

    def needs_density(self, detections: Detections) -> bool:
        """Whether any zone in view holds boxes at `detect_below` persons/m² or more."""
        view = self.view
        feet = detections.above(self.fusion.min_score).feet()
        feet = feet[view.in_region(feet)]
        if len(feet) == 0:
            return False
        idx = view.zone_index(view.homography.to_ground(feet))
        counts = np.bincount(idx[idx >= 0], minlength=len(view.zones))
        return any(
            counts[i] >= self.fusion.detect_below * view.zone_area[z.id]
            for i, z in enumerate(view.zones)
            if view.zone_area[z.id] >= MIN_ZONE_AREA_M2
        )

    def observe(
        self, t_s: float, detections: Detections, density_map: DensityMap | None = None
    ) -> CameraObservation:
        view = self.view
        det = detections.above(self.fusion.min_score)
        feet = det.feet()
        keep = view.in_region(feet)
        feet, scores = feet[keep], det.scores[keep]
        idx = view.zone_index(view.homography.to_ground(feet))
        n = len(view.zones)
        on = idx >= 0
        counts = np.bincount(idx[on], minlength=n)
        sums = np.bincount(idx[on], weights=scores[on], minlength=n)
        det_counts = {z.id: int(counts[i]) for i, z in enumerate(view.zones)}
        score_sum = {z.id: float(sums[i]) for i, z in enumerate(view.zones)}
        dens_counts: dict[str, float] | None = None
        if density_map is not None:
            if self.density_anchor == "head" and view.person_scale is not None:
                density_map = view.person_scale.heads_to_feet(density_map)
            cells = view.zone_cells(*density_map.shape)
            dens_counts = {z: float(density_map[m].sum()) for z, m in cells.items()}
        zones: dict[str, ZoneObservation] = {}
        for vz in view.zones:
            n_det = det_counts[vz.id]
            area = view.zone_area[vz.id]
            count = float(n_det)
            weight = 0.0
            if dens_counts is not None and area > 0:
                # per zone, by the boxes found there: a density map smears mass from a dense crowd into
                # the sparse zone next to it, where boxes alone are right
                weight = self.fusion.density_weight(n_det / area)
                count = (1.0 - weight) * n_det + weight * dens_counts[vz.id]
            zones[vz.id] = ZoneObservation(
                count=count,
                area_m2=area,
                detected=n_det,
                density_weight=weight,
                score=score_sum[vz.id] / n_det if n_det else 0.0,
            )
        crossings: list[Crossing] = []
        if self.tracker is not None:
            tracks = self.tracker.update(detections)
            ground = view.homography.to_ground(tracks.feet())
            for g in self.gates:
                crossings.extend(g.update(t_s, tracks.ids, ground))
        return CameraObservation(
            camera_id=view.camera_id, site_id=view.site_id, t_s=t_s, zones=zones, crossings=crossings
        )
