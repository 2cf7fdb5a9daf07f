"""Operators act on alerts through the API: acknowledge, start, resolve, close, comment, with an
audit trail; conflicts are 409s with a reason, bad bodies 422s, unknown alerts 404s, never a 5xx."""

from __future__ import annotations

import pytest

from beffroi.events import AlertStatus
from beffroi.identity import AuditKind, Role
from tests.fixtures.api import sign_in
from tests.fixtures.store import make_alert


@pytest.fixture
def raised(api_client, demo_slice) -> str:
    """The id of an alert raised the real way: a panic button in Tribune nord, through the slice."""
    demo_slice.publish("panic-nord", {"pressed": 1})
    demo_slice.drain()
    [alert] = demo_slice.alerts("stade-demo")
    return alert.alert_id


def post(client, alert_id: str, site: str = "stade-demo", **body):
    """POST an action, signed in as the body's operator (an operator of every site)."""
    name = str(body.get("operator", "alice")).strip() or "alice"
    headers = sign_in(client, name) if name.isprintable() and len(name) <= 64 else {}
    return client.post(f"/sites/{site}/alerts/{alert_id}/actions", json=body, headers=headers)


def test_acknowledge_then_resolve_leaves_an_audit_trail_and_closes_the_zone(api_client, raised):
    url = f"/sites/stade-demo/alerts/{raised}"
    before = api_client.get(url).json()
    assert before["alert"]["status"] == "new"
    assert (before["owner"], before["updated_at"], before["history"]) == (None, None, [])
    assert [a["alert_id"] for a in api_client.get("/sites/stade-demo/alerts?open=true").json()["alerts"]] == [
        raised
    ]

    r = post(api_client, raised, action="acknowledge", operator="  alice ")
    assert r.status_code == 200, r.text
    acked = r.json()
    assert (acked["alert"]["status"], acked["owner"]) == ("acknowledged", "alice")
    [entry] = acked["history"]
    assert {k: entry[k] for k in ("operator", "action", "from_status", "to_status", "comment")} == {
        "operator": "alice",
        "action": "acknowledge",
        "from_status": "new",
        "to_status": "acknowledged",
        "comment": None,
    }
    assert entry["at"] == acked["updated_at"]
    assert entry["at"].endswith("Z")
    assert api_client.get("/sites").json()["sites"][0]["open_alerts"] == 1, "acknowledged is still open"

    r = post(
        api_client,
        raised,
        action="resolve",
        operator="bob",
        comment="false alarm",
        expected_status="acknowledged",
    )
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert (resolved["alert"]["status"], resolved["owner"]) == ("resolved", "alice")
    assert [(e["operator"], e["action"], e["comment"]) for e in resolved["history"]] == [
        ("alice", "acknowledge", None),
        ("bob", "resolve", "false alarm"),
    ]
    assert api_client.get(url).json() == resolved
    assert api_client.get("/sites/stade-demo/alerts?open=true").json()["alerts"] == []
    [closed] = api_client.get("/sites/stade-demo/alerts?open=false").json()["alerts"]
    assert (closed["alert_id"], closed["status"]) == (raised, "resolved")
    assert api_client.get("/sites/stade-demo").json()["open_alerts"] == 0


def test_conflicting_actions_are_409_with_the_status_and_owner(api_client, raised):
    assert post(api_client, raised, action="acknowledge", operator="alice").status_code == 200

    r = post(api_client, raised, action="acknowledge", operator="bob")
    assert r.status_code == 409
    assert r.json() == {
        "error": "conflict",
        "reason": f"alert {raised} is already acknowledged (owner: alice)",
        "status": "acknowledged",
        "owner": "alice",
    }
    r = post(api_client, raised, action="close", operator="bob")
    assert r.status_code == 409
    assert r.json()["reason"] == (
        f"cannot close alert {raised}: it is acknowledged (owner: alice), "
        "and close applies to resolved alerts"
    )
    r = post(api_client, raised, action="start", operator="bob", expected_status="new")
    assert r.status_code == 409
    assert r.json()["reason"] == f"alert {raised} is acknowledged (owner: alice), not new as expected"

    assert post(api_client, raised, action="resolve", operator="alice").status_code == 200
    assert post(api_client, raised, action="close", operator="carol").status_code == 200
    r = post(api_client, raised, action="resolve", operator="bob")
    assert r.status_code == 409
    assert "it is closed" in r.json()["reason"]
    r = post(api_client, raised, action="comment", operator="bob", comment="debrief: CCTV 12 had it first")
    assert r.status_code == 200, "a closed alert still takes comments"
    history = r.json()["history"]
    assert [(e["action"], e["to_status"]) for e in history] == [
        ("acknowledge", "acknowledged"),
        ("resolve", "resolved"),
        ("close", "closed"),
        ("comment", "closed"),
    ]


