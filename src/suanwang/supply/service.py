"""Operations of the supply slice: providers, sites, pools, rate cards and capacity roll-ups."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from suanwang import catalog
from suanwang.db.query import Page, PageRequest, get_or_404, page
from suanwang.db.session import take_write_lock
from suanwang.errors import Conflict, Forbidden, Invalid, NotFound
from suanwang.nodes import service as nodes
from suanwang.supply import capacity, pricing
from suanwang.supply.models import Phase, Pool, Provider, RateCard, Site
from suanwang.supply.schemas import (
    CapacityRead,
    CapacityRowRead,
    PoolCreate,
    PoolRead,
    PoolUpdate,
    PriceAtRead,
    ProviderCreate,
    ProviderUpdate,
    RateCardCreate,
    SiteCreate,
    SiteRead,
    SiteUpdate,
)
from suanwang.tenants import service as tenants
from suanwang.tenants.access import Principal, require_operates, require_regulator

# What an operator may change about its own provider; kind, region, certifications and affiliation
# are facts the regulator verifies (they decide eligibility for government work and vouchers).
OPERATOR_EDITABLE_PROVIDER_FIELDS = {"name", "name_en"}
# Security zone is a regulatory designation: only the regulator moves a pool in or out of it.
OPERATOR_EDITABLE_POOL_FIELDS = {"name", "nodes"}


def _apply(obj: Any, changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        setattr(obj, field, value)


def _require_live(obj: Provider | Site | Pool, what: str) -> None:
    if obj.retired_at is not None:
        raise Conflict("retired", what=what, id=obj.id)


def _unique_code(session: Session, model: type[Provider | Site | Pool], code: str, what: str) -> None:
    if session.scalar(select(model.id).where(model.code == code)) is not None:
        raise Conflict("duplicate-code", what=what, code=code)


def _operator_fields_only(principal: Principal, changes: dict[str, Any], allowed: set[str]) -> None:
    if principal.is_regulator:
        return
    locked = sorted(set(changes) - allowed)
    if locked:
        raise Forbidden("supply.fields-regulator-only", fields=", ".join(locked))


# --- providers -----------------------------------------------------------------------------------


def create_provider(*, session: Session, principal: Principal, data: ProviderCreate) -> Provider:
    require_regulator(principal)
    _unique_code(session, Provider, data.code, "provider")
    provider = Provider(**data.model_dump())
    session.add(provider)
    session.flush()
    return provider


def get_provider(*, session: Session, provider_id: int) -> Provider:
    return get_or_404(session, Provider, provider_id, what="provider")


def list_providers(
    *,
    session: Session,
    request: PageRequest,
    kind: str | None = None,
    region: str | None = None,
    include_retired: bool = False,
) -> Page[Provider]:
    stmt = select(Provider)
    if kind:
        stmt = stmt.where(Provider.kind == kind)
    if region:
        stmt = stmt.where(Provider.region == region)
    if not include_retired:
        stmt = stmt.where(Provider.retired_at.is_(None))
    sortable = {"id": Provider.id, "code": Provider.code, "name": Provider.name, "region": Provider.region}
    return page(session, stmt, request, sortable=sortable)


def update_provider(
    *, session: Session, principal: Principal, provider_id: int, data: ProviderUpdate
) -> Provider:
    provider = get_provider(session=session, provider_id=provider_id)
    require_operates(principal, provider.id)
    changes = data.model_dump(exclude_unset=True)
    _operator_fields_only(principal, changes, OPERATOR_EDITABLE_PROVIDER_FIELDS)
    _apply(provider, changes)
    session.flush()
    return provider


def retire_provider(*, session: Session, principal: Principal, provider_id: int, now: datetime) -> Provider:
    """Retire a provider with everything it offers and its operators: all leave the market together."""
    require_regulator(principal)
    provider = get_provider(session=session, provider_id=provider_id)
    for site in provider.sites:
        for pool in site.pools:
            pool.retired_at = pool.retired_at or now
        site.retired_at = site.retired_at or now
    provider.retired_at = provider.retired_at or now
    tenants.retire_members(session=session, now=now, provider_id=provider.id)
    return provider


# --- sites ---------------------------------------------------------------------------------------


def read_site(site: Site, principal: Principal) -> SiteRead:
    data = {name: getattr(site, name) for name in SiteRead.model_fields}
    if not principal.operates(site.provider_id):
        data["connection"] = None
    return SiteRead(**data)


def create_site(*, session: Session, principal: Principal, data: SiteCreate) -> Site:
    provider = get_provider(session=session, provider_id=data.provider_id)
    require_operates(principal, provider.id)
    _require_live(provider, "provider")
    _unique_code(session, Site, data.code, "site")
    values = data.model_dump()
    values["region"] = data.region or provider.region
    site = Site(**values)
    session.add(site)
    session.flush()
    return site


def get_site(*, session: Session, site_id: int) -> Site:
    return get_or_404(session, Site, site_id, what="site")


def list_sites(
    *,
    session: Session,
    request: PageRequest,
    provider_id: int | None = None,
    region: str | None = None,
    phase: str | None = None,
    include_retired: bool = False,
) -> Page[Site]:
    stmt = select(Site)
    if provider_id is not None:
        stmt = stmt.where(Site.provider_id == provider_id)
    if region:
        stmt = stmt.where(Site.region == region)
    if phase:
        stmt = stmt.where(Site.phase == phase)
    if not include_retired:
        stmt = stmt.where(Site.retired_at.is_(None))
    sortable = {
        "id": Site.id,
        "code": Site.code,
        "name": Site.name,
        "region": Site.region,
        "phase": Site.phase,
    }
    return page(session, stmt, request, sortable=sortable)


def update_site(*, session: Session, principal: Principal, site_id: int, data: SiteUpdate) -> Site:
    site = get_site(session=session, site_id=site_id)
    require_operates(principal, site.provider_id)
    _require_live(site, "site")
    _apply(site, data.model_dump(exclude_unset=True))
    session.flush()
    return site


def retire_site(*, session: Session, principal: Principal, site_id: int, now: datetime) -> Site:
    site = get_site(session=session, site_id=site_id)
    require_operates(principal, site.provider_id)
    for pool in site.pools:
        pool.retired_at = pool.retired_at or now
    site.retired_at = site.retired_at or now
    session.flush()
    return site


# --- pools ---------------------------------------------------------------------------------------


def resolve_accelerator(model: str) -> catalog.Accelerator:
    accelerator = catalog.find(model)
    if accelerator is None:
        known = catalog.models()
        close = difflib.get_close_matches(model.strip().upper(), known, n=1)
        raise Invalid(
            "pool.unknown-accelerator",
            model=model,
            suggestion=close[0] if close else known[0],
            known=", ".join(known),
        )
    return accelerator


def read_pool(pool: Pool) -> PoolRead:
    accelerator = resolve_accelerator(pool.accelerator)
    return PoolRead(
        id=pool.id,
        site_id=pool.site_id,
        provider_id=pool.site.provider_id,
        code=pool.code,
        name=pool.name,
        accelerator=pool.accelerator,
        nodes=pool.nodes,
        cards_per_node=pool.cards_per_node,
        cards=pool.cards,
        dense_fp16_tflops_per_card=float(accelerator.dense_fp16_tflops),
        pflops=float(pool.cards * accelerator.dense_fp16_tflops / 1000),
        security_zone=pool.security_zone,
        region=pool.site.region,
        phase=pool.site.phase,
        healthy=pool.healthy,
        unhealthy_since=pool.unhealthy_since,
        health_message=pool.health_message,
        created_at=pool.created_at,
        updated_at=pool.updated_at,
        retired_at=pool.retired_at,
    )


def create_pool(*, session: Session, principal: Principal, data: PoolCreate) -> Pool:
    site = get_site(session=session, site_id=data.site_id)
    require_operates(principal, site.provider_id)
    _require_live(site, "site")
    accelerator = resolve_accelerator(data.accelerator)
    if data.security_zone != "public" and not principal.is_regulator:
        raise Forbidden("supply.fields-regulator-only", fields="security_zone")
    _unique_code(session, Pool, data.code, "pool")
    pool = Pool(**(data.model_dump() | {"accelerator": accelerator.model}))
    session.add(pool)
    session.flush()
    return pool


def get_pool(*, session: Session, pool_id: int) -> Pool:
    return get_or_404(session, Pool, pool_id, what="pool")


def _pools_query(
    *,
    provider_id: int | None = None,
    site_id: int | None = None,
    accelerator: str | None = None,
    zone: str | None = None,
    region: str | None = None,
    phase: str | None = None,
    domestic: bool | None = None,
    include_retired: bool = False,
) -> Select[tuple[Pool]]:
    stmt = select(Pool).join(Site, Site.id == Pool.site_id).options(joinedload(Pool.site))
    if provider_id is not None:
        stmt = stmt.where(Site.provider_id == provider_id)
    if site_id is not None:
        stmt = stmt.where(Pool.site_id == site_id)
    if accelerator:
        stmt = stmt.where(Pool.accelerator == accelerator.strip().upper())
    if zone:
        stmt = stmt.where(Pool.security_zone == zone)
    if region:
        stmt = stmt.where(Site.region == region)
    if phase:
        stmt = stmt.where(Site.phase == phase)
    if domestic is not None:  # the catalogue says which models are domestic
        stmt = stmt.where(
            Pool.accelerator.in_([a.model for a in catalog.accelerators() if a.domestic == domestic])
        )
    if not include_retired:
        stmt = stmt.where(Pool.retired_at.is_(None))
    return stmt


def list_pools(*, session: Session, request: PageRequest, **filters: Any) -> Page[Pool]:
    sortable = {
        "id": Pool.id,
        "code": Pool.code,
        "name": Pool.name,
        "accelerator": Pool.accelerator,
        "nodes": Pool.nodes,
        "region": Site.region,
    }
    return page(session, _pools_query(**filters), request, sortable=sortable)


def update_pool(*, session: Session, principal: Principal, pool_id: int, data: PoolUpdate) -> Pool:
    pool = get_pool(session=session, pool_id=pool_id)
    require_operates(principal, pool.site.provider_id)
    _require_live(pool, "pool")
    changes = data.model_dump(exclude_unset=True)
    _operator_fields_only(principal, changes, OPERATOR_EDITABLE_POOL_FIELDS)
    _apply(pool, changes)
    session.flush()
    return pool


def retire_pool(*, session: Session, principal: Principal, pool_id: int, now: datetime) -> Pool:
    pool = get_pool(session=session, pool_id=pool_id)
    require_operates(principal, pool.site.provider_id)
    pool.retired_at = pool.retired_at or now
    session.flush()
    return pool


# --- rate cards ----------------------------------------------------------------------------------


def _intervals(cards: Sequence[RateCard]) -> list[pricing.Interval]:
    return [
        pricing.Interval(c.id, c.price_fen_per_card_hour, c.effective_from, c.effective_until)
        for c in cards
        if c.retired_at is None
    ]


def _live_cards(session: Session, pool_id: int) -> list[RateCard]:
    take_write_lock(session)  # SQLite ignores FOR UPDATE: be the writer before the overlap check reads
    stmt = (
        select(RateCard)
        .where(RateCard.pool_id == pool_id, RateCard.retired_at.is_(None))
        .order_by(RateCard.effective_from)
        .with_for_update()  # two concurrent price changes of one pool must not both pass the overlap check
    )
    return list(session.scalars(stmt))


def _pricing_error(exc: pricing.PricingError) -> Invalid | Conflict:
    return (Conflict if exc.key in ("price.overlap", "price.in-force") else Invalid)(exc.key, **exc.params)


def add_rate_card(
    *, session: Session, principal: Principal, pool_id: int, data: RateCardCreate, now: datetime
) -> RateCard:
    pool = get_pool(session=session, pool_id=pool_id)
    require_operates(principal, pool.site.provider_id)
    _require_live(pool, "pool")
    cards = _live_cards(session, pool.id)
    try:
        placement = pricing.place(
            _intervals(cards), start=data.effective_from, end=data.effective_until, now=now
        )
    except pricing.PricingError as exc:
        raise _pricing_error(exc) from None
    if placement.close_card_id is not None:
        closing = next(c for c in cards if c.id == placement.close_card_id)
        closing.effective_until = data.effective_from
    card = RateCard(
        pool_id=pool.id,
        price_fen_per_card_hour=data.price_fen_per_card_hour,
        effective_from=data.effective_from,
        effective_until=data.effective_until,
        created_at=now,
    )
    session.add(card)
    session.flush()
    return card


def list_rate_cards(
    *, session: Session, pool_id: int, request: PageRequest, include_retired: bool = False
) -> Page[RateCard]:
    get_pool(session=session, pool_id=pool_id)
    stmt = select(RateCard).where(RateCard.pool_id == pool_id)
    if not include_retired:
        stmt = stmt.where(RateCard.retired_at.is_(None))
    sortable = {"id": RateCard.id, "effective_from": RateCard.effective_from}
    return page(session, stmt, request, sortable=sortable, default_sort="effective_from")


def retire_rate_card(
    *, session: Session, principal: Principal, pool_id: int, card_id: int, now: datetime
) -> RateCard:
    """Withdraw a scheduled price change; the card before it then stays in force in its place."""
    pool = get_pool(session=session, pool_id=pool_id)
    require_operates(principal, pool.site.provider_id)
    cards = _live_cards(session, pool.id)
    card = next((c for c in cards if c.id == card_id), None)
    if card is None:
        raise NotFound("not-found", what="rate card", id=card_id)
    try:
        pricing.check_retire(_intervals([card])[0], now=now)
    except pricing.PricingError as exc:
        raise _pricing_error(exc) from None
    for before in cards:
        if before.effective_until == card.effective_from:
            before.effective_until = card.effective_until
    card.retired_at = now
    session.flush()
    return card


def price_at(*, session: Session, pool_id: int, at: datetime) -> PriceAtRead:
    """The price in force for `pool_id` at `at`; NotFound when the pool has no price then."""
    pool = get_pool(session=session, pool_id=pool_id)
    stmt = select(RateCard).where(RateCard.pool_id == pool.id, RateCard.retired_at.is_(None))
    found = pricing.price_at(_intervals(list(session.scalars(stmt))), at)
    if found is None:
        raise NotFound("price.none", pool_id=pool.id, at=at.isoformat())
    return PriceAtRead(
        pool_id=pool.id,
        at=at,
        rate_card_id=found.card_id,
        price_fen_per_card_hour=found.price_fen_per_card_hour,
        currency="CNY",
    )


# --- capacity ------------------------------------------------------------------------------------


def pool_capacities(session: Session, **filters: Any) -> list[capacity.PoolCapacity]:
    stmt = _pools_query(**filters).options(joinedload(Pool.site).joinedload(Site.provider))
    measured = nodes.measured_by_pool(session)
    result = []
    for pool in session.scalars(stmt):
        verified_cards, verified_tflops = measured.get(pool.id, (0, Decimal(0)))
        accelerator = resolve_accelerator(pool.accelerator)
        result.append(
            capacity.PoolCapacity(
                pool_id=pool.id,
                provider=pool.site.provider.code,
                site=pool.site.code,
                phase=pool.site.phase.value,
                region=pool.site.region,
                accelerator=accelerator.model,
                zone=pool.security_zone.value,
                vendor=accelerator.vendor,
                domestic=accelerator.domestic,
                cards=pool.cards,
                dense_tflops_per_card=accelerator.dense_fp16_tflops,
                verified_cards=verified_cards,
                verified_tflops=verified_tflops,
            )
        )
    return result


def _row(row: capacity.CapacityRow) -> CapacityRowRead:
    return CapacityRowRead(
        key=dict(row.key),
        pools=row.pools,
        cards=row.cards,
        pflops=_round(row.pflops),
        verified_cards=row.verified_cards,
        verified_pflops=_round(row.verified_pflops),
    )


def _round(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.001")))


def _report(pools: Sequence[capacity.PoolCapacity], group_by: Sequence[str]) -> CapacityRead:
    unknown = [d for d in group_by if d not in capacity.DIMENSIONS]
    if unknown:
        raise Invalid("capacity.dimension", unknown=", ".join(unknown), known=", ".join(capacity.DIMENSIONS))
    rows = capacity.roll_up(pools, group_by)
    total = capacity.roll_up(pools, ())
    total_row = total[0] if total else capacity.CapacityRow(key=(), pools=0, cards=0, pflops=Decimal(0))
    return CapacityRead(group_by=list(group_by), rows=[_row(r) for r in rows], total=_row(total_row))


def capacity_report(
    *, session: Session, group_by: Sequence[str], phase: Phase | None = None, **filters: Any
) -> CapacityRead:
    return _report(pool_capacities(session, phase=phase, **filters), group_by)


def capacity_reports(
    *, session: Session, groupings: Sequence[tuple[Sequence[str], Phase | None]]
) -> list[CapacityRead]:
    """Several roll-ups (dimensions, phase or None for all) of the live pools, read once: a dashboard
    shows many of them."""
    pools = pool_capacities(session)
    return [
        _report(pools if phase is None else [p for p in pools if p.phase == phase.value], group_by)
        for group_by, phase in groupings
    ]
