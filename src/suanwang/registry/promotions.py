"""Cultivation (梯度培育) on stored data: the regulator's criteria per tier (the shipped defaults until it
sets its own), each enterprise's facts from its record and its output statistics, and the candidates
for a tier with the criteria each meets, misses or lacks data for."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanwang.errors import Invalid
from suanwang.registry import cultivation
from suanwang.registry.models import CultivationCriteria, Enterprise, OutputRecord, Tier
from suanwang.tenants.access import Principal, require_regulator


def _invalid(error: cultivation.CriteriaError) -> Invalid:
    return Invalid(error.key, **error.params)


def _check_target(tier: Tier) -> None:
    if tier not in cultivation.TARGETS:
        raise _invalid(cultivation.CriteriaError("registry.cultivation.not-on-ladder", {"tier": tier.value}))


def criteria_for(session: Session, tier: Tier) -> tuple[tuple[cultivation.Criterion, ...], bool]:
    """The criteria in force for `tier` and whether the regulator set them (False: shipped defaults)."""
    _check_target(tier)
    row = session.scalar(select(CultivationCriteria).where(CultivationCriteria.tier == tier))
    if row is None:
        return cultivation.defaults()[tier], False
    return cultivation.parse_criteria(row.criteria), True


def set_criteria(session: Session, *, principal: Principal, tier: Tier, data: list[dict[str, Any]]) -> None:
    """Replace the criteria of a tier (regulator); checked before anything is stored."""
    require_regulator(principal)
    _check_target(tier)
    try:
        parsed = cultivation.parse_criteria(data)
    except cultivation.CriteriaError as error:
        raise _invalid(error) from None
    stored = [c.as_json() for c in parsed]
    row = session.scalar(select(CultivationCriteria).where(CultivationCriteria.tier == tier))
    if row is None:
        session.add(CultivationCriteria(tier=tier, criteria=stored))
    else:
        row.criteria = stored
    session.flush()


def reset_criteria(session: Session, *, principal: Principal, tier: Tier) -> None:
    """Back to the shipped defaults."""
    require_regulator(principal)
    _check_target(tier)
    row = session.scalar(select(CultivationCriteria).where(CultivationCriteria.tier == tier))
    if row is not None:
        session.delete(row)
        session.flush()


def _revenues(session: Session, ids: set[int], years: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Revenue per (enterprise, year) over the months that report one (a year with none is unknown);
    summed in the database per enterprise and year, filtered here (no `IN` list of every id)."""
    rows = session.execute(
        select(OutputRecord.enterprise_id, OutputRecord.year, func.sum(OutputRecord.revenue_fen))
        .where(OutputRecord.year.in_(years), OutputRecord.revenue_fen.is_not(None))
        .group_by(OutputRecord.enterprise_id, OutputRecord.year)
    )
    return {(e, year): int(total) for e, year, total in rows if e in ids}


def facts(session: Session, enterprises: list[Enterprise], as_of: date) -> list[cultivation.Facts]:
    """The facts of each enterprise; revenues are of the last two full calendar years before `as_of`."""
    last, before = as_of.year - 1, as_of.year - 2
    revenue = _revenues(session, {e.id for e in enterprises}, (last, before))
    return [
        cultivation.Facts(
            enterprise_id=e.id,
            name=e.name,
            tier=e.tier,
            revenue_fen=revenue.get((e.id, last)),
            previous_revenue_fen=revenue.get((e.id, before)),
            rd_intensity_bp=e.rd_intensity_bp,
            patents=e.patents,
            employees=e.employees,
            founded_on=e.founded_on,
            above_size=e.above_size,
        )
        for e in enterprises
    ]


def candidates(session: Session, *, principal: Principal, target: Tier, as_of: date) -> list[dict[str, Any]]:
    """Enterprises holding the tier below `target`, eligible first, each with what it meets and misses."""
    require_regulator(principal)
    criteria, _ = criteria_for(session, target)
    below = cultivation.previous_tier(target)
    stmt = select(Enterprise).where(Enterprise.retired_at.is_(None))
    stmt = stmt.where(Enterprise.tier.is_(None) if below is None else Enterprise.tier == below)
    found = list(session.scalars(stmt))
    assessed = cultivation.candidates(facts(session, found, as_of), target, criteria, as_of)
    codes = {e.id: e.credit_code for e in found}
    return [a.as_json() | {"credit_code": codes[a.enterprise_id]} for a in assessed]
