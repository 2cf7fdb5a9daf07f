"""Camera sources: read rtsp, http and file video with OpenCV, sample N frames/s, reconnect on drops.

A `CameraReader` runs one camera in a thread. It opens the source, keeps one frame per 1/N
seconds of source time, hands each `FrameSample` to a sink (the cross-camera `FrameQueue`), and
when a live stream drops or fails to open, it waits with exponential backoff and reconnects.
A file ends the reader when it is exhausted (unless `loop` is set).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from beffroi.clock import utcnow
from beffroi.images import as_image

log = logging.getLogger(__name__)

SourceKind = Literal["rtsp", "http", "file"]


def source_kind(url: str) -> SourceKind:
    lower = url.lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lower.startswith(("http://", "https://")):
        return "http"
    return "file"


@dataclass(frozen=True)
class CameraSource:
    """Where one camera's video comes from, and how many frames per second to keep."""

    camera_id: str
    url: str
    sample_fps: float = 5.0
    loop: bool = False
    start_at: datetime | None = None  # recorded video: wall time of its first frame (else: time of reading)

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    @property
    def path(self) -> str:
        return self.url[len("file://") :] if self.url.startswith("file://") else self.url


@dataclass(frozen=True)
class FrameSample:
    camera_id: str
    index: int  # frame number in the source since the reader (re)connected
    source_time_s: float  # position in the source: file time, or seconds since the stream opened
    captured_at: datetime
    image: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        return base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


@dataclass
class ReaderStats:
    frames_read: int = 0
    frames_kept: int = 0
    connects: int = 0
    reconnects: int = 0
    failures: int = 0
    last_error: str | None = None


def open_capture(source: CameraSource, *, timeout_s: float = 5.0) -> cv2.VideoCapture:
    """An opened `cv2.VideoCapture` for the source; raises `OSError` naming the camera otherwise."""
    if source.kind == "file" and not Path(source.path).exists():
        raise OSError(f"camera {source.camera_id!r}: no video file {source.path!r}")
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(timeout_s * 1000),
    ]
    cap = cv2.VideoCapture(source.path, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise OSError(f"camera {source.camera_id!r}: cannot open {source.url!r}")
    return cap


class CameraReader:
    """Reads one camera into `sink` until stopped (or its file ends), reconnecting live streams.
    A live frame is stamped with `clock()` when read (a simulated clock in `make demo`)."""

    def __init__(
        self,
        source: CameraSource,
        *,
        sink: Callable[[FrameSample], object],
        backoff: Backoff = Backoff(),
        timeout_s: float = 5.0,
        max_attempts: int | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if source.sample_fps <= 0:
            raise ValueError(f"camera {source.camera_id!r}: sample_fps must be > 0, got {source.sample_fps}")
        self.source = source
        self.sink = sink
        self.backoff = backoff
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.stats = ReaderStats()
        self.clock = clock
        self._stop = threading.Event()
        self._rng = random.Random(seed)
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()

    def start(self) -> CameraReader:
        self._thread = threading.Thread(target=self.run, name=f"camera-{self.source.camera_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The reader loop; returns when stopped, when a file ends, or after `max_attempts` failures."""
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    cap = open_capture(self.source, timeout_s=self.timeout_s)
                except OSError as exc:
                    self.stats.failures += 1
                    self.stats.last_error = str(exc)
                    attempt += 1
                    if self.source.kind == "file" or (self.max_attempts and attempt >= self.max_attempts):
                        log.error("%s", exc)
                        return
                    self._stop.wait(self.backoff.delay(attempt, self._rng))
                    continue
                self.stats.connects += 1
                if self.stats.connects > 1:
                    self.stats.reconnects += 1
                attempt = 0
                try:
                    ended = self._read(cap)
                finally:
                    cap.release()
                if ended and not self.source.loop:
                    return
                if not ended:
                    self.stats.failures += 1
                    self.stats.last_error = f"camera {self.source.camera_id!r}: stream dropped"
                    log.warning("camera %r: stream dropped, reconnecting", self.source.camera_id)
                    attempt += 1
                    self._stop.wait(self.backoff.delay(attempt, self._rng))
        finally:
            self.finished.set()

    def _read(self, cap: cv2.VideoCapture) -> bool:
        """Read until the stream fails (False) or a file ends (True)."""
        is_file = self.source.kind == "file"
        fps = cap.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        period = 1.0 / self.source.sample_fps
        next_due = 0.0
        index = -1
        opened = time.monotonic()
        while not self._stop.is_set():
            if not cap.grab():
                return is_file
            index += 1
            self.stats.frames_read += 1
            t = index / fps if fps and fps > 0 else time.monotonic() - opened
            if t + 1e-9 < next_due:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                return is_file
            next_due += period
            if next_due <= t:  # the source jumped ahead (a stall): restart the cadence from here
                next_due = t + period
            self.stats.frames_kept += 1
            self.sink(
                FrameSample(
                    camera_id=self.source.camera_id,
                    index=index,
                    source_time_s=t,
                    captured_at=self.source.start_at + timedelta(seconds=t)
                    if self.source.start_at
                    else self.clock(),
                    image=as_image(image),
                )
            )
        return True


def file_frames(path: str) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Every frame of a video file with its index, in order (offline counting, tests)."""
    cap = open_capture(CameraSource(camera_id=Path(path).stem, url=path))
    try:
        index = 0
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                return
            yield index, as_image(image)
            index += 1
    finally:
        cap.release()
