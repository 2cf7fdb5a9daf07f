"""Procedures: validated with file:line errors, applied by rule (else category), steps ticked by
operators (audited), resolving refused while required steps are undone, the set replaced by a
supervisor of every site."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from api.procedures import load_procedures
from beffroi.identity import AuditKind, Role
from beffroi.yamlconf import ConfigError
from tests.fixtures.api import TestClient, sign_in, signed_in
from tower.runtime import DEMO_VENUE

DEMO_PROCEDURES = Path(DEMO_VENUE).parent / "procedures.yaml"


def test_the_demo_procedures_validate_and_errors_name_the_line(tmp_path):
    assert [p.id for p in load_procedures(DEMO_PROCEDURES).procedures] == ["panic", "smoke", "sensor-fault"]
    bad = tmp_path / "procedures.yaml"
    bad.write_text(
        "procedures:\n"
        "  - id: a\n"
        "    title: A\n"
        "    rules: [panic-button]\n"
        "    steps:\n"
        "      - {id: one, text: do it, required: yes-please}\n"
        "  - id: b\n"
        "    title: B\n"
        "    rules: [panic-button]\n"
        "    steps: [{id: two, text: again}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_procedures(bad)
    assert str(caught.value).splitlines() == [
        f"{bad}:6: procedures[0].steps[0].required: "
        "Input should be a valid boolean, unable to interpret input",
    ]
    bad.write_text(bad.read_text().replace("yes-please", "true"))
    with pytest.raises(
        ConfigError,
        match=r":1: <root>: Value error, a rule has one procedure; named by several: panic-button",
    ):
        load_procedures(bad)


@pytest.fixture
def client(demo_slice, tmp_path):
    path = tmp_path / "procedures.yaml"
    path.write_text(DEMO_PROCEDURES.read_text())
    settings = demo_slice.settings
    settings = settings.model_copy(update={"api": settings.api.model_copy(update={"procedures": path})})
    app = create_app(
        settings,
        store=demo_slice.store,
        bus=demo_slice.bus,
        venue=demo_slice.venue,
    )
    with TestClient(app) as c:
        yield signed_in(c)


@pytest.fixture
def panic(client, demo_slice) -> str:
    demo_slice.publish("panic-nord", {"pressed": 1})
    demo_slice.drain()
    [alert] = demo_slice.alerts("stade-demo")
    return alert.alert_id


def test_required_steps_gate_resolving_and_each_tick_is_audited(client, panic):
    url = f"/sites/stade-demo/alerts/{panic}"
    procedure = client.get(f"{url}/procedure").json()
    assert (procedure["procedure_id"], procedure["title"]) == ("panic", "Panic button pressed")
    assert [(s["id"], s["required"], s["done_by"]) for s in procedure["steps"]] == [
        ("radio", True, None),
        ("cctv", False, None),
        ("report", True, None),
    ]
    r = client.post(f"{url}/actions", json={"action": "resolve"})
    assert r.status_code == 409
    assert r.json()["steps"] == ["radio", "report"]
    assert r.json()["reason"].startswith(
        f"cannot resolve alert {panic}: required steps not done: radio (Call"
    )

    ticked = client.post(f"{url}/procedure/steps/radio")
    assert ticked.status_code == 200
    radio = ticked.json()["steps"][0]
    assert radio["done_by"] == "alice"
    again = client.post(f"{url}/procedure/steps/radio", headers=sign_in(client, "bob"))
    assert again.status_code == 409
    assert again.json()["reason"].startswith("step 'radio' was done by alice at ")
    assert client.post(f"{url}/procedure/steps/nope").status_code == 404
    viewer = sign_in(client, "vic", role=Role.VIEWER)
    assert client.post(f"{url}/procedure/steps/report", headers=viewer).status_code == 403
    assert client.get(f"{url}/procedure", headers=viewer).status_code == 200

    r = client.post(f"{url}/actions", json={"action": "resolve"})
    assert (r.status_code, r.json()["steps"]) == (409, ["report"])
    assert client.post(f"{url}/procedure/steps/report", headers=sign_in(client, "bob")).status_code == 200
    r = client.post(f"{url}/actions", json={"action": "resolve"})
    assert r.status_code == 200, r.text
    records = client.app.state.identity.list_audit(target=panic)
    assert [(r.kind, r.actor, r.detail) for r in reversed(records)] == [
        (AuditKind.STEP_DONE, "alice", "radio"),
        (AuditKind.STEP_DONE, "bob", "report"),
        (AuditKind.ALERT_ACTION, "alice", "resolve: new -> resolved"),
    ]


def test_an_alert_without_procedure_resolves_freely(client, demo_slice):
    demo_slice.publish("sound-parvis", {"dba": 118.0})
    demo_slice.drain()
    [alert] = demo_slice.alerts("stade-demo")
    url = f"/sites/stade-demo/alerts/{alert.alert_id}"
    assert client.get(f"{url}/procedure").json() == {
        "alert_id": alert.alert_id,
        "procedure_id": None,
        "title": None,
        "steps": [],
    }
    assert client.post(f"{url}/actions", json={"action": "resolve"}).status_code == 200


def test_a_supervisor_of_every_site_replaces_the_procedures(client):
    boss = sign_in(client, "sam", role=Role.SUPERVISOR)
    local = sign_in(client, "sid", role=Role.SUPERVISOR, sites=("stade-demo",))
    text = (
        "procedures:\n  - id: only\n    title: Only one\n    categories: [incident]\n"
        "    steps: [{id: look, text: Look}]\n"
    )
    headers = {"Content-Type": "application/yaml"}
    assert client.put("/procedures", content=text, headers={**headers, **local}).status_code == 403
    assert client.put("/procedures", content=text, headers=headers).status_code == 403, "alice operates"
    r = client.put(
        "/procedures", content=text.replace("    title: Only one\n", ""), headers={**headers, **boss}
    )
    assert r.status_code == 422
    assert r.json()["reason"].endswith(":2: procedures[0].title: Field required")
    r = client.put("/procedures", content=text, headers={**headers, **boss})
    assert r.status_code == 200
    assert [p["id"] for p in client.get("/procedures").json()["procedures"]] == ["only"]
    assert client.app.state.settings.api.procedures.read_text() == text
    [record] = client.app.state.identity.list_audit(kind=AuditKind.PROCEDURES_LOADED)
    assert record.actor == "sam"
    assert record.detail.endswith("1 procedures; added ['only'], removed ['panic', 'sensor-fault', 'smoke']")
