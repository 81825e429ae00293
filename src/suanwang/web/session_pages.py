"""Log in, log out and the language switch."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from suanwang.api.deps import get_now, get_session, lang_of
from suanwang.errors import Unauthorized
from suanwang.i18n import normalize_lang, t
from suanwang.tenants import service as tenants
from suanwang.web import auth
from suanwang.web.auth import PageDep
from suanwang.web.render import home_of, public_page

router = APIRouter(include_in_schema=False)
YEAR_S = 365 * 24 * 3600
SESSION_MAX_AGE_S = 12 * 3600  # a working day; the token's own expiry still applies


def _login_form(request: Request, *, next_path: str, error: str | None = None, status: int = 200) -> Response:
    csrf = auth.new_login_csrf()
    response = public_page(
        request,
        lang_of(request),
        "login.html",
        status=status,
        next_path=next_path,
        login_csrf=csrf,
        error=error,
    )
    response.set_cookie(
        auth.LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        path=auth.cookie_path(request),
        secure=auth.is_https(request),
        max_age=3600,
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    return _login_form(request, next_path=auth.safe_next(next, request))


@router.post("/login")
def login(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    now: Annotated[datetime, Depends(get_now)],
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    lang = lang_of(request)
    next_path = auth.safe_next(next, request)
    if not csrf or csrf != request.cookies.get(auth.LOGIN_CSRF_COOKIE):
        return _login_form(request, next_path=next_path, error=t("web.login.expired", lang), status=403)
    try:
        principal = tenants.authenticate(session=session, secret=token.strip(), now=now)
    except Unauthorized:
        return _login_form(request, next_path=next_path, error=t("web.login.bad-token", lang), status=401)
    session.commit()
    home = auth.prefix_of(request) + home_of(principal.role)
    target = home if next_path == auth.prefix_of(request) + "/" else next_path
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.SESSION_COOKIE,
        token.strip(),
        httponly=True,
        samesite="lax",
        path=auth.cookie_path(request),
        secure=auth.is_https(request),
        max_age=SESSION_MAX_AGE_S,
    )
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path=auth.cookie_path(request))
    return response


@router.post("/logout")
def logout(ctx: PageDep, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    auth.check_csrf(ctx, csrf)
    response = RedirectResponse(auth.prefix_of(ctx.request) + "/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path=auth.cookie_path(ctx.request))
    return response


@router.get("/lang")
def switch_language(request: Request, to: str = "en", next: str | None = None) -> Response:
    """Remember the language in a cookie (the ?lang= of a link lasts one page)."""
    response = RedirectResponse(auth.safe_next(next, request), status_code=303)
    response.set_cookie(
        auth.LANG_COOKIE, normalize_lang(to), samesite="lax", path=auth.cookie_path(request), max_age=YEAR_S
    )
    return response
