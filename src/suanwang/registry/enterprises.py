"""Enterprises of the registry: who may see which, create and edit (regulator), tiers granted and
revoked with their dates, search and filter, and the upsert an import runs for each row."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, String, cast, or_, select
from sqlalchemy.orm import Session

from suanwang.db.base import assign_changed
from suanwang.errors import Conflict, Forbidden, Invalid, NotFound
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, EnterpriseTier, Tier
from suanwang.registry.schemas import EnterpriseCreate, EnterprisePatch, EnterpriseRead, TierGrant
from suanwang.tenants import credit_code
from suanwang.tenants.access import Principal, require_regulator
from suanwang.tenants.models import Organisation
from suanwang.tenants.service import validate_credit_code
from suanwang.timeutil import shanghai_date

# Ladder rank: the highest tier an enterprise holds is its current tier.
RANK = {tier: i for i, tier in enumerate(Tier)}


# --- who sees what -------------------------------------------------------------------------------


def visible(principal: Principal) -> Select[tuple[Enterprise]]:
    """The regulator sees every record; a tenant only its own organisation's; providers none."""
    stmt = select(Enterprise)
    if principal.is_regulator:
        return stmt
    if principal.is_tenant and principal.org_id is not None:
        return stmt.where(Enterprise.org_id == principal.org_id)
    raise Forbidden("registry.regulator-or-own")


def get_enterprise(session: Session, *, principal: Principal, enterprise_id: int) -> Enterprise:
    found = session.scalar(visible(principal).where(Enterprise.id == enterprise_id))
    if found is None:
        raise NotFound("not-found", what="enterprise", id=enterprise_id)
    return found


def read(enterprise: Enterprise, taxonomy: chain.Taxonomy) -> EnterpriseRead:
    primary = enterprise.segments[0] if enterprise.segments else None
    return EnterpriseRead.model_validate(enterprise).model_copy(update={"stage": taxonomy.stage_of(primary)})


def search(
    principal: Principal,
    taxonomy: chain.Taxonomy,
    *,
    segment: str | None = None,
    stage: str | None = None,
    tier: Tier | None = None,
    untiered: bool = False,
    district: str | None = None,
    park: str | None = None,
    above_size: bool | None = None,
    q: str | None = None,
    include_retired: bool = False,
) -> Select[tuple[Enterprise]]:
    """The visible enterprises matching every filter given. A segment finds its sub-segments' enterprises
    too; a stage finds every segment of it."""
    stmt = visible(principal)
    codes: set[str] = set()
    if segment is not None:
        if segment not in taxonomy.nodes:
            chain.check_codes(taxonomy, [segment], field="segment")
        codes = taxonomy.within(segment)
    if stage is not None:
        in_stage = {n.code for n in taxonomy.nodes.values() if n.stage.value == stage}
        codes = codes & in_stage if segment is not None else in_stage
        if not codes:
            return stmt.where(Enterprise.id.is_(None))
    if codes:
        # Segment codes are [a-z0-9_], so a quoted code matches one whole element of the JSON list.
        text = cast(Enterprise.segments, String)
        stmt = stmt.where(or_(*(text.like(f'%"{code}"%') for code in sorted(codes))))
    if tier is not None:
        stmt = stmt.where(Enterprise.tier == tier)
    if untiered:
        stmt = stmt.where(Enterprise.tier.is_(None))
    if district is not None:
        stmt = stmt.where(Enterprise.district == district)
    if park is not None:
        stmt = stmt.where(Enterprise.park == park)
    if above_size is not None:
        stmt = stmt.where(Enterprise.above_size.is_(above_size))
    if q:
        # Case-insensitive on both databases; %, _ and \ in the query are literal characters.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                Enterprise.name.ilike(like, escape="\\"),
                Enterprise.name_en.ilike(like, escape="\\"),
                Enterprise.credit_code == q.upper(),
            )
        )
    if not include_retired:
        stmt = stmt.where(Enterprise.retired_at.is_(None))
    return stmt


# --- create and edit -----------------------------------------------------------------------------


def _org_for(session: Session, code: str, org_id: int | None) -> int | None:
    """The tenant organisation to link: the one named (it must carry the same credit code), else the one
    registered with this credit code, if any."""
    if org_id is None:
        return session.scalar(select(Organisation.id).where(Organisation.credit_code == code))
    org = session.get(Organisation, org_id)
    if org is None:
        raise NotFound("not-found", what="organisation", id=org_id)
    if org.credit_code != code:
        raise Invalid("registry.org-other-code", org_id=org_id, org_code=org.credit_code, code=code)
    taken = session.scalar(select(Enterprise.id).where(Enterprise.org_id == org_id))
    if taken is not None:
        raise Conflict("registry.org-linked", org_id=org_id, enterprise_id=taken)
    return org_id


