"""What one camera sees on the ground: its homography, the zones and gates in view, and the region
where people are large enough in the image to be counted reliably.

A camera's homography is fitted to its pose's `ground_refs` when the venue gives them, else to
reference points derived from the pose (`beffroi.venue.CameraView.ground_refs`), scaled to the
resolution the camera is read at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from analytics.vision.homography import GroundHomography
from analytics.vision.scale import PersonScale
from beffroi.events import LatLon
from beffroi.geometry import FloatArray, PinholeCamera, overlap_area, points_in_polygon
from beffroi.sites import ViewGate, ViewZone, placed_camera, site_frame, site_gates, site_zones
from beffroi.venue import CameraView as PoseView
from beffroi.venue import Venue

#: a standing adult, for the reliable-size region
PERSON_HEIGHT_M = 1.7


def reliable_top_row(camera: PinholeCamera, *, min_person_px: float) -> float:
    """Highest image row (smallest v) where a standing person is at least `min_person_px` tall."""
    rows = np.linspace(camera.height - 1, 0, 96)
    ground = camera.ground_of_pixels(np.column_stack([np.full(len(rows), camera.width / 2), rows]))
    top = float(camera.height - 1)
    for v, g in zip(rows, ground, strict=True):
        if not np.isfinite(g).all():
            break
        foot, _ = camera.project(np.array([[g[0], g[1], 0.0]]))
        head, _ = camera.project(np.array([[g[0], g[1], PERSON_HEIGHT_M]]))
        if not (np.isfinite(foot).all() and np.isfinite(head).all()):
            break
        if float(foot[0, 1] - head[0, 1]) < min_person_px:
            break
        top = float(v)
    return top


def range_top_row(camera: PinholeCamera, *, max_range_m: float) -> float:
    """Highest image row (centre column) whose ground lies within `max_range_m` of the camera."""
    rows = np.linspace(camera.height - 1, 0, 96)
    ground = camera.ground_of_pixels(np.column_stack([np.full(len(rows), camera.width / 2), rows]))
    dist = np.hypot(ground[:, 0] - camera.x, ground[:, 1] - camera.y)
    ok = np.isfinite(dist) & (dist <= max_range_m)
    if not ok[0]:
        return float(camera.height - 1)
    last = int(np.argmin(ok)) - 1 if not ok.all() else len(rows) - 1
    return float(rows[last])


@dataclass(frozen=True)
class CountingView:
    camera_id: str
    width: int
    height: int
    homography: GroundHomography
    zones: list[ViewZone]
    gates: list[ViewGate] = field(default_factory=list)
    top_row: float = 0.0  # counting region: image rows below this one
    site_id: str | None = None
    #: band along the sides and bottom left out of the counting region (fraction of the image size):
    #: people cut by the image border have boxes whose bottom is not at their feet
    edge_margin: float = 0.03
    #: expected person height per image row (from the calibrated pose); None when unknown
    person_scale: PersonScale | None = None

    @classmethod
    def from_camera(
        cls,
        camera_id: str,
        camera: PinholeCamera,
        *,
        zones: Sequence[ViewZone],
        gates: Sequence[ViewGate] = (),
        min_person_px: float = 0.0,
        max_range_m: float | None = None,
        reference_points: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        site_id: str | None = None,
    ) -> CountingView:
        """A view from a calibrated pose; the homography is fitted to `reference_points` when given
        (image, ground), else to points computed from the pose."""
        img, gnd = reference_points if reference_points is not None else camera.reference_points(n=8)
        h = GroundHomography.fit(camera_id, img, gnd)
        horizon = camera.horizon_v()
        top = max(0.0, horizon + 0.05 * camera.height)
        if min_person_px > 0:
            top = max(top, reliable_top_row(camera, min_person_px=min_person_px))
        if max_range_m is not None:
            top = max(top, range_top_row(camera, max_range_m=max_range_m))
        try:
            scale: PersonScale | None = PersonScale.from_camera(camera)
        except ValueError:
            scale = None
        return cls(
            camera_id=camera_id,
            width=camera.width,
            height=camera.height,
            homography=h,
            zones=list(zones),
            gates=list(gates),
            top_row=top,
            site_id=site_id,
            person_scale=scale,
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the counting region in the image."""
        mx, my = self.edge_margin * self.width, self.edge_margin * self.height
        bottom = self.height - my
        return mx, min(self.top_row, bottom), self.width - mx, bottom

    @cached_property
    def region(self) -> FloatArray:
        """Ground polygon of the counting region."""
        x0, y0, x1, y1 = self.bounds
        n = 16
        w, h = x1 - x0, y1 - y0
        border = (
            [(x0 + w * i / n, y1) for i in range(n + 1)]
            + [(x1, y0 + h * (1 - i / n)) for i in range(1, n + 1)]
            + [(x0 + w * (1 - i / n), y0) for i in range(1, n + 1)]
            + [(x0, y0 + h * i / n) for i in range(1, n)]
        )
        return self.homography.to_ground(np.array(border))

    @cached_property
    def zone_area(self) -> dict[str, float]:
        """Area (m²) of each zone inside the counting region (none when people never look big enough)."""
        _, top, _, bottom = self.bounds
        if top >= bottom:
            return {z.id: 0.0 for z in self.zones}
        return {z.id: overlap_area(z.polygon, self.region) for z in self.zones}

    @cached_property
    def region_area(self) -> float:
        return sum(self.zone_area.values())

    def in_region(self, uv: FloatArray) -> npt.NDArray[np.bool_]:
        """Which image points (feet) lie in the counting region."""
        x0, y0, x1, y1 = self.bounds
        inside: npt.NDArray[np.bool_] = (
            (uv[:, 1] >= y0) & (uv[:, 1] < y1) & (uv[:, 0] >= x0) & (uv[:, 0] < x1)
        )
        return inside

    def zone_index(self, ground: FloatArray) -> npt.NDArray[np.int64]:
        """Index in `zones` of the zone holding each ground point (-1 outside every zone)."""
        out = np.full(len(ground), -1, dtype=np.int64)
        for i, z in enumerate(self.zones):
            free = out < 0
            if not free.any():
                break
            hit = np.zeros(len(ground), dtype=bool)
            hit[free] = points_in_polygon(ground[free], z.polygon)
            out[hit] = i
        return out

    def zone_cells(self, grid_h: int, grid_w: int, *, stride: int = 8) -> dict[str, npt.NDArray[np.bool_]]:
        """For a (grid_h, grid_w) map of `stride`-pixel cells over the image (a density map), the cells
        of each zone whose centre is in the counting region."""
        key = (grid_h, grid_w, stride)
        cache = self._cell_cache
        if key not in cache:
            vs, us = np.mgrid[0:grid_h, 0:grid_w]
            uv = np.column_stack([(us.ravel() + 0.5) * stride, (vs.ravel() + 0.5) * stride])
            ok = self.in_region(uv)
            ground = self.homography.to_ground(uv)
            cells: dict[str, npt.NDArray[np.bool_]] = {}
            for z in self.zones:
                inside = np.zeros(len(uv), dtype=bool)
                inside[ok] = points_in_polygon(ground[ok], z.polygon)
                cells[z.id] = inside.reshape(grid_h, grid_w)
            cache[key] = cells
        return cache[key]

    @cached_property
    def _cell_cache(self) -> dict[tuple[int, int, int], dict[str, npt.NDArray[np.bool_]]]:
        return {}


