"""The map as a time machine, in Debian's chromium: a short window is recorded through the slice (zone
states of the parvis, a panic button in the north stand, acknowledged then resolved by an operator);
the timeline steps through it change by change, plays it at 60x, lays a replay of it over the map,
and goes back to live, where the stream resumes. Run deploy/local/browser first.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from beffroi.events import AlertAction, OperatorAction
from beffroi.identity import Role
from tests.browser.test_live_map import LIVE_WAIT_MS, PARIS, browser, page, problems, sign_in, zone_path
from tests.fixtures.api import LiveApi
from tower.testing import zone_series

__all__ = ["browser", "page", "problems"]  # the fixtures, shared with the live map's tests

pytestmark = pytest.mark.browser

LOS_COLOURS = {"A": "#2e7d32", "B": "#7cb342", "C": "#fdd835", "D": "#fb8c00", "E": "#e53935", "F": "#8e24aa"}
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
"""The window's start: recent (the bridge refuses old readings), whole seconds (the page's clock)."""
WINDOW = (T0, T0 + timedelta(minutes=5))
SCREENSHOT = "/tmp/beffroi-timeline.png"


def record(live: LiveApi) -> None:
    """Five minutes of a site: the parvis fills up, a panic button is pressed, then handled."""
    start = T0 + timedelta(seconds=10)
    parvis = zone_series([0.2, 1.0, 2.5, 4.2], start=start, step_s=60, zone_id="parvis", site_id="stade-demo")
    live.slice.publish_zone_states(parvis)
    live.slice.publish("panic-nord", {"pressed": 1}, ts=T0 + timedelta(seconds=150))
    live.slice.drain()
    [panic] = [a for a in live.slice.alerts("stade-demo") if a.rule == "panic-button"]
    store = live.slice.store
    for action, minutes in ((AlertAction.ACKNOWLEDGE, 3), (AlertAction.RESOLVE, 3.5)):
        done = OperatorAction(action=action, operator="olga")
        store.act_on_alert(panic.alert_id, done, at=T0 + timedelta(minutes=minutes))


def local(t: datetime) -> str:
    return t.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M:%S")


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def open_window(page: Page) -> None:
    page.click("#tl-mode")
    expect(page.locator("#timeline")).to_have_attribute("data-mode", "past")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "past")
    page.fill("#tl-from", local(WINDOW[0]))
    page.fill("#tl-to", local(WINDOW[1]))
    page.click("#tl-load")
    expect(page.locator("#tl-clock")).to_have_attribute("data-at", iso(WINDOW[0]))


def test_stepping_and_playing_a_recorded_window_shows_zones_and_alerts_as_they_were(live_api, page):
    record(live_api)
    store = live_api.slice.store
    states = [s for s in store.list_zone_states(*WINDOW) if s.zone_id == "parvis"]
    alerts = store.list_alerts("stade-demo", since=WINDOW[0], until=WINDOW[1])
    [panic] = [a for a in alerts if a.rule == "panic-button"]
    case = store.get_alert_case(panic.alert_id)
    assert case is not None
    changes = {e.at: e.to_status.value for e in case.history}
    moments = sorted({s.ts for s in states} | {a.raised_at for a in alerts} | set(changes))
    assert len(states) == 4
    assert len(moments) >= 7

    sign_in(page, live_api, "/map", role=Role.VIEWER)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE_WAIT_MS)
    open_window(page)
    parvis, nord = zone_path(page, "parvis"), zone_path(page, "tribune-nord")
    items = page.locator("#alert-list button.alert-item")
    expect(parvis).to_have_attribute("data-los", "none")  # nothing recorded yet at the window's start
    expect(items).to_have_count(0)

    for t in moments:  # each step lands on the next change, and the map and list are as they were then
        page.click("#tl-step")
        expect(page.locator("#tl-clock")).to_have_attribute("data-at", iso(t))
        los = [s.los for s in states if s.ts <= t][-1] if any(s.ts <= t for s in states) else None
        expect(parvis).to_have_attribute("data-los", los or "none")
        if los:
            expect(parvis).to_have_attribute("fill", LOS_COLOURS[los])
        raised = sorted((a for a in alerts if a.raised_at <= t), key=lambda a: (a.raised_at, a.alert_id))
        expect(items).to_have_count(len(raised))
        if raised:
            expect(items.first).to_have_attribute("data-alert-id", raised[-1].alert_id)  # newest first
        status = [s for at, s in sorted(changes.items()) if at <= t]
        if panic.raised_at <= t:
            item = page.locator(f'#alert-list button.alert-item[data-alert-id="{panic.alert_id}"]')
            expect(item).to_have_attribute("data-status", status[-1] if status else "new")
            open_then = not status or status[-1] in ("new", "acknowledged", "in_progress")
            expect(nord).to_have_attribute("data-severity", "critical" if open_then else "none")
        else:
            expect(nord).to_have_attribute("data-severity", "none")
    expect(page.locator("#alert-list .alert-actions button")).to_have_count(0)  # the past is not acted on

    page.click("#tl-back")
    expect(page.locator("#tl-clock")).to_have_attribute("data-at", iso(moments[-2]))

    # played from 2:25 at 5x, the panic alert arrives 5 s of event time later, still new; paused there
    page.fill("#tl-scrub", "145")
    expect(items).to_have_count(len([a for a in alerts if a.raised_at <= T0 + timedelta(seconds=145)]))
    page.select_option("#tl-speed", "5")
    page.click("#tl-play")
    expect(page.locator("#tl-play")).to_have_attribute("data-playing", "true")
    expect(page.locator("#live-status")).to_contain_text("playing 5")
    panic_item = page.locator(f'#alert-list button.alert-item[data-alert-id="{panic.alert_id}"]')
    expect(panic_item).to_have_attribute("data-status", "new", timeout=LIVE_WAIT_MS)
    expect(nord).to_have_attribute("data-severity", "critical")
    page.click("#tl-play")
    expect(page.locator("#tl-play")).to_have_attribute("data-playing", "false")
    paused_at = page.locator("#tl-clock").get_attribute("data-at")
    assert paused_at is not None
    assert panic.raised_at <= datetime.fromisoformat(paused_at) < min(changes)
    page.wait_for_timeout(500)
    expect(page.locator("#tl-clock")).to_have_attribute("data-at", paused_at)  # paused: time stands still
    # then at 60x to the end of the window, where it plays out and stops
    page.select_option("#tl-speed", "60")
    page.click("#tl-play")
    expect(page.locator("#tl-play")).to_have_attribute("data-playing", "false", timeout=LIVE_WAIT_MS)
    expect(page.locator("#tl-clock")).to_have_attribute("data-at", iso(WINDOW[1]))
    expect(panic_item).to_have_attribute("data-status", "resolved")
    expect(nord).to_have_attribute("data-severity", "none")
    expect(parvis).to_have_attribute("data-los", states[-1].los)

    # back to live: the stream resumes, and a new alert shows up as it is raised
    page.click("#tl-mode")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE_WAIT_MS)
    expect(page.locator("#tl-player")).to_be_hidden()
    live_api.slice.publish("fence-east", {"vibration": 4.5})
    live_api.slice.drain()
    [fence] = [a for a in live_api.slice.alerts("stade-demo") if a.rule not in {x.rule for x in alerts}]
    expect(page.locator(f'#alert-list button.alert-item[data-alert-id="{fence.alert_id}"]')).to_be_visible(
        timeout=LIVE_WAIT_MS
    )


def test_a_replay_of_the_window_is_laid_over_the_map(live_api, page):
    record(live_api)
    alerts = live_api.slice.store.list_alerts("stade-demo", since=WINDOW[0], until=WINDOW[1])
    sign_in(page, live_api, "/map", "sonia", role=Role.SUPERVISOR)
    open_window(page)
    page.click("#tl-run-replay")  # as recorded: the replay raises exactly the recorded alerts
    status = page.locator("#tl-replay-status")
    same = re.compile(rf"^replay [0-9a-f]{{8}}: {len(alerts)} same$")
    expect(status).to_have_text(same, timeout=LIVE_WAIT_MS)
    expect(page).to_have_url(re.compile(r"#site=stade-demo&replay=[0-9a-f]{32}$"))
    page.fill("#tl-scrub", "300")
    expect(page.locator("#alert-list .alert-change")).to_have_count(len(alerts))
    expect(page.locator("#alert-list .alert-change").first).to_have_text("same")
    page.screenshot(path=SCREENSHOT, animations="disabled")

    # the replay's link opens the same view
    page.reload()
    expect(page.locator("#timeline")).to_have_attribute("data-mode", "past", timeout=LIVE_WAIT_MS)
    expect(status).to_have_text(re.compile(rf": {len(alerts)} same$"), timeout=LIVE_WAIT_MS)
    expect(page.locator("#tl-clock")).to_have_attribute("data-at", iso(WINDOW[0]))
