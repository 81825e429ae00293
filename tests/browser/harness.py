"""The machinery behind the browser-test fixtures (tests/browser/conftest.py): a uvicorn server in a
thread, a reverse proxy that serves the app under a path prefix, and the collector of browser
errors. Tests use the fixtures; they import from here only `BrowserError` or the constants."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from suanwang.config import Settings
from tests.conftest import ADMIN_TOKEN, Api

PREFIX = "/suanwang"  # the path prefix of the `prefixed_server` fixture

# Debian's /usr/bin/chromium is a shell launcher that adds flags (and Google API keys) from
# /etc/chromium.d; Playwright runs the binary behind it, with only the flags below. Never a download.
CHROMIUM = os.environ.get("SUANWANG_CHROMIUM") or next(
    (p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()),
    "/usr/bin/chromium",
)
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in a container
    "--disable-dev-shm-usage",  # a container's /dev/shm is small
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--metrics-recording-only",
    "--password-store=basic",
]


# ------------------------------------------------------------------------------------------ server
def free_socket() -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 with a port the kernel picked (no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1 in a daemon thread with its own event loop (Playwright's
    sync API runs its own loop in the main thread; the two never meet). The app's lifespan runs: start-up
    bootstrap, the controller when the settings serve one, and the shutdown that stops it."""

    def __init__(self, app: Any) -> None:
        self._sock = free_socket()
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start() or stop()
            self._error = exc

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the test server did not start: {self._error!r} (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start within {timeout_s:.0f} s")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the test server did not stop within 30 s")


