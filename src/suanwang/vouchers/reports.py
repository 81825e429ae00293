"""Reports of a voucher programme for the finance bureau and third-party auditors (read-only).

Every figure comes from the programme's own records: grants (`VoucherGrant`) and decisions
(`VoucherRedemption`, one per pool's share of one job's charge). Money is integer fen throughout;
ratios are computed with integers and shown with two decimals, rounded half up; no float touches money.
A month is a calendar month in Asia/Shanghai, written `YYYY-MM`.

What the columns mean:

- charge: the charge of the decisions, i.e. the compute spend the programme considered, subsidised or
  not (a refused share counts with a subsidy of 0);
- subsidy: what the programme paid, net of clawbacks (`subsidy_fen - clawed_back_fen`); a quarterly
  claim not yet settled counts as paid, as in `programmes.budget()`;
- clawed back: what the regulator took back of those subsidies;
- orders: distinct jobs (a job's late usage is a decision of the same job);
- leverage: charge ÷ subsidy, "—" when the subsidy is 0.

A clawback counts in the month of the redemption it corrects (the record keeps the amount, not a date),
so a closed month's figures can still change when a subsidy is later clawed back; the totals always
match the ledger (`programmes.budget()`).

The period filter keeps decisions settled in [start, end) months; the burn-down always accumulates
from the programme's first month and only shows the months inside the period.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session

from suanwang.errors import Invalid
from suanwang.registry.models import Enterprise
from suanwang.settlement.statements import Month
from suanwang.supply.models import Provider
from suanwang.tenants.models import Organisation
from suanwang.timeutil import utcnow
from suanwang.vouchers.models import VoucherGrant, VoucherProgramme, VoucherRedemption

UNREGISTERED = "unregistered"  # the segment of an organisation with no registry row or no segment
NO_RATIO = "—"

R = VoucherRedemption


# --- months and periods --------------------------------------------------------------------------


def months(first: Month, last: Month) -> list[Month]:
    """Every month from first to last, both included."""
    found = []
    current = first
    while current <= last:
        found.append(current)
        current = current.next()
    return found


@dataclass(frozen=True, slots=True)
class Period:
    """Months [start, end): either side open when None."""

    start: Month | None = None
    end: Month | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Period:
        """From the API's `from` and `to` (YYYY-MM, `to` excluded); refused when the period is empty."""
        period = cls(Month.parse(start) if start else None, Month.parse(end) if end else None)
        if period.start is not None and period.end is not None and period.end <= period.start:
            raise Invalid("voucher-report.bad-range", start=str(period.start), end=str(period.end))
        return period

    def __contains__(self, month: object) -> bool:
        if not isinstance(month, Month):
            return False
        return (self.start is None or self.start <= month) and (self.end is None or month < self.end)

    def where(self, column: Any) -> list[ColumnElement[bool]]:
        """SQL conditions keeping the times of `column` inside the period."""
        conditions: list[ColumnElement[bool]] = []
        if self.start is not None:
            conditions.append(column >= self.start.start)
        if self.end is not None:
            conditions.append(column < self.end.start)
        return conditions

    def as_json(self) -> dict[str, str | None]:
        return {
            "from": str(self.start) if self.start else None,
            "to": str(self.end) if self.end else None,
        }


ALL = Period()


# --- exact ratios --------------------------------------------------------------------------------


def _half_up(numerator: int, denominator: int) -> int:
    """numerator ÷ denominator rounded half up (both ≥ 0, denominator > 0)."""
    return (2 * numerator + denominator) // (2 * denominator)


def _two_places(hundredths: int) -> str:
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def leverage(charge_fen: int, subsidy_fen: int) -> str:
    """charge ÷ subsidy with two decimals, rounded half up ('2.16'); '—' when the subsidy is 0."""
    if subsidy_fen <= 0:
        return NO_RATIO
    return _two_places(_half_up(100 * charge_fen, subsidy_fen))


def share_bp(part_fen: int, whole_fen: int) -> int | None:
    """part ÷ whole in basis points, rounded half up (4000 = 40 %); None when the whole is 0."""
    if whole_fen <= 0:
        return None
    return _half_up(10_000 * part_fen, whole_fen)


def percent(bp: int | None) -> str:
    """Basis points as a percentage with two decimals: 4000 → '40.00%'; None → '—'."""
    return NO_RATIO if bp is None else f"{_two_places(bp)}%"


