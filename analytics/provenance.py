"""Provenance of an alert: hashes of the settings and of the model weights that raised it.

Every worker stamps the alerts it raises with a `Provenance` computed once from its settings: the
rule's own entry for the rules, the detectors' engine section for the detectors. The weights hash
covers every model file the settings name (fields ending in `_path`); None when there is none. A
replay with the recorded settings stamps the same hashes, so its alerts equal the recorded ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from beffroi.events import Alert


@dataclass(frozen=True)
class Provenance:
    settings_hash: str
    weights_hash: str | None = None

    def stamp(self, alerts: Sequence[Alert]) -> list[Alert]:
        """`alerts` carrying this provenance (ids and times unchanged)."""
        update = {"settings_hash": self.settings_hash, "weights_hash": self.weights_hash}
        return [a.model_copy(update=update) for a in alerts]


def provenance_of(section: BaseModel) -> Provenance:
    """The provenance of what `section` (a rule's config, the detectors' engine) raises."""
    doc = section.model_dump_json(by_alias=True, exclude_none=False)
    settings_hash = hashlib.sha256(doc.encode()).hexdigest()[:16]
    paths = sorted(set(_model_paths(section.model_dump(mode="python"))))
    if not paths:
        return Provenance(settings_hash)
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return Provenance(settings_hash, digest.hexdigest()[:16])


def rule_provenance(rule: object) -> Provenance | None:
    """The provenance of a rule built from a pydantic config (None for one without: nothing stamped)."""
    config = getattr(rule, "config", None)
    return provenance_of(config) if isinstance(config, BaseModel) else None


def stamped(provenance: Provenance | None, alerts: list[Alert]) -> list[Alert]:
    return provenance.stamp(alerts) if provenance is not None and alerts else alerts


def _model_paths(value: Any, key: str = "") -> Iterator[Path]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _model_paths(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _model_paths(v, key)
    elif key.endswith("_path") and isinstance(value, str | Path):
        yield Path(value)
