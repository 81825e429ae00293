"""Fixtures of the real-browser tests: a suanwang server over real HTTP on the test database (every
backend the other tests run on), Debian's Chromium driven by Playwright, and a page whose browser errors
fail the test.

    from playwright.sync_api import expect
    from tests import factories

    @pytest.mark.parametrize("browser_locale", ["zh-CN"])
    def test_capacity_shows(live_server, page):
        provider = factories.provider(live_server.api, name="平湖测试中心", name_en="Pinghu Test Centre")
        site = factories.site(live_server.api, provider["id"])
        factories.pool(live_server.api, site["id"], accelerator="A800")
        page.goto(live_server.url("/"))
        expect(page.locator("body")).to_contain_text("平湖测试中心")

Fixtures (see each docstring): live_server, prefixed_server, live_server_with_controller (servers);
browser (one Chromium per session), browser_locale (override with
@pytest.mark.parametrize("browser_locale", ["zh-CN"])), browser_context, page, page_errors.
Playwright's sync API runs its own event loop in the main thread; each server
runs uvicorn with its own loop in a thread, so they do not meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.tenants import service as tenants
from suanwang.timeutil import utcnow
from tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PREFIX,
    LiveServer,
    PageErrors,
    ServerThread,
    behind_proxy,
    live_server_view,
)
from tests.conftest import ADMIN_TOKEN


# ------------------------------------------------------------------------------------------ servers
def _server_settings(settings: Settings, **changes: Any) -> Settings:
    # The regulator token exists from start-up, as under `suanwang serve` with SUANWANG_ADMIN_TOKEN.
    return settings.model_copy(update={"admin_token": ADMIN_TOKEN, **changes})


def _ensure_regulator(engine: Engine) -> None:
    with session_scope(engine) as session:
        tenants.ensure_regulator_token(session=session, secret=ADMIN_TOKEN, user_name="admin", now=utcnow())


@pytest.fixture(scope="session")
def _plain_server(settings: Settings, engine: Engine) -> Iterator[tuple[ServerThread, Settings]]:
    """One server per database backend for the session; `live_server` cleans the data per test."""
    server_settings = _server_settings(settings, serve_controller=False)
    server = ServerThread(create_app(server_settings, engine))
    server.start()
    yield server, server_settings
    server.stop()


@pytest.fixture(scope="session")
def _prefixed_server(settings: Settings, engine: Engine) -> Iterator[tuple[ServerThread, Settings]]:
    server_settings = _server_settings(settings, serve_controller=False, root_path=PREFIX)
    server = ServerThread(behind_proxy(create_app(server_settings, engine), PREFIX, server_root_path=True))
    server.start()
    yield server, server_settings
    server.stop()


@pytest.fixture
def live_server(_plain_server: tuple[ServerThread, Settings], clean_engine: Engine) -> Iterator[LiveServer]:
    """The app served by uvicorn over real HTTP at `live_server.base_url` ("http://127.0.0.1:<port>"),
    on the test database, emptied for this test (the shipped taxonomy stays) with the regulator token
    ADMIN_TOKEN. No controller runs: jobs stay queued (use live_server_with_controller to run them).

    Seed data with `live_server.api` (the regulator over the REST API of this server: `tests.factories`
    and `tests.helpers.build_world` take it; `.as_(token)` for another caller). `live_server.url(path)`
    for the browser. The server lives for the session (one per database backend)."""
    server, settings = _plain_server
    _ensure_regulator(clean_engine)
    view = live_server_view(server, "", settings, clean_engine)
    yield view
    view.http.close()


@pytest.fixture
def prefixed_server(
    _prefixed_server: tuple[ServerThread, Settings], clean_engine: Engine
) -> Iterator[LiveServer]:
    """Like live_server, but published under the path prefix "/suanwang" by a reverse proxy that strips
    it (harness.behind_proxy): `base_url` is "http://127.0.0.1:<port>/suanwang"; requests outside the
    prefix get the proxy's 404, so a page that forgets the prefix fails its test. The app knows the prefix
    both ways it can: the server's root path (uvicorn --root-path) and Settings.root_path="/suanwang"."""
    server, settings = _prefixed_server
    _ensure_regulator(clean_engine)
    view = live_server_view(server, PREFIX, settings, clean_engine)
    yield view
    view.http.close()