def _in_image(camera: PinholeCamera, gate: ViewGate) -> bool:
    """Whether the middle of the gate line shows in the camera's image."""
    uv, depth = camera.project_ground(np.linspace(gate.a, gate.b, 5)[1:4])
    ok = (
        (depth > 0)
        & (uv[:, 0] >= 0)
        & (uv[:, 0] < camera.width)
        & (uv[:, 1] >= 0)
        & (uv[:, 1] < camera.height)
    )
    return bool(ok.any())


def counting_view(
    venue: Venue, device_id: str, *, width: int | None = None, min_person_px: float = 0.0
) -> CountingView:
    """The camera's counting view: its site's zones and gates, a homography from the venue's
    reference points, and the region where people are at least `min_person_px` tall."""
    pc = placed_camera(venue, device_id, width=width)
    refs = PoseView.of(pc.device).ground_refs()
    frame = site_frame(pc.site)
    image = np.array([[r.u * pc.scale, r.v * pc.scale] for r in refs])
    ground = np.array([frame.to_xy(LatLon(lat=r.lat, lon=r.lon)) for r in refs])
    return CountingView.from_camera(
        device_id,
        pc.camera,
        zones=site_zones(pc.site),
        gates=[g for g in site_gates(pc.site) if _in_image(pc.camera, g)],
        min_person_px=min_person_px,
        max_range_m=pc.max_range_m,
        reference_points=(image, ground),
        site_id=pc.site.id,
    )
