"""Two API processes on one store (two apps, each with a store instance of its own, on both
backends) share what they know about requests: failed sign-ins count towards one limit, and a request
retried with its Idempotency-Key on the other process acts once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from api.app import create_app
from api.auth.settings import SignInLimits
from beffroi.identity import Role
from tests.fixtures.api import TestClient, add_user, auth_settings_for_tests, sign_in, with_auth
from tests.fixtures.store import make_alert

PASSWORD = "correct horse battery staple"


@pytest.fixture
def two_apis(api_settings, demo_venue, open_store) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps (as two API processes would run) on the test's database, one store each."""
    limits = SignInLimits(per_user=3, per_address=100, window_s=60)
    auth = auth_settings_for_tests().model_copy(update={"sign_in_limits": limits})
    settings = with_auth(api_settings, auth)  # one signing key: a token of one is good on the other
    with ExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(settings, store=open_store(), venue=demo_venue, live_alerts=False)
            clients.append(stack.enter_context(TestClient(app)))
        add_user(clients[0].app, "olga", role=Role.OPERATOR, sites=("stade-demo",), password=PASSWORD)
        yield clients[0], clients[1]


def test_failed_sign_ins_on_either_process_count_towards_one_limit(two_apis):
    a, b = two_apis

    def sign_in_on(client, password):
        return client.post("/auth/token", data={"username": "olga", "password": password}).status_code

    assert [sign_in_on(a, "wrong"), sign_in_on(b, "wrong")] == [401, 401]
    assert sign_in_on(a, PASSWORD) == 200, "a success clears the user's failures, on both"
    assert [sign_in_on(b, "wrong"), sign_in_on(a, "wrong"), sign_in_on(b, "wrong")] == [401, 401, 401]
    assert sign_in_on(a, PASSWORD) == 429, "three failures, spread over both processes"
    assert sign_in_on(b, PASSWORD) == 429


def test_a_request_retried_on_the_other_process_acts_once(two_apis):
    a, b = two_apis
    alert = make_alert(site_id="stade-demo", zone_id=None, device_id=None)
    a.app.state.store.write_alerts([alert])
    url = f"/sites/stade-demo/alerts/{alert.alert_id}/actions"
    headers = {**sign_in(a, "olga"), "Idempotency-Key": "ack-1"}
    first = a.post(url, json={"action": "acknowledge"}, headers=headers)
    assert first.status_code == 200, first.text
    again = b.post(url, json={"action": "acknowledge"}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(b.get(f"/sites/stade-demo/alerts/{alert.alert_id}", headers=headers).json()["history"]) == 1
    other = b.post(url, json={"action": "resolve"}, headers=headers)
    assert other.status_code == 422, "the key came with another request, on the other process"
