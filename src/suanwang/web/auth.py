"""Signing in to the web pages: the user's API token in an HttpOnly cookie, and CSRF-protected forms.

The session is the token itself (never readable by scripts), so revoking or expiring a token ends its
web session at once, and what a page shows follows exactly the API's scoping for that token. Forms carry
a CSRF value derived from the token by HMAC: a page of ours can put it in a form, another site cannot
compute it. The login form, before there is a session, uses a random double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from suanwang.api.deps import get_now, get_session, lang_of
from suanwang.errors import DomainError, Forbidden, Unauthorized
from suanwang.tenants import service as tenants
from suanwang.tenants.access import Principal

SESSION_COOKIE = "sw_session"
LOGIN_CSRF_COOKIE = "sw_login_csrf"
LANG_COOKIE = "lang"


class LoginRequired(Exception):
    """A page needs a signed-in user: the app answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"suanwang-web-csrf", hashlib.sha256).hexdigest()[:40]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def prefix_of(request: Request) -> str:
    """The path prefix the app is served under (a reverse proxy's, or the root_path setting)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def cookie_path(request: Request) -> str:
    return prefix_of(request) + "/"


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def safe_next(value: str | None, request: Request) -> str:
    """Only a path on this site: a login link must not send the user elsewhere (open redirect)."""
    home = prefix_of(request) + "/"
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return home
    return value


@dataclass(frozen=True, slots=True)
class PageCtx:
    """What every signed-in page needs."""

    request: Request
    session: Session
    principal: Principal
    now: datetime
    lang: str
    csrf: str


def app_path(request: Request) -> str:
    """The path within the app, without the prefix (servers differ on whether the path carries it)."""
    prefix = prefix_of(request)
    path = request.url.path
    return (path[len(prefix) :] if prefix and path.startswith(prefix + "/") else path) or "/"


def _next_path(request: Request) -> str:
    """Where the browser is now, as a link on this site (with the prefix)."""
    query = f"?{request.url.query}" if request.url.query else ""
    return prefix_of(request) + app_path(request) + query


def get_page_ctx(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    now: Annotated[datetime, Depends(get_now)],
) -> PageCtx:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequired(_next_path(request))
    try:
        principal = tenants.authenticate(session=session, secret=secret, now=now)
    except Unauthorized:
        raise LoginRequired(_next_path(request)) from None
    session.commit()  # last_used_at
    return PageCtx(
        request=request,
        session=session,
        principal=principal,
        now=now,
        lang=lang_of(request),
        csrf=csrf_for(secret),
    )


def check_csrf(ctx: PageCtx, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, ctx.csrf):
        raise Forbidden("web.csrf")


def login_url(request: Request, next_path: str) -> str:
    return f"{prefix_of(request)}/login?next={quote(next_path, safe='')}"


PageDep = Annotated[PageCtx, Depends(get_page_ctx)]

__all__ = ["DomainError", "LoginRequired", "PageCtx", "PageDep", "check_csrf", "csrf_for"]
