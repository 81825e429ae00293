"""Every error leaves the API as RFC 9457 problem+json, in the caller's language, saying how to fix it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from suanwang.api.deps import lang_of
from suanwang.api.limits import MIB, BodyTooLarge
from suanwang.errors import DomainError
from suanwang.i18n import t

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:suanwang:problem:"

# Pydantic's error types we translate; others fall back to pydantic's English message.
VALIDATION_KEYS = {
    "missing": "validation.missing",
    "extra_forbidden": "validation.extra",
    "greater_than": "validation.greater-than",
    "greater_than_equal": "validation.greater-equal",
    "less_than_equal": "validation.less-equal",
    "int_type": "validation.int",
    "int_from_float": "validation.int",
    "int_parsing": "validation.int",
    "string_pattern_mismatch": "validation.pattern",
    "string_too_long": "validation.too-long",
    "string_too_short": "validation.too-short",
    "enum": "validation.enum",
    "timezone_aware": "validation.aware",
    "bool_parsing": "validation.bool",
    "not_null": "validation.not-null",
    "control_character": "validation.control",
    "literal_error": "validation.literal",
    "string_type": "validation.string",
    "model_type": "validation.object",
    "dict_type": "validation.object",
    "datetime_parsing": "validation.datetime",
    "datetime_from_date_parsing": "validation.datetime",
    "datetime_type": "validation.datetime",
}


def problem(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    page = getattr(request.app.state, "error_page", None)
    if page is not None and wants_page(request):  # a person in a browser: a page that says what to do
        return page(request, status=status, title=title, detail=detail, headers=headers)  # type: ignore[no-any-return]
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or None)


def wants_page(request: Request) -> bool:
    """A browser navigating to a web page (not a program calling the API)."""
    return "/api/" not in request.url.path and "text/html" in request.headers.get("accept", "")


def field_error(error: dict[str, Any], lang: str, *, skip: int = 0) -> dict[str, Any]:
    """One pydantic error as {field, type, message} in `lang`; `skip` drops leading parts of its location."""
    loc = [str(part) for part in error.get("loc", ())[skip:] if part not in ("body",)]
    field = ".".join(loc) or "body"
    ctx = {k: v for k, v in (error.get("ctx") or {}).items() if isinstance(v, str | int | float)}
    key = VALIDATION_KEYS.get(error.get("type", ""))
    if key is not None:
        message = t(key, lang, **(ctx | {"field": field}))
    else:
        message = f"{field}: {error.get('msg', '')}"
    return {"field": field, "type": error.get("type"), "message": message}


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        lang = lang_of(request)
        return problem(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title(lang),
            detail=exc.message(lang),
            **exc.extra(lang),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        lang = lang_of(request)
        errors = [field_error(e, lang) for e in exc.errors()]
        detail = "; ".join(e["message"] for e in errors[:3])
        return problem(
            request,
            status=422,
            code="invalid-request",
            title=t("problem.invalid", lang),
            detail=t("invalid-request", lang, errors=detail),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        lang = lang_of(request)
        if isinstance(exc, BodyTooLarge):  # a body past its limit, found while it was being read
            detail = t("request.too-large", lang, limit_mib=f"{exc.limit / MIB:g}")
            title = t("problem.too-large", lang)
            return problem(request, status=413, code="request.too-large", title=title, detail=detail)
        code = {404: "route-not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = t(code, lang, path=request.url.path, method=request.method, status=exc.status_code)
        return problem(
            request,
            status=exc.status_code,
            code=code,
            title=t("problem.http", lang),
            detail=detail,
            headers=dict(exc.headers or {}),  # e.g. Allow on a 405
        )

    for exc_type, status, code, title_key, level in LAST_RESORT:
        app.add_exception_handler(exc_type, _last_resort(status, code, title_key, level))


# Errors that got past every check, as (exception, status, message key, title key, log level).
LAST_RESORT: tuple[tuple[type[Exception], int, str, str, int], ...] = (
    # A value the database refused after validation passed (PostgreSQL is stricter than SQLite).
    (DataError, 422, "database-value", "problem.invalid", logging.WARNING),
    # Checks run before writes; a constraint that still fires means a concurrent write won the race.
    (IntegrityError, 409, "conflict.concurrent", "problem.conflict", logging.INFO),
    # The database is down or unreachable: nothing was changed, the client may retry.
    (OperationalError, 503, "database-unavailable", "problem.unavailable", logging.WARNING),
    # A bug: say so without leaking internals; the traceback goes to the log.
    (Exception, 500, "internal", "problem.internal", logging.ERROR),
)


def _last_resort(status: int, code: str, title_key: str, level: int) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        log.log(
            level,
            "%s on %s %s: %s",
            type(exc).__name__,
            request.method,
            request.url.path,
            getattr(exc, "orig", exc),
            exc_info=exc if level >= logging.ERROR else None,
        )
        lang = lang_of(request)
        return problem(request, status=status, code=code, title=t(title_key, lang), detail=t(code, lang))

    return handler
