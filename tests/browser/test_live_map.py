"""The live map in Debian's chromium: the operator signs in, zones are drawn, an alert raised by the
worker shows up live, and an operator of one site sees only that site, acknowledges then resolves an
alert from the page; the audit log has each step.

The app runs over the in-memory slice of the demo venue, served by uvicorn on a free port; the
alert takes the real path (a panic-button message through the bridge and the worker, then the bus's
alerts topic, the API's alert feed and the page's EventSource). Run deploy/local/browser first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from beffroi.identity import AuditKind, Role
from tests.fixtures.api import LiveApi, add_user, with_fan_zone
from tower.runtime import DEMO_VENUE
from tower.testing import zone_series

# both stores (PostgreSQL: integration)
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("live_store")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = "/tmp/beffroi-map.png"
PARIS = ZoneInfo("Europe/Paris")
LIVE_WAIT_MS = 15_000  # a behavioural bound: how long the page may take to show what happened


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run deploy/local/browser (it installs Debian's chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def api_settings(api_settings, tmp_path):
    """The demo's procedures (a panic button's: radio and report required, cctv optional)."""
    path = tmp_path / "procedures.yaml"
    path.write_bytes((Path(DEMO_VENUE).parent / "procedures.yaml").read_bytes())
    return api_settings.model_copy(update={"api": api_settings.api.model_copy(update={"procedures": path})})


@pytest.fixture
def problems() -> list[str]:
    """What the page logged as errors or warnings (a test that provokes one takes it out)."""
    return []


@pytest.fixture
def page(browser: Browser, problems: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 820}, timezone_id=PARIS.key)
    p = context.new_page()
    p.on("console", lambda m: _console(m, problems))
    p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield p
    context.close()
    assert problems == [], "the page logged errors"


def _console(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type in ("error", "warning"):
        problems.append(f"console {message.type}: {message.text}")


def zone_path(page: Page, zone_id: str):
    return page.locator(f'path.zone[data-zone="{zone_id}"]')


PASSWORD = "correct horse battery staple"


def sign_in(
    page: Page,
    live: LiveApi,
    url: str,
    name: str = "olga",
    *,
    role: Role = Role.OPERATOR,
    sites: tuple[str, ...] = ("*",),
) -> None:
    """Open `url` (under the API) and sign in through the page's dialog as a user added for the test."""
    add_user(live.app, name, role=role, sites=sites, password=PASSWORD)
    page.goto(f"{live.base_url}{url}")
    dialog = page.locator("#signin-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("path.zone")).to_have_count(0)  # nothing is read before signing in
    page.fill("#signin-user", name)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    expect(dialog).to_be_hidden()
    expect(page.locator("#operator-name")).to_have_text(name)


def test_zones_render_and_a_raised_alert_shows_up_live(live_api, page):
    venue = live_api.slice.venue
    site = venue.site("stade-demo")
    sign_in(page, live_api, "/")  # leads to /map
    expect(page).to_have_url(f"{live_api.base_url}/map#site=stade-demo")

    expect(page.locator("path.zone")).to_have_count(len(site.zones))
    expect(page.locator("path.device")).to_have_count(len(site.devices))
    expect(page.locator("#site-select option")).to_have_text(["Stade (demo)"])
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE_WAIT_MS)
    expect(page.locator("#alerts-empty")).to_be_visible()
    colours = page.evaluate("window.beffroiMap.colours")
    nord = zone_path(page, "tribune-nord")
    expect(nord).to_have_attribute("data-severity", "none")
    expect(nord).to_have_attribute("fill", colours["calm"])

    live_api.slice.publish("panic-nord", {"pressed": 1})  # a panic button in Tribune nord
    live_api.slice.drain()  # bridge -> bus -> worker: stored, then published on the alerts topic
    [alert] = live_api.slice.alerts("stade-demo")
    assert (alert.severity, alert.zone_id) == ("critical", "tribune-nord")

    item = page.locator(f'#alert-list button.alert-item[data-alert-id="{alert.alert_id}"]')
    expect(item).to_be_visible(timeout=LIVE_WAIT_MS)
    expect(item.locator(".badge")).to_have_text("critical")
    expect(item.locator(".alert-rule")).to_have_text(alert.rule)
    expect(item.locator(".alert-title")).to_have_text(alert.title)
    expect(item.locator("time")).to_have_attribute(
        "datetime", alert.raised_at.isoformat().replace("+00:00", "Z")
    )
    # shown in the control room's own time zone
    expect(item.locator("time")).to_have_text(alert.raised_at.astimezone(PARIS).strftime("%H:%M:%S"))
    expect(nord).to_have_attribute("data-severity", "critical", timeout=LIVE_WAIT_MS)
    expect(nord).to_have_attribute("fill", colours["critical"])
    expect(zone_path(page, "tribune-sud")).to_have_attribute("fill", colours["calm"])
    expect(page.locator('path.device[data-device="panic-nord"]')).to_have_attribute(
        "fill", colours["critical"]
    )
    expect(page.locator("#alerts-count")).to_have_text("1 open · 1 listed")

    # a second, older alert lands below the first: newest first
    live_api.slice.publish("sound-parvis", {"dba": 118.0}, ts=alert.raised_at.replace(microsecond=0))
    live_api.slice.drain()
    expect(page.locator("#alert-list button.alert-item")).to_have_count(2, timeout=LIVE_WAIT_MS)
    expect(page.locator("#alert-list button.alert-item").first).to_have_attribute(
        "data-alert-id", alert.alert_id
    )
    expect(zone_path(page, "parvis")).not_to_have_attribute("fill", colours["calm"])

    item.click()
    expect(item).to_have_attribute("aria-pressed", "true")
    expect(nord).to_have_class(re.compile(r"\bzone-highlight\b"))
    expect(nord).to_have_attribute("stroke", colours["highlight"])
    page.screenshot(path=SCREENSHOT, animations="disabled")


