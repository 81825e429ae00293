"""Limits on what one request and one token may ask of the server (TigerBeetle: a limit on everything).

- Request bodies: at most `max_body_bytes` (1 MiB) unless a route reads more on purpose (the registry
  import, a metering batch, an agent's output), which then has its own, larger limit, enforced here as
  well as there. A declared length over the limit is refused before anything is read; a body without
  one is counted as it arrives and refused the moment it passes the limit.
- Requests per token: a token bucket per bearer token (`rate_limit_per_s` sustained, `rate_limit_burst`
  at once; 0 switches it off), so one runaway client cannot starve the others. The answer past it is
  429 with Retry-After. Requests without a token are not counted here: they get their 401 anyway.

Both answer problem+json in the caller's language, like every other error.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024
SESSION_COOKIE = b"sw_session"  # web.auth.SESSION_COOKIE (not imported: the web layer sits above)
MAX_TRACKED_TOKENS = 10_000  # buckets kept; the least recently used go first (a bucket refills anyway)


class BodyTooLarge(StarletteHTTPException):
    """Raised while reading a body past its limit (FastAPI passes HTTP exceptions through its body
    parsing, where any other error would become a generic 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


def body_limit_for(path: str, default: int, larger: Sequence[tuple[str, int]]) -> int:
    for prefix, limit in larger:
        if path.startswith(prefix):
            return limit
    return default


class BodyLimit:
    def __init__(self, app: ASGIApp, default: int, larger: Sequence[tuple[str, int]], answer: Answer) -> None:
        self.app = app
        self.default = default
        self.larger = tuple(larger)
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(app_path(scope), self.default, self.larger)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.answer(scope, 413, "request.too-large", {"limit_mib": _mib(limit)}, {})(
                scope, receive, send
            )
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class TokenBuckets:
    """Per key: `burst` requests at once, refilled at `rate` a second (clock injectable for tests)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def take(self, key: bytes) -> float:
        """0 if the request may go now; otherwise the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > MAX_TRACKED_TOKENS:
            self._buckets.popitem(last=False)
        return wait


class RateLimit:
    def __init__(self, app: ASGIApp, buckets: TokenBuckets, answer: Answer) -> None:
        self.app = app
        self.buckets = buckets
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (token := _bearer(scope)) is not None:
            # Keyed by a digest: the bucket table never holds a usable token.
            wait = self.buckets.take(hashlib.blake2b(token, digest_size=16).digest())
            if wait > 0:
                retry = max(1, math.ceil(wait))
                headers = {"Retry-After": str(retry)}
                params = {"rate": f"{self.buckets.rate:g}", "retry_after_s": retry}
                await self.answer(scope, 429, "request.rate-limited", params, headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# (scope, status, message key, its parameters, headers) → the ASGI response that says so.
Answer = Callable[[Scope, int, str, dict[str, object], dict[str, str]], ASGIApp]


def problem_answer(
    scope: Scope, status: int, code: str, params: dict[str, object], headers: dict[str, str]
) -> ASGIApp:
    """A problem+json (or, to a browser on a page, an error page) from outside the routes."""
    from suanwang.api.deps import lang_of
    from suanwang.api.problems import problem
    from suanwang.i18n import t

    request = Request(scope)
    lang = lang_of(request)
    title = t("problem.too-large" if status == 413 else "problem.too-many-requests", lang)
    return problem(
        request, status=status, code=code, title=title, detail=t(code, lang, **params), headers=headers
    )


def app_path(scope: Scope) -> str:
    """The request's path within the app (some servers keep a proxy's prefix, root_path, in it)."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _bearer(scope: Scope) -> bytes | None:
    """The request's token: the bearer token, or a web page's session cookie (which holds one)."""
    cookie = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            if scheme.lower() == b"bearer" and token:
                return bytes(token)
        elif name == b"cookie":
            for part in value.split(b";"):
                key, _, token = part.strip().partition(b"=")
                if key == SESSION_COOKIE and token:
                    cookie = token
    return cookie


def _mib(limit: int) -> str:
    return f"{limit / MIB:g}"
