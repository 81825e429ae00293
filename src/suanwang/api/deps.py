"""FastAPI dependencies shared by every router: settings, unit of work, caller, language, clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from suanwang.config import Settings
from suanwang.db.query import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE, PageRequest
from suanwang.i18n import negotiate, normalize_lang
from suanwang.tenants import service as tenants
from suanwang.tenants.access import Principal
from suanwang.timeutil import utcnow

# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in a worker
# thread, and the hops add up on every request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: writers commit explicitly; anything left is rolled back."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


async def get_now() -> datetime:
    """The request's clock (tests override it to pin time)."""
    return utcnow()


def lang_of(request: Request) -> str:
    """The caller's language: ?lang=, the lang cookie, then Accept-Language."""
    explicit = request.query_params.get("lang") or request.cookies.get("lang")
    if explicit:
        return normalize_lang(explicit)
    return negotiate(request.headers.get("accept-language"), request.app.state.settings.lang)


async def request_lang(request: Request) -> str:
    return lang_of(request)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def get_principal(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    now: Annotated[datetime, Depends(get_now)],
) -> Principal:
    principal = tenants.authenticate(session=session, secret=bearer_token(request), now=now)
    session.commit()  # persists last_used_at; nothing else is pending yet
    return principal


@dataclass(frozen=True, slots=True)
class Ctx:
    """What every endpoint needs: the unit of work, the caller and the request's time."""

    session: Session
    principal: Principal
    now: datetime


async def get_ctx(
    session: Annotated[Session, Depends(get_session)],
    principal: Annotated[Principal, Depends(get_principal)],
    now: Annotated[datetime, Depends(get_now)],
) -> Ctx:
    return Ctx(session=session, principal=principal, now=now)


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    sort: Annotated[
        str | None, Query(max_length=64, description="field, '-' in front for descending")
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset, sort=sort)


CtxDep = Annotated[Ctx, Depends(get_ctx)]
PageDep = Annotated[PageRequest, Depends(page_request)]
