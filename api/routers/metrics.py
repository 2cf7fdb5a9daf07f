"""GET /metrics: the Prometheus metrics of the API process (beffroi/metrics.py), in the text format.

A router of its own, so that the authentication decides on it alone. Like every endpoint but /health
it needs a token: any signed-in user (a scraper's own viewer account, sent as a bearer token), since
the metrics hold no site's data.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.access import require
from beffroi import metrics
from beffroi.identity import Role

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require(Role.VIEWER))])
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
