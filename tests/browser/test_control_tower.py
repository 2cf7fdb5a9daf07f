"""The control tower of `make demo` in Debian's chromium, time driven fast: the demo's venue (the
stadium and its three stations) and its crowd rules; the camera aggregates of plaza D rise past
level E in a few seconds of wall time. The overview lists every site with its state and links to its
map, which shows plaza D at level E, the density alert and the time-to-threshold forecast, and the
operator acknowledges the alert. Run deploy/local/browser first.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from beffroi.clock import utcnow
from simulators.scenario_file import load_scenario
from simulators.world import build_world
from tests.browser.test_live_map import (  # noqa: F401 (fixtures)
    LIVE_WAIT_MS,
    browser,
    page,
    problems,
    sign_in,
    zone_path,
)
from tower.demo.control_tower import TowerDemo
from tower.runtime import DEMO_SETTINGS
from tower.settings import load_settings
from tower.testing import zone_series

pytestmark = pytest.mark.browser

SCREENSHOTS = "/tmp/demo-browser-{}.png"
STEP_S = 16.0  # simulated seconds between two aggregates of the plaza, as in the demo (0.5 fps at 8x)


@pytest.fixture
def api_settings(api_settings):
    """The demo's crowd rules."""
    return api_settings.model_copy(update={"crowd": load_settings(DEMO_SETTINGS).crowd})


@pytest.fixture(scope="module")
def tower_venue():
    spec = TowerDemo()
    return build_world(load_scenario(spec.scenario), scale=spec.scale).venue


def test_the_overview_lists_the_sites_and_the_map_shows_level_e_and_the_alerts(
    make_live_api,
    tower_venue,
    page: Page,  # noqa: F811 (the fixture imported above)
):
    live = make_live_api(tower_venue)
    sites = [s.id for s in tower_venue.sites]
    assert len(sites) == 4
    densities = [2.0 + 0.085 * k for k in range(24)]  # ~0.32 p/m² a minute, as the crush builds
    start = utcnow() - timedelta(seconds=STEP_S * len(densities))
    live.slice.publish_zone_states(
        zone_series(densities, start=start, step_s=STEP_S, zone_id="plaza-d", site_id="sdf", area_m2=1760.0)
    )
    live.slice.publish_zone_states(zone_series([0.2], start=start, zone_id="hall", site_id="rer-d-sdf"))
    live.slice.drain()
    alerts = {a.rule: a for a in live.slice.alerts("sdf")}
    assert set(alerts) == {"zone-density", "density-trend"}
    warning, forecast = alerts["zone-density"], alerts["density-trend"]

    sign_in(page, live, "/map")
    page.click("a.overview-link")
    rows = page.locator("#overview-rows tr[data-site]")
    expect(rows).to_have_count(4)
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.site)")) == sorted(sites)
    sdf = page.locator('#overview-rows tr[data-site="sdf"]')
    expect(sdf.locator("td[data-los]")).to_have_attribute("data-los", "E", timeout=LIVE_WAIT_MS)
    expect(sdf.locator("td[data-los]")).to_contain_text("plaza-d")
    expect(sdf).to_contain_text("2")  # two open alerts, both high
    hall = page.locator('#overview-rows tr[data-site="rer-d-sdf"] td[data-los]')
    expect(hall).to_have_attribute("data-los", "A")
    page.screenshot(path=SCREENSHOTS.format("overview"), animations="disabled")

    sdf.locator("a").first.click()
    expect(page).to_have_url(f"{live.base_url}/map#site=sdf")
    expect(zone_path(page, "plaza-d")).to_have_attribute("data-los", "E", timeout=LIVE_WAIT_MS)
    item = page.locator(f'#alert-list li[data-alert-id="{warning.alert_id}"]')
    expect(item.locator(".alert-title")).to_have_text(warning.title)
    expect(item.locator(".alert-status")).to_have_text("new")
    predicted = page.locator(f'#alert-list li[data-alert-id="{forecast.alert_id}"] .alert-title')
    expect(predicted).to_have_text(re.compile(r"^Zone plaza-d reaches 5 p/m² in"))
    page.screenshot(path=SCREENSHOTS.format("map"), animations="disabled")

    item.get_by_role("button", name=re.compile(r"^Acknowledge")).click()
    expect(item.locator(".alert-status")).to_have_text("acknowledged · olga")
