"""Errors on web pages: a page in the reader's language that says what to do, not problem+json; a page
that needs a signed-in user sends the browser to the login page and back."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from suanwang.api.deps import lang_of
from suanwang.web import auth
from suanwang.web.render import public_page

STATIC_DIR = Path(__file__).parent / "static"


def error_page(
    request: Request, *, status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    response = public_page(
        request, lang_of(request), "message.html", status=status, title=title, message=detail
    )
    for name, value in (headers or {}).items():
        if name.lower() != "www-authenticate":
            response.headers[name] = value
    return response


def install(app: FastAPI) -> None:
    app.state.error_page = error_page

    @app.exception_handler(auth.LoginRequired)
    async def _login(request: Request, exc: auth.LoginRequired) -> Response:
        response = RedirectResponse(auth.login_url(request, exc.next_path), status_code=303)
        if request.cookies.get(auth.SESSION_COOKIE):  # expired or revoked: forget it
            response.delete_cookie(auth.SESSION_COOKIE, path=auth.cookie_path(request))
        return response

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
