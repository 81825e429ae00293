"""Security headers on every response (pure ASGI: it costs a list append, not a request wrapper).

Pages may run only the app's own scripts (`script-src 'self'`: no inline script, no eval, nothing from
elsewhere), may not be framed, and send no referrer off the site; the API's answers are data that no
browser should render, frame or keep in a cache. HSTS only over HTTPS (over plain HTTP it means
nothing, and a demo on a laptop must not pin the browser to HTTPS for localhost).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suanwang.api.limits import app_path

# ECharts writes its tooltips as HTML with style attributes, hence 'unsafe-inline' for styles only.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# FastAPI's interactive API docs load their scripts from a CDN and run inline ones: left as they are.
DOC_PATHS = ("/docs", "/redoc", "/openapi.json")

COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        added = list(COMMON)
        if path.startswith(self.api_prefix + "/"):
            added += [(b"content-security-policy", API_POLICY.encode()), (b"cache-control", b"no-store")]
        elif not path.startswith(DOC_PATHS):
            added.append((b"content-security-policy", PAGE_POLICY.encode()))
        if scope.get("scheme") == "https":
            added.append(HSTS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(name, value) for name, value in added if name not in present]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
