"""The front page: a signed-in user goes to the home of their role; a visitor sees the region's capacity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from suanwang import __version__
from suanwang.api.deps import get_session, lang_of
from suanwang.i18n import t
from suanwang.supply import service as supply
from suanwang.supply.models import Phase
from suanwang.web import auth
from suanwang.web.auth import PageDep
from suanwang.web.region import provider_names
from suanwang.web.render import home_of

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: Annotated[Session, Depends(get_session)]) -> Response:
    if request.cookies.get(auth.SESSION_COOKIE):
        return RedirectResponse(auth.prefix_of(request) + "/home", status_code=303)
    lang = lang_of(request)
    by_phase, operational, by_provider = supply.capacity_reports(
        session=session,
        groupings=[
            (["phase"], None),
            (["provider", "accelerator"], Phase.OPERATIONAL),
            (["provider", "phase"], None),
        ],
    )
    names = provider_names(session, lang)
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "t": lambda key, **params: t(key, lang, **params),
            "lang": lang,
            "version": __version__,
            "prefix": auth.prefix_of(request),
            "by_phase": by_phase,
            "operational": operational,
            "by_provider": by_provider,
            "provider_name": lambda code: names[code][1] if code in names else code,
        },
    )


@router.get("/home")
def role_home(ctx: PageDep) -> Response:
    """Where a signed-in user starts (an expired session is sent to the login page instead)."""
    return RedirectResponse(auth.prefix_of(ctx.request) + home_of(ctx.principal.role), status_code=303)
