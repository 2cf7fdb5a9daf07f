"""Named health probes for GET /health: each returns a dict of facts, or raises when unhealthy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HealthProbe = Callable[[], dict[str, Any]]
HealthChecks = dict[str, HealthProbe]
