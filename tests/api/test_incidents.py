"""GET /sites/{id}/incidents: open incident alerts grouped by zone, chained within a time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beffroi.events import AlertAction, AlertCategory, AlertStatus, OperatorAction, Severity
from tests.fixtures.store import make_alert

T0 = datetime(2024, 7, 26, 19, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_open_incident_alerts_are_grouped_by_zone_and_time(api_client, demo_slice):
    def alert(zone, minutes, **fields):
        return make_alert(site_id="stade-demo", zone_id=zone, raised_at=at(minutes), **fields)

    parvis = [alert("parvis", m, severity=Severity.MEDIUM) for m in (0, 5, 12)]
    parvis[1] = parvis[1].model_copy(update={"severity": Severity.HIGH})
    later = alert("parvis", 40, severity=Severity.LOW)
    nord = alert("tribune-nord", 3, severity=Severity.CRITICAL)
    nowhere = alert(None, 1)
    ignored = [
        alert("parvis", 6, category=AlertCategory.FAULT),  # a sensor fault is no incident
        alert("parvis", 20, status=AlertStatus.RESOLVED),  # nor is a resolved alert
        make_alert(site_id="elsewhere", zone_id="parvis", raised_at=at(2)),
    ]
    demo_slice.store.write_alerts([*parvis, later, nord, nowhere, *ignored])
    demo_slice.store.act_on_alert(parvis[0].alert_id, OperatorAction(action=AlertAction.START, operator="a"))

    page = api_client.get("/sites/stade-demo/incidents").json()
    assert (page["site_id"], page["window_min"], page["count"], page["truncated"]) == (
        "stade-demo",
        10,
        4,
        False,
    )
    summary = [(i["zone_id"], i["severity"], i["count"], i["alert_ids"]) for i in page["incidents"]]
    assert summary == [
        ("parvis", "low", 1, [later.alert_id]),
        ("parvis", "high", 3, [a.alert_id for a in reversed(parvis)]),
        ("tribune-nord", "critical", 1, [nord.alert_id]),
        (None, "high", 1, [nowhere.alert_id]),
    ]
    chain = page["incidents"][1]
    assert (chain["first_raised_at"], chain["last_raised_at"]) == (
        "2024-07-26T19:00:00Z",
        "2024-07-26T19:12:00Z",
    )
    assert chain["statuses"] == {"in_progress": 1, "new": 2}

    wider = api_client.get("/sites/stade-demo/incidents", params={"window_min": 30}).json()
    assert [(i["zone_id"], i["count"]) for i in wider["incidents"]] == [
        ("parvis", 4),
        ("tribune-nord", 1),
        (None, 1),
    ]

    demo_slice.store.act_on_alert(nord.alert_id, OperatorAction(action=AlertAction.RESOLVE, operator="a"))
    zones = [i["zone_id"] for i in api_client.get("/sites/stade-demo/incidents").json()["incidents"]]
    assert "tribune-nord" not in zones


def test_bad_windows_and_unknown_sites_are_4xx(api_client):
    r = api_client.get("/sites/stade-demo/incidents", params={"window_min": 0})
    assert r.status_code == 422
    assert r.json()["reason"].startswith("query.window_min: Input should be greater than or equal to 1")
    assert api_client.get("/sites/nowhere/incidents").status_code == 404
    assert api_client.get("/sites/stade-demo/incidents").json()["incidents"] == []
