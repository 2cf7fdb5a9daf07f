"""Instants in requests are what the OpenAPI document says (`format: date-time`): an ISO 8601
date-time with its zone. A number (`until=0.5`, read by pydantic as seconds since 1970) is a 422
(issue 12: schemathesis found it accepted), as is a date-time without its zone."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("until", ["0.5", "1700000000", "-3", "1e3"])
def test_a_number_is_not_an_instant(api_client, until):
    r = api_client.get("/sites/stade-demo/alerts", params={"until": until})
    assert r.status_code == 422, r.text
    assert "ISO 8601" in r.text


@pytest.mark.parametrize("until", ["2026-07-26T19:00:00+02:00", "2026-07-26T17:00:00Z"])
def test_an_iso_date_time_with_its_zone_is(api_client, until):
    assert api_client.get("/sites/stade-demo/alerts", params={"until": until}).status_code == 200


def test_a_date_time_without_its_zone_is_not(api_client):
    assert (
        api_client.get("/sites/stade-demo/alerts", params={"until": "2026-07-26T19:00:00"}).status_code == 422
    )


def test_the_document_says_date_time(api_client):
    spec = api_client.get("/openapi.json").json()
    [param] = [
        p for p in spec["paths"]["/sites/{site_id}/alerts"]["get"]["parameters"] if p["name"] == "until"
    ]
    schemas = param["schema"].get("anyOf", [param["schema"]])
    assert {"type": "string", "format": "date-time"} in schemas
