"""Answers of GET /sites/{id}/alerts kept for a moment, as JSON bytes, so that a control room of many
screens polling the same list costs one query and one serialisation per site per `ttl_s`.

An entry is dropped at once when this API process learns that the site changed: an alert on its
live feed, an action through it. Changes made elsewhere (another API process) show within `ttl_s`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class PageCache:
    def __init__(
        self, ttl_s: float = 1.0, *, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, Hashable], tuple[float, int, bytes]] = OrderedDict()
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def version(self, site_id: str) -> int:
        """Read before computing a page: `put` drops the page if the site changed meanwhile."""
        return self._versions.get(site_id, 0)

    def get(self, site_id: str, key: Hashable) -> bytes | None:
        entry = self._entries.get((site_id, key))
        if entry is None or entry[0] <= self._clock() or entry[1] != self._versions.get(site_id, 0):
            self.misses += 1
            return None
        self.hits += 1
        return entry[2]

    def put(self, site_id: str, key: Hashable, body: bytes, *, version: int) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if version != self._versions.get(site_id, 0):
                return  # the site changed while the page was computed
            self._entries[(site_id, key)] = (self._clock() + self.ttl_s, version, body)
            self._entries.move_to_end((site_id, key))
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def invalidate(self, site_id: str) -> None:
        """The site changed (thread-safe: the alert feed calls it from its thread)."""
        with self._lock:
            self._versions[site_id] = self._versions.get(site_id, 0) + 1
