"""The live map in Debian's chromium: zones drawn, an alert raised by the worker shows up live, and
an operator acknowledges then resolves it from the page.

The app runs over the in-memory slice of the demo venue, served by uvicorn on a free port; the
alert takes the real path (a panic-button message through the bridge and the worker, then the bus's
alerts topic, the API's alert feed and the page's EventSource). Run deploy/local/browser first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from beffroi.events import LatLon
from beffroi.venue import Device, Site, Zone

pytestmark = pytest.mark.browser

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
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 820}, timezone_id=PARIS.key)
    p = context.new_page()
    problems: list[str] = []
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


def test_zones_render_and_a_raised_alert_shows_up_live(live_api, page):
    venue = live_api.slice.venue
    site = venue.site("stade-demo")
    page.goto(f"{live_api.base_url}/")  # leads to /map
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
    page.goto(f"{live_api.base_url}/map#site=nowhere")  # an unknown site falls back to the first
    expect(page).to_have_url(f"{live_api.base_url}/map#site=stade-demo")
    expect(page.locator("#alert-list button.alert-item")).to_have_count(1)
    expect(page.locator("#alert-list button.alert-item")).to_have_attribute("data-alert-id", alert.alert_id)
    colours = page.evaluate("window.beffroiMap.colours")
    expect(zone_path(page, "parvis")).to_have_attribute("fill", colours[alert.severity])
    expect(zone_path(page, "parvis")).to_have_attribute("data-open", "1")
    expect(page.locator("#site-facts")).to_contain_text("1 open alert")


def test_the_site_selector_switches_map_list_and_stream(make_live_api, demo_venue, page):
    stade = demo_venue.sites[0]
    shifted = [
        Zone(
            id=f"fz-{i}",
            name=f"Fan zone {i}",
            capacity=500,
            polygon=[LatLon(lat=p.lat + 0.01, lon=p.lon + 0.01) for p in z.polygon],
        )
        for i, z in enumerate(stade.zones[:2])
    ]
    fan = Site(
        id="fan-demo",
        name="Fan zone (demo)",
        kind="fan_zone",
        center=LatLon(lat=48.934, lon=2.37),
        zones=shifted,
        devices=[Device(id="panic-fz", kind="panic_button", zone="fz-0")],
    )
    live = make_live_api(demo_venue.model_copy(update={"sites": [stade, fan]}))
    page.goto(f"{live.base_url}/map")
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


def test_an_operator_acknowledges_then_resolves_an_alert_and_its_zone_calms_down(live_api, page):
    live_api.slice.publish("panic-nord", {"pressed": 1})
    live_api.slice.drain()
    [alert] = live_api.slice.alerts("stade-demo")
    page.goto(f"{live_api.base_url}/map#site=stade-demo")
    colours = page.evaluate("window.beffroiMap.colours")
    nord = zone_path(page, "tribune-nord")
    expect(nord).to_have_attribute("data-severity", "critical")
    expect(page.locator("#operator-name")).to_have_text("not set")
    item = page.locator(f'#alert-list li[data-alert-id="{alert.alert_id}"]')
    expect(item.locator(".alert-status")).to_have_text("new")
    expect(item.locator(".alert-actions button")).to_have_text(["Acknowledge", "Resolve"])

    item.get_by_role("button", name=re.compile(r"^Acknowledge")).click()
    dialog = page.locator("#operator-dialog")
    expect(dialog).to_be_visible()  # asked once, before the first action
    page.fill("#operator-input", "  Alice Martin ")
    page.click("#operator-save")
    expect(dialog).to_be_hidden()
    expect(item.locator(".alert-status")).to_have_text("acknowledged · Alice Martin")
    expect(item.locator(".alert-actions button")).to_have_text(["Start", "Resolve"])
    expect(page.locator("#operator-name")).to_have_text("Alice Martin")
    expect(nord).to_have_attribute("data-severity", "critical")  # acknowledged is still open
    expect(page.locator("#alerts-count")).to_have_text("1 open · 1 listed")

    item.get_by_role("button", name=re.compile(r"^Resolve")).click()  # the name is not asked again
    expect(item.locator(".alert-status")).to_have_text("resolved · Alice Martin")
    expect(nord).to_have_attribute("data-severity", "none")
    expect(nord).to_have_attribute("fill", colours["calm"])
    expect(page.locator("#alerts-count")).to_have_text("0 open · 1 listed")
    expect(item.locator(".alert-actions button")).to_have_text(["Close"])
    expect(dialog).to_be_hidden()

    case = live_api.slice.store.get_alert_case(alert.alert_id)
    assert [(e.operator, e.action, e.from_status, e.to_status) for e in case.history] == [
        ("Alice Martin", "acknowledge", "new", "acknowledged"),
        ("Alice Martin", "resolve", "acknowledged", "resolved"),
    ]
    # what the page shows comes from the store: a reload keeps the zone calm and the name
    page.reload()
    expect(item.locator(".alert-status")).to_have_text("resolved")
    expect(zone_path(page, "tribune-nord")).to_have_attribute("data-severity", "none")
    expect(page.locator("#operator-name")).to_have_text("Alice Martin")
