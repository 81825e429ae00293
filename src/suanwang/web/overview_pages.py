"""The home page of each role: the regulator's region overview, a provider's console, a tenant's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from suanwang.errors import Forbidden
from suanwang.settlement import api as money_api
from suanwang.settlement import statements
from suanwang.tenants.access import require_regulator
from suanwang.web import consoles, region
from suanwang.web.auth import PageCtx, PageDep, prefix_of
from suanwang.web.render import page
from suanwang.web.tables import api_ctx

router = APIRouter(include_in_schema=False)


@router.get("/region", response_class=HTMLResponse)
def region_overview(ctx: PageDep) -> Response:
    require_regulator(ctx.principal)
    names = region.provider_names(ctx.session, ctx.lang)  # both sections name providers
    return page(
        ctx,
        "region.html",
        uses_charts=True,
        capacity=region.capacity_section(ctx, names),
        usage=region.usage_section(ctx, names),
        vouchers=region.voucher_section(ctx),
        registry=region.registry_section(ctx),
    )


@router.get("/tenant", response_class=HTMLResponse)
def tenant_overview(ctx: PageDep) -> Response:
    return page(ctx, "tenant.html", **consoles.tenant(ctx))


@router.get("/provider", response_class=HTMLResponse)
def provider_overview(ctx: PageDep) -> Response:
    found = consoles.provider(ctx)
    chart = region.provider_utilization(ctx)
    return page(ctx, "provider.html", uses_charts=chart is not None, utilization=chart, **found)


# --- monthly documents: the API renders them; the page lists the months -----------------------------


def _documents(ctx: PageCtx, base: str, title: str) -> Response:
    return page(ctx, "documents.html", base=base, title=title, months=consoles.recent_months(ctx, 12))


def _own_org(ctx: PageCtx) -> int:
    """The signed-in tenant's organisation (invoices are a tenant's documents)."""
    if ctx.principal.org_id is None:
        raise Forbidden("web.tenants-only")
    return ctx.principal.org_id


def _own_provider(ctx: PageCtx) -> int:
    """The signed-in operator's provider (statements are a provider's documents)."""
    if ctx.principal.provider_id is None:
        raise Forbidden("web.providers-only")
    return ctx.principal.provider_id


def _pick(ctx: PageCtx, base: str, month: str) -> Response:
    target = statements.Month.parse(month)  # a bad month is the API's clear error
    return RedirectResponse(f"{prefix_of(ctx.request)}{base}/{target}?format=html", status_code=303)


@router.get("/invoices", response_class=HTMLResponse)
def invoices(ctx: PageDep) -> Response:
    _own_org(ctx)
    return _documents(ctx, "/invoices", "web.invoices.title")


@router.get("/invoices/pick")
def pick_invoice(ctx: PageDep, month: str = "") -> Response:
    return _pick(ctx, "/invoices", month)


@router.get("/invoices/{month}")
def invoice(ctx: PageDep, month: str, format: str = "html") -> Any:
    return money_api.org_invoice(_own_org(ctx), month, api_ctx(ctx), ctx.lang, format)


@router.get("/statements", response_class=HTMLResponse)
def provider_statements(ctx: PageDep) -> Response:
    _own_provider(ctx)
    return _documents(ctx, "/statements", "web.statements.title")


@router.get("/statements/pick")
def pick_statement(ctx: PageDep, month: str = "") -> Response:
    return _pick(ctx, "/statements", month)


@router.get("/statements/{month}")
def statement(ctx: PageDep, month: str, format: str = "html") -> Any:
    return money_api.provider_statement(_own_provider(ctx), month, api_ctx(ctx), ctx.lang, format)


@router.get("/vouchers", response_class=HTMLResponse)
def vouchers(ctx: PageDep) -> Response:
    """The programmes with their budgets and what was paid; links to grants and applications."""
    return page(ctx, "vouchers.html", programmes=region.programmes(ctx))
