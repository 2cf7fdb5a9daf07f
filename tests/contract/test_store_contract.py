"""The Store contract (beffroi/store.py), run against SqliteStore and PostgresStore alike.

The PostgreSQL-only section at the end checks the time partitioning of `readings`.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from beffroi.events import (
    AlertAction,
    AlertCategory,
    AlertStatus,
    DeadLetterReason,
    OperatorAction,
    Severity,
)
from beffroi.identity import AuditKind, AuditRecord, RequestKey, Role, User
from beffroi.migrations import Dialect, Migration, MigrationError, migrations_for, sqlite_statements
from beffroi.postgres_store import PostgresStore
from beffroi.records import SiteScores
from beffroi.settings import SqliteSettings
from beffroi.sqlite_store import SqliteStore
from beffroi.store import AlertMark, Store, StoreError, TransitionRefused, UnknownAlertError
from beffroi.store_factory import make_store
from tests.fixtures.store import execute_raw, make_alert, make_dead_letter, make_readings
from tower.settings import Settings
from tower.testing import zone_series

# -- readings ---------------------------------------------------------------------------------------


def test_writing_the_same_readings_twice_stores_them_once(store: Store):
    readings = make_readings(50)
    assert store.write_readings(readings) == 50
    assert store.write_readings(readings) == 0
    assert store.count_readings() == 50


def test_a_mixed_batch_returns_only_the_new_count(store: Store):
    readings = make_readings(50)
    assert store.write_readings(readings[:30]) == 30
    assert store.write_readings(readings[::-1]) == 20
    assert store.count_readings() == 50


def test_duplicates_inside_one_batch_count_once(store: Store):
    readings = make_readings(5)
    assert store.write_readings([*readings, *readings, readings[0]]) == 5
    assert store.count_readings() == 5


def test_an_empty_batch_writes_nothing(store: Store):
    assert store.write_readings([]) == 0
    assert store.write_alerts([]) == 0
    assert store.write_dead_letters([]) == 0
    assert store.count_readings() == 0


def test_readings_round_trip_in_time_order(store: Store):
    readings = make_readings(20, step=timedelta(seconds=-1))  # written newest first
    store.write_readings(readings)
    assert store.list_readings("stade-de-france") == sorted(readings, key=lambda r: r.ts)


def test_list_readings_filters_by_site_device_and_time(store: Store):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ours = make_readings(40, start=start, devices=4)
    theirs = make_readings(10, start=start, site_id="parc-des-princes")
    store.write_readings([*ours, *theirs])

    assert store.count_readings("stade-de-france") == 40
    assert store.count_readings("parc-des-princes") == 10
    assert store.count_readings("nowhere") == 0
    assert store.count_readings() == 50

    since, until = start + timedelta(seconds=10), start + timedelta(seconds=30)
    window = store.list_readings("stade-de-france", since=since, until=until)
    assert [r.ts for r in window] == [start + timedelta(seconds=s) for s in range(10, 30)]
    device = store.list_readings("stade-de-france", device_id="aq-001")
    assert {r.device_id for r in device} == {"aq-001"}
    assert len(device) == 10
    assert store.list_readings("stade-de-france", limit=3) == ours[:3]


def test_readings_keep_every_field(store: Store):
    odd_zone = datetime(2024, 7, 26, 21, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    reading = make_readings(1)[0].model_copy(
        update={
            "ts": odd_zone,
            "value": {"pm25": 182.25, "nan": math.nan, "hot": math.inf, "cold": -math.inf, "zero": 0.0},
            "tags": ("site:stade-de-france", "zone:gate-b", "éclairage"),
        }
    )
    store.write_readings([reading])
    (back,) = store.list_readings("stade-de-france")
    assert back.ts == odd_zone
    assert back.ts.tzinfo == UTC
    assert back.model_dump(exclude={"value"}) == reading.model_dump(exclude={"value"})
    assert back.value["pm25"] == 182.25
    assert math.isnan(back.value["nan"])
    assert back.value["hot"] == math.inf
    assert back.value["cold"] == -math.inf
    assert back.value["zero"] == 0.0


def test_nul_characters_do_not_block_a_write(store: Store):
    reading = make_readings(1)[0].model_copy(
        update={"stream_id": "urn:lo:nsid:beffroi:aq\x00!air", "tags": ("a\x00b",), "value": {"p\x00m": 1.0}}
    )
    assert store.write_readings([reading]) == 1
    (back,) = store.list_readings("stade-de-france")
    assert back.stream_id == "urn:lo:nsid:beffroi:aq\ufffd!air"
    assert back.tags == ("a\ufffdb",)
    assert back.value == {"p\ufffdm": 1.0}


def test_readings_far_in_the_past_or_future_are_stored(store: Store):
    far = [
        *make_readings(3, start=datetime(1970, 1, 1, tzinfo=UTC), tag="past"),
        *make_readings(3, start=datetime(2999, 12, 31, 23, 59, 58, tzinfo=UTC), tag="future"),
        *make_readings(3, start=datetime.now(UTC) + timedelta(days=400), tag="next-year"),
    ]
    assert store.write_readings(far) == 9
    assert store.write_readings(far) == 0
    assert store.count_readings() == 9
    assert store.list_readings("stade-de-france", until=datetime(1971, 1, 1, tzinfo=UTC)) == far[:3]
    assert store.list_readings("stade-de-france", since=datetime(2999, 1, 1, tzinfo=UTC)) == far[3:6]


def test_readings_spread_over_many_days_are_stored(store: Store):
    start = datetime.now(UTC) - timedelta(days=40)
    readings = make_readings(50, start=start, step=timedelta(hours=23))  # ~48 distinct days
    assert store.write_readings(readings) == 50
    assert store.write_readings(readings) == 0
    assert store.count_readings() == 50


def test_concurrent_writers_of_overlapping_batches_store_the_union(open_store):
    readings = make_readings(3000)
    first, second = readings[:2000], readings[1000:]
    stores = [open_store(), open_store()]
    new_counts: list[int] = []
    failures: list[BaseException] = []

    def write(store: Store, batch, reverse: bool) -> None:
        chunks = [batch[i : i + 250] for i in range(0, len(batch), 250)]
        try:
            for chunk in reversed(chunks) if reverse else chunks:
                new_counts.append(store.write_readings(chunk[::-1] if reverse else chunk))
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=write, args=(stores[0], first, False)),
        threading.Thread(target=write, args=(stores[1], second, True)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    assert sum(new_counts) == 3000
    assert stores[0].count_readings() == 3000
    assert stores[1].list_readings("stade-de-france", limit=5000) == sorted(readings, key=lambda r: r.ts)


# -- alerts -----------------------------------------------------------------------------------------


def test_alerts_round_trip_every_field(store: Store):
    full = make_alert(
        category=AlertCategory.FAULT,
        severity=Severity.CRITICAL,
        status=AlertStatus.ACKNOWLEDGED,
        raised_at=datetime(2024, 7, 26, 21, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
        detail="ligne 1\nligne 2 — « quotes » ' \"",
        source_ids=("m-1", "m-2", "m-3"),
    )
    sparse = make_alert(zone_id=None, device_id=None, value=None, detail="", source_ids=())
    assert store.write_alerts([full, sparse]) == 2

    back = store.get_alert(full.alert_id)
    assert back == full
    assert back is not None
    assert back.raised_at.tzinfo == UTC
    assert back.raised_at == datetime(2024, 7, 26, 19, 30, 5, 123456, tzinfo=UTC)
    assert back.status is AlertStatus.ACKNOWLEDGED
    assert store.get_alert(sparse.alert_id) == sparse


def test_get_alert_of_an_unknown_id_is_none(store: Store):
    store.write_alerts([make_alert()])
    assert store.get_alert("no-such-alert") is None


def test_writing_a_known_alert_again_leaves_it_as_it_is(store: Store):
    alert = make_alert()
    assert store.write_alerts([alert]) == 1
    assert store.write_alerts([alert, alert.model_copy(update={"status": AlertStatus.CLOSED})]) == 0
    assert store.get_alert(alert.alert_id) == alert
    assert store.write_alerts([make_alert(), alert, make_alert()]) == 2
    assert store.count_alerts() == 3


def test_list_alerts_filters_and_orders_newest_first(store: Store):
    t0 = datetime(2024, 7, 26, 19, 0, tzinfo=UTC)
    ours = [
        make_alert(
            raised_at=t0 + timedelta(minutes=i),
            status=AlertStatus.NEW if i % 2 == 0 else AlertStatus.RESOLVED,
            zone_id="gate-a" if i < 5 else "gate-b",
        )
        for i in range(10)
    ]
    theirs = [make_alert(site_id="parc-des-princes", raised_at=t0 + timedelta(minutes=i)) for i in range(3)]
    store.write_alerts([*ours[::2], *theirs, *ours[1::2]])
    newest_first = ours[::-1]

    assert store.list_alerts("stade-de-france") == newest_first
    assert store.list_alerts("stade-de-france", limit=3) == newest_first[:3]
    assert store.list_alerts("stade-de-france", since=t0 + timedelta(minutes=7)) == newest_first[:3]
    assert store.list_alerts("stade-de-france", until=t0 + timedelta(minutes=2)) == newest_first[-2:]
    assert store.list_alerts("stade-de-france", status=AlertStatus.RESOLVED) == newest_first[::2]
    assert store.list_alerts("stade-de-france", zone_id="gate-a", status=AlertStatus.NEW) == [
        ours[4],
        ours[2],
        ours[0],
    ]
    assert store.list_alerts("parc-des-princes") == theirs[::-1]
    assert store.list_alerts("nowhere") == []


def test_alerts_raised_at_the_same_instant_order_by_id_descending_bytewise(store: Store):
    ids = ["alert-B", "alert-a", "alert_c", "alert-C", "Alert-d", "alert-é"]
    store.write_alerts(
        [make_alert(alert_id=i, raised_at=datetime(2024, 7, 26, 19, 0, tzinfo=UTC)) for i in ids]
    )
    assert [a.alert_id for a in store.list_alerts("stade-de-france")] == sorted(ids, reverse=True)


def test_count_alerts_by_site_and_status(store: Store):
    store.write_alerts(
        [
            make_alert(),
            make_alert(status=AlertStatus.CLOSED),
            make_alert(site_id="parc-des-princes", status=AlertStatus.CLOSED),
        ]
    )
    assert store.count_alerts() == 3
    assert store.count_alerts("stade-de-france") == 2
    assert store.count_alerts(status=AlertStatus.CLOSED) == 2
    assert store.count_alerts("stade-de-france", status=AlertStatus.NEW) == 1
    assert store.count_alerts("nowhere") == 0


def test_a_limit_below_one_is_refused(store: Store):
    with pytest.raises(ValueError, match="limit"):
        store.list_alerts("stade-de-france", limit=0)
    with pytest.raises(ValueError, match="limit"):
        store.list_readings("stade-de-france", limit=-1)


# -- the alert lifecycle ----------------------------------------------------------------------------

NEW, ACKED, IN_PROGRESS, RESOLVED, CLOSED = AlertStatus
ACK, START, RESOLVE, CLOSE, COMMENT, ASSIGN = AlertAction
REFUSED = None
# (status, action) -> the status it leads to, or REFUSED
LIFECYCLE = {
    (NEW, ACK): ACKED,
    (NEW, START): IN_PROGRESS,
    (NEW, RESOLVE): RESOLVED,
    (NEW, CLOSE): REFUSED,
    (NEW, COMMENT): NEW,
    (ACKED, ACK): REFUSED,
    (ACKED, START): IN_PROGRESS,
    (ACKED, RESOLVE): RESOLVED,
    (ACKED, CLOSE): REFUSED,
    (ACKED, COMMENT): ACKED,
    (IN_PROGRESS, ACK): REFUSED,
    (IN_PROGRESS, START): REFUSED,
    (IN_PROGRESS, RESOLVE): RESOLVED,
    (IN_PROGRESS, CLOSE): REFUSED,
    (IN_PROGRESS, COMMENT): IN_PROGRESS,
    (RESOLVED, ACK): REFUSED,
    (RESOLVED, START): REFUSED,
    (RESOLVED, RESOLVE): REFUSED,
    (RESOLVED, CLOSE): CLOSED,
    (RESOLVED, COMMENT): RESOLVED,
    (CLOSED, ACK): REFUSED,
    (CLOSED, START): REFUSED,
    (CLOSED, RESOLVE): REFUSED,
    (CLOSED, CLOSE): REFUSED,
    (CLOSED, COMMENT): CLOSED,
    (NEW, ASSIGN): NEW,
    (ACKED, ASSIGN): ACKED,
    (IN_PROGRESS, ASSIGN): IN_PROGRESS,
    (RESOLVED, ASSIGN): REFUSED,
    (CLOSED, ASSIGN): REFUSED,
}


def act(action: AlertAction, operator: str = "alice", **fields) -> OperatorAction:
    if action is COMMENT:
        fields.setdefault("comment", "noted")
    if action is ASSIGN:
        fields.setdefault("assignee", "olga")
    return OperatorAction(action=action, operator=operator, **fields)


def test_an_alert_goes_through_its_lifecycle_with_an_audit_trail(store: Store):
    alert = make_alert()
    store.write_alerts([alert])
    fresh = store.get_alert_case(alert.alert_id)
    assert fresh is not None
    assert (fresh.alert, fresh.owner, fresh.updated_at, fresh.history) == (alert, None, None, ())

    t0 = datetime(2024, 7, 26, 21, 31, tzinfo=timezone(timedelta(hours=2)))
    steps = [
        (act(ACK), ACKED, "alice"),
        (act(START, "bob", comment="team 3 on its way"), IN_PROGRESS, "bob"),
        (
            act(COMMENT, "carol", comment="smoke seen from\nthe north stand — « fumigène »"),
            IN_PROGRESS,
            "bob",
        ),
        (act(RESOLVE, "bob", comment="flare put out"), RESOLVED, "bob"),
        (act(CLOSE, "dave"), CLOSED, "bob"),
    ]
    entries = []
    for i, (action, status, owner) in enumerate(steps):
        entry = store.act_on_alert(alert.alert_id, action, at=t0 + timedelta(minutes=i))
        entries.append(entry)
        assert (entry.action, entry.to_status, entry.operator) == (action.action, status, action.operator)
        assert entry.at == t0 + timedelta(minutes=i)
        case = store.get_alert_case(alert.alert_id)
        assert case is not None
        assert (case.alert.status, case.owner, case.updated_at) == (status, owner, entry.at)
        assert case.history == tuple(entries)
        assert store.get_alert(alert.alert_id) == alert.model_copy(update={"status": status})

    assert [(e.from_status, e.to_status) for e in entries] == [
        (NEW, ACKED),
        (ACKED, IN_PROGRESS),
        (IN_PROGRESS, IN_PROGRESS),
        (IN_PROGRESS, RESOLVED),
        (RESOLVED, CLOSED),
    ]
    assert entries[2].comment == "smoke seen from\nthe north stand — « fumigène »"
    assert entries[4].comment is None
    assert entries[0].at.tzinfo == UTC
    assert [e.seq for e in entries] == sorted({e.seq for e in entries})


def test_alert_trails_give_each_acted_alerts_history_in_order(store: Store):
    t0 = datetime(2024, 7, 26, 19, 0, tzinfo=UTC)
    first, second, untouched = make_alert(), make_alert(), make_alert()
    store.write_alerts([first, second, untouched])
    store.act_on_alert(first.alert_id, act(ACK), at=t0)
    store.act_on_alert(second.alert_id, act(RESOLVE, "bob"), at=t0 + timedelta(minutes=1))
    store.act_on_alert(first.alert_id, act(RESOLVE), at=t0 + timedelta(minutes=2))
    trails = store.alert_trails([first.alert_id, second.alert_id, untouched.alert_id, "unknown"])
    assert sorted(trails) == sorted([first.alert_id, second.alert_id])
    assert [(e.to_status, e.at) for e in trails[first.alert_id]] == [
        (ACKED, t0),
        (RESOLVED, t0 + timedelta(minutes=2)),
    ]
    assert [(e.operator, e.to_status) for e in trails[second.alert_id]] == [("bob", RESOLVED)]
    assert store.alert_trails([]) == {}


@pytest.mark.parametrize("status", list(AlertStatus))
def test_each_action_applies_only_to_the_statuses_of_the_lifecycle(store: Store, status: AlertStatus):
    alerts = {action: make_alert(status=status) for action in AlertAction}
    store.write_alerts(list(alerts.values()))
    for action, alert in alerts.items():
        expected = LIFECYCLE[status, action]
        if expected is REFUSED:
            with pytest.raises(TransitionRefused) as refused:
                store.act_on_alert(alert.alert_id, act(action))
            assert refused.value.status is status
            case = store.get_alert_case(alert.alert_id)
            assert case is not None
            assert (case.alert.status, case.history) == (status, ()), "a refused action changes nothing"
        else:
            entry = store.act_on_alert(alert.alert_id, act(action))
            assert (entry.from_status, entry.to_status) == (status, expected)
            assert store.count_alerts(status=expected) >= 1


def test_refusals_say_why(store: Store):
    alert, closed = make_alert(), make_alert(status=CLOSED)
    store.write_alerts([alert, closed])
    store.act_on_alert(alert.alert_id, act(ACK, "alice"))

    with pytest.raises(TransitionRefused, match=r"is already acknowledged \(owner: alice\)") as again:
        store.act_on_alert(alert.alert_id, act(ACK, "bob"))
    assert (again.value.status, again.value.owner) == (ACKED, "alice")
    with pytest.raises(
        TransitionRefused, match=r"cannot resolve alert .*: it is closed, and resolve applies"
    ):
        store.act_on_alert(closed.alert_id, act(RESOLVE))
    with pytest.raises(TransitionRefused, match=r"is acknowledged \(owner: alice\), not new as expected"):
        store.act_on_alert(alert.alert_id, act(RESOLVE, "bob", expected_status=NEW))
    with pytest.raises(UnknownAlertError, match="no-such-alert"):
        store.act_on_alert("no-such-alert", act(ACK))
    with pytest.raises(UnknownAlertError):
        store.act_on_alert("nul\x00id", act(ACK))
    assert store.get_alert_case("nul\x00id") is None
    assert store.get_alert_case("no-such-alert") is None

    case = store.get_alert_case(alert.alert_id)
    assert case is not None
    assert (case.alert.status, case.owner, len(case.history)) == (ACKED, "alice", 1)
    entry = store.act_on_alert(alert.alert_id, act(RESOLVE, "bob", expected_status=ACKED))
    assert entry.to_status is RESOLVED


def test_a_redelivered_alert_keeps_the_operators_status_owner_and_history(store: Store, open_store):
    alert = make_alert()
    assert store.write_alerts([alert]) == 1
    store.act_on_alert(alert.alert_id, act(START, "alice", comment="on it"))
    # the worker crashed before committing its offsets: the same alert (status new) comes again
    worker = open_store()
    assert worker.write_alerts([alert, make_alert()]) == 1
    case = store.get_alert_case(alert.alert_id)
    assert case is not None
    assert (case.alert.status, case.owner) == (IN_PROGRESS, "alice")
    assert [e.action for e in case.history] == [START]
    assert store.list_alerts("stade-de-france", is_open=True, status=IN_PROGRESS) == [case.alert]


def test_list_and_count_alerts_filter_open_ones(store: Store):
    t0 = datetime(2024, 7, 26, 19, 0, tzinfo=UTC)
    alerts = [
        make_alert(status=status, raised_at=t0 + timedelta(minutes=i)) for i, status in enumerate(AlertStatus)
    ]
    store.write_alerts([*alerts, make_alert(site_id="parc-des-princes")])
    newest_first = alerts[::-1]
    assert store.list_alerts("stade-de-france", is_open=True) == [
        a for a in newest_first if a.status in (NEW, ACKED, IN_PROGRESS)
    ]
    assert store.list_alerts("stade-de-france", is_open=False) == [
        a for a in newest_first if a.status in (RESOLVED, CLOSED)
    ]
    assert store.list_alerts("stade-de-france", is_open=True, status=CLOSED) == []
    assert store.list_alerts("stade-de-france", is_open=True, limit=1) == [alerts[2]]
    assert store.count_alerts("stade-de-france", is_open=True) == 3
    assert store.count_alerts(is_open=True) == 4
    assert store.count_alerts("stade-de-france", is_open=False) == 2

    store.act_on_alert(alerts[2].alert_id, act(RESOLVE))
    assert [a.alert_id for a in store.list_alerts("stade-de-france", is_open=True)] == [
        alerts[1].alert_id,
        alerts[0].alert_id,
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [(act(ACK, "alice"), act(ACK, "bob")), (act(ACK, "alice"), act(RESOLVE, "bob", expected_status=NEW))],
    ids=["both-acknowledge", "acknowledge-or-resolve"],
)
def test_of_two_operators_racing_on_conflicting_actions_exactly_one_wins(open_store, first, second):
    alerts = [make_alert() for _ in range(12)]
    desks = [open_store(), open_store()]  # two API processes, one connection each
    desks[0].write_alerts(alerts)
    outcomes: dict[str, list[str]] = {a.alert_id: [] for a in alerts}
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def operator(store: Store, action: OperatorAction) -> None:
        for alert in alerts:
            try:
                barrier.wait(timeout=30)
                store.act_on_alert(alert.alert_id, action)
                outcomes[alert.alert_id].append(action.operator)
            except TransitionRefused:
                pass
            except BaseException as exc:
                failures.append(exc)

    threads = [
        threading.Thread(target=operator, args=(desks[0], first)),
        threading.Thread(target=operator, args=(desks[1], second)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    for alert in alerts:
        [winner] = outcomes[alert.alert_id]
        case = desks[1].get_alert_case(alert.alert_id)
        assert case is not None
        [entry] = case.history
        assert entry.operator == winner
        winning = first if winner == first.operator else second
        assert case.alert.status is LIFECYCLE[NEW, winning.action]
        assert case.owner == winner


# -- users and the audit log ------------------------------------------------------------------------


def _user(name: str, **fields) -> User:
    base = {"name": name, "role": Role.OPERATOR, "sites": ("stade-demo", "fan-demo"), "created_at": T_USER}
    return User(**{**base, "password_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", **fields})


T_USER = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def test_users_are_added_once_read_listed_and_disabled(store: Store):
    store.add_user(_user("olga"))
    store.add_user(_user("adam", role=Role.ADMIN, sites=("*",), password_hash=None))
    with pytest.raises(ValueError, match="a user named 'olga' exists"):
        store.add_user(_user("olga", role=Role.ADMIN))
    olga = store.get_user("olga")
    assert olga == _user("olga", sites=("fan-demo", "stade-demo"))
    assert store.get_user("nobody") is None
    assert [(u.name, u.role, u.sites, u.all_sites) for u in store.list_users()] == [
        ("adam", Role.ADMIN, ("*",), True),
        ("olga", Role.OPERATOR, ("fan-demo", "stade-demo"), False),
    ]
    assert store.set_user_disabled("olga", True) is True
    assert store.get_user("olga").disabled is True
    assert store.set_user_disabled("nobody", True) is False
    assert store.set_user_password("adam", "$argon2id$new") is True
    assert store.get_user("adam").password_hash == "$argon2id$new"
    assert store.set_user_password("nobody", "x") is False


def test_the_audit_log_is_appended_to_listed_newest_first_and_filtered(store: Store):
    def record(minute: int, kind: AuditKind, site: str | None, **fields) -> AuditRecord:
        base = {"at": T_USER + timedelta(minutes=minute), "kind": kind, "actor": "olga", "site_id": site}
        return AuditRecord(**{**base, **fields})

    store.append_audit(
        [
            record(0, AuditKind.SIGN_IN, None, client="10.0.0.7", detail="session cookie"),
            record(
                1,
                AuditKind.ALERT_ACTION,
                "stade-demo",
                target="a-1",
                detail="acknowledge: new -> acknowledged",
            ),
            record(2, AuditKind.STEP_DONE, "stade-demo", target="a-1", detail="radio"),
        ]
    )
    store.append_audit([record(3, AuditKind.ALERT_ACTION, "fan-demo", actor="bob", target="a-2")])
    everything = store.list_audit()
    assert [r.seq for r in everything] == sorted((r.seq for r in everything), reverse=True)
    assert [(r.kind, r.site_id) for r in everything] == [
        (AuditKind.ALERT_ACTION, "fan-demo"),
        (AuditKind.STEP_DONE, "stade-demo"),
        (AuditKind.ALERT_ACTION, "stade-demo"),
        (AuditKind.SIGN_IN, None),
    ]
    assert everything[-1].client == "10.0.0.7"
    assert everything[-1].at == T_USER
    assert [r.target for r in store.list_audit(sites=frozenset({"stade-demo"}))] == ["a-1", "a-1"]
    assert store.list_audit(sites=frozenset()) == []
    assert [r.detail for r in store.list_audit(kind=AuditKind.STEP_DONE, target="a-1")] == ["radio"]
    assert [r.actor for r in store.list_audit(actor="bob")] == ["bob"]
    assert len(store.list_audit(since=T_USER + timedelta(minutes=2))) == 2
    assert len(store.list_audit(limit=1)) == 1


def test_the_audit_log_refuses_updates_and_deletes(store: Store, store_settings):
    store.append_audit([AuditRecord(at=T_USER, kind=AuditKind.SIGN_IN, actor="olga")])
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            execute_raw(store_settings, statement)
    assert [r.actor for r in store.list_audit()] == ["olga"]


# -- dead letters -----------------------------------------------------------------------------------


def test_dead_letters_keep_their_exact_bytes(store: Store):
    payloads = [b"\xff\xfe\x00\x01not utf-8\x80", b"", b'{"ok": "json"}', bytes(range(256)) * 40]
    letters = [make_dead_letter(payload=p) for p in payloads]
    assert store.write_dead_letters(letters) == 4
    assert store.write_dead_letters(letters) == 0
    back = {d.dead_letter_id: d for d in store.list_dead_letters()}
    assert [back[d.dead_letter_id].payload for d in letters] == payloads
    assert [back[d.dead_letter_id] for d in letters] == letters


def test_dead_letters_count_and_list_by_reason_newest_first(store: Store):
    t0 = datetime(2024, 7, 26, 19, 0, tzinfo=UTC)
    reasons = [DeadLetterReason.OVERSIZED, DeadLetterReason.UNKNOWN_SENSOR, DeadLetterReason.OVERSIZED]
    letters = [
        make_dead_letter(
            reason=reason, received_at=t0 + timedelta(seconds=i), stage="worker", detail="x\x00y"
        )
        for i, reason in enumerate(reasons)
    ]
    store.write_dead_letters(letters)
    assert store.count_dead_letters() == 3
    assert store.count_dead_letters(DeadLetterReason.OVERSIZED) == 2
    assert store.count_dead_letters("malformed_json") == 0
    oversized = store.list_dead_letters(reason=DeadLetterReason.OVERSIZED)
    assert [d.dead_letter_id for d in oversized] == [letters[2].dead_letter_id, letters[0].dead_letter_id]
    assert oversized[0].detail == "x\ufffdy"
    assert store.list_dead_letters(limit=1)[0].dead_letter_id == letters[2].dead_letter_id


# -- migrations and lifecycle -----------------------------------------------------------------------


def test_migrating_again_is_a_no_op(store_settings, store: Store, open_store):
    readings, alert = make_readings(10), make_alert()
    store.write_readings(readings)
    store.write_alerts([alert])
    store.migrate()
    again = open_store()  # migrates on open, as every process start does
    versions = execute_raw(store_settings, "SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in versions] == [m.version for m in migrations_for(_dialect(store_settings))]
    assert again.count_readings() == 10
    assert again.write_readings(readings) == 0
    assert again.get_alert(alert.alert_id) == alert


def test_concurrent_first_migrations_both_succeed(open_store):
    stores = [open_store(migrate=False) for _ in range(3)]
    failures: list[BaseException] = []

    def migrate(store: Store) -> None:
        try:
            store.migrate()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert stores[0].write_readings(make_readings(3)) == 3
    assert stores[2].count_readings() == 3


def test_a_migration_edited_after_it_was_applied_is_reported(store_settings, store: Store, open_store):
    execute_raw(store_settings, "UPDATE schema_migrations SET checksum = %s WHERE version = 1", ("edited",))
    with pytest.raises(MigrationError, match=r"0001_readings\.sql changed after it was applied"):
        open_store()


def test_make_store_follows_the_mode(store_settings, store: Store):
    expected = SqliteStore if store_settings.mode == "embedded" else PostgresStore
    assert type(store) is expected


def test_a_closed_store_reopens_on_next_use(store: Store):
    store.write_readings(make_readings(2))
    store.close()
    assert store.count_readings() == 2
    store.close()


def test_an_unreachable_database_is_a_store_error_naming_it(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="not-a-folder"):
        make_store(_sqlite_settings(blocked / "store.db"))


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migrations_are_numbered_from_one_without_gaps(dialect: Dialect):
    versions = [m.version for m in migrations_for(dialect)]
    assert versions == list(range(1, len(versions) + 1))


def test_an_unterminated_sqlite_migration_names_its_file():
    broken = Migration(7, "broken", "CREATE TABLE a (x);\n-- then\nCREATE TABLE b (y)\n")
    assert sqlite_statements(Migration(7, "fine", "CREATE TABLE a (x);\n")) == ["CREATE TABLE a (x);"]
    with pytest.raises(MigrationError, match=r"sqlite/0007_broken\.sql: unterminated statement"):
        sqlite_statements(broken)


def _dialect(settings) -> Dialect:
    return "sqlite" if settings.mode == "embedded" else "postgres"


def _sqlite_settings(path) -> Settings:
    return Settings().model_copy(update={"mode": "embedded", "sqlite": SqliteSettings(path=path)})


# -- PostgreSQL only: time partitioning of readings -------------------------------------------------


def _partitions(settings) -> dict[str, int]:
    rows = execute_raw(
        settings,
        "SELECT c.relname, (SELECT count(*) FROM readings r WHERE r.tableoid = c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass",
    )
    return dict(rows)


def _day_partition(day: datetime) -> str:
    return "readings_p" + day.strftime("%Y_%m_%d")


@pytest.mark.integration
def test_postgres_creates_daily_partitions_ahead_and_on_demand(postgres_settings):
    with make_store(postgres_settings) as store:
        today = datetime.now(UTC)
        partitions = _partitions(postgres_settings)
        assert {_day_partition(today + timedelta(days=d)) for d in range(-1, 8)} <= set(partitions)
        assert "readings_default" in partitions

        old = today - timedelta(days=20)
        store.write_readings(make_readings(5, start=old.replace(hour=12)))
        partitions = _partitions(postgres_settings)
        assert partitions[_day_partition(old)] == 5
        assert partitions["readings_default"] == 0


@pytest.mark.integration
def test_postgres_moves_rows_out_of_the_default_partition_when_their_day_gets_one(postgres_settings):
    later = (datetime.now(UTC) + timedelta(days=30)).replace(hour=12, minute=0, second=0, microsecond=0)
    early = make_readings(4, start=later, tag="early")
    with make_store(postgres_settings) as store:  # 7 days ahead: day +30 goes to the default
        assert store.write_readings(early) == 4
    assert _partitions(postgres_settings)["readings_default"] == 4

    with PostgresStore(postgres_settings.postgres, partition_ahead_days=40) as wider:
        wider.migrate()
        assert wider.write_readings([*early, *make_readings(2, start=later, tag="late")]) == 2
        partitions = _partitions(postgres_settings)
        assert partitions["readings_default"] == 0
        assert partitions[_day_partition(later)] == 6
        assert wider.write_readings(early) == 0
        assert wider.count_readings() == 6


@pytest.mark.integration
def test_postgres_store_reconnects_after_losing_its_connection(postgres_settings):
    with make_store(postgres_settings) as store:
        readings = make_readings(20)
        assert store.write_readings(readings[:10]) == 10
        killed = execute_raw(
            postgres_settings,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"beffroi:{postgres_settings.postgres.db_schema}",),
        )
        assert killed == [(True,)]
        assert store.write_readings(readings) == 10
        assert store.count_readings() == 20


def test_assigning_changes_the_owner_only_and_the_list_shows_owners(store: Store):
    alert, other, unowned = make_alert(), make_alert(), make_alert()
    store.write_alerts([alert, other, unowned])
    store.act_on_alert(other.alert_id, act(ACK, "bob"))
    entry = store.act_on_alert(alert.alert_id, act(ASSIGN, "sam", assignee="olga", comment="north gate"))
    assert (entry.action, entry.from_status, entry.to_status, entry.comment) == (
        ASSIGN,
        NEW,
        NEW,
        "to olga: north gate",
    )
    case = store.get_alert_case(alert.alert_id)
    assert case is not None
    assert (case.owner, case.alert.status) == ("olga", NEW)
    with pytest.raises(TransitionRefused, match="is already assigned to olga"):
        store.act_on_alert(alert.alert_id, act(ASSIGN, "sam", assignee="olga"))
    store.act_on_alert(other.alert_id, act(ASSIGN, "sam", assignee="olga"))
    ids = [alert.alert_id, other.alert_id, unowned.alert_id, "no-such-alert"]
    assert store.alert_owners(ids) == {alert.alert_id: "olga", other.alert_id: "olga"}
    assert store.alert_owners([]) == {}


# -- escalation --------------------------------------------------------------------------------------

AFTER = {Severity.CRITICAL: 60.0, Severity.HIGH: 300.0, Severity.MEDIUM: 900.0, Severity.LOW: 1800.0}


def test_alerts_nobody_acknowledged_are_escalated_once_per_level(store: Store):
    crit, med = make_alert(severity=Severity.CRITICAL), make_alert(severity=Severity.MEDIUM)
    info, acked = make_alert(severity=Severity.INFO), make_alert(severity=Severity.CRITICAL)
    store.write_alerts([crit, med, info, acked])
    store.act_on_alert(acked.alert_id, act(ACK))
    t0 = crit.raised_at

    def escalated(seconds: float) -> list[tuple[str, Severity, Severity, float]]:
        done = store.escalate_due(t0 + timedelta(seconds=seconds), AFTER)
        assert all(e.at == t0 + timedelta(seconds=seconds) for e in done)
        return [(e.alert_id, e.from_severity, e.to_severity, e.waited_s) for e in done]

    assert escalated(59.999) == []
    assert escalated(60) == [(crit.alert_id, Severity.CRITICAL, Severity.CRITICAL, 60.0)]
    assert escalated(61) == [], "once per level: a critical alert stays critical, escalated once"
    assert escalated(899) == []
    assert escalated(901) == [(med.alert_id, Severity.MEDIUM, Severity.HIGH, 901.0)]
    assert escalated(901 + 299) == [], "the next level's wait starts at the escalation"
    assert escalated(901 + 300) == [(med.alert_id, Severity.HIGH, Severity.CRITICAL, 300.0)]
    assert escalated(1201 + 60) == [(med.alert_id, Severity.CRITICAL, Severity.CRITICAL, 60.0)]
    assert escalated(10**7) == [], "info is not in after_s, the acknowledged one is not new"

    case = store.get_alert_case(med.alert_id)
    assert case is not None
    assert (case.alert.severity, case.escalations, case.escalated_at) == (
        Severity.CRITICAL,
        3,
        t0 + timedelta(seconds=1261),
    )
    assert (case.alert.status, case.owner, case.history) == (NEW, None, ()), "nothing else changes"
    untouched = store.get_alert_case(acked.alert_id)
    assert untouched is not None
    assert (untouched.escalations, untouched.escalated_at) == (0, None)
    records = store.list_audit(kind=AuditKind.ALERT_ESCALATED, target=med.alert_id)
    assert [r.detail for r in reversed(records)] == [
        "medium -> high: not acknowledged within 900 s",
        "high -> critical: not acknowledged within 300 s",
        "critical -> critical: not acknowledged within 60 s",
    ]
    assert {(r.site_id, r.actor) for r in records} == {(med.site_id, "beffroi-escalation")}
    assert store.alert_marks([a.alert_id for a in (crit, med, info, acked)] + ["unknown"]) == {
        crit.alert_id: AlertMark(None, 1),
        med.alert_id: AlertMark(None, 3),
        acked.alert_id: AlertMark("alice", 0),
    }, "what a list shows beside each alert: owners and escalations, of those that have either"
    assert store.write_alerts([med]) == 0
    again = store.get_alert(med.alert_id)
    assert again is not None
    assert again.severity is Severity.CRITICAL, "a worker's rewrite changes nothing"


def test_two_api_processes_never_escalate_an_alert_twice(open_store):
    alerts = [make_alert(severity=Severity.HIGH) for _ in range(20)]
    desks = [open_store(), open_store()]
    desks[0].write_alerts(alerts)
    now = alerts[0].raised_at + timedelta(hours=1)
    done: list[list[str]] = [[], []]
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def escalate(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                done[i] += [e.alert_id for e in desks[i].escalate_due(now, AFTER, limit=7)]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=escalate, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    assert sorted(done[0] + done[1]) == sorted(a.alert_id for a in alerts), "each alert exactly once"
    for alert in alerts:
        case = desks[1].get_alert_case(alert.alert_id)
        assert case is not None
        assert (case.alert.severity, case.escalations) == (Severity.CRITICAL, 1)
    assert len(desks[1].list_audit(kind=AuditKind.ALERT_ESCALATED, limit=100)) == len(alerts)


# -- what a replay reads: readings across sites, zone states, scores, alert provenance --------------


def test_scan_readings_pages_a_window_across_sites_in_time_order(store: Store):
    start = datetime(2026, 7, 26, 19, 0, tzinfo=UTC)
    a = make_readings(7, site_id="site-a", start=start, step=timedelta(seconds=2), devices=3)
    b = make_readings(7, site_id="site-b", start=start, step=timedelta(seconds=2), devices=3)
    store.write_readings(a + b)
    until = start + timedelta(seconds=10)
    pages, after = [], None
    while page := store.scan_readings(start, until, after=after, limit=3):
        pages.append(page)
        after = (page[-1].ts, page[-1].message_id)
    got = [r for page in pages for r in page]
    expected = sorted((r for r in a + b if r.ts < until), key=lambda r: (r.ts, r.message_id))
    assert [r.message_id for r in got] == [r.message_id for r in expected]
    assert len(pages) == math.ceil(len(expected) / 3)
    only_b = store.scan_readings(start, until, site_ids=["site-b"])
    assert {r.site_id for r in only_b} == {"site-b"}
    assert store.scan_readings(start, until, site_ids=[]) == []


def test_zone_states_round_trip_once_in_time_order(store: Store):
    t0 = datetime(2026, 7, 26, 19, 0, tzinfo=UTC)
    states = zone_series([1.0, 2.5, 4.2], start=t0) + zone_series([0.5], start=t0, zone_id="zone-2")
    assert store.write_zone_states(states) == 4
    assert store.write_zone_states(states) == 0
    got = store.list_zone_states(t0, t0 + timedelta(seconds=2))
    assert got == sorted(states[:2] + states[3:], key=lambda s: (s.ts, s.site_id or "", s.zone_id))
    assert store.list_zone_states(t0, t0 + timedelta(hours=1), site_ids=["elsewhere"]) == []


def test_scores_round_trip_once_in_time_order(store: Store):
    t0 = datetime(2026, 7, 26, 19, 0, tzinfo=UTC)
    scores = [
        SiteScores("site-b", t0, {"aq-1:pm25": (0.25, 0.0)}),
        SiteScores("site-a", t0, {"aq-2:pm25": (0.5, 0.125), "pb-1:pressed": (1.0, 0.0)}),
        SiteScores("site-a", t0 + timedelta(seconds=1), {}),
    ]
    assert store.write_scores(scores) == 3
    assert store.write_scores(scores) == 0
    got = store.list_scores(t0, t0 + timedelta(seconds=5))
    assert got == [scores[1], scores[0], scores[2]]
    assert store.list_scores(t0, t0 + timedelta(seconds=5), site_ids=["site-b"]) == [scores[0]]


def test_alerts_keep_their_provenance(store: Store):
    alert = make_alert(settings_hash="5ec1e18913d2396d", weights_hash="0123456789abcdef")
    plain = make_alert()
    store.write_alerts([alert, plain])
    assert store.get_alert(alert.alert_id) == alert
    assert store.get_alert(plain.alert_id) == plain


# -- what API processes share about requests -------------------------------------------------------


def test_sign_in_failures_are_counted_per_key_in_a_window_and_cleared(store: Store, open_store):
    other = open_store()  # a second API process on the same database
    t = T_USER
    store.add_sign_in_failure(["user:olga", "address:10.0.0.1"], at=t, forget_before=t - timedelta(minutes=5))
    other.add_sign_in_failure(["user:olga"], at=t + timedelta(seconds=10), forget_before=t)
    assert other.sign_in_failures("user:olga", since=t - timedelta(minutes=5), limit=10) == [
        t + timedelta(seconds=10),
        t,
    ]
    assert store.sign_in_failures("user:olga", since=t, limit=10) == [t + timedelta(seconds=10)]
    assert store.sign_in_failures("user:olga", since=t - timedelta(minutes=5), limit=1) == [
        t + timedelta(seconds=10)
    ]
    store.clear_sign_in_failures("user:olga")
    assert other.sign_in_failures("user:olga", since=t - timedelta(minutes=5), limit=10) == []
    assert len(store.sign_in_failures("address:10.0.0.1", since=t - timedelta(minutes=5), limit=10)) == 1
    later = t + timedelta(hours=1)
    store.add_sign_in_failure(["user:omar"], at=later, forget_before=later - timedelta(minutes=5))
    assert store.sign_in_failures("address:10.0.0.1", since=t - timedelta(days=1), limit=10) == [], (
        "failures older than the window are forgotten"
    )


def test_a_request_key_is_claimed_once_across_processes_then_answered_and_expires(store: Store, open_store):
    other = open_store()
    t = T_USER
    day = timedelta(days=1)
    assert store.claim_request_key("olga", "k-1", "req-a", now=t, expires_at=t + day) is None
    in_flight = other.claim_request_key("olga", "k-1", "req-a", now=t, expires_at=t + day)
    assert in_flight == RequestKey("req-a", None, None)
    assert other.claim_request_key("omar", "k-1", "req-a", now=t, expires_at=t + day) is None, "per user"
    store.finish_request_key("olga", "k-1", status=200, body=b'{"ok": true}\x00', expires_at=t + day)
    assert other.claim_request_key("olga", "k-1", "req-b", now=t, expires_at=t + day) == RequestKey(
        "req-a", 200, b'{"ok": true}\x00'
    )
    store.release_request_key("olga", "k-1")  # an answered key is not released
    assert other.claim_request_key("olga", "k-1", "req-a", now=t, expires_at=t + day) is not None
    assert other.claim_request_key("olga", "k-1", "req-c", now=t + 2 * day, expires_at=t + 3 * day) is None, (
        "an expired claim is replaced"
    )
    other.release_request_key("olga", "k-1")  # an unanswered one is
    assert store.claim_request_key("olga", "k-1", "req-d", now=t + 2 * day, expires_at=t + 3 * day) is None
