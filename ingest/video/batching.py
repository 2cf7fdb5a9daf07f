"""Cross-camera batching: one bounded queue that every camera reader feeds and the detector drains.

Under backpressure (the detector slower than the cameras), live video drops the oldest frame so that
the detector always works on recent frames; drops are counted per camera. Recorded video (files)
can instead make readers wait (`policy="block"`), so that nothing is skipped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Literal

from ingest.video.source import FrameSample


class FrameQueue:
    """Bounded FIFO of frames from many cameras. When full, `put` drops the oldest frame
    (`policy="drop_oldest"`) or waits for room (`policy="block"`)."""

    def __init__(
        self, maxsize: int = 256, *, policy: Literal["drop_oldest", "block"] = "drop_oldest"
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"frame queue: maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.policy = policy
        self._items: deque[FrameSample] = deque()
        self._cond = threading.Condition()
        self.dropped: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._closed = False

    def put(self, sample: FrameSample) -> bool:
        """Queue a frame; False (and counted in `refused`) once the queue is closed."""
        with self._cond:
            if self._closed:
                self.refused[sample.camera_id] += 1
                return False
            if self.policy == "block":
                self._cond.wait_for(lambda: len(self._items) < self.maxsize or self._closed)
                if self._closed:
                    self.refused[sample.camera_id] += 1
                    return False
            elif len(self._items) >= self.maxsize:
                old = self._items.popleft()
                self.dropped[old.camera_id] += 1
            self._items.append(sample)
            self.accepted[sample.camera_id] += 1
            self._cond.notify()
            return True

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        """No more frames will come; `get_batch` returns what is left, then empty lists."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def get_batch(self, max_batch: int, *, timeout: float = 1.0, linger_s: float = 0.0) -> list[FrameSample]:
        """Up to `max_batch` frames, oldest first, across cameras.

        Waits up to `timeout` for the first frame, then up to `linger_s` more for the batch to fill.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            if linger_s > 0:
                fill_by = time.monotonic() + linger_s
                while len(self._items) < max_batch and not self._closed:
                    left = fill_by - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            n = min(max_batch, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self._cond.notify_all()
            return batch
