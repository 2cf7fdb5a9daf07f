"""What every zone rule is: a pure step from (state, batch of `ZoneState`s) to (new state, alerts).

Zone rules watch the video pipeline's per-zone aggregates (analytics/vision/zone_state.py) rather
than single readings, so they carry state: a level held for `hold_s`, an episode that ends only
after `clear_hold_s` below a lower clearing level (hysteresis), a window of densities for a trend.
`step` never mutates its input state: the caller keeps the old state until the batch's alerts are
stored and its offsets committed, so a failed batch evaluated again yields the same alerts (ids
derived from the rule, the subject, the level and the episode's start), never a second one.

Every alert of a zone rule names its subject in `source_ids[0]` (`zone_state:SITE/ZONE` or
`gate:SITE/GATE`), so that a restarted consumer can recognise the episode an earlier run alerted on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from beffroi.events import Alert

if TYPE_CHECKING:
    from beffroi.records import ZoneState

NO_SITE = "unassigned"
"""The site id of alerts on a zone state that names no site (a single-site deployment)."""


class ZoneRule(Protocol):
    """A rule over zone states. `initial()` is the state before any batch; `step` is pure."""

    name: str

    def initial(self) -> Any: ...

    def step(self, state: Any, states: Sequence[ZoneState]) -> tuple[Any, list[Alert]]: ...


class Levels(BaseModel):
    """A warning and a critical level for one zone or gate (None: that level is not watched)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn: float | None = Field(default=None, gt=0)
    critical: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.warn is None and self.critical is None:
            raise ValueError("needs `warn` or `critical`")
        if self.warn is not None and self.critical is not None and self.warn >= self.critical:
            raise ValueError(f"warn ({self.warn:g}) must be below critical ({self.critical:g})")
        return self

    def items(self) -> list[tuple[str, float]]:
        return [(name, v) for name, v in (("warn", self.warn), ("critical", self.critical)) if v is not None]


class EpisodeConfig(BaseModel):
    """When a level counts as reached, and when the episode that reached it is over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold_s: float = Field(default=10.0, ge=0, description="the level must hold this long before alerting")
    clear_ratio: float = Field(
        default=0.9, gt=0, le=1, description="the episode clears below level x clear_ratio (hysteresis)"
    )
    clear_hold_s: float = Field(default=30.0, ge=0, description="...held this long")
    max_gap_s: float = Field(
        default=10.0, gt=0, description="usable states further apart than this restart a pending hold"
    )


@dataclass(frozen=True, slots=True)
class Episode:
    """One subject at one level. `active_since` is the start of the alerted episode (None: none)."""

    last_t: float | None = None
    over_since: float | None = None
    active_since: float | None = None
    under_since: float | None = None


@dataclass(frozen=True)
class EpisodeState:
    """A level rule's state: its open episodes by (site, subject, level), and the last time seen per
    (site, subject), so that redelivered states are ignored."""

    episodes: Mapping[tuple[str, str, str], Episode] = field(default_factory=dict)
    seen: Mapping[tuple[str, str], float] = field(default_factory=dict)


def advance(
    ep: Episode, t: float, *, over: bool, clear: bool, config: EpisodeConfig
) -> tuple[Episode, float | None]:
    """The episode after one usable observation at `t`; second: the episode start when it alerts now.

    `over`: the observation is at or past the level; `clear`: it is below the clearing level.
    """
    gap = ep.last_t is not None and t - ep.last_t > config.max_gap_s
    over_since = None if gap or not over else (ep.over_since if ep.over_since is not None else t)
    if ep.active_since is not None:
        under_since = None if not clear else (ep.under_since if ep.under_since is not None and not gap else t)
        if under_since is not None and t - under_since >= config.clear_hold_s:
            return Episode(last_t=t, over_since=over_since), None
        return Episode(
            last_t=t, over_since=over_since, active_since=ep.active_since, under_since=under_since
        ), None
    if over_since is not None and t - over_since >= config.hold_s:
        return Episode(last_t=t, over_since=over_since, active_since=over_since), over_since
    return Episode(last_t=t, over_since=over_since), None


def site_of(state: ZoneState) -> str:
    return state.site_id or NO_SITE


def zone_subject(state: ZoneState) -> str:
    return f"zone_state:{site_of(state)}/{state.zone_id}"


def by_key_in_time_order(states: Iterable[ZoneState]) -> dict[tuple[str, str], list[ZoneState]]:
    """States grouped by (site, zone), each group sorted by time (the bus orders by key only)."""
    groups: dict[tuple[str, str], list[ZoneState]] = defaultdict(list)
    for s in states:
        groups[(site_of(s), s.zone_id)].append(s)
    for group in groups.values():
        group.sort(key=lambda s: s.ts)
    return groups


def zone_override(overrides: dict[str, Any], site_id: str, zone_id: str) -> Any:
    """The override for `SITE/ZONE`, else for `ZONE` (zone ids repeat across cloned sites), else None."""
    return overrides.get(f"{site_id}/{zone_id}", overrides.get(zone_id))


def hhmmss(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%SZ")


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
