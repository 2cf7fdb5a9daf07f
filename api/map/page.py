"""GET /map: the live map page for control-room operators; `/` leads to it. GET /overview: all sites.

The page and its assets (plain JS, Leaflet vendored under static/vendor) are files of this
package, served as they are: no build step, nothing fetched from the internet, no tile server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.access import PUBLIC

STATIC_DIR = Path(__file__).parent / "static"

# the page loads only its own files, and talks only to this API
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)

router = APIRouter(tags=["map"])
router.mount("/map/static", StaticFiles(directory=STATIC_DIR), name="map-static")


@router.get("/", include_in_schema=False, dependencies=[PUBLIC])
def home() -> RedirectResponse:
    # relative, so that it still works behind a reverse proxy that serves the API under a prefix
    return RedirectResponse("map", status_code=307)


@router.get("/map", response_class=FileResponse, summary="The live map page (HTML)", dependencies=[PUBLIC])
def live_map() -> FileResponse:
    """Zones of a site coloured by their open alerts, devices, and the alert list, updated live.
    Public: the page holds no data; it signs in (POST /auth/session) before reading any."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get(
    "/overview", response_class=FileResponse, summary="The overview page (HTML)", dependencies=[PUBLIC]
)
def overview() -> FileResponse:
    """Every site of the user's with its open alerts by severity, its worst level of service and its
    silent sensors, each linking to its map. Public like the map: it reads data only once signed in."""
    return FileResponse(
        STATIC_DIR / "overview.html",
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
