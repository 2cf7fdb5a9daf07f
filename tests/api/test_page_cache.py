"""The alert-list cache: pages are served again for `list_cache_s`, and dropped at once when this
API learns that the site changed (an alert on its live feed, an action through it)."""

from __future__ import annotations

import time

import pytest

from api.app import create_app
from api.page_cache import PageCache
from beffroi.events import AlertStatus
from tests.fixtures.api import TestClient, signed_in
from tests.fixtures.store import make_alert


@pytest.fixture
def cached_client(demo_slice):
    settings = demo_slice.settings
    settings = settings.model_copy(update={"api": settings.api.model_copy(update={"list_cache_s": 60.0})})
    app = create_app(
        settings,
        store=demo_slice.store,
        bus=demo_slice.bus,
        venue=demo_slice.venue,
    )
    with TestClient(app) as client:
        yield signed_in(client)


def ids(client, **params):
    return [a["alert_id"] for a in client.get("/sites/stade-demo/alerts", params=params).json()["alerts"]]


def test_a_page_is_served_again_until_the_site_changes(cached_client, demo_slice):
    assert ids(cached_client) == []
    quiet = make_alert(site_id="stade-demo")
    demo_slice.store.write_alerts([quiet])  # into the store only, as a worker cut off from the bus
    assert ids(cached_client) == [], "served from the cache: nothing told this API"
    assert ids(cached_client, limit=5) == [quiet.alert_id], "another query is another page"
    cache = cached_client.app.state.page_cache
    assert (cache.hits, cache.misses) == (1, 2)

    demo_slice.publish("panic-nord", {"pressed": 1})  # the real path: store, then the alerts topic
    demo_slice.drain()
    [raised] = [a for a in demo_slice.alerts("stade-demo") if a.alert_id != quiet.alert_id]
    deadline = time.monotonic() + 10
    while raised.alert_id not in ids(cached_client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(ids(cached_client)) == {raised.alert_id, quiet.alert_id}, "the feed dropped the page"

    r = cached_client.post(f"/sites/stade-demo/alerts/{raised.alert_id}/actions", json={"action": "resolve"})
    assert r.status_code == 200
    statuses = {
        a["alert_id"]: a["status"] for a in cached_client.get("/sites/stade-demo/alerts").json()["alerts"]
    }
    assert statuses[raised.alert_id] == AlertStatus.RESOLVED, "an action drops the site's pages"


def test_the_cache_keeps_no_page_of_a_site_that_changed_while_it_was_computed():
    now = [0.0]
    cache = PageCache(ttl_s=1.0, clock=lambda: now[0])
    version = cache.version("s")
    cache.invalidate("s")  # an alert arrived during the query
    cache.put("s", "k", b"stale", version=version)
    assert cache.get("s", "k") is None
    cache.put("s", "k", b"fresh", version=cache.version("s"))
    assert cache.get("s", "k") == b"fresh"
    now[0] = 1.0
    assert cache.get("s", "k") is None, "expired"
