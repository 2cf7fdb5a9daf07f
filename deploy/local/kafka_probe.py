"""Ask a Kafka broker for its metadata, with the standard library only (used by deploy/local/*).

With $KAFKA_PROBE_USER set, it first authenticates with SASL/PLAIN ($KAFKA_PROBE_PASSWORD), as the
broker's SASL_PLAINTEXT listener requires.

Prints one JSON line {"cluster_id", "controller_id", "brokers", "topics"} and exits 0 when at least one
broker is registered; exits 1 (with the reason on stderr) when the broker is not ready or unreachable.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

METADATA_KEY, METADATA_VERSION = 3, 4  # Kafka 4 removed Metadata v0-v3
SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY = 17, 36


def _frame(key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"beffroi-probe"
    header = struct.pack(">hhih", key, version, correlation_id, len(client_id)) + client_id
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def _request(correlation_id: int) -> bytes:
    return _frame(METADATA_KEY, METADATA_VERSION, correlation_id, struct.pack(">ib", -1, 0))  # all topics


def _exchange(sock: socket.socket, frame: bytes, correlation_id: int) -> _Reader:
    sock.sendall(frame)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    r = _Reader(_recv_exact(sock, size))
    if r.take(">i") != correlation_id:
        raise ValueError("unexpected correlation id")
    return r


def _authenticate(sock: socket.socket, user: str, password: str) -> None:
    """SaslHandshake v1 (PLAIN), then SaslAuthenticate v0 with the PLAIN token."""
    mechanism = b"PLAIN"
    r = _exchange(sock, _frame(SASL_HANDSHAKE_KEY, 1, 1, struct.pack(">h", len(mechanism)) + mechanism), 1)
    if (error := r.take(">h")) != 0:
        raise ValueError(f"SASL handshake refused (error {error})")
    token = b"\0" + user.encode() + b"\0" + password.encode()
    r = _exchange(sock, _frame(SASL_AUTHENTICATE_KEY, 0, 2, struct.pack(">i", len(token)) + token), 2)
    if (error := r.take(">h")) != 0:
        raise ValueError(f"SASL authentication refused (error {error}): {r.string()}")


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
    user = os.environ.get("KAFKA_PROBE_USER")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if user:
            _authenticate(sock, user, os.environ.get("KAFKA_PROBE_PASSWORD", ""))
        r = _exchange(sock, _request(correlation_id=7), 7)
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
