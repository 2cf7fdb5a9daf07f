"""GET /metrics: the Prometheus metrics of the API process (beffroi/metrics.py), in the text format.

A router of its own, so that the authentication decides on it alone (scrapers carry no operator token).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from beffroi import metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
