"""Replays over the API: `POST /replays` queues one (202 + id), `GET /replays/{id}` serves its
status and summary (supervisors and admins). One replay runs at a time in a background thread,
reading the API's store query by query (paged: live requests interleave); at most `MAX_PENDING`
wait (429 beyond). A candidate may replace the `worker`, `detectors` or `crowd` section of the
running settings; nothing else can change."""

from __future__ import annotations

import threading
import uuid
from collections import deque
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from analytics.replay import CHANGES, Change, Comparison, ReplayWindow, compare, replay
from analytics.settings import AnalyticsPlatformSettings, CrowdSettings, DetectorsSettings, WorkerSettings
from api.access import Supervisor
from api.auth.tokens import Principal
from api.deps import SettingsDep, VenueDep
from api.timestamps import Timestamp
from beffroi.events import Alert
from beffroi.settings import PlatformSettings
from beffroi.store import Store
from beffroi.venue import Venue

router = APIRouter(tags=["replays"])

MAX_PENDING = 4
MAX_KEPT = 100


class Candidate(BaseModel):
    """Sections replacing the running ones (omitted: as recorded)."""

    model_config = ConfigDict(extra="forbid")
    worker: WorkerSettings | None = None
    detectors: DetectorsSettings | None = None
    crowd: CrowdSettings | None = None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Timestamp = Field(alias="from")
    until: Timestamp = Field(alias="to")
    sites: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]] | None = None
    settings: Candidate | None = None


class ReplaySummary(BaseModel):
    recorded: int
    replayed: int
    changes: dict[str, int]
    per_rule: dict[str, dict[str, int]]
    readings: int
    zone_states: int
    wall_s: float
    speedup: float


class ReplayAlert(BaseModel):
    """An alert of either side and what the replay did to it (the map's timeline overlays them)."""

    change: Change
    alert: Alert = Field(description="the replayed alert (for a removed one: the recorded one)")
    recorded_id: str | None
    recorded_at: datetime | None
    replayed_at: datetime | None
    shift_s: float | None = Field(description="replayed minus recorded raise time, seconds")


class ReplayStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    request: dict[str, Any]
    error: str | None = None
    summary: ReplaySummary | None = None
    alerts: list[ReplayAlert] | None = Field(
        default=None,
        description="once done: every alert of either side, oldest first, of the sites the user sees",
    )
    links: dict[str, str]