def link_org(session: Session, org: Organisation) -> None:
    """A newly registered tenant organisation takes over the registry record with its credit code."""
    found = session.scalar(select(Enterprise).where(Enterprise.credit_code == org.credit_code))
    if found is not None and found.org_id is None:
        found.org_id = org.id
        session.flush()


def create(session: Session, *, principal: Principal, data: EnterpriseCreate, now: datetime) -> Enterprise:
    require_regulator(principal)
    code = validate_credit_code(data.credit_code)
    if session.scalar(select(Enterprise.id).where(Enterprise.credit_code == code)) is not None:
        raise Conflict("registry.duplicate-credit-code", code=code)
    taxonomy = chain.load(session)
    fields = data.model_dump(exclude={"credit_code", "tier", "tier_granted_on", "org_id"})
    fields["segments"] = chain.check_codes(taxonomy, data.segments)
    fields["locality_code"] = data.locality_code or credit_code.division_code(code)
    enterprise = Enterprise(credit_code=code, org_id=_org_for(session, code, data.org_id), **fields)
    session.add(enterprise)
    session.flush()
    if data.tier is not None:
        granted_on = data.tier_granted_on or shanghai_date(now)
        _check_granted_on(granted_on, data.founded_on)
        _grant(session, enterprise, data.tier, granted_on, now)
    return enterprise


def update(
    session: Session, *, principal: Principal, enterprise_id: int, data: EnterprisePatch, now: datetime
) -> Enterprise:
    require_regulator(principal)
    enterprise = get_enterprise(session, principal=principal, enterprise_id=enterprise_id)
    changes = data.model_dump(exclude_unset=True)
    if "segments" in changes:
        changes["segments"] = chain.check_codes(chain.load(session), changes["segments"])
    if "org_id" in changes and changes["org_id"] != enterprise.org_id:
        new = changes.pop("org_id")
        enterprise.org_id = None if new is None else _org_for(session, enterprise.credit_code, new)
    changes.pop("org_id", None)
    retired = changes.pop("retired", None)
    enterprise.set_retired(retired, now)
    assign_changed(enterprise, changes)
    session.flush()
    return enterprise


# --- tiers ---------------------------------------------------------------------------------------


def tiers(session: Session, enterprise_id: int) -> list[EnterpriseTier]:
    return list(
        session.scalars(
            select(EnterpriseTier)
            .where(EnterpriseTier.enterprise_id == enterprise_id)
            .order_by(EnterpriseTier.granted_on, EnterpriseTier.id)
        )
    )


def _check_granted_on(granted_on: date, founded_on: date | None) -> None:
    if founded_on is not None and granted_on < founded_on:
        raise Invalid("registry.tier-before-founding", granted_on=granted_on, founded_on=founded_on)


def _held(session: Session, enterprise_id: int, tier: Tier) -> EnterpriseTier | None:
    return session.scalar(
        select(EnterpriseTier).where(
            EnterpriseTier.enterprise_id == enterprise_id, EnterpriseTier.tier == tier
        )
    )


def _refresh_tier(session: Session, enterprise: Enterprise) -> None:
    _set_current(enterprise, tiers(session, enterprise.id))


def _set_current(enterprise: Enterprise, grants: list[EnterpriseTier]) -> None:
    """The current tier: the highest held (granted, not revoked). Re-certifying a lower tier later does
    not demote an enterprise; only a revocation does."""
    held = [g for g in grants if g.revoked_on is None]
    current = max(held, key=lambda g: RANK[g.tier], default=None)
    enterprise.tier = current.tier if current else None
    enterprise.tier_granted_on = current.granted_on if current else None


def _regrant(
    held: EnterpriseTier | None, enterprise_id: int, tier: Tier, on: date, now: datetime
) -> EnterpriseTier | None:
    """`tier` granted on `on`, given the grant of it the enterprise has (if any): the new grant to add,
    the held one re-dated, or None when it already stands so (granting again on its date changes nothing)."""
    if held is None:
        return EnterpriseTier(enterprise_id=enterprise_id, tier=tier, granted_on=on, recorded_at=now)
    if held.granted_on == on and held.revoked_on is None:
        return None
    held.granted_on, held.revoked_on, held.recorded_at = on, None, now
    return held