def behind_proxy(app: Any, prefix: str, *, server_root_path: bool = True) -> Any:
    """`app` as a reverse proxy publishes it under `prefix` (e.g. "/suanwang") in front of uvicorn.

    A request outside the prefix gets the proxy's 404 (so a page linking to "/static/x" instead of
    "/suanwang/static/x" fails its test with that request), and the bare prefix redirects to prefix + "/"
    as nginx does. Inside it, the app gets the ASGI scope it gets in production behind a proxy that
    strips the prefix (nginx `location /suanwang/ { proxy_pass http://app/; }`):
    - server_root_path=True: uvicorn runs with `--root-path /suanwang`, so the scope's root_path is the
      prefix and its path the full path (uvicorn >= 0.26 puts the prefix back: the browser's path);
    - server_root_path=False: uvicorn without it (`suanwang serve` today): the path is the stripped one
      and only the app's own Settings.root_path tells it the prefix.
    (The server's root path is emulated here rather than set in uvicorn's Config, because uvicorn would
    then prepend it to a path that no real proxy stripped in front of it.)"""
    assert prefix.startswith("/") and not prefix.endswith("/"), prefix
    raw_prefix = prefix.encode()

    async def plain(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = [*headers, (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)  # lifespan
            return
        path: str = scope["path"]
        if path == prefix and scope["type"] == "http":
            query = scope.get("query_string", b"")
            location = raw_prefix + b"/" + (b"?" + query if query else b"")
            await plain(send, 301, [(b"location", location)], b"moved")
            return
        if not path.startswith(prefix + "/"):
            await plain(send, 404, [], b"not found at the proxy (outside " + raw_prefix + b")")
            return
        if server_root_path:
            scope = dict(scope, root_path=prefix)
        else:
            raw_path: bytes = scope.get("raw_path") or path.encode()
            scope = dict(scope, path=path[len(prefix) :], raw_path=raw_path[len(raw_prefix) :])
        await app(scope, receive, send)

    return proxy


@dataclass
class LiveServer:
    """A running suanwang server on the test database, as a browser and an API client see it.

    base_url: where the app's pages are, without a trailing slash ("http://127.0.0.1:41234", or
    ".../suanwang" behind the prefix proxy). url("/jobs?x=1") joins a path to it.
    api: the regulator (ADMIN_TOKEN) speaking the REST API to this same server over real HTTP: the
    `Api` of tests/conftest.py, so `tests.factories` and `tests.helpers.build_world` work with it and
    `api.as_(token)` speaks as another caller.
    http: the raw httpx client under `api` (base_url set), for non-API requests."""

    origin: str
    prefix: str
    settings: Settings
    engine: Engine
    http: httpx.Client
    api: Api

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path


def live_server_view(server: ServerThread, prefix: str, settings: Settings, engine: Engine) -> LiveServer:
    http = httpx.Client(base_url=server.origin + prefix, timeout=30)
    return LiveServer(
        origin=server.origin,
        prefix=prefix,
        settings=settings,
        engine=engine,
        http=http,
        api=Api(http, ADMIN_TOKEN),  # type: ignore[arg-type]  # an httpx.Client is what TestClient is
    )


# ------------------------------------------------------------------------------------------ errors
# URLs whose failures every test allows. None: every page declares an inline icon, so Chromium does not
# ask for /favicon.ico (a 404 there would show up as a console error).
DEFAULT_ALLOWED_URLS: tuple[str, ...] = ()
_FAILED_RESOURCE = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


@dataclass(frozen=True)
class BrowserError:
    """One thing that went wrong in the browser. kind: "console" (console.error and Chromium's own
    error messages), "pageerror" (an uncaught exception), "requestfailed" (no response: refused,
    aborted, blocked) or "response" (an HTTP status >= 400)."""

    kind: str
    text: str
    url: str = ""
    status: int | None = None

    def __str__(self) -> str:
        where = f" {self.url}" if self.url else ""
        status = f" [{self.status}]" if self.status is not None else ""
        return f"{self.kind}{status}{where}: {self.text}"


@dataclass(frozen=True)
class Allowance:
    status: int | None = None
    url: str | None = None
    text: str | None = None
    kind: str | None = None

    def covers(self, error: BrowserError) -> bool:
        return (
            (self.status is None or error.status == self.status)
            and (self.url is None or self.url in error.url)
            and (self.text is None or self.text in error.text)
            and (self.kind is None or error.kind == self.kind)
        )


@dataclass
class PageErrors:
    """Collects what goes wrong in a browser context: console errors, uncaught page errors, failed
    requests and responses with status >= 400. A test fails when any was collected that it did not allow.

    allow(status=401): expect responses with this status (and Chromium's "Failed to load resource"
    console message that comes with each); allow(url="/api/v1/x"), allow(text="..."), allow(kind=...)
    narrow it further when combined. errors: what was collected and not allowed; take() returns them
    and clears them (to assert on them); wait_for(page, n) waits until n are there; check() raises
    AssertionError listing them (the fixtures call it when the test ends)."""

    errors: list[BrowserError] = field(default_factory=list)
    allowed: list[Allowance] = field(
        default_factory=lambda: [Allowance(url=url) for url in DEFAULT_ALLOWED_URLS]
    )
    closed: bool = False

    def allow(
        self,
        *,
        status: int | None = None,
        url: str | None = None,
        text: str | None = None,
        kind: str | None = None,
    ) -> None:
        if status is None and url is None and text is None and kind is None:
            raise ValueError("allow() needs at least one of status, url, text, kind")
        self.allowed.append(Allowance(status=status, url=url, text=text, kind=kind))

    def record(self, error: BrowserError) -> None:
        if not self.closed and not any(a.covers(error) for a in self.allowed):
            self.errors.append(error)

    def take(self) -> list[BrowserError]:
        taken, self.errors = self.errors, []
        return taken

    def clear(self) -> None:
        self.errors.clear()

    def wait_for(self, page: Any, count: int = 1, timeout_s: float = 5.0) -> list[BrowserError]:
        """Wait until at least `count` errors are collected (events arrive while Playwright runs);
        returns them, left collected."""
        deadline = time.monotonic() + timeout_s
        while len(self.errors) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} browser error(s) within {timeout_s} s, got:\n{self.report()}"
                )
            page.wait_for_timeout(20)
        return list(self.errors)

    def report(self) -> str:
        return "\n".join(f"  {e}" for e in self.errors)

    def check(self) -> None:
        __tracebackhide__ = True
        if self.errors:
            errors = self.report()
            self.clear()  # reported once
            raise AssertionError(
                f"the browser reported errors (allow expected ones with page_errors.allow(...)):\n{errors}"
            )

    def watch(self, context: Any) -> None:
        """Listen to a Playwright BrowserContext (every page in it, popups included)."""
        context.on("console", self._on_console)
        context.on("weberror", self._on_weberror)
        context.on("requestfailed", self._on_request_failed)
        context.on("response", self._on_response)

    def _on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        match = _FAILED_RESOURCE.search(text)
        self.record(
            BrowserError(
                "console",
                text,
                url=(message.location or {}).get("url", ""),
                status=int(match.group(1)) if match else None,
            )
        )

    def _on_weberror(self, web_error: Any) -> None:
        error = web_error.error
        page = web_error.page
        self.record(BrowserError("pageerror", error.stack or str(error), url=page.url if page else ""))

    def _on_request_failed(self, request: Any) -> None:
        self.record(BrowserError("requestfailed", request.failure or "failed", url=request.url))

    def _on_response(self, response: Any) -> None:
        if response.status >= 400:
            text = f"{response.request.method} {response.status} {response.status_text}"
            self.record(BrowserError("response", text, url=response.url, status=response.status))


# ------------------------------------------------------------------------------------------- pages
_PAGE_URLS_JS = """() => Array.from(
  document.querySelectorAll('a[href], link[href], script[src], img[src], iframe[src], form[action]'),
  el => el.href || el.src || el.action
).filter(u => u.startsWith('http'))"""


def page_urls(page: Any) -> list[str]:
    """Every URL the current page links to or loads from (links, stylesheets, scripts, images, frames,
    form actions), resolved by the browser: to check that none leaves a path prefix, say."""
    return list(page.evaluate(_PAGE_URLS_JS))
