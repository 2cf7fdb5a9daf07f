"""The latest zone state of every zone, for the map: one bus subscription per API process.

A background thread polls the `zone_state` topic (the video pipeline's records) in a group of its
own and keeps, per site and zone, the newest state by its time. Nothing is stored: a restarted API
shows zones again from their next state (a few seconds at the video service's window).
"""

from __future__ import annotations

import logging
import threading
import uuid

from beffroi.bus import Bus, BusError, Subscription
from beffroi.records import BadRecord, ZoneState, decode_zone_state

log = logging.getLogger(__name__)


class ZoneBoard:
    def __init__(self, bus: Bus, *, topic: str, group_prefix: str = "beffroi-api-zones") -> None:
        self.bus = bus
        self.topic = topic
        self.group = f"{group_prefix}-{uuid.uuid4().hex[:12]}"
        self.received = 0
        self.error: str | None = None
        self._latest: dict[tuple[str, str], ZoneState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, ready_timeout_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="zone-board", daemon=True)
        self._thread.start()
        self._ready.wait(ready_timeout_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def offer(self, state: ZoneState) -> None:
        """Keep `state` if it is the newest of its zone (a state without a site is not shown)."""
        if state.site_id is None:
            return
        key = (state.site_id, state.zone_id)
        with self._lock:
            current = self._latest.get(key)
            if current is None or current.ts <= state.ts:
                self._latest[key] = state
            self.received += 1

    def latest(self, site_id: str) -> list[ZoneState]:
        """The newest state of each zone of the site, by zone id."""
        with self._lock:
            states = [s for (site, _), s in self._latest.items() if site == site_id]
        return sorted(states, key=lambda s: s.zone_id)

    def _run(self) -> None:
        sub: Subscription | None = None
        while not self._stop.is_set():
            try:
                if sub is None:
                    sub = self.bus.subscribe(self.group, [self.topic], client_id=self.group)
                    self._ready.set()
                for record in sub.poll(500, timeout=0.2):
                    try:
                        self.offer(decode_zone_state(record))
                    except BadRecord as exc:
                        log.warning("zone board: %s", exc)
                self.error = None
            except BusError as exc:
                self.error = str(exc)
                log.warning("zone board on %s: %s; subscribing again", self.topic, exc)
                if sub is not None:
                    _close(sub)
                    sub = None
                self._stop.wait(1.0)
        self._ready.set()
        if sub is not None:
            _close(sub)


def _close(sub: Subscription) -> None:
    try:
        sub.close()
    except BusError as exc:
        log.warning("zone board: closing its subscription failed: %s", exc)
