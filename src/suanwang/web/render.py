"""Rendering pages: one Jinja2 environment with the helpers every template uses."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from suanwang import __version__
from suanwang.i18n import t
from suanwang.tenants.models import Role
from suanwang.units import format_fen
from suanwang.web.auth import PageCtx, app_path, prefix_of

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SHANGHAI = ZoneInfo("Asia/Shanghai")

# The menu of each role: (path, message key). Pages check access themselves; this only hides links.
NAV: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.REGULATOR: (
        ("/region", "web.nav.region"),
        ("/pools", "web.nav.pools"),
        ("/orgs", "web.nav.orgs"),
        ("/jobs", "web.nav.jobs"),
        ("/usage", "web.nav.usage"),
        ("/vouchers", "web.nav.vouchers"),
        ("/registry/enterprises", "web.nav.enterprises"),
        ("/registry/projects", "web.nav.projects"),
    ),
    Role.PROVIDER_OPERATOR: (
        ("/provider", "web.nav.provider"),
        ("/pools", "web.nav.pools"),
        ("/jobs", "web.nav.jobs"),
        ("/usage", "web.nav.usage"),
        ("/statements", "web.nav.statements"),
    ),
    Role.TENANT_ADMIN: (
        ("/tenant", "web.nav.tenant"),
        ("/jobs/new", "web.nav.submit"),
        ("/jobs", "web.nav.jobs"),
        ("/usage", "web.nav.usage"),
        ("/invoices", "web.nav.invoices"),
        ("/vouchers", "web.nav.vouchers"),
    ),
}
NAV[Role.TENANT_MEMBER] = NAV[Role.TENANT_ADMIN]


def home_of(role: Role) -> str:
    return NAV[role][0][0]


def local_time(value: datetime | None, lang: str) -> str:
    """Times are stored in UTC; people in the region read them in China Standard Time."""
    if value is None:
        return "—"
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def number(value: Any, places: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{places}f}"


def chart_data(spec: dict[str, Any]) -> Markup:
    """A chart's spec as JSON safe inside <script type="application/json">."""
    text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def base_context(request: Request, lang: str) -> dict[str, Any]:
    prefix = prefix_of(request)

    def url(path: str, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")}, doseq=True)
        return prefix + path + (f"?{query}" if query else "")

    def switch_lang(to: str) -> str:
        here = app_path(request) + (f"?{request.url.query}" if request.url.query else "")
        return url("/lang", to=to, next=prefix + here)

    return {
        "lang": lang,
        "t": lambda key, **params: t(key, lang, **params),
        "url": url,
        "static": lambda path: f"{prefix}/static/{path}?v={__version__}",
        "switch_lang": switch_lang,
        "money": format_fen,
        "number": number,
        "when": lambda value: local_time(value, lang),
        "chart_data": chart_data,
        "version": __version__,
    }


def page(ctx: PageCtx, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    values = base_context(ctx.request, ctx.lang)
    values |= {
        "principal": ctx.principal,
        "csrf": ctx.csrf,
        "nav": NAV[ctx.principal.role],
        "here": app_path(ctx.request),
    }
    return templates.TemplateResponse(ctx.request, name, values | context, status_code=status)


def public_page(request: Request, lang: str, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    values = base_context(request, lang) | {"principal": None, "nav": (), "here": ""}
    return templates.TemplateResponse(request, name, values | context, status_code=status)
