"""Exports: a site's alerts and the audit log as CSV or JSON, for supervisors and admins of the site,
every export audited; a cell a spreadsheet would run as a formula is defused."""

from __future__ import annotations

import csv
import io

import pytest

from beffroi.events import AlertStatus
from beffroi.identity import AuditKind, Role
from tests.fixtures.api import sign_in, with_fan_zone
from tests.fixtures.store import make_alert


@pytest.fixture
def client(make_api_client, demo_venue):
    client = make_api_client(with_fan_zone(demo_venue))
    store = client.app.state.store
    mine = make_alert(site_id="stade-demo", zone_id=None, title="=HYPERLINK('http://x')")
    other = make_alert(site_id="fan-demo", zone_id=None, status=AlertStatus.NEW)
    store.write_alerts([mine, other])
    root = sign_in(client, "root", role=Role.ADMIN, sites=("*",))
    for alert in (mine, other):
        url = f"/sites/{alert.site_id}/alerts/{alert.alert_id}/actions"
        assert client.post(url, json={"action": "acknowledge"}, headers=root).status_code == 200
    client.mine, client.other = mine, other
    return client


def _rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_a_supervisor_exports_the_sites_alerts_as_csv_and_json_audited(client):
    lead = sign_in(client, "lea", role=Role.SUPERVISOR, sites=("stade-demo",))
    r = client.get("/sites/stade-demo/alerts/export", headers=lead)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="alerts-stade-demo.csv"'
    [row] = _rows(r.content)
    assert (row["alert_id"], row["status"], row["owner"]) == (client.mine.alert_id, "acknowledged", "root")
    assert row["escalations"] == "0"
    assert row["title"] == "'=HYPERLINK('http://x')", "a formula is written as text"
    assert row["raised_at"] == client.mine.raised_at.isoformat()
    page = client.get("/sites/stade-demo/alerts/export?format=json", headers=lead).json()
    assert [a["alert_id"] for a in page["alerts"]] == [client.mine.alert_id]
    assert page["owners"] == {client.mine.alert_id: "root"}
    window = "/sites/stade-demo/alerts/export?since=2030-01-01T00:00:00Z"
    assert _rows(client.get(window, headers=lead).content) == []
    exports = client.app.state.identity.list_audit(kind=AuditKind.EXPORT, actor="lea")
    formats = ("csv", "json", "csv")  # newest first
    assert [(e.site_id, e.target) for e in exports] == [("stade-demo", f"alerts.{f}") for f in formats]
    assert exports[0].detail == "0 alerts, since 2030-01-01T00:00:00+00:00 until -"
    assert exports[2].detail == "1 alerts, since - until -"


def test_exports_are_refused_below_supervisor_and_outside_the_users_sites(client):
    op = sign_in(client, "olga", role=Role.OPERATOR, sites=("stade-demo",))
    assert client.get("/sites/stade-demo/alerts/export", headers=op).status_code == 403
    assert client.get("/audit/export", headers=op).status_code == 403
    lead = sign_in(client, "lea", role=Role.SUPERVISOR, sites=("stade-demo",))
    assert client.get("/sites/fan-demo/alerts/export", headers=lead).status_code == 404
    assert client.get("/audit/export?site=fan-demo", headers=lead).status_code == 404
    assert client.get("/sites/stade-demo/alerts/export?format=xls", headers=lead).status_code == 422
    assert client.app.state.identity.list_audit(kind=AuditKind.EXPORT) == [], "nothing was exported"


def test_the_audit_export_holds_only_the_users_sites_and_is_itself_audited(client):
    lead = sign_in(client, "lea", role=Role.SUPERVISOR, sites=("stade-demo",))
    rows = _rows(client.get("/audit/export", headers=lead).content)
    assert {r["site_id"] for r in rows} == {"stade-demo"}
    assert client.other.alert_id not in {r["target"] for r in rows}
    assert [r["kind"] for r in rows] == ["alert_action"]
    again = _rows(client.get("/audit/export", headers=lead).content)
    assert [r["kind"] for r in again] == ["alert_action"], "an export of all sites has no site of its own"
    root = sign_in(client, "root")
    everything = client.get("/audit/export?format=json", headers=root).json()
    kinds = [r["kind"] for r in everything["records"]]
    assert kinds.count("export") == 2
    assert kinds.count("alert_action") == 2
    [lea_export, _] = [r for r in everything["records"] if r["kind"] == "export"]
    assert (lea_export["actor"], lea_export["target"], lea_export["detail"]) == (
        "lea",
        "audit.csv",
        "1 records of stade-demo",
    )
    by_site = _rows(client.get("/audit/export?site=stade-demo&kind=export", headers=lead).content)
    assert by_site == [], "exports of several sites are kept without a site"