# --- what the reports return ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """Spend, subsidy, clawbacks and orders of a set of decisions."""

    charge_fen: int = 0
    subsidy_fen: int = 0  # net of clawbacks
    clawed_back_fen: int = 0
    orders: int = 0  # distinct jobs

    @property
    def leverage(self) -> str:
        return leverage(self.charge_fen, self.subsidy_fen)

    def as_json(self) -> dict[str, Any]:
        return {
            "charge_fen": self.charge_fen,
            "subsidy_fen": self.subsidy_fen,
            "clawed_back_fen": self.clawed_back_fen,
            "orders": self.orders,
            "leverage": self.leverage,
        }


@dataclass(frozen=True, slots=True)
class EnterpriseRow:
    org_id: int
    credit_code: str
    name: str
    name_en: str | None
    segments: list[str]  # from the registry; empty when the organisation has no registry row
    figures: Figures

    def as_json(self) -> dict[str, Any]:
        keys = {
            "org_id": self.org_id,
            "credit_code": self.credit_code,
            "name": self.name,
            "name_en": self.name_en,
            "segments": self.segments,
        }
        return keys | self.figures.as_json()


@dataclass(frozen=True, slots=True)
class SegmentRow:
    segment: str
    enterprises: int
    figures: Figures

    def as_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "enterprises": self.enterprises} | self.figures.as_json()


@dataclass(frozen=True, slots=True)
class ProviderRow:
    provider_id: int
    code: str
    name: str
    name_en: str | None
    local_charge_fen: int  # of the charge, what was spent at its sites in the local regions
    figures: Figures

    def as_json(self) -> dict[str, Any]:
        keys = {
            "provider_id": self.provider_id,
            "code": self.code,
            "name": self.name,
            "name_en": self.name_en,
        }
        return keys | self.figures.as_json() | {"local_charge_fen": self.local_charge_fen}


