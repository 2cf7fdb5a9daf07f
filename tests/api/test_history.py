"""GET /sites/{id}/history: a site's recorded zone states and alerts over a window (the map's timeline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beffroi.events import AlertAction, OperatorAction
from beffroi.identity import Role
from tests.fixtures.api import sign_in, with_fan_zone
from tests.fixtures.store import make_alert
from tower.testing import zone_series

T0 = datetime(2024, 7, 26, 19, 0, tzinfo=UTC)


def _window(since: datetime, until: datetime) -> dict[str, str]:
    return {"from": since.isoformat(), "to": until.isoformat()}


def test_the_window_gives_zone_states_and_alerts_with_their_status_changes(make_api_client, demo_venue):
    client = make_api_client(with_fan_zone(demo_venue))
    store = client.app.state.store
    parvis = {"zone_id": "parvis", "site_id": "stade-demo"}
    store.write_zone_states(
        [
            *zone_series([0.5, 1.0], start=T0 - timedelta(minutes=10), **parvis),
            *zone_series([2.0], start=T0 - timedelta(minutes=2), **parvis),
            *zone_series([3.0, 4.2], start=T0, step_s=60, **parvis),
            *zone_series([5.0], start=T0 + timedelta(hours=1), **parvis),
            *zone_series([4.0], zone_id="fz-0", site_id="fan-demo", start=T0),
        ]
    )
    before = make_alert(site_id="stade-demo", raised_at=T0 - timedelta(seconds=1))
    first = make_alert(site_id="stade-demo", zone_id="parvis", raised_at=T0 + timedelta(minutes=1))
    second = make_alert(site_id="stade-demo", zone_id="tribune-nord", raised_at=T0 + timedelta(minutes=5))
    other = make_alert(site_id="fan-demo", raised_at=T0 + timedelta(minutes=1))
    store.write_alerts([before, second, first, other])
    ack = OperatorAction(action=AlertAction.ACKNOWLEDGE, operator="olga")
    store.act_on_alert(first.alert_id, ack, at=T0 + timedelta(minutes=2))
    note = OperatorAction(action=AlertAction.COMMENT, operator="olga", comment="seen on CCTV")
    store.act_on_alert(first.alert_id, note, at=T0 + timedelta(minutes=3))
    resolve = OperatorAction(action=AlertAction.RESOLVE, operator="olga")
    store.act_on_alert(first.alert_id, resolve, at=T0 + timedelta(minutes=4))

    r = client.get("/sites/stade-demo/history", params=_window(T0, T0 + timedelta(minutes=30)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["site_id"], body["truncated"]) == ("stade-demo", False)
    assert body["from"] == "2024-07-26T19:00:00Z"
    # the state as the window opens (5 minutes of look-back), then the window's own; no other site's
    assert [(s["zone_id"], s["density"], s["los"]) for s in body["zone_states"]] == [
        ("parvis", 2.0, "D"),
        ("parvis", 3.0, "D"),
        ("parvis", 4.2, "E"),
    ]
    assert [a["alert"]["alert_id"] for a in body["alerts"]] == [first.alert_id, second.alert_id]
    assert body["alerts"][0]["alert"]["status"] == "resolved"
    # the comment changed no status: not a change
    assert [(c["status"], c["at"], c["operator"]) for c in body["alerts"][0]["changes"]] == [
        ("acknowledged", "2024-07-26T19:02:00Z", "olga"),
        ("resolved", "2024-07-26T19:04:00Z", "olga"),
    ]
    assert body["alerts"][1]["changes"] == []


def test_a_bad_window_is_a_422_and_another_users_site_a_404(make_api_client, demo_venue):
    client = make_api_client(with_fan_zone(demo_venue))
    url = "/sites/stade-demo/history"
    backwards = client.get(url, params=_window(T0, T0 - timedelta(seconds=1)))
    assert backwards.status_code == 422
    assert "`to` must be after `from`" in backwards.json()["reason"]
    too_long = client.get(url, params=_window(T0, T0 + timedelta(hours=25)))
    assert too_long.status_code == 422
    assert "at most 24 h" in too_long.json()["reason"]
    naive = client.get(url, params={"from": "2024-07-26T19:00:00", "to": "2024-07-26T20:00:00"})
    assert naive.status_code == 422
    assert client.get(url, params={"from": T0.isoformat()}).status_code == 422
    headers = sign_in(client, "vic", role=Role.VIEWER, sites=("fan-demo",))
    window = _window(T0, T0 + timedelta(hours=1))
    assert client.get(url, params=window, headers=headers).status_code == 404
    assert client.get("/sites/fan-demo/history", params=window, headers=headers).status_code == 200