class Replays:
    """The queue and the results (kept in memory, the newest `MAX_KEPT`)."""

    def __init__(self, settings: PlatformSettings, store: Store, venue: Venue | None) -> None:
        self.settings = settings
        self.store = store
        self.venue = venue
        self.jobs: dict[str, ReplayStatus] = {}
        self.alerts: dict[str, list[ReplayAlert]] = {}
        self._queue: deque[tuple[str, ReplayWindow, Candidate | None]] = deque()
        self._lock = threading.Lock()
        self._busy = False
        self._thread: threading.Thread | None = None

    def close(self, timeout_s: float = 60.0) -> None:
        """Drop the queued replays and wait for the running one (it reads the store, which the
        app closes next: a replay left running would open it again)."""
        with self._lock:
            self._queue.clear()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def submit(self, body: ReplayRequest) -> ReplayStatus:
        try:
            window: ReplayWindow | None = ReplayWindow(
                since=body.since, until=body.until, site_ids=tuple(body.sites) if body.sites else None
            )
            error = None
        except ValueError as exc:  # accepted, and failed at once with the reason (a valid schema)
            window, error = None, str(exc)
        with self._lock:
            if len(self._queue) >= MAX_PENDING:
                raise HTTPException(429, f"{MAX_PENDING} replays already wait; try again later")
            job_id = uuid.uuid4().hex
            status = ReplayStatus(
                id=job_id,
                status="queued",
                request=body.model_dump(mode="json", by_alias=True, exclude_none=True),
                links={"self": f"/replays/{job_id}"},
            )
            if window is None:
                status = status.model_copy(update={"status": "failed", "error": error})
            self.jobs[job_id] = status
            while len(self.jobs) > MAX_KEPT:
                oldest = next(iter(self.jobs))
                del self.jobs[oldest]
                self.alerts.pop(oldest, None)
            if window is None:
                return status
            self._queue.append((job_id, window, body.settings))
            if not self._busy:
                self._busy = True
                self._thread = threading.Thread(target=self._drain, name="replays", daemon=True)
                self._thread.start()
        return status

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._busy = False
                    return
                job_id, window, candidate = self._queue.popleft()
            self._set(job_id, status="running")
            try:
                summary, alerts = self._run(window, candidate)
                with self._lock:
                    if job_id in self.jobs:
                        self.alerts[job_id] = alerts
                self._set(job_id, status="done", summary=summary)
            except Exception as exc:  # a failed replay is reported, never fatal to the API
                self._set(job_id, status="failed", error=f"{type(exc).__name__}: {exc}")

    def _set(self, job_id: str, **update: Any) -> None:
        with self._lock:
            if job_id in self.jobs:
                self.jobs[job_id] = self.jobs[job_id].model_copy(update=update)

    def view(self, job_id: str, principal: Principal) -> ReplayStatus | None:
        """The job as `principal` may see it: alerts of their sites only."""
        with self._lock:
            status, alerts = self.jobs.get(job_id), self.alerts.get(job_id)
        if status is None or alerts is None:
            return status
        return status.model_copy(update={"alerts": [a for a in alerts if principal.sees(a.alert.site_id)]})

    def _run(
        self, window: ReplayWindow, candidate: Candidate | None
    ) -> tuple[ReplaySummary, list[ReplayAlert]]:
        settings = cast(AnalyticsPlatformSettings, self.settings)
        if candidate is not None:
            sections = {k: v for k, v in candidate if v is not None}
            settings = cast(AnalyticsPlatformSettings, cast(BaseModel, settings).model_copy(update=sections))
        result = replay(self.store, settings, window, venue=self.venue)
        cmp = compare(result.recorded, result.alerts)
        summary = ReplaySummary(
            recorded=len(result.recorded),
            replayed=len(result.alerts),
            changes={c: cmp.count(c) for c in CHANGES},
            per_rule={rule: dict(row) for rule, row in cmp.by(lambda a: a.rule).items()},
            readings=result.readings,
            zone_states=result.zone_states,
            wall_s=result.wall_s,
            speedup=result.speedup,
        )
        return summary, _alerts(cmp)


def _alerts(cmp: Comparison) -> list[ReplayAlert]:
    return [
        ReplayAlert(
            change=d.change,
            alert=d.alert,
            recorded_id=d.recorded.alert_id if d.recorded else None,
            recorded_at=d.recorded.raised_at if d.recorded else None,
            replayed_at=d.replayed.raised_at if d.replayed else None,
            shift_s=d.shift_s,
        )
        for d in cmp.diffs
    ]


_CREATE = threading.Lock()


def _replays(request: Request, settings: PlatformSettings, venue: Venue | None) -> Replays:
    with _CREATE:
        replays: Replays | None = getattr(request.app.state, "replays", None)
        if replays is None:
            replays = request.app.state.replays = Replays(settings, request.app.state.store, venue)
        return replays


@router.post("/replays", status_code=202, responses={404: {"description": "a site outside the user's"}})
def start_replay(
    body: ReplayRequest, principal: Supervisor, request: Request, settings: SettingsDep, venue: VenueDep
) -> ReplayStatus:
    """Queue a replay of the recorded window (isolated: no live alert is written or pushed), of
    `sites` or of every site the supervisor sees."""
    for site in body.sites or []:
        if not principal.sees(site):
            raise HTTPException(404, f"unknown site {site!r}")
    if not body.sites and principal.sites is not None:
        body = body.model_copy(update={"sites": sorted(principal.sites)})
    return _replays(request, settings, venue).submit(body)


@router.get(
    "/replays/{replay_id}", responses={404: {"description": "no replay of this id (kept: the newest 100)"}}
)
def get_replay(
    replay_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    principal: Supervisor,
    request: Request,
    settings: SettingsDep,
    venue: VenueDep,
) -> ReplayStatus:
    """The replay's status; once done, its summary and every alert of either side with its change."""
    status = _replays(request, settings, venue).view(replay_id, principal)
    if status is None:
        raise HTTPException(404, f"unknown replay {replay_id!r}")
    return status