@dataclass(frozen=True, slots=True)
class MonthRow:
    month: str
    figures: Figures

    def as_json(self) -> dict[str, Any]:
        return {"month": self.month} | self.figures.as_json()


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Rows of one breakdown, and the total over the same decisions (None where rows overlap)."""

    report: str
    programme_id: int
    programme_code: str
    period: Period
    rows: Sequence[EnterpriseRow | SegmentRow | ProviderRow | MonthRow]
    total: Figures | None

    def as_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "programme_id": self.programme_id,
            "programme_code": self.programme_code,
            **self.period.as_json(),
            "rows": [row.as_json() for row in self.rows],
            "total": self.total.as_json() if self.total is not None else None,
        }


@dataclass(frozen=True, slots=True)
class BurnDownRow:
    month: str
    granted_fen: int  # granted in the month, less what grants expiring in it returned
    redeemed_fen: int  # subsidies of the month's decisions, net of clawbacks
    clawed_back_fen: int  # clawed back of the month's decisions
    cumulative_granted_fen: int
    cumulative_redeemed_fen: int
    remaining_fen: int  # the budget account: budget − cumulative granted + cumulative clawed back
    unredeemed_fen: int  # what grants still hold: cumulative granted − cumulative subsidies (gross)

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "granted_fen": self.granted_fen,
            "redeemed_fen": self.redeemed_fen,
            "clawed_back_fen": self.clawed_back_fen,
            "cumulative_granted_fen": self.cumulative_granted_fen,
            "cumulative_redeemed_fen": self.cumulative_redeemed_fen,
            "remaining_fen": self.remaining_fen,
            "unredeemed_fen": self.unredeemed_fen,
        }


@dataclass(frozen=True, slots=True)
class BurnDown:
    """Month by month; `total` sums the flows of the months shown and closes with the cumulative figures
    at the end of the period (without a period: granted, redeemed + clawed back, clawed back and remaining
    equal `programmes.budget()`'s granted, redeemed, clawed back and unallocated)."""

    programme_id: int
    programme_code: str
    period: Period
    budget_fen: int
    rows: list[BurnDownRow]
    total: BurnDownRow

    def as_json(self) -> dict[str, Any]:
        total = self.total.as_json()
        del total["month"]
        return {
            "report": "burn-down",
            "programme_id": self.programme_id,
            "programme_code": self.programme_code,
            **self.period.as_json(),
            "budget_fen": self.budget_fen,
            "rows": [row.as_json() for row in self.rows],
            "total": total,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    programme_id: int
    programme_code: str
    period: Period
    budget_fen: int
    charge_fen: int  # every decision's charge (spend considered)
    orders: int
    subsidised_charge_fen: int  # the charge of decisions with a subsidy left after clawbacks
    subsidised_orders: int
    subsidy_fen: int  # net of clawbacks
    clawed_back_fen: int
    local_charge_fen: int  # of the subsidised charge, what was spent at local providers

    @property
    def local_share_bp(self) -> int | None:
        return share_bp(self.local_charge_fen, self.subsidised_charge_fen)

    @property
    def leverage(self) -> str:
        """Spend on subsidised orders ÷ subsidy."""
        return leverage(self.subsidised_charge_fen, self.subsidy_fen)

    @property
    def local_share(self) -> str:
        return percent(self.local_share_bp)

    def as_json(self) -> dict[str, Any]:
        return {
            "report": "summary",
            "programme_id": self.programme_id,
            "programme_code": self.programme_code,
            **self.period.as_json(),
            "budget_fen": self.budget_fen,
            "charge_fen": self.charge_fen,
            "orders": self.orders,
            "subsidised_charge_fen": self.subsidised_charge_fen,
            "subsidised_orders": self.subsidised_orders,
            "subsidy_fen": self.subsidy_fen,
            "clawed_back_fen": self.clawed_back_fen,
            "leverage": self.leverage,
            "local_charge_fen": self.local_charge_fen,
            "local_share_bp": self.local_share_bp,
            "local_share": self.local_share,
        }


# --- queries -------------------------------------------------------------------------------------


def _net() -> ColumnElement[int]:
    return R.subsidy_fen - R.clawed_back_fen


def _decisions(programme: VoucherProgramme, period: Period) -> list[ColumnElement[bool]]:
    return [R.programme_id == programme.id, *period.where(R.at)]


def _sums() -> list[Any]:
    """charge, net subsidy, clawed back, distinct jobs."""
    return [
        func.coalesce(func.sum(R.charge_fen), 0),
        func.coalesce(func.sum(_net()), 0),
        func.coalesce(func.sum(R.clawed_back_fen), 0),
        func.count(distinct(R.job_id)),
    ]


def _figures(values: Sequence[Any]) -> Figures:
    charge, subsidy, clawed, orders = values
    return Figures(int(charge or 0), int(subsidy or 0), int(clawed or 0), int(orders or 0))


def total(session: Session, programme: VoucherProgramme, period: Period = ALL) -> Figures:
    """The figures of every decision of the programme in the period."""
    row = session.execute(select(*_sums()).where(*_decisions(programme, period))).one()
    return _figures(tuple(row))


def _per_org(session: Session, programme: VoucherProgramme, period: Period) -> dict[int, Figures]:
    rows = session.execute(
        select(R.org_id, *_sums()).where(*_decisions(programme, period)).group_by(R.org_id)
    ).all()
    return {int(org_id): _figures(rest) for org_id, *rest in rows}


def _by_subsidy(item: tuple[int, Figures]) -> tuple[int, int]:
    return (-item[1].subsidy_fen, item[0])


def by_enterprise(session: Session, programme: VoucherProgramme, period: Period = ALL) -> Breakdown:
    """Per organisation, most subsidised first; the rows add up to the total (a job has one org)."""
    per_org = _per_org(session, programme, period)
    orgs = {o.id: o for o in session.scalars(select(Organisation).where(Organisation.id.in_(list(per_org))))}
    segments = _segments(session, per_org)
    rows = [
        EnterpriseRow(
            org_id=org_id,
            credit_code=orgs[org_id].credit_code,
            name=orgs[org_id].name,
            name_en=orgs[org_id].name_en,
            segments=segments.get(org_id, []),
            figures=figures,
        )
        for org_id, figures in sorted(per_org.items(), key=_by_subsidy)
    ]
    return Breakdown(
        "by-enterprise", programme.id, programme.code, period, rows, total(session, programme, period)
    )


def _segments(session: Session, org_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each organisation's registry segments (only organisations with a registry row)."""
    ids = list(org_ids)
    if not ids:
        return {}
    rows = session.execute(select(Enterprise.org_id, Enterprise.segments).where(Enterprise.org_id.in_(ids)))
    return {int(org_id): sorted(set(found or [])) for org_id, found in rows if org_id is not None}


def by_segment(session: Session, programme: VoucherProgramme, period: Period = ALL) -> Breakdown:
    """Per industry-chain segment, from the registry row linked to each organisation (`Enterprise.org_id`).

    An organisation with no registry row, or whose row lists no segment, counts under "unregistered".
    An organisation in several segments counts in full in each of them, so the rows overlap and must
    not be added up: the breakdown has no total (by_enterprise's total is the programme's).
    """
    per_org = _per_org(session, programme, period)
    segments = _segments(session, per_org)
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for org_id, figures in per_org.items():
        for segment in segments.get(org_id) or [UNREGISTERED]:
            acc = sums[segment]
            acc[0] += figures.charge_fen
            acc[1] += figures.subsidy_fen
            acc[2] += figures.clawed_back_fen
            acc[3] += figures.orders  # jobs belong to one organisation: the counts add up
            acc[4] += 1
    rows = [
        SegmentRow(segment, acc[4], Figures(acc[0], acc[1], acc[2], acc[3]))
        for segment, acc in sorted(sums.items(), key=lambda item: (item[0] == UNREGISTERED, item[0]))
    ]
    return Breakdown("by-segment", programme.id, programme.code, period, rows, None)


def by_provider(session: Session, programme: VoucherProgramme, period: Period = ALL) -> Breakdown:
    """Per provider of the pools whose shares were decided, most subsidised first. A job run on pools of
    two providers is an order of each, so the orders do not add up to the total's."""
    local = func.coalesce(func.sum(case((R.provider_local, R.charge_fen), else_=0)), 0)
    rows = session.execute(
        select(R.provider_id, local, *_sums()).where(*_decisions(programme, period)).group_by(R.provider_id)
    ).all()
    per_provider = {
        int(provider_id): (int(local_fen or 0), _figures(rest)) for provider_id, local_fen, *rest in rows
    }
    providers = {
        p.id: p for p in session.scalars(select(Provider).where(Provider.id.in_(list(per_provider))))
    }
    ordered = sorted(per_provider.items(), key=lambda item: (-item[1][1].subsidy_fen, item[0]))
    found = [
        ProviderRow(
            provider_id=provider_id,
            code=providers[provider_id].code,
            name=providers[provider_id].name,
            name_en=providers[provider_id].name_en,
            local_charge_fen=local_fen,
            figures=figures,
        )
        for provider_id, (local_fen, figures) in ordered
    ]
    return Breakdown(
        "by-provider", programme.id, programme.code, period, found, total(session, programme, period)
    )


def _month_of(column: Any, span: Sequence[Month]) -> ColumnElement[str]:
    """The `YYYY-MM` month of a time column, as SQL that reads the same on SQLite and PostgreSQL."""
    return case(*[(column < month.next().start, str(month)) for month in span], else_=str(span[-1]))


def _span(session: Session, column: Any, conditions: Sequence[ColumnElement[bool]]) -> list[Month]:
    """The months from the earliest to the latest time of `column` where `conditions` hold."""
    earliest, latest = session.execute(select(func.min(column), func.max(column)).where(*conditions)).one()
    if earliest is None or latest is None:
        return []
    return months(Month.of(earliest), Month.of(latest))


def _per_month(
    session: Session, programme: VoucherProgramme, period: Period
) -> dict[str, tuple[Figures, int]]:
    """Per redemption month: the figures, and the subsidies before clawbacks."""
    conditions = _decisions(programme, period)
    span = _span(session, R.at, conditions)
    if not span:
        return {}
    # Grouping by the month expression itself would repeat its bound parameters in GROUP BY, which
    # PostgreSQL does not see as the same expression: label it in a subquery and group outside.
    inner = (
        select(
            _month_of(R.at, span).label("month"),
            R.job_id,
            R.charge_fen,
            R.subsidy_fen,
            R.clawed_back_fen,
        )
        .where(*conditions)
        .subquery()
    )
    rows = session.execute(
        select(
            inner.c.month,
            func.coalesce(func.sum(inner.c.charge_fen), 0),
            func.coalesce(func.sum(inner.c.subsidy_fen - inner.c.clawed_back_fen), 0),
            func.coalesce(func.sum(inner.c.clawed_back_fen), 0),
            func.count(distinct(inner.c.job_id)),
            func.coalesce(func.sum(inner.c.subsidy_fen), 0),
        ).group_by(inner.c.month)
    ).all()
    return {str(month): (_figures(rest[:4]), int(rest[4] or 0)) for month, *rest in rows}


def by_month(session: Session, programme: VoucherProgramme, period: Period = ALL) -> Breakdown:
    """Per month of settlement (Asia/Shanghai), oldest first; only months with decisions. A job with
    late usage settled in a later month is an order of both months."""
    per_month = _per_month(session, programme, period)
    rows = [MonthRow(month, per_month[month][0]) for month in sorted(per_month)]
    return Breakdown(
        "by-month", programme.id, programme.code, period, rows, total(session, programme, period)
    )


def burn_down(
    session: Session, programme: VoucherProgramme, period: Period = ALL, *, now: datetime | None = None
) -> BurnDown:
    """The budget month by month, from the programme's first month to the later of its last month (or
    this month, while it runs) and the last month with a grant, an expiry or a decision.

    Granted: grants made in the month less what grants that expired in it returned to the budget.
    Redeemed: the month's subsidies net of clawbacks. Remaining: what the budget account holds (the
    budget less what was granted, plus clawbacks, which go back to the budget). Unredeemed: what
    grants still hold (granted less every subsidy paid or claimed from them, clawed back or not).
    """
    flows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # granted, redeemed, clawed, gross
    grants = session.execute(
        select(
            VoucherGrant.created_at,
            VoucherGrant.amount_fen,
            VoucherGrant.expired_at,
            VoucherGrant.returned_fen,
        ).where(VoucherGrant.programme_id == programme.id)
    ).all()
    active: list[Month] = [Month.of(programme.starts_on)]
    for created_at, amount, expired_at, returned in grants:
        flows[str(Month.of(created_at))][0] += int(amount)
        active.append(Month.of(created_at))
        if expired_at is not None:
            flows[str(Month.of(expired_at))][0] -= int(returned or 0)
            active.append(Month.of(expired_at))
    for label, (figures, gross) in _per_month(session, programme, ALL).items():
        acc = flows[label]
        acc[1] += figures.subsidy_fen
        acc[2] += figures.clawed_back_fen
        acc[3] += gross
        active.append(Month.parse(label))
    first = min(active)
    last = max(*active, min(Month.of(programme.ends_on), Month.of(now or utcnow())))
    rows: list[BurnDownRow] = []
    closing: BurnDownRow | None = None  # the last month before the period's end
    cumulative = [0, 0, 0, 0]
    for month in months(first, last):
        if period.end is not None and month >= period.end:
            break
        granted, redeemed, clawed, gross = flows.get(str(month), [0, 0, 0, 0])
        for i, value in enumerate((granted, redeemed, clawed, gross)):
            cumulative[i] += value
        closing = BurnDownRow(
            month=str(month),
            granted_fen=granted,
            redeemed_fen=redeemed,
            clawed_back_fen=clawed,
            cumulative_granted_fen=cumulative[0],
            cumulative_redeemed_fen=cumulative[1],
            remaining_fen=programme.budget_fen - cumulative[0] + cumulative[2],
            unredeemed_fen=cumulative[0] - cumulative[3],
        )
        if month in period:
            rows.append(closing)
    total_row = BurnDownRow(
        month="",
        granted_fen=sum(r.granted_fen for r in rows),
        redeemed_fen=sum(r.redeemed_fen for r in rows),
        clawed_back_fen=sum(r.clawed_back_fen for r in rows),
        cumulative_granted_fen=closing.cumulative_granted_fen if closing else 0,
        cumulative_redeemed_fen=closing.cumulative_redeemed_fen if closing else 0,
        remaining_fen=closing.remaining_fen if closing else programme.budget_fen,
        unredeemed_fen=closing.unredeemed_fen if closing else 0,
    )
    return BurnDown(programme.id, programme.code, period, programme.budget_fen, rows, total_row)


def summary(session: Session, programme: VoucherProgramme, period: Period = ALL) -> Summary:
    """The programme at a glance: spend, subsidy, leverage (spend on subsidised orders ÷ subsidy) and the
    share of subsidised spend at local providers (Σ charge at local providers ÷ Σ charge, over the
    decisions with a subsidy left after clawbacks)."""
    everything = total(session, programme, period)
    local = func.coalesce(func.sum(case((R.provider_local, R.charge_fen), else_=0)), 0)
    charge, local_fen, orders = session.execute(
        select(func.coalesce(func.sum(R.charge_fen), 0), local, func.count(distinct(R.job_id))).where(
            *_decisions(programme, period), _net() > 0
        )
    ).one()
    return Summary(
        programme_id=programme.id,
        programme_code=programme.code,
        period=period,
        budget_fen=programme.budget_fen,
        charge_fen=everything.charge_fen,
        orders=everything.orders,
        subsidised_charge_fen=int(charge or 0),
        subsidised_orders=int(orders or 0),
        subsidy_fen=everything.subsidy_fen,
        clawed_back_fen=everything.clawed_back_fen,
        local_charge_fen=int(local_fen or 0),
    )