@pytest.fixture
def live_server_with_controller(
    settings: Settings, clean_engine: Engine, tmp_path: Path
) -> Iterator[LiveServer]:
    """Like live_server, but a fresh server for this test that runs the controller in its lifespan (a
    cycle every 0.5 s: fewer SQLite write locks for the test's own API calls to wait behind), so
    submitted jobs really run on a local site (backend_kind="local") to the end. Its data dir (job logs,
    the SQLite controller lock) is this test's tmp_path. Slower: use it only for pages that need
    finished work."""
    server_settings = _server_settings(
        settings, serve_controller=True, controller_interval_s=0.5, data_dir=tmp_path / "data"
    )
    server = ServerThread(create_app(server_settings, clean_engine))
    server.start()
    view = live_server_view(server, "", server_settings, clean_engine)
    try:
        yield view
    finally:
        view.http.close()
        server.stop()


# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless and offline, launched through Playwright once per test module.

    Not once per session: Playwright's sync API keeps an event loop running in the main thread while
    it is started, and a later test elsewhere that calls asyncio.run() would fail. A module's tests
    run together, so this stops it as soon as they are done (about a second to start again)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)  # as the contexts' actions (below): a loaded CI machine is slow
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:
            raise RuntimeError(
                f"cannot start Chromium at {CHROMIUM}: run scripts/browser/ensure.sh "
                f"(or set SUANWANG_CHROMIUM): {exc}"
            ) from exc
        yield chromium
        chromium.close()


@pytest.fixture
def browser_locale() -> str:
    """The browser's locale (navigator.language and Accept-Language): "en-US" unless a test overrides
    it, e.g. @pytest.mark.parametrize("browser_locale", ["zh-CN", "en-US"])."""
    return "en-US"


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    """The browser errors of this test's context (see harness.PageErrors). Any not allowed fails the test
    when it ends; allow expected ones first, e.g. page_errors.allow(status=401) before a page that
    probes a session it does not have."""
    errors = PageErrors()
    yield errors
    errors.check()  # what arrived after the test body (which the call hook below already checked)


@pytest.fixture
def browser_context(browser: Any, browser_locale: str, page_errors: PageErrors) -> Iterator[Any]:
    """A fresh BrowserContext (its own cookies and storage) in `browser_locale`, the Asia/Shanghai time
    zone and a 1280×800 viewport, watched by page_errors; actions and expect() wait up to 10 s. Open a
    second page in it with browser_context.new_page(); a second user needs a context of its own
    (browser.new_context(), and page_errors.watch(it) to keep its errors counted)."""
    context = browser.new_context(
        locale=browser_locale,
        timezone_id="Asia/Shanghai",
        viewport={"width": 1280, "height": 800},
        service_workers="block",
    )
    context.set_default_timeout(10_000)
    page_errors.watch(context)
    yield context
    page_errors.closed = True  # closing aborts what is still loading: not the page's fault
    context.close()


@pytest.fixture
def page(browser_context: Any) -> Any:
    """A Playwright Page in a fresh context; its console errors, uncaught errors, failed requests and
    responses >= 400 fail the test unless allowed through page_errors."""
    return browser_context.new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Fail a test (as a failure, not a teardown error) whose page reported errors it did not allow; on a
    test failing anyway, show them beside its traceback."""
    __tracebackhide__ = True
    errors: PageErrors | None = getattr(item, "funcargs", {}).get("page_errors")
    try:
        result = yield
    except BaseException:
        if errors is not None and errors.errors:
            item.add_report_section("call", "browser errors", errors.report())
            errors.clear()
        raise
    if errors is not None:
        errors.check()
    return result