def test_alerts_raised_before_the_page_opened_are_read_from_the_store(live_api, page):
    live_api.slice.publish("fence-east", {"vibration": 4.5})
    live_api.slice.drain()
    [alert] = live_api.slice.alerts("stade-demo")
    sign_in(page, live_api, "/map#site=nowhere")  # an unknown site falls back to the first
    expect(page).to_have_url(f"{live_api.base_url}/map#site=stade-demo")
    expect(page.locator("#alert-list button.alert-item")).to_have_count(1)
    expect(page.locator("#alert-list button.alert-item")).to_have_attribute("data-alert-id", alert.alert_id)
    colours = page.evaluate("window.beffroiMap.colours")
    expect(zone_path(page, "parvis")).to_have_attribute("fill", colours[alert.severity])
    expect(zone_path(page, "parvis")).to_have_attribute("data-open", "1")
    expect(page.locator("#site-facts")).to_contain_text("1 open alert")


def test_the_site_selector_switches_map_list_and_stream(make_live_api, demo_venue, page):
    live = make_live_api(with_fan_zone(demo_venue))
    sign_in(page, live, "/map", role=Role.VIEWER)
    expect(page.locator("#site-select option")).to_have_text(["Stade (demo)", "Fan zone (demo)"])
    expect(page.locator("path.zone")).to_have_count(3)
    page.select_option("#site-select", "fan-demo")
    expect(page).to_have_url(f"{live.base_url}/map#site=fan-demo")
    expect(page.locator("path.zone")).to_have_count(2)
    expect(page.locator("path.device")).to_have_count(1)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE_WAIT_MS)

    live.slice.publish("panic-nord", {"pressed": 1})  # on the other site: not listed here
    live.slice.publish("panic-fz", {"pressed": 1})
    live.slice.drain()
    [here] = live.slice.alerts("fan-demo")
    expect(page.locator("#alert-list button.alert-item")).to_have_count(1, timeout=LIVE_WAIT_MS)
    expect(page.locator("#alert-list button.alert-item")).to_have_attribute("data-alert-id", here.alert_id)
    expect(zone_path(page, "fz-0")).to_have_attribute("data-severity", "critical")
    expect(zone_path(page, "fz-1")).to_have_attribute("data-severity", "none")


