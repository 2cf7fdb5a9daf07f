"""What a live camera run tells its consumers: where the streams are, and the true density of each
zone by wall-clock time (to score what the video pipeline publishes against).

- `streams.json`: {camera id: MJPEG URL}, for `python -m tower.vision --streams`;
- `zones.csv`: `timestamp,t_s,site,zone,density`, every `step_s` of the run, in the format of a
  scenario run's zones.csv (`python -m tower.vision.scoring --truth DIR` reads it).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from simulators.camera.crowd import CrowdConditions

STREAMS = "streams.json"
ZONES = "zones.csv"


def write_streams(out: Path, urls: Mapping[str, str]) -> Path:
    """Write streams.json atomically (a reader polling for it never sees half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / STREAMS
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(urls), indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_streams(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object of camera id -> stream URL")
    return {str(k): v for k, v in data.items()}


def write_zone_truth(
    out: Path,
    *,
    site_id: str,
    zones: Iterable[str],
    conditions: CrowdConditions,
    start_at: float,
    seconds: float,
    step_s: float = 0.25,
) -> Path:
    """The density the crowd of each zone is kept at, from `start_at` (epoch s) for `seconds`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / ZONES
    start = datetime.fromtimestamp(start_at, UTC)
    ids = list(zones)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "t_s", "site", "zone", "density"])
        for k in range(int(seconds / step_s) + 1):
            t = k * step_s
            ts = (start + timedelta(seconds=t)).isoformat(timespec="milliseconds")
            for z in ids:
                w.writerow([ts, f"{t:.3f}", site_id, z, f"{conditions.density(z, t):.4f}"])
    return path
