"""Live alerts for the SSE endpoint: one bus subscription per API process, fanned out to clients.

A background thread polls the alerts topic in a group of its own (unique per process, so every
API process sees every alert) and hands each alert to the asyncio queues of the clients watching
its site. Alerts already on the topic when the feed starts are skipped (clients read history with
GET /sites/{id}/alerts); a redelivered alert (same id) is pushed once.

Cost per delivery is what bounds a push to many screens (one alert to 1,000 listeners, see
bench/bench_api_auth.py): an event is encoded once for all of its listeners; the feed thread wakes
each event loop once per event (not once per listener); each listener's stream is one plain loop
over its queue writing to the connection (`LiveStream`: no generator, no per-send cancel scope, no
ping task per connection: the feed pings every stream at once).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sse_starlette import ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from beffroi.bus import Bus, BusError, Subscription
from beffroi.events import Alert
from beffroi.records import BadRecord, decode_alert

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event of a site's stream, encoded once for all of its listeners: `alert` (a new alert),
    or `case` (an alert's new status, owner, severity: an action, an assignment, an escalation)."""

    event: bytes

    @classmethod
    def of(cls, kind: str, data: str, event_id: str | None = None) -> LiveEvent:
        return cls(ServerSentEvent(data=data, event=kind, id=event_id).encode())


@dataclass(eq=False)
class Listener:
    """One SSE client: alerts of `site_id`, delivered on its event loop. `None` ends the stream."""

    site_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    dropped: int = 0

    def offer(self, item: LiveEvent | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)

    async def get(self) -> LiveEvent | None:
        return await self.queue.get()


def _offer_all(listeners: list[Listener], item: LiveEvent | None) -> None:
    for listener in listeners:
        listener.offer(item)


PING = LiveEvent(b": ping\r\n\r\n")
_STREAM_HEADERS = {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


class LiveStream(Response):
    """The SSE answer of one listener: `hello` first, then each event of its queue as it comes, until
    a `None` (the token's expiry at `expires_at`, the client gone, the feed stopped)."""

    media_type = "text/event-stream"

    def __init__(self, feed: AlertFeed, listener: Listener, hello: LiveEvent, expires_at: float) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
        )
        self._feed = feed
        self._listener = listener
        self._hello = hello
        self._expires_at = expires_at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        listener = self._listener
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            loop = listener.loop
            expiry = loop.call_later(max(0.0, self._expires_at - time.time()), listener.offer, None)
            watcher = loop.create_task(_end_on_disconnect(receive, listener))
            try:
                item: LiveEvent | None = self._hello
                while item is not None:
                    await send({"type": "http.response.body", "body": item.event, "more_body": True})
                    item = await listener.get()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                expiry.cancel()
                watcher.cancel()
        finally:
            self._feed.unlisten(listener)


async def _end_on_disconnect(receive: Receive, listener: Listener) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    listener.offer(None)


class AlertFeed:
    def __init__(
        self,
        bus: Bus,
        *,
        topic: str,
        group_prefix: str = "beffroi-api",
        poll_timeout_s: float = 0.2,
        remember: int = 10_000,
        on_alert: Callable[[Alert], None] | None = None,
        ping_s: float = 15.0,
    ) -> None:
        self.bus = bus
        self._on_alert = on_alert
        self.topic = topic
        self.group = f"{group_prefix}-{uuid.uuid4().hex[:12]}"
        self.poll_timeout_s = poll_timeout_s
        self.ping_s = ping_s
        self.delivered = 0
        self.error: str | None = None
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._listeners: dict[str, set[Listener]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_ms = 0
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, ready_timeout_s: float = 30.0) -> None:
        """Start polling; returns once the subscription is set up (or the timeout passed)."""
        self._start_ms = time.time_ns() // 1_000_000
        self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)
        self._thread.start()
        self._ready.wait(ready_timeout_s)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            listeners = [li for group in self._listeners.values() for li in group]
        for li in listeners:
            li.loop.call_soon_threadsafe(li.offer, None)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def listen(self, site_id: str) -> Listener:
        listener = Listener(site_id, asyncio.get_running_loop())
        with self._lock:
            self._listeners.setdefault(site_id, set()).add(listener)
        return listener

    def unlisten(self, listener: Listener) -> None:
        with self._lock:
            group = self._listeners.get(listener.site_id)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._listeners[listener.site_id]

    def listeners(self) -> int:
        with self._lock:
            return sum(len(g) for g in self._listeners.values())

    def _run(self) -> None:
        sub: Subscription | None = None
        pinged = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - pinged >= self.ping_s:  # keeps proxies from closing idle streams
                pinged = time.monotonic()
                self._ping_all()
            try:
                if sub is None:
                    sub = self.bus.subscribe(self.group, [self.topic], client_id=self.group)
                    self._ready.set()
                for record in sub.poll(500, timeout=self.poll_timeout_s):
                    if record.timestamp_ms is not None and record.timestamp_ms < self._start_ms:
                        continue
                    try:
                        self._dispatch(decode_alert(record))
                    except BadRecord as exc:
                        log.warning("alert feed: %s", exc)
                self.error = None
            except BusError as exc:
                self.error = str(exc)
                log.warning("alert feed on %s: %s; subscribing again", self.topic, exc)
                if sub is not None:
                    self._close(sub)
                    sub = None
                self._stop.wait(1.0)
        self._ready.set()
        if sub is not None:
            self._close(sub)

    @staticmethod
    def _close(sub: Subscription) -> None:
        try:
            sub.close()
        except BusError as exc:
            log.warning("alert feed: closing its subscription failed: %s", exc)

    def _dispatch(self, alert: Alert) -> None:
        if alert.alert_id in self._seen:
            return
        self._seen[alert.alert_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        if self._on_alert is not None:
            self._on_alert(alert)
        self._fan_out(alert.site_id, LiveEvent.of("alert", alert.model_dump_json(), alert.alert_id))
        self.delivered += 1

    def _ping_all(self) -> None:
        with self._lock:
            sites = list(self._listeners)
        for site_id in sites:
            self._fan_out(site_id, PING)

    def push(self, site_id: str, item: LiveEvent) -> None:
        """Send an event to the site's listeners (from any thread): what this API did to an alert."""
        self._fan_out(site_id, item)

    def _fan_out(self, site_id: str, item: LiveEvent) -> None:
        with self._lock:
            listeners = list(self._listeners.get(site_id, ()))
        # one wake-up per event loop, not per listener: 1,000 screens cost one call here
        by_loop: dict[asyncio.AbstractEventLoop, list[Listener]] = {}
        for li in listeners:
            by_loop.setdefault(li.loop, []).append(li)
        for loop, group in by_loop.items():
            try:
                loop.call_soon_threadsafe(_offer_all, group, item)
            except RuntimeError:  # its event loop is closed: the clients are gone
                for li in group:
                    self.unlisten(li)