def _grant(session: Session, enterprise: Enterprise, tier: Tier, on: date, now: datetime) -> bool:
    """Grant `tier` on `on`; True when that changed anything."""
    grant = _regrant(_held(session, enterprise.id, tier), enterprise.id, tier, on, now)
    if grant is None:
        return False
    session.add(grant)
    session.flush()
    _refresh_tier(session, enterprise)
    return True


def grant_tier(
    session: Session, *, principal: Principal, enterprise_id: int, data: TierGrant, now: datetime
) -> Enterprise:
    require_regulator(principal)
    enterprise = get_enterprise(session, principal=principal, enterprise_id=enterprise_id)
    _check_granted_on(data.granted_on, enterprise.founded_on)
    _grant(session, enterprise, data.tier, data.granted_on, now)
    return enterprise


def revoke_tier(
    session: Session, *, principal: Principal, enterprise_id: int, tier: Tier, revoked_on: date
) -> Enterprise:
    require_regulator(principal)
    enterprise = get_enterprise(session, principal=principal, enterprise_id=enterprise_id)
    found = _held(session, enterprise.id, tier)
    if found is None or found.revoked_on is not None:
        raise NotFound("registry.tier-not-held", tier=tier.value)
    if revoked_on < found.granted_on:
        raise Invalid("registry.revoked-before-granted", revoked_on=revoked_on, granted_on=found.granted_on)
    found.revoked_on = revoked_on
    session.flush()
    _refresh_tier(session, enterprise)
    return enterprise


# --- import --------------------------------------------------------------------------------------

IMPORTED = (
    "name",
    "name_en",
    "district",
    "park",
    "segments",
    "above_size",
    "employees",
    "rd_intensity_bp",
    "patents",
    "founded_on",
    "contact_name",
    "contact_phone",
    "contact_email",
)


def upsert_many(
    session: Session, records: list[dict[str, Any]], *, found: dict[str, Enterprise], now: datetime
) -> list[str]:
    """Imported rows, already checked (one per credit code): 'created', 'updated' or 'unchanged' for each.
    A column the file does not have keeps its value; a tier cell grants that tier (dated by its cell,
    else when it was granted before, else today) and a blank one leaves the tiers as they are. The
    registry is read once (`found`: every enterprise by credit code; new ones are added to it) and
    written in batches, so a file of thousands of rows takes seconds."""
    linked = {e.org_id for e in found.values() if e.org_id is not None}
    orgs = {code: id_ for code, id_ in session.execute(select(Organisation.credit_code, Organisation.id))}
    outcomes: list[str] = []
    for record in records:
        code = record["credit_code"]
        values = {name: record[name] for name in IMPORTED if name in record}
        if values.get("above_size") is None:
            values.pop("above_size", None)  # a blank 规上 cell keeps the flag (new records: not 规上)
        enterprise = found.get(code)
        if enterprise is None:
            values.setdefault("segments", [])
            org_id = orgs.get(code)
            enterprise = Enterprise(
                credit_code=code,
                locality_code=credit_code.division_code(code),
                org_id=org_id if org_id not in linked else None,
                **values,
            )
            session.add(enterprise)
            found[code] = enterprise
            outcomes.append("created")
        else:
            outcomes.append("updated" if assign_changed(enterprise, values) else "unchanged")
    session.flush()
    grants = {(g.enterprise_id, g.tier): g for g in session.scalars(select(EnterpriseTier))}
    regranted: set[int] = set()
    for number, record in enumerate(records):
        if record.get("tier") is None:
            continue
        enterprise, tier = found[record["credit_code"]], Tier(record["tier"])
        held = grants.get((enterprise.id, tier))
        on = record.get("tier_granted_on") or (held.granted_on if held is not None else shanghai_date(now))
        grant = _regrant(held, enterprise.id, tier, on, now)
        if grant is None:
            continue
        session.add(grant)
        grants[(enterprise.id, tier)] = grant
        regranted.add(enterprise.id)
        if outcomes[number] == "unchanged":
            outcomes[number] = "updated"
    for enterprise in found.values():
        if enterprise.id in regranted:
            _set_current(enterprise, [g for (e, _), g in grants.items() if e == enterprise.id])
    session.flush()
    return outcomes
