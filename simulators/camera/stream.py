"""HTTP MJPEG camera streams (multipart/x-mixed-replace), as many network cameras serve them.

One `MjpegServer` serves any number of channels: `http://HOST:PORT/{channel}.mjpg` streams the
channel's frames as they are published, `/{channel}.jpg` returns the latest one. OpenCV reads the
stream URL with its FFmpeg backend. `drop_clients()` cuts every open connection, as a camera
dropping off the network would, to exercise reconnection.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import cv2
import numpy as np
import numpy.typing as npt

BOUNDARY = "beffroiframe"
_PATH = re.compile(r"^/([A-Za-z0-9_.-]+?)\.(mjpg|jpg)$")


class Channel:
    """The latest JPEG of one camera and a condition to wait on the next."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._generation = 0

    def publish_jpeg(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def publish(self, frame: npt.NDArray[np.uint8], *, quality: int = 80) -> None:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"camera stream {self.name!r}: could not encode a frame of shape {frame.shape}")
        self.publish_jpeg(buf.tobytes())

    def drop_clients(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def latest(self) -> bytes | None:
        with self._cond:
            return self._jpeg

    def wait_next(self, seq: int, generation: int, timeout: float) -> tuple[bytes | None, int, bool]:
        """Next frame after `seq`: (jpeg or None on timeout, its seq, whether the client was dropped)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self._generation != generation, timeout)
            if self._generation != generation:
                return None, seq, True
            if self._seq > seq:
                return self._jpeg, self._seq, False
            return None, seq, False

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        m = _PATH.match(self.path.split("?", 1)[0])
        channel = self.server.channels.get(m.group(1)) if m else None
        if m is None or channel is None:
            self.send_error(404, "no such camera stream")
            return
        if m.group(2) == "jpg":
            jpeg = channel.latest()
            if jpeg is None:
                self.send_error(503, "no frame yet")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)
            return
        self._stream(channel)

    def _stream(self, channel: Channel) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        generation = channel.generation
        seq = 0
        jpeg = channel.latest()
        try:
            while not self.server.stopping.is_set():
                if jpeg is not None:
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode())
                    self.wfile.write(jpeg)
                    self.wfile.write(b"\r\n")
                    self.wfile.flush()
                jpeg, seq, dropped = channel.wait_next(seq, generation, timeout=0.5)
                if dropped:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], channels: dict[str, Channel]) -> None:
        self.channels = channels
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class MjpegServer:
    """Serves `/{channel}.mjpg` streams on `host:port` (port 0 picks a free one) from a thread."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.channels: dict[str, Channel] = {}
        self._server = _Server((host, port), self.channels)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def channel(self, name: str) -> Channel:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"camera stream name {name!r}: use letters, digits, '.', '_' and '-'")
        if name not in self.channels:
            self.channels[name] = Channel(name)
        return self.channels[name]

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/{name}.mjpg"

    def drop_clients(self) -> None:
        for c in list(self.channels.values()):
            c.drop_clients()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name="mjpeg-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        self.drop_clients()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