def test_unknown_alerts_and_sites_are_404(api_client, demo_slice, raised):
    elsewhere = make_alert(site_id="elsewhere")
    demo_slice.store.write_alerts([elsewhere])
    for alert_id in ("no-such-alert", elsewhere.alert_id, "nul%00id"):
        for r in (
            api_client.get(f"/sites/stade-demo/alerts/{alert_id}"),
            post(api_client, alert_id, action="acknowledge", operator="alice"),
        ):
            assert r.status_code == 404, (alert_id, r.text)
            assert r.json()["reason"].startswith("unknown alert ")
    r = post(api_client, raised, site="nowhere", action="acknowledge", operator="alice")
    assert r.status_code == 404
    assert r.json()["reason"] == "unknown site 'nowhere' (venue 'demo' has 1 sites)"
    assert demo_slice.store.get_alert(elsewhere.alert_id).status is AlertStatus.NEW
    r = api_client.get(f"/sites/stade-demo/alerts/{'x' * 129}")
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"action": "acknowledge", "operator": "   "}, "operator must not be blank"),
        ({"action": "acknowledge", "operator": "al\x00ice"}, "operator must not hold control characters"),
        ({"action": "acknowledge", "operator": "a" * 65}, "body.operator: String should have at most 64"),
        ({"action": "escalate", "operator": "alice"}, "body.action: Input should be 'acknowledge', 'start'"),
        ({"action": "comment", "operator": "alice"}, "a comment action needs a non-empty comment"),
        ({"action": "comment", "operator": "alice", "comment": " \n"}, "needs a non-empty comment"),
        (
            {"action": "resolve", "operator": "alice", "comment": "x" * 2001},
            "body.comment: String should have",
        ),
        (
            {"action": "resolve", "operator": "alice", "expected_status": "done"},
            "body.expected_status: Input",
        ),
        (
            {"action": "resolve", "operator": "alice", "by": "radio"},
            "body.by: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_bodies_are_422_with_a_reason_and_change_nothing(api_client, raised, body, reason):
    r = post(api_client, raised, **body)
    assert r.status_code == 422, r.text
    assert reason in r.json()["reason"]
    assert api_client.get(f"/sites/stade-demo/alerts/{raised}").json()["history"] == []


def test_a_body_that_is_not_json_is_a_4xx_with_a_reason(api_client, raised):
    def send(content: bytes):
        url = f"/sites/stade-demo/alerts/{raised}/actions"
        return api_client.post(url, content=content, headers={"Content-Type": "application/json"})

    r = send(b'{"action": "acknowledge", ')
    assert r.status_code == 422
    assert r.json()["reason"].startswith("body.")
    assert "JSON decode error" in r.json()["reason"]
    r = send(b"\xffnot json")
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "There was an error parsing the body"}


def test_the_open_filter_is_a_boolean(api_client, raised):
    assert api_client.get("/sites/stade-demo/alerts?open=false").json()["count"] == 0
    r = api_client.get("/sites/stade-demo/alerts?open=maybe")
    assert r.status_code == 422
    assert r.json()["reason"].startswith("query.open: Input should be a valid boolean")


def test_the_operator_of_record_is_the_signed_in_user(api_client, raised):
    r = api_client.post(f"/sites/stade-demo/alerts/{raised}/actions", json={"action": "acknowledge"})
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == "alice", "the client is signed in as alice"
    r = api_client.post(
        f"/sites/stade-demo/alerts/{raised}/actions",
        json={"action": "comment", "comment": "hello", "operator": "bob"},
    )
    assert r.status_code == 403
    assert r.json()["reason"] == "you are signed in as 'alice': you cannot act as 'bob'"
    history = api_client.get(f"/sites/stade-demo/alerts/{raised}").json()["history"]
    assert [e["operator"] for e in history] == ["alice"]


def test_the_openapi_document_says_who_acts(api_client):
    spec = api_client.get("/openapi.json").json()
    action = spec["paths"]["/sites/{site_id}/alerts/{alert_id}/actions"]["post"]
    assert "recorded under the signed-in user's name" in action["description"]
    assert set(action["responses"]) >= {"200", "403", "404", "409", "422"}
    assert "/sites/{site_id}/alerts/stream" in spec["paths"]


