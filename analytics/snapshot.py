"""Detector state snapshots: arrays plus JSON metadata in one file, replaced atomically.

The file is a NumPy `.npz` archive; the metadata (stream table, bus positions, pending readings)
travels as UTF-8 JSON in the member `__meta__`. `save_snapshot` writes a temporary file in the same
directory, fsyncs it, then renames it over the old one: a crash leaves the old or the new snapshot,
never half of one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "beffroi.detect-snapshot.v1"
_META = "__meta__"


class SnapshotError(RuntimeError):
    """A snapshot could not be written or read; the message names the file."""


def save_snapshot(
    path: Path | str, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]
) -> None:
    path = Path(path)
    if _META in arrays:
        raise SnapshotError(f"{path}: array name {_META!r} is reserved")
    doc = json.dumps({"format": FORMAT, **meta}, separators=(",", ":")).encode()
    buffer = io.BytesIO()
    members: dict[str, Any] = {_META: np.frombuffer(doc, dtype=np.uint8), **arrays}
    np.savez(buffer, **members)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"{path}: cannot write snapshot: {exc}") from exc


def load_snapshot(path: Path | str) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]] | None:
    """(arrays, metadata), or None when there is no snapshot yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SnapshotError(f"{path}: not a readable snapshot: {exc}") from exc
    raw = arrays.pop(_META, None)
    if raw is None:
        raise SnapshotError(f"{path}: not a detector snapshot (no metadata)")
    meta = json.loads(raw.tobytes().decode())
    if meta.get("format") != FORMAT:
        raise SnapshotError(f"{path}: snapshot format {meta.get('format')!r}, expected {FORMAT!r}")
    return arrays, meta
