"""The bridge's last resort: a message the bus would not take even as a dead letter is kept on disk.

One file per message under the quarantine directory (default `$BEFFROI_STATE_DIR/quarantine`):
`<UTC time>-<sha256 prefix>.bin` holds its exact bytes, and a `.json` next to it its topic, size,
SHA-256 and why it is there. The bridge then acknowledges the message, so one message the bus
refuses can never hold back the ones behind it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path

from beffroi.events import escape_unprintable

log = logging.getLogger(__name__)


def default_state_dir() -> Path:
    """$BEFFROI_STATE_DIR, or ~/.local/state/beffroi (where deploy/local/up keeps the stack's state)."""
    return Path(os.environ.get("BEFFROI_STATE_DIR") or Path.home() / ".local" / "state" / "beffroi")


class Quarantine:
    """Writes messages to `directory`; `keep` never raises."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def keep(self, topic: str, payload: bytes, *, why: str, now: datetime) -> Path | None:
        """Store the message; the path of its bytes, or None when even the disk refused (logged)."""
        digest = hashlib.sha256(payload).hexdigest()
        stem = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{digest[:16]}"
        meta = {
            "topic": escape_unprintable(topic, 1024),
            "size": len(payload),
            "sha256": digest,
            "why": escape_unprintable(why, 2000),
            "at": now.isoformat(),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.directory / f"{stem}.bin"
            _write(path, payload)
            _write(path.with_suffix(".json"), json.dumps(meta, sort_keys=True).encode())
        except OSError as exc:
            log.error(
                "quarantine: cannot store a message of %s (%d bytes, sha256 %s) in %s: %s; first bytes %r",
                meta["topic"],
                len(payload),
                digest,
                self.directory,
                exc,
                payload[:64],
            )
            return None
        log.error(
            "quarantine: kept a message of %s (%d bytes) the bus refused in %s",
            meta["topic"],
            len(payload),
            path,
        )
        return path


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
