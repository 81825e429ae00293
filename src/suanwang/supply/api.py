"""REST routes of the supply slice: /providers, /sites, /pools, /pools/{id}/prices, /capacity."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from suanwang.api.deps import CtxDep, PageDep
from suanwang.api.idempotency import IdemDep, created
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.errors import Invalid
from suanwang.fields import Id
from suanwang.supply import service
from suanwang.supply.models import Phase, ProviderKind, SecurityZone
from suanwang.supply.schemas import (
    CapacityRead,
    PoolCreate,
    PoolRead,
    PoolUpdate,
    PriceAtRead,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RateCardCreate,
    RateCardRead,
    SiteCreate,
    SiteRead,
    SiteUpdate,
)
from suanwang.timeutil import require_aware

router = APIRouter(tags=["supply"], responses=PROBLEM_RESPONSES)


# --- providers -----------------------------------------------------------------------------------


@router.get("/providers", response_model=PageRead[ProviderRead])
def list_providers(
    ctx: CtxDep,
    paging: PageDep,
    kind: ProviderKind | None = None,
    region: str | None = None,
    include_retired: bool = False,
) -> dict[str, Any]:
    result = service.list_providers(
        session=ctx.session, request=paging, kind=kind, region=region, include_retired=include_retired
    )
    return page_read(result, ProviderRead.model_validate)


@router.post("/providers", status_code=201, response_model=ProviderRead)
def create_provider(body: ProviderCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: ProviderRead.model_validate(
            service.create_provider(session=ctx.session, principal=ctx.principal, data=body)
        ),
    )


@router.get("/providers/{provider_id}", response_model=ProviderRead)
def get_provider(provider_id: Id, ctx: CtxDep) -> ProviderRead:
    return ProviderRead.model_validate(service.get_provider(session=ctx.session, provider_id=provider_id))


@router.patch("/providers/{provider_id}", response_model=ProviderRead)
def update_provider(provider_id: Id, body: ProviderUpdate, ctx: CtxDep) -> ProviderRead:
    provider = service.update_provider(
        session=ctx.session, principal=ctx.principal, provider_id=provider_id, data=body
    )
    ctx.session.commit()
    return ProviderRead.model_validate(provider)


@router.post("/providers/{provider_id}/retire", response_model=ProviderRead)
def retire_provider(provider_id: Id, ctx: CtxDep) -> ProviderRead:
    provider = service.retire_provider(
        session=ctx.session, principal=ctx.principal, provider_id=provider_id, now=ctx.now
    )
    ctx.session.commit()
    return ProviderRead.model_validate(provider)


# --- sites ---------------------------------------------------------------------------------------


@router.get("/sites", response_model=PageRead[SiteRead])
def list_sites(
    ctx: CtxDep,
    paging: PageDep,
    provider_id: Id | None = None,
    region: str | None = None,
    phase: Phase | None = None,
    include_retired: bool = False,
) -> dict[str, Any]:
    result = service.list_sites(
        session=ctx.session,
        request=paging,
        provider_id=provider_id,
        region=region,
        phase=phase,
        include_retired=include_retired,
    )
    return page_read(result, lambda s: service.read_site(s, ctx.principal))


@router.post("/sites", status_code=201, response_model=SiteRead)
def create_site(body: SiteCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: service.read_site(
            service.create_site(session=ctx.session, principal=ctx.principal, data=body), ctx.principal
        ),
    )


@router.get("/sites/{site_id}", response_model=SiteRead)
def get_site(site_id: Id, ctx: CtxDep) -> SiteRead:
    return service.read_site(service.get_site(session=ctx.session, site_id=site_id), ctx.principal)


@router.patch("/sites/{site_id}", response_model=SiteRead)
def update_site(site_id: Id, body: SiteUpdate, ctx: CtxDep) -> SiteRead:
    site = service.update_site(session=ctx.session, principal=ctx.principal, site_id=site_id, data=body)
    ctx.session.commit()
    return service.read_site(site, ctx.principal)


@router.post("/sites/{site_id}/retire", response_model=SiteRead)
def retire_site(site_id: Id, ctx: CtxDep) -> SiteRead:
    site = service.retire_site(session=ctx.session, principal=ctx.principal, site_id=site_id, now=ctx.now)
    ctx.session.commit()
    return service.read_site(site, ctx.principal)


# --- pools ---------------------------------------------------------------------------------------


@router.get("/pools", response_model=PageRead[PoolRead])
def list_pools(
    ctx: CtxDep,
    paging: PageDep,
    provider_id: Id | None = None,
    site_id: Id | None = None,
    accelerator: Annotated[str | None, Query(max_length=32)] = None,
    zone: SecurityZone | None = None,
    region: str | None = None,
    phase: Phase | None = None,
    domestic: Annotated[
        bool | None, Query(description="domestic (true) or imported (false) accelerators")
    ] = None,
    include_retired: bool = False,
) -> dict[str, Any]:
    result = service.list_pools(
        session=ctx.session,
        request=paging,
        provider_id=provider_id,
        site_id=site_id,
        accelerator=accelerator,
        zone=zone,
        region=region,
        phase=phase,
        domestic=domestic,
        include_retired=include_retired,
    )
    return page_read(result, service.read_pool)


@router.post("/pools", status_code=201, response_model=PoolRead)
def create_pool(body: PoolCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: service.read_pool(
            service.create_pool(session=ctx.session, principal=ctx.principal, data=body)
        ),
    )


@router.get("/pools/{pool_id}", response_model=PoolRead)
def get_pool(pool_id: Id, ctx: CtxDep) -> PoolRead:
    return service.read_pool(service.get_pool(session=ctx.session, pool_id=pool_id))


@router.patch("/pools/{pool_id}", response_model=PoolRead)
def update_pool(pool_id: Id, body: PoolUpdate, ctx: CtxDep) -> PoolRead:
    pool = service.update_pool(session=ctx.session, principal=ctx.principal, pool_id=pool_id, data=body)
    ctx.session.commit()
    return service.read_pool(pool)


@router.post("/pools/{pool_id}/retire", response_model=PoolRead)
def retire_pool(pool_id: Id, ctx: CtxDep) -> PoolRead:
    pool = service.retire_pool(session=ctx.session, principal=ctx.principal, pool_id=pool_id, now=ctx.now)
    ctx.session.commit()
    return service.read_pool(pool)


# --- rate cards ----------------------------------------------------------------------------------


@router.get("/pools/{pool_id}/prices", response_model=PageRead[RateCardRead])
def list_prices(pool_id: Id, ctx: CtxDep, paging: PageDep, include_retired: bool = False) -> dict[str, Any]:
    result = service.list_rate_cards(
        session=ctx.session, pool_id=pool_id, request=paging, include_retired=include_retired
    )
    return page_read(result, RateCardRead.model_validate)


@router.post("/pools/{pool_id}/prices", status_code=201, response_model=RateCardRead)
def add_price(pool_id: Id, body: RateCardCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: RateCardRead.model_validate(
            service.add_rate_card(
                session=ctx.session, principal=ctx.principal, pool_id=pool_id, data=body, now=ctx.now
            )
        ),
    )


@router.get("/pools/{pool_id}/price", response_model=PriceAtRead)
def price_at(pool_id: Id, ctx: CtxDep, at: datetime | None = None) -> PriceAtRead:
    """The price in force at `at` (default: now)."""
    if at is not None:
        try:
            at = require_aware(at, name="at")
        except ValueError:
            raise Invalid("time.naive", field="at") from None
    return service.price_at(session=ctx.session, pool_id=pool_id, at=at or ctx.now)


@router.post("/pools/{pool_id}/prices/{card_id}/retire", response_model=RateCardRead)
def retire_price(pool_id: Id, card_id: Id, ctx: CtxDep) -> RateCardRead:
    card = service.retire_rate_card(
        session=ctx.session, principal=ctx.principal, pool_id=pool_id, card_id=card_id, now=ctx.now
    )
    ctx.session.commit()
    return RateCardRead.model_validate(card)


# --- capacity ------------------------------------------------------------------------------------


@router.get("/capacity", response_model=CapacityRead)
def get_capacity(
    ctx: CtxDep,
    group_by: Annotated[list[str] | None, Query(max_length=8)] = None,
    phase: Phase | None = None,
    provider_id: Id | None = None,
    region: str | None = None,
    zone: SecurityZone | None = None,
    accelerator: Annotated[str | None, Query(max_length=32)] = None,
) -> CapacityRead:
    """Cards and dense FP16 PFLOPS, grouped by any of provider, site, phase, region, accelerator, zone,
    vendor, domestic (repeat `group_by`, or separate with commas)."""
    dims = [d.strip() for item in group_by or [] for d in item.split(",") if d.strip()]
    return service.capacity_report(
        session=ctx.session,
        group_by=dims,
        phase=phase,
        provider_id=provider_id,
        region=region,
        zone=zone,
        accelerator=accelerator,
    )
