"""A site's zones as the video pipeline last saw them: density, level of service, flow, forecast-ready."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.access import ViewSite
from api.zone_board import ZoneBoard
from beffroi.records import ZoneState

router = APIRouter(tags=["sites"])


async def get_board(request: Request) -> ZoneBoard | None:
    board: ZoneBoard | None = request.app.state.zone_board
    return board


BoardDep = Annotated[ZoneBoard | None, Depends(get_board)]


class ZoneStates(BaseModel):
    site_id: str
    live: bool
    """False: this API reads no bus, so it has no zone states to show."""
    count: int
    states: list[ZoneState]


@router.get("/sites/{site_id}/zone-states")
def latest_zone_states(scope: ViewSite, board: BoardDep) -> ZoneStates:
    """The newest zone state of each zone of the site (zones no camera has reported yet are absent)."""
    states = board.latest(scope.site_id) if board is not None else []
    return ZoneStates(site_id=scope.site_id, live=board is not None, count=len(states), states=states)
