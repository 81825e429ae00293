"""The browser harness itself, proven on the page that exists (the home page): real server, real
Chromium, the language switch, the path prefix, and the error collector catching what it must."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from suanwang.api.app import create_app
from suanwang.i18n import t
from tests import factories, jobs_world
from tests.browser.harness import PREFIX, PageErrors, ServerThread, behind_proxy, free_socket, page_urls

pytestmark = pytest.mark.db

TITLE = {"en": t("web.title", "en"), "zh": t("web.title", "zh")}


def seed_capacity(api: Any) -> None:
    provider = factories.provider(api, name="平湖测试中心", name_en="Pinghu Test Centre")
    site = factories.site(api, provider["id"], phase="operational")
    factories.pool(api, site["id"], accelerator="A800", nodes=3, cards_per_node=8)


def title(page: Any, lang: str) -> Any:
    return page.get_by_role("heading", name=TITLE[lang], exact=True)


def test_the_home_page_loads_without_a_browser_error(live_server, page) -> None:
    seed_capacity(live_server.api)
    response = page.goto(live_server.url("/?lang=en"))
    assert response is not None and response.status == 200
    expect(title(page, "en")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Pinghu Test Centre")  # seeded over the API
    # The fixture fails the test on any console error, page error or failed request: none here.


def test_the_language_links_switch_the_page(live_server, page) -> None:
    page.goto(live_server.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("link", name="中文", exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(title(page, "zh")).to_be_visible()
    page.get_by_role("link", name="English", exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(title(page, "en")).to_be_visible()


@pytest.mark.parametrize(
    ("browser_locale", "lang", "html_lang"), [("zh-CN", "zh", "zh-CN"), ("en-US", "en", "en")]
)
def test_the_browser_language_picks_the_page_language(
    live_server, page, browser_locale, lang, html_lang
) -> None:
    assert page.evaluate("navigator.language") == browser_locale
    page.goto(live_server.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", html_lang)
    expect(title(page, lang)).to_be_visible()


def test_the_page_works_behind_a_path_prefix(prefixed_server, page, page_errors) -> None:
    seed_capacity(prefixed_server.api)  # the API answers under the prefix too
    inside = prefixed_server.base_url + "/"
    assert inside.endswith(PREFIX + "/")
    page.goto(prefixed_server.url("/"))
    expect(page.locator("body")).to_contain_text("Pinghu Test Centre")
    # Every link and resource of the page stays under the prefix (the API docs link included; the docs
    # page itself loads Swagger UI from a CDN, offline here, so it is fetched rather than opened).
    assert [u for u in page_urls(page) if not u.startswith(inside)] == []
    assert prefixed_server.http.get("/docs").status_code == 200
    page.get_by_role("link", name="中文", exact=True).click()
    expect(title(page, "zh")).to_be_visible()
    assert page.url.startswith(inside)
    # The bare prefix redirects into it, as nginx does.
    page.goto(prefixed_server.base_url)
    assert page.url == inside
    # Outside the prefix is the proxy's 404: a page that forgot the prefix would fail its test.
    page.goto(prefixed_server.origin + "/")
    assert sorted((e.kind, e.status) for e in page_errors.take()) == [("console", 404), ("response", 404)]


@pytest.mark.parametrize(
    ("server_root_path", "app_root_path"),
    [
        pytest.param(False, PREFIX, id="app-setting-only"),  # `suanwang serve` with SUANWANG_ROOT_PATH today
        pytest.param(True, "", id="server-root-path-only"),  # uvicorn --root-path, FastAPI's advice
    ],
)
def test_either_way_of_knowing_the_prefix_is_enough(
    settings, engine, clean_engine, page, server_root_path, app_root_path
) -> None:
    app_settings = settings.model_copy(update={"root_path": app_root_path, "serve_controller": False})
    app = behind_proxy(create_app(app_settings, engine), PREFIX, server_root_path=server_root_path)
    server = ServerThread(app)
    server.start()
    try:
        inside = f"{server.origin}{PREFIX}/"
        page.goto(inside)
        page.get_by_role("link", name="中文", exact=True).click()
        expect(title(page, "zh")).to_be_visible()
        assert page.url.startswith(inside)
        assert [u for u in page_urls(page) if not u.startswith(inside)] == []
        assert httpx.get(f"{server.origin}{PREFIX}/healthz").json()["status"] == "ok"
    finally:
        server.stop()


def test_the_collector_catches_console_errors_page_errors_and_failed_requests(
    live_server, page, page_errors
) -> None:
    page.goto(live_server.url("/"))
    page.evaluate("console.error('x')")
    assert [(e.kind, e.text) for e in page_errors.wait_for(page)] == [("console", "x")]
    page_errors.clear()

    page.evaluate("setTimeout(() => { throw new Error('boom') })")
    [error] = page_errors.wait_for(page)
    assert error.kind == "pageerror" and "boom" in error.text
    page_errors.clear()

    # A response >= 400, and Chromium's "Failed to load resource" console message about it.
    assert page.evaluate("fetch('api/v1/pools').then(r => r.status)") == 401
    collected = page_errors.wait_for(page, 2)
    assert sorted((e.kind, e.status) for e in collected) == [("console", 401), ("response", 401)]
    page_errors.clear()

    # What a test allows is not collected.
    page_errors.allow(status=401)
    with page.context.expect_console_message(lambda m: "401" in m.text):  # after the collector's listener
        assert page.evaluate("fetch('api/v1/pools').then(r => r.status)") == 401
    assert page_errors.errors == []

    # A request that gets no response at all (a port nobody listens on). Sent from a blank page: the
    # site's own pages may only connect to the site (Content-Security-Policy), which would stop it first.
    with free_socket() as sock:
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    blank = page.context.new_page()  # the collector watches the whole context
    blank.evaluate(f"fetch('{closed}').catch(() => null)")
    assert sorted(e.kind for e in page_errors.wait_for(blank, 2)) == ["console", "requestfailed"]

    # Left uncollected, they fail the test with the list.
    with pytest.raises(AssertionError, match=f"requestfailed {closed}: net::ERR_CONNECTION_REFUSED"):
        page_errors.check()
    assert page_errors.errors == []


def test_the_controller_server_runs_jobs_to_the_end(live_server_with_controller) -> None:
    server = live_server_with_controller
    world = jobs_world.build(server.api, SimpleNamespace(now=None), server.settings, server.engine)
    job = world.submit(command=["sh", "-c", "echo done"], regions=[world.local_site["region"]])
    deadline = time.monotonic() + 30
    while (job := world.job(job["id"]))["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["state"] == "succeeded", job


def test_page_errors_needs_a_criterion() -> None:
    with pytest.raises(ValueError):
        PageErrors().allow()