def test_an_operator_of_one_site_acknowledges_then_resolves_an_alert_and_the_audit_has_it(
    make_live_api, demo_venue, page, problems
):
    live = make_live_api(with_fan_zone(demo_venue))
    live.slice.publish("panic-nord", {"pressed": 1})
    live.slice.publish("panic-fz", {"pressed": 1})  # on the fan zone: not alice's site
    live.slice.drain()
    [alert] = live.slice.alerts("stade-demo")
    [elsewhere] = live.slice.alerts("fan-demo")
    sign_in(page, live, "/map#site=fan-demo", "alice", sites=("stade-demo",))
    expect(page).to_have_url(f"{live.base_url}/map#site=stade-demo")  # her only site
    expect(page.locator("#site-select option")).to_have_text(["Stade (demo) — 1 open"])
    expect(page.locator(f'#alert-list li[data-alert-id="{elsewhere.alert_id}"]')).to_have_count(0)
    colours = page.evaluate("window.beffroiMap.colours")
    nord = zone_path(page, "tribune-nord")
    expect(nord).to_have_attribute("data-severity", "critical")
    expect(page.locator("#operator-role")).to_have_text("operator")
    item = page.locator(f'#alert-list li[data-alert-id="{alert.alert_id}"]')
    expect(item.locator(".alert-status")).to_have_text("new")
    expect(item.locator(".alert-actions button")).to_have_text(["Acknowledge", "Resolve"])

    item.get_by_role("button", name=re.compile(r"^Acknowledge")).click()
    expect(item.locator(".alert-status")).to_have_text("acknowledged · alice")
    expect(item.locator(".alert-actions button")).to_have_text(["Start", "Resolve"])
    expect(nord).to_have_attribute("data-severity", "critical")  # acknowledged is still open
    expect(page.locator("#alerts-count")).to_have_text("1 open · 1 listed")

    # the procedure of the selected alert: resolving before its required steps are done is refused
    item.locator("button.alert-item").click()
    panel = page.locator("#procedure")
    expect(panel).to_be_visible()
    steps = panel.locator("li[data-step]")
    expect(steps).to_have_count(3)
    expect(panel.locator("li[data-step] .step-required")).to_have_count(2)
    expect(panel.locator('li[data-step="cctv"] .step-required')).to_have_count(0)
    item.get_by_role("button", name=re.compile(r"^Resolve")).click()
    expect(page.locator("#banner")).to_contain_text(
        f"Cannot resolve this alert: cannot resolve alert {alert.alert_id}: required steps not done: radio ("
    )
    expect(page.locator("#banner")).to_contain_text("; report (")
    expect(item.locator(".alert-status")).to_have_text("acknowledged · alice")
    assert problems == [
        "console error: Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]
    problems.clear()  # the refused resolve, as the browser logs it
    for step in ("radio", "report"):
        box = panel.locator(f'li[data-step="{step}"] input[type="checkbox"]')
        box.check()
        expect(box).to_be_disabled()
        expect(box).to_be_checked()
        expect(panel.locator(f'li[data-step="{step}"] .step-done')).to_contain_text("done by alice")
    expect(panel.locator('li[data-step="cctv"] input')).not_to_be_checked()

    item.get_by_role("button", name=re.compile(r"^Resolve")).click()
    expect(item.locator(".alert-status")).to_have_text("resolved · alice")
    expect(nord).to_have_attribute("data-severity", "none")
    expect(nord).to_have_attribute("fill", colours["calm"])
    expect(page.locator("#alerts-count")).to_have_text("0 open · 1 listed")
    expect(item.locator(".alert-actions button")).to_have_text(["Close"])

    case = live.slice.store.get_alert_case(alert.alert_id)
    assert [(e.operator, e.action, e.from_status, e.to_status) for e in case.history] == [
        ("alice", "acknowledge", "new", "acknowledged"),
        ("alice", "resolve", "acknowledged", "resolved"),
    ]
    audit = live.app.state.identity.list_audit(actor="alice")
    assert [(r.kind, r.site_id, r.target, r.detail) for r in reversed(audit)] == [
        (AuditKind.SIGN_IN, None, None, "session cookie"),
        (AuditKind.ALERT_ACTION, "stade-demo", alert.alert_id, "acknowledge: new -> acknowledged"),
        (AuditKind.STEP_DONE, "stade-demo", alert.alert_id, "radio"),
        (AuditKind.STEP_DONE, "stade-demo", alert.alert_id, "report"),
        (AuditKind.ALERT_ACTION, "stade-demo", alert.alert_id, "resolve: acknowledged -> resolved"),
    ]
    # what the page shows comes from the store, and the session lasts: a reload keeps both
    page.reload()
    expect(page.locator("#signin-dialog")).to_be_hidden()
    expect(item.locator(".alert-status")).to_have_text("resolved · alice")  # the list gives owners
    expect(zone_path(page, "tribune-nord")).to_have_attribute("data-severity", "none")
    expect(page.locator("#operator-name")).to_have_text("alice")

    page.click("#operator-button")  # signs out
    expect(page.locator("#signin-dialog")).to_be_visible()
    expect(page.locator("path.zone")).to_have_count(0)


def test_a_wrong_password_is_said_and_a_viewer_gets_no_action_buttons(live_api, page, problems):
    live_api.slice.publish("panic-nord", {"pressed": 1})
    live_api.slice.drain()
    add_user(live_api.app, "vera", role=Role.VIEWER, sites=("stade-demo",), password=PASSWORD)
    page.goto(f"{live_api.base_url}/map")
    page.fill("#signin-user", "vera")
    page.fill("#signin-password", "not her password")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text(
        "Cannot sign in: wrong user name or password, or a disabled user"
    )
    assert problems == [
        "console error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    problems.clear()
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    expect(page.locator("#signin-dialog")).to_be_hidden()
    expect(page.locator("#alert-list li")).to_have_count(1)
    expect(page.locator("#alert-list .alert-actions button")).to_have_count(0)


def test_zones_are_filled_by_level_of_service_and_the_overview_shows_the_worst(live_api, page):
    sign_in(page, live_api, "/map")
    parvis = zone_path(page, "parvis")
    expect(parvis).to_have_attribute("data-los", "none")
    live_api.slice.publish_zone_states(zone_series([1.0, 2.0, 4.2], zone_id="parvis", site_id="stade-demo"))
    expect(parvis).to_have_attribute("data-los", "E", timeout=LIVE_WAIT_MS)
    expect(parvis).to_have_attribute("fill", "#e53935")
    expect(page.locator(".zone-label", has_text="Parvis")).to_contain_text("4.20 p/m² · LoS E")

    page.click("a.overview-link")
    row = page.locator('#overview-rows tr[data-site="stade-demo"]')
    expect(row.locator("td[data-los]")).to_have_attribute("data-los", "E", timeout=LIVE_WAIT_MS)
    expect(row.locator("td[data-los]")).to_contain_text("parvis · 4.20 p/m²")
    row.locator("a").click()
    expect(page).to_have_url(f"{live_api.base_url}/map#site=stade-demo")


def test_an_escalation_shows_its_badge_live_and_a_supervisor_assigns_the_alert(
    make_live_api, demo_venue, browser, page, problems
):
    live = make_live_api(demo_venue)
    live.slice.publish("panic-nord", {"pressed": 1})
    live.slice.drain()
    [alert] = live.slice.alerts("stade-demo")
    add_user(live.app, "vic", role=Role.VIEWER, sites=("stade-demo",))
    # the operator's screen, beside the supervisor's: both follow the site's stream
    other = browser.new_context(viewport={"width": 1400, "height": 820}, timezone_id=PARIS.key)
    try:
        olga_page = other.new_page()
        sign_in(olga_page, live, "/map", "olga", sites=("stade-demo",))
        olga_item = olga_page.locator(f'#alert-list li[data-alert-id="{alert.alert_id}"]')
        expect(olga_item.locator(".alert-assign")).to_be_hidden()  # an operator cannot assign
        sign_in(page, live, "/map", "sam", role=Role.SUPERVISOR, sites=("stade-demo",))
        item = page.locator(f'#alert-list li[data-alert-id="{alert.alert_id}"]')
        expect(item.locator(".alert-escalated")).to_have_count(0)
        for p in (page, olga_page):
            expect(p.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE_WAIT_MS)

        # nobody acknowledged it in time: the escalator (its clock an hour on) escalates it, live
        escalator = live.app.state.escalator
        escalator.settings = escalator.settings.model_copy(update={"enabled": True})
        escalator.clock = lambda: alert.raised_at + timedelta(hours=1)
        assert [e.alert_id for e in escalator.run_once()] == [alert.alert_id]
        for shown in (item, olga_item):
            expect(shown.locator(".alert-escalated")).to_have_text("escalated", timeout=LIVE_WAIT_MS)
            expect(shown.locator("button.alert-item")).to_have_attribute("data-escalations", "1")

        form = item.locator(".alert-assign")
        expect(form).to_be_visible()
        form.locator("input").fill("vic")
        form.get_by_role("button", name="Assign").click()
        expect(page.locator("#banner")).to_have_text(
            f"Cannot assign this alert: cannot assign alert {alert.alert_id} to 'vic': "
            "the user is viewer, below operator"
        )
        assert problems == [
            "console error: Failed to load resource: the server responded with a status of 422 "
            "(Unprocessable Entity)"
        ]
        problems.clear()
        form.locator("input").fill("olga")
        form.get_by_role("button", name="Assign").click()
        expect(item.locator(".alert-status")).to_have_text("new · olga")
        expect(olga_item.locator(".alert-status")).to_have_text("new · olga", timeout=LIVE_WAIT_MS)
        expect(page.locator("#banner")).to_be_hidden()

        page.reload()  # the list gives escalations and owners
        expect(item.locator(".alert-escalated")).to_have_text("escalated")
        expect(item.locator(".alert-status")).to_have_text("new · olga")
    finally:
        other.close()
    audit = live.app.state.identity.list_audit(target=alert.alert_id)
    assert [(r.kind, r.actor) for r in reversed(audit)] == [
        (AuditKind.ALERT_ESCALATED, "beffroi-escalation"),
        (AuditKind.ALERT_ASSIGNED, "sam"),
    ]