def test_a_retried_action_with_its_idempotency_key_acts_once(api_client, raised):
    url = f"/sites/stade-demo/alerts/{raised}/actions"
    key = {"Idempotency-Key": "ack-7f3a"}
    first = api_client.post(url, json={"action": "acknowledge"}, headers=key)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    again = api_client.post(url, json={"action": "acknowledge"}, headers=key)
    assert again.status_code == 200, "a repeat without the key would be a 409 (already acknowledged)"
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(api_client.get(f"/sites/stade-demo/alerts/{raised}").json()["history"]) == 1
    r = api_client.post(url, json={"action": "resolve"}, headers=key)
    assert r.status_code == 422
    assert r.json()["reason"] == "Idempotency-Key 'ack-7f3a' was used for another request"
    other_user = api_client.post(
        url, json={"action": "acknowledge"}, headers={**key, **sign_in(api_client, "bob")}
    )
    assert other_user.status_code == 409, "keys are per user: bob's request is his own, and comes second"
    assert (
        api_client.post(url, json={"action": "comment"}, headers={"Idempotency-Key": "x"}).status_code == 422
    )
    r = api_client.post(url, json={"action": "comment", "comment": "ok"}, headers={"Idempotency-Key": "x"})
    assert r.status_code == 200, "a key whose request was refused before acting may be used again"


def test_a_supervisor_assigns_an_open_alert_to_an_operator_of_its_site(api_client, raised):
    app = api_client.app
    boss = sign_in(api_client, "sam", role=Role.SUPERVISOR, sites=("stade-demo",))
    sign_in(api_client, "olga", role=Role.OPERATOR, sites=("stade-demo",))
    sign_in(api_client, "vic", role=Role.VIEWER, sites=("stade-demo",))
    sign_in(api_client, "fred", role=Role.OPERATOR, sites=("fan-demo",))
    sign_in(api_client, "gone", role=Role.OPERATOR, sites=("stade-demo",))
    app.state.identity.set_user_disabled("gone", True)
    url = f"/sites/stade-demo/alerts/{raised}/assign"
    for who, why in [
        ("nobody", "no such user"),
        ("gone", "the user is disabled"),
        ("vic", "the user is viewer, below operator"),
        ("fred", "the user has no access to site 'stade-demo'"),
    ]:
        r = api_client.post(url, json={"assignee": who}, headers=boss)
        assert r.status_code == 422, r.text
        assert r.json()["reason"] == f"cannot assign alert {raised} to {who!r}: {why}"
    assert api_client.post(url, json={"assignee": "olga"}).status_code == 403, "alice is an operator"
    r = api_client.post(url, json={"assignee": "olga", "comment": "yours"}, headers=boss)
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["owner"], case["alert"]["status"]) == ("olga", "new"), "assigning keeps the status"
    assert [(e["operator"], e["action"], e["comment"]) for e in case["history"]] == [
        ("sam", "assign", "to olga: yours")
    ]
    again = api_client.post(url, json={"assignee": "olga"}, headers=boss)
    assert again.status_code == 409
    assert again.json()["reason"] == f"alert {raised} is already assigned to olga"
    page = api_client.get("/sites/stade-demo/alerts").json()
    assert page["owners"] == {raised: "olga"}, "the list shows the owner"
    [record] = app.state.identity.list_audit(kind=AuditKind.ALERT_ASSIGNED)
    assert (record.actor, record.target, record.site_id) == ("sam", raised, "stade-demo")
    assert post(api_client, raised, action="resolve").status_code == 200
    closed = api_client.post(url, json={"assignee": "alice"}, headers=boss)
    assert closed.status_code == 409, "a resolved alert is not assigned"
    r = post(api_client, raised, action="assign")
    assert r.status_code == 422
    assert "assign has its own route" in r.json()["reason"]


def test_an_assignment_is_pushed_on_the_live_stream(api_client, raised):
    pushed = []
    feed = api_client.app.state.feed
    feed.push = lambda site, item: pushed.append((site, item.event.decode()))
    boss = sign_in(api_client, "sam", role=Role.SUPERVISOR, sites=("stade-demo",))
    r = api_client.post(f"/sites/stade-demo/alerts/{raised}/assign", json={"assignee": "alice"}, headers=boss)
    assert r.status_code == 200, r.text
    [(site, event)] = pushed
    assert site == "stade-demo"
    assert "event: case" in event
    assert '"owner":"alice"' in event


def test_the_document_says_what_the_body_validator_refuses(api_client):
    """A comment action without text, or `assign` on this route, is a 422: the OpenAPI document
    says so too (schemathesis then generates no such body as valid)."""
    schema = api_client.get("/openapi.json").json()["components"]["schemas"]["ActionRequest"]
    [needs_text] = [r for r in schema["allOf"] if "if" in r]
    assert needs_text["if"]["properties"]["action"] == {"const": "comment"}
    assert needs_text["then"]["required"] == ["comment"]
    assert needs_text["then"]["properties"]["comment"]["pattern"] == r"\S"
    assert {"not": {"properties": {"action": {"const": "assign"}}, "required": ["action"]}} in schema["allOf"]
