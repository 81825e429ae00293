"""Monthly invoices for tenants and statements for providers, built from the ledger and metered usage.

A month is a calendar month in Asia/Shanghai (the local billing month). Money comes from the ledger,
which is the truth: a job's charge (`Job.charged_fen`, equal to what its transfers moved) and, for a
provider, the transfers that paid it and took the fee. The breakdown — which pool, at which price, how
many card-hours — comes from rating the job's usage again (rating is deterministic and rate cards are
never rewritten), and the charge is spread over the lines by largest remainder so they add up exactly.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from functools import cache

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from suanwang.config import get_settings
from suanwang.db.query import among_bound, dialect_of, get_or_404
from suanwang.errors import Invalid
from suanwang.jobs.models import Job
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount, LedgerTransfer
from suanwang.metering.models import UsageRecord
from suanwang.settlement import chart
from suanwang.settlement.rating import Usage, largest_remainder, rate_usage
from suanwang.settlement.service import rate_cards
from suanwang.supply.models import Pool, Provider, Site
from suanwang.tenants.models import Organisation
from suanwang.timeutil import SHANGHAI
from suanwang.vouchers import redemption

_MONTH = re.compile(r"(\d{4})-(\d{2})")
# A provider's share of a job's charge on one pool (late usage: `job/<id>/late/<usage>/pool/…`), paid
# from clearing (`…/pool/<p>/provider`) or, for a voucher's share, from a grant (`…/pool/<p>/v<programme>/
# provider`). Each has its fee beside it (`…/fee`); where a grant paid more than the provider nets, its
# `…/v<programme>/fee` pays part of the fee and clearing's `…/pool/<p>/fee` the rest.
PROVIDER_SHARE = re.compile(r"(job/(\d+)/(?:late/\d+/)?pool/(\d+)/)(?:v\d+/)?provider")
CARD_HOUR_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month in Asia/Shanghai (invoices, statements, voucher reports)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = _MONTH.fullmatch(text.strip())
        if match is None or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2200:
            raise Invalid("statement.bad-month", value=text)
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, at: datetime | date) -> Month:
        """The month of an aware time (seen in Asia/Shanghai) or of a calendar date."""
        day = at.astimezone(SHANGHAI).date() if isinstance(at, datetime) else at
        return cls(day.year, day.month)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=SHANGHAI)

    @property
    def end(self) -> datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=SHANGHAI)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Line:
    job_id: int
    job_name: str | None
    pool_code: str
    accelerator: str
    provider: str
    card_hours: Decimal
    price_fen_per_card_hour: int
    amount_fen: int
    ended_at: datetime | None
    org: str = ""  # statements: the tenant
    fee_fen: int = 0  # statements: the platform's fee
    net_fen: int = 0  # statements: what the provider is owed


@dataclass(frozen=True, slots=True)
class Invoice:
    """A tenant's month: one line per job, pool and price; totals; its wallet at both ends."""

    org_id: int
    org_name: str
    org_name_en: str | None
    credit_code: str
    month: Month
    lines: list[Line]
    total_fen: int
    subsidies: list[dict[str, object]] = field(default_factory=list)  # filled by the voucher programmes
    subsidy_fen: int = 0
    due_fen: int = 0
    wallet_opening_fen: int = 0
    wallet_closing_fen: int = 0
    top_ups_fen: int = 0


@dataclass(frozen=True, slots=True)
class Statement:
    """A provider's month: one line per job, pool and price; gross, fee, net; payouts; what is owed."""

    provider_id: int
    provider_name: str
    provider_name_en: str | None
    month: Month
    lines: list[Line]
    gross_fen: int
    fee_fen: int
    net_fen: int
    paid_out_fen: int
    owed_opening_fen: int
    owed_closing_fen: int


@dataclass(frozen=True, slots=True)
class _Piece:
    pool_id: int
    price: int
    card_seconds: int
    exact: Fraction


