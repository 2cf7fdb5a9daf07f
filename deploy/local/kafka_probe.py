"""Ask a Kafka broker for its metadata, with the standard library only (used by deploy/local/*).

Prints one JSON line {"cluster_id", "controller_id", "brokers", "topics"} and exits 0 when at least one
broker is registered; exits 1 (with the reason on stderr) when the broker is not ready or unreachable.
"""

from __future__ import annotations

import json
import socket
import struct
import sys

METADATA_KEY, METADATA_VERSION = 3, 4  # Kafka 4 removed Metadata v0-v3


def _request(correlation_id: int) -> bytes:
    client_id = b"beffroi-probe"
    header = struct.pack(">hhih", METADATA_KEY, METADATA_VERSION, correlation_id, len(client_id)) + client_id
    body = struct.pack(">ib", -1, 0)  # all topics, no auto-creation
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def probe(host: str, port: int, timeout: float) -> dict[str, object]:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_request(correlation_id=7))
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        r = _Reader(_recv_exact(sock, size))
    if r.take(">i") != 7:
        raise ValueError("unexpected correlation id")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        broker_host = r.string()
        broker_port = r.take(">i")
        r.string()  # rack
        brokers.append(f"{node_id}@{broker_host}:{broker_port}")
    cluster_id = r.string()
    controller_id = r.take(">i")
    topics = r.take(">i")
    return {"cluster_id": cluster_id, "controller_id": controller_id, "brokers": brokers, "topics": topics}


def main() -> int:
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092").rpartition(":")
    try:
        meta = probe(host, int(port), timeout=5.0)
    except (OSError, ValueError, struct.error) as exc:
        print(f"kafka metadata request to {host}:{port} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(meta))
    if not meta["brokers"]:
        print("kafka answered but no broker is registered yet", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
