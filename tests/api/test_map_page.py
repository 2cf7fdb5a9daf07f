"""The live map page is served by the API with every asset it needs, and nothing from elsewhere."""

from __future__ import annotations

import re


def test_home_leads_to_the_map(api_client):
    r = api_client.get("/", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "map"
    assert api_client.get("/").url.path == "/map"


def test_the_page_and_all_its_assets_are_served_from_the_api(api_client):
    r = api_client.get("/map")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert "map/static/vendor/leaflet/leaflet.js" in refs
    assert "map/static/map.js" in refs
    for ref in refs:
        assert not re.match(r"^(https?:)?//", ref), f"{ref}: a control room has no internet"
        asset = api_client.get(f"/{ref}")
        assert asset.status_code == 200, ref
        assert len(asset.content) > 100, ref
    css = api_client.get("/map/static/vendor/leaflet/leaflet.css").text
    images = re.findall(r"url\((images/[^)]+)\)", css)
    assert images
    for image in images:
        assert api_client.get(f"/map/static/vendor/leaflet/{image}").status_code == 200, image


def test_a_missing_asset_is_a_404_with_a_reason(api_client):
    r = api_client.get("/map/static/nothing.js")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "reason": "Not Found"}


def test_the_overview_page_and_its_assets_are_served_from_the_api(api_client):
    r = api_client.get("/overview")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert "map/static/overview.js" in refs
    for ref in refs:
        assert not re.match(r"^(https?:)?//", ref), f"{ref}: a control room has no internet"
        assert api_client.get(f"/{ref}").status_code == 200, ref
    script = api_client.get("/map/static/overview.js").text
    for route in ("sites", "zone-states", "alerts?open=true"):
        assert route in script, f"the overview reads {route}"