def _pieces(
    session: Session, job_ids: list[int], pool_ids: set[int] | None = None
) -> dict[int, list[_Piece]]:
    """Each job's usage rated again, grouped by pool and price."""
    increment = get_settings().billing_increment_s
    records = list(session.scalars(select(UsageRecord).where(UsageRecord.job_id.in_(job_ids))))
    cards = rate_cards(session, {r.pool_id for r in records})
    grouped: dict[int, dict[tuple[int, int], list[Fraction | int]]] = defaultdict(dict)
    for record in records:
        if pool_ids is not None and record.pool_id not in pool_ids:
            continue
        usage = Usage(record.cards, record.started_at, record.ended_at, record.card_seconds)
        for piece in rate_usage(usage, cards.get(record.pool_id, []), increment):
            slot = grouped[record.job_id].setdefault(
                (record.pool_id, piece.price_fen_per_card_hour), [0, Fraction(0)]
            )
            slot[0] = int(slot[0]) + piece.card_seconds
            slot[1] = Fraction(slot[1]) + piece.amount
    return {
        job_id: [
            _Piece(pool, price, int(cs), Fraction(ex)) for (pool, price), (cs, ex) in sorted(slots.items())
        ]
        for job_id, slots in grouped.items()
    }


def _pools(session: Session, pool_ids: set[int]) -> dict[int, tuple[str, str, str]]:
    rows = session.execute(
        select(Pool.id, Pool.code, Pool.accelerator, Provider.code)
        .join(Site, Site.id == Pool.site_id)
        .join(Provider, Provider.id == Site.provider_id)
        .where(Pool.id.in_(list(pool_ids)))
    )
    return {pool_id: (code, accelerator, provider) for pool_id, code, accelerator, provider in rows}


def _card_hours(card_seconds: int) -> Decimal:
    return (Decimal(card_seconds) / 3600).quantize(CARD_HOUR_PLACES)


def _posted(session: Session, account: LedgerAccount | None, at: datetime) -> int:
    if account is None:
        return 0
    b = ledger.balance(session, account.id, at=at)
    return b.credits_posted - b.debits_posted


def invoice(session: Session, org_id: int, month: Month) -> Invoice:
    org = get_or_404(session, Organisation, org_id, what="organisation")
    jobs = list(
        session.scalars(
            select(Job)
            .where(
                Job.org_id == org_id,
                Job.charged_fen.is_not(None),
                Job.ended_at >= month.start,
                Job.ended_at < month.end,
            )
            .order_by(Job.ended_at, Job.id)
        )
    )
    pieces = _pieces(session, [j.id for j in jobs])
    pools = _pools(session, {p.pool_id for ps in pieces.values() for p in ps})
    lines: list[Line] = []
    for job in jobs:
        parts = pieces.get(job.id, [])
        amounts = largest_remainder(job.charged_fen or 0, [p.exact for p in parts])
        for part, amount in zip(parts, amounts, strict=True):
            code, accelerator, provider = pools[part.pool_id]
            lines.append(
                Line(
                    job_id=job.id,
                    job_name=job.name,
                    pool_code=code,
                    accelerator=accelerator,
                    provider=provider,
                    card_hours=_card_hours(part.card_seconds),
                    price_fen_per_card_hour=part.price,
                    amount_fen=amount,
                    ended_at=job.ended_at,
                )
            )
    total = sum(job.charged_fen or 0 for job in jobs)
    wallet = ledger.get_account(session, key=chart.wallet(org_id).key)
    top_ups = 0
    if wallet is not None:
        top_ups = sum(
            session.scalars(
                select(LedgerTransfer.amount).where(
                    LedgerTransfer.credit_account_id == wallet.id,
                    LedgerTransfer.code == "top-up",
                    LedgerTransfer.created_at >= month.start,
                    LedgerTransfer.created_at < month.end,
                )
            )
        )
    subsidies = redemption.subsidies_of_jobs(session, [j.id for j in jobs])
    subsidy = sum(int(s["amount_fen"]) for s in subsidies)
    return Invoice(
        org_id=org.id,
        org_name=org.name,
        org_name_en=org.name_en,
        credit_code=org.credit_code,
        month=month,
        lines=lines,
        total_fen=total,
        subsidies=subsidies,
        subsidy_fen=subsidy,
        due_fen=total - subsidy,
        wallet_opening_fen=_posted(session, wallet, month.start),
        wallet_closing_fen=_posted(session, wallet, month.end),
        top_ups_fen=top_ups,
    )


