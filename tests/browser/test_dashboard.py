"""The dashboard in a real browser: each role signs in and sees only its data, every page loads with no
browser error, the charts draw, the language switch works, a chart drills down to its list, and a tenant
submits a job from the form and watches it run to the end on the local pool.

The screenshots in docs/screenshots/ come from scripts/screenshots.py, on the Pinghu demo."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import expect

from tests import factories, jobs_world
from tests.browser.harness import LiveServer
from tests.helpers import build_world
from tests.jobs_world import ExecWorld

pytestmark = pytest.mark.db

# Every page of each role's menu, and the ones a menu leads to.
PAGES = {
    "regulator": [
        "/region",
        "/pools",
        "/orgs",
        "/jobs",
        "/usage",
        "/vouchers",
        "/vouchers/grants",
        "/vouchers/applications",
        "/registry/enterprises",
        "/registry/projects",
    ],
    "tenant": [
        "/tenant",
        "/jobs/new",
        "/jobs",
        "/usage",
        "/invoices",
        "/vouchers",
        "/vouchers/grants",
        "/vouchers/applications",
    ],
    "operator": ["/provider", "/pools", "/jobs", "/usage", "/statements"],
}


def log_in(page: Any, server: LiveServer, token: str) -> None:
    if "/login" in page.url:  # just logged out: the login page is (being) shown; do not interrupt it
        page.wait_for_load_state("load")
    else:
        page.goto(server.url("/login"))
    page.get_by_label("API token").or_(page.get_by_label("API 令牌")).fill(token)
    page.locator("#login button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)


def token_of(world: ExecWorld, role: str) -> str:
    return str(getattr(world, role).token)


def wait_for_charts(page: Any) -> list[dict[str, Any]]:
    """Wait until every chart on the page has drawn; each as {id, series, expected, painted}."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-chart]')].every(e => e.dataset.rendered === '1')"
    )
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-chart]')].map(el => {
            const spec = JSON.parse(document.getElementById(el.dataset.chart).textContent);
            const canvas = el.querySelector('canvas');
            const ctx = canvas.getContext('2d');
            const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
            const option = echarts.getInstanceByDom(el).getOption();
            return {id: el.id, series: option.series.length, expected: spec.series.length, painted};
        })"""
    )


@pytest.fixture
def world(live_server: LiveServer) -> ExecWorld:
    """A local, a simulated and a government pool with prices, a tenant, another tenant and an operator
    of the local provider (tests/jobs_world.py); each tenant has a queued job."""
    built = jobs_world.build(
        live_server.api, SimpleNamespace(now=None), live_server.settings, live_server.engine
    )
    for caller, name in ((built.tenant, "job-of-the-tenant"), (built.other, "job-of-the-other")):
        built.submit(caller, name=name)
    return built


def test_each_role_logs_in_and_sees_only_its_own_data(
    live_server: LiveServer, page: Any, world: ExecWorld
) -> None:
    log_in(page, live_server, token_of(world, "tenant"))
    expect(page).to_have_url(live_server.url("/tenant"))
    page.goto(live_server.url("/jobs"))
    rows = page.locator("#list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("job-of-the-tenant")
    expect(page.locator("body")).not_to_contain_text("job-of-the-other")
    expect(page.locator("nav.menu")).not_to_contain_text("Region")

    page.locator("form[action$='/logout'] button").click()
    expect(page).to_have_url(live_server.url("/login"))
    log_in(page, live_server, token_of(world, "operator"))
    expect(page).to_have_url(live_server.url("/provider"))
    expect(page.locator("#provider-pools")).to_contain_text(world.local_pool["code"])
    expect(page.locator("#provider-pools")).not_to_contain_text(world.sim_pool["code"])

    page.locator("form[action$='/logout'] button").click()
    expect(page).to_have_url(live_server.url("/login"))
    log_in(page, live_server, token_of(world, "regulator"))
    expect(page).to_have_url(live_server.url("/region"))
    page.goto(live_server.url("/jobs"))
    expect(page.locator("#list tbody tr")).to_have_count(2)


@pytest.mark.parametrize("role", sorted(PAGES))
def test_every_page_loads_without_a_browser_error(
    live_server: LiveServer, page: Any, page_errors: Any, world: ExecWorld, role: str
) -> None:
    log_in(page, live_server, token_of(world, role))
    for path in PAGES[role]:
        response = page.goto(live_server.url(path))
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        if page.locator("[data-chart]").count():
            wait_for_charts(page)
        if path == "/jobs/new":  # the live quote answers before the page is done
            expect(page.locator("#quote-table, #quote-none, #quote .error").first).to_be_visible()
    page_errors.check()


def test_the_region_charts_draw_every_series(live_server: LiveServer, page: Any, world: ExecWorld) -> None:
    log_in(page, live_server, token_of(world, "regulator"))
    page.goto(live_server.url("/region"))
    drawn = wait_for_charts(page)
    names = {c["id"] for c in drawn}
    assert {
        "capacity-provider",
        "capacity-origin",
        "local-share",
        "utilization",
        "queue-now",
        "chain-map",
    } <= names
    for chart in drawn:
        assert chart["series"] == chart["expected"] >= 1, chart
        assert chart["painted"] > 1000, chart  # the canvas really has ink on it


def test_a_chart_click_opens_the_list_behind_it(live_server: LiveServer, page: Any, world: ExecWorld) -> None:
    log_in(page, live_server, token_of(world, "regulator"))
    page.goto(live_server.url("/region"))
    wait_for_charts(page)
    chart = page.locator("#capacity-provider")
    # Where ECharts drew the first provider's operational bar, in the chart's own pixels.
    spec = json.loads(page.locator("#chart-capacity-provider").text_content())
    operational = [s["name"] for s in spec["series"]].index("Operational")
    index = next(i for i, v in enumerate(spec["series"][operational]["data"]) if v)
    x, y = page.evaluate(
        """([index, series, value]) => echarts.getInstanceByDom(document.getElementById('capacity-provider'))
              .convertToPixel({seriesIndex: series}, [index, value / 2])""",
        [index, operational, spec["series"][operational]["data"][index]],
    )
    chart.click(position={"x": x, "y": y})
    expected_id = spec["drill"]["keys"][index]
    page.wait_for_url(f"**/pools?provider_id={expected_id}")
    expect(page.locator("#list tbody tr").first).to_be_visible()


@pytest.mark.parametrize("browser_locale", ["zh-CN"])
def test_the_language_switch_changes_the_page(live_server: LiveServer, page: Any, world: ExecWorld) -> None:
    log_in(page, live_server, token_of(world, "regulator"))
    page.goto(live_server.url("/region"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="全域算力概览")).to_be_visible()
    wait_for_charts(page)
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Region overview")).to_be_visible()
    page.goto(live_server.url("/jobs"))  # the choice is remembered
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    page.get_by_role("link", name="中文").click()
    expect(page.get_by_role("heading", name="作业", exact=True)).to_be_visible()


def test_the_dashboard_works_behind_a_path_prefix(prefixed_server: LiveServer, page: Any) -> None:
    world = build_world(prefixed_server.api)
    log_in(page, prefixed_server, str(world.regulator.token))
    expect(page).to_have_url(prefixed_server.url("/region"))
    wait_for_charts(page)
    page.get_by_role("link", name="Pools").click()
    expect(page).to_have_url(prefixed_server.url("/pools"))
    page.get_by_role("link", name="Export CSV").is_visible()


def test_a_tenant_submits_a_job_from_the_form_and_sees_it_finish(
    live_server_with_controller: LiveServer, page: Any
) -> None:
    server = live_server_with_controller
    ew = jobs_world.build(server.api, SimpleNamespace(now=None), server.settings, server.engine)
    log_in(page, server, str(ew.tenant.token))
    page.goto(server.url("/jobs/new"))
    page.get_by_label("Name (optional)").fill("from-the-browser")
    page.get_by_label("Command").fill("sh -c 'echo hello from the browser'")
    page.get_by_label("Cards").fill("0")
    page.get_by_label("Estimated run time (minutes)").fill("1")
    quote = page.locator("#quote-table")
    expect(quote).to_contain_text(ew.local_pool["code"])  # the live quote ranks the pools as you type
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/jobs/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while page.locator("#job-state").get_attribute("data-state") != "succeeded":
        assert time.monotonic() < deadline, page.locator("#job-state").text_content()
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("#logs")).to_contain_text("hello from the browser")
    expect(page.locator("#history")).to_contain_text("Succeeded")
    assert ew.tenant.get(f"/jobs/{job_id}")["name"] == "from-the-browser"
    page.goto(server.url("/tenant"))
    expect(page.locator("#recent-jobs")).to_contain_text("from-the-browser")


def test_a_provider_sees_its_console(live_server: LiveServer, page: Any, world: ExecWorld) -> None:
    log_in(page, live_server, token_of(world, "operator"))
    provider_id = world.local_pool["provider_id"]
    expect(page.locator("h1")).to_contain_text(world.regulator.get(f"/providers/{provider_id}")["name"])
    wait_for_charts(page)
    factories.pool(live_server.api, world.local_site["id"], code="later-pool")
    page.reload()
    expect(page.locator("#provider-pools")).to_contain_text("later-pool")
