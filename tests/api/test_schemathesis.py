"""The OpenAPI document holds: schemathesis generates requests for every operation (a bounded number
each), sent signed in as each role (users of one of the two sites), and checks every answer: no 5xx;
status code, headers, content type and body as the document says. The live stream is left out (an
endless answer: the access matrix checks it)."""

from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from beffroi.events import AlertStatus
from beffroi.identity import Role
from tests.fixtures.api import add_user, token_for, with_fan_zone
from tests.fixtures.store import make_alert

pytestmark = pytest.mark.usefixtures("live_store")  # both stores (PostgreSQL: integration)

EXAMPLES_PER_OPERATION = 15


@pytest.fixture
def world(make_live_api, demo_venue):
    live = make_live_api(with_fan_zone(demo_venue))
    live.slice.store.write_alerts(
        [make_alert(site_id=site, status=AlertStatus.NEW) for site in ("stade-demo", "fan-demo")]
    )
    suffix = uuid.uuid4().hex[:6]
    users = {
        role: add_user(live.app, f"st-{role.value}-{suffix}", role=role, sites=("stade-demo",)).name
        for role in Role
    }
    return live, users


def test_every_operation_answers_as_documented_for_every_role(world):
    live, users = world
    spec = requests.get(f"{live.base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    calls: dict[str, int] = {}
    session = requests.Session()

    def check(operation: schemathesis.APIOperation) -> None:
        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            for role in Role:
                # a fresh token each time: a generated DELETE /auth/session signs its token out
                token = token_for(live.app, users[role])
                session.cookies.clear()  # a generated sign-in leaves its cookie: the header alone counts
                case.call_and_validate(
                    base_url=live.base_url, session=session, headers={"Authorization": f"Bearer {token}"}
                )
                calls[operation.label] = calls.get(operation.label, 0) + 1

        run()

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        if not operation.path.endswith("/alerts/stream"):
            check(operation)
    session.close()
    print(f"schemathesis: {len(calls)} operations, {sum(calls.values())} calls: {calls}")
    assert len(calls) == len(operations) - 1