def _fees(session: Session, prefixes: dict[tuple[int, int], set[str]]) -> dict[tuple[int, int], int]:
    """The platform's fee on each (job, pool) share: clearing's fee transfer and any voucher grant's. One
    query for all shares (one per share took seconds over a month of 6,000 jobs)."""
    programmes = redemption.programmes_of_jobs(session, {job_id for job_id, _ in prefixes})
    share_of: dict[str, tuple[int, int]] = {}
    for key, starts in prefixes.items():
        for start in starts:
            share_of[f"{start}fee"] = key
            for programme in programmes.get(key[0], ()):
                share_of[f"{start}v{programme}/fee"] = key
    fees = dict.fromkeys(prefixes, 0)
    if share_of:
        found = session.execute(_fee_amounts(dialect_of(session)), {"ids": list(share_of)})
        for transfer_id, amount in found:
            fees[share_of[transfer_id]] += amount
    return fees


@cache
def _fee_amounts(dialect: str) -> Select[tuple[str, int]]:
    return select(LedgerTransfer.id, LedgerTransfer.amount).where(
        among_bound(dialect, LedgerTransfer.id, "ids")
    )


def statement(session: Session, provider_id: int, month: Month) -> Statement:
    provider = get_or_404(session, Provider, provider_id, what="provider")
    account = ledger.get_account(session, key=chart.provider(provider_id).key)
    paid: dict[tuple[int, int], int] = {}
    prefixes: dict[tuple[int, int], set[str]] = {}
    payouts = 0
    if account is not None:
        moved = session.scalars(
            select(LedgerTransfer).where(
                LedgerTransfer.created_at >= month.start,
                LedgerTransfer.created_at < month.end,
                (LedgerTransfer.credit_account_id == account.id)
                | (LedgerTransfer.debit_account_id == account.id),
            )
        )
        for transfer in moved:
            if transfer.code == "payout" and transfer.debit_account_id == account.id:
                payouts += transfer.amount
            match = PROVIDER_SHARE.fullmatch(transfer.id)
            if match and transfer.credit_account_id == account.id:
                key = (int(match.group(2)), int(match.group(3)))
                paid[key] = paid.get(key, 0) + transfer.amount
                prefixes.setdefault(key, set()).add(match.group(1))
    fees = _fees(session, prefixes)
    job_ids = sorted({job_id for job_id, _ in paid})
    jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
    orgs = dict(
        session.execute(
            select(Organisation.id, Organisation.name).where(
                Organisation.id.in_({j.org_id for j in jobs.values()})
            )
        ).all()
    )
    pieces = _pieces(session, job_ids, {pool_id for _, pool_id in paid})
    pools = _pools(session, {pool_id for _, pool_id in paid})
    lines: list[Line] = []
    for (job_id, pool_id), net in sorted(paid.items()):
        fee = fees[(job_id, pool_id)]
        parts = [p for p in pieces.get(job_id, []) if p.pool_id == pool_id]
        gross = largest_remainder(net + fee, [p.exact for p in parts])
        part_fees = largest_remainder(fee, [p.exact for p in parts])
        code, accelerator, _ = pools[pool_id]
        job = jobs[job_id]
        for part, amount, part_fee in zip(parts, gross, part_fees, strict=True):
            lines.append(
                Line(
                    job_id=job_id,
                    job_name=job.name,
                    pool_code=code,
                    accelerator=accelerator,
                    provider=provider.code,
                    card_hours=_card_hours(part.card_seconds),
                    price_fen_per_card_hour=part.price,
                    amount_fen=amount,
                    ended_at=job.ended_at,
                    org=str(orgs.get(job.org_id, job.org_id)),
                    fee_fen=part_fee,
                    net_fen=amount - part_fee,
                )
            )
    net_total = sum(paid.values())
    fee_total = sum(fees.values())
    return Statement(
        provider_id=provider.id,
        provider_name=provider.name,
        provider_name_en=provider.name_en,
        month=month,
        lines=lines,
        gross_fen=net_total + fee_total,
        fee_fen=fee_total,
        net_fen=net_total,
        paid_out_fen=payouts,
        owed_opening_fen=_posted(session, account, month.start),
        owed_closing_fen=_posted(session, account, month.end),
    )
