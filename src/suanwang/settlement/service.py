"""Settlement: a hold on the tenant's wallet at admission, the real charge at finish, and the money
movements people make (top-ups, refunds, adjustments, payouts, credit limits).

At admission a job's maximum cost is held (a pending transfer wallet → clearing, id `job/<id>/hold`).
When the job ends — in the same database transaction as its final state — its metered usage is rated,
the hold is posted for the charge (the rest is released), anything above the hold is taken from the
wallet or, when the wallet cannot pay, booked as arrears, and the charge leaves clearing to each
provider (less the platform fee) and to the platform's fee account. Every transfer id is derived from
the job, so settling twice changes nothing: the second time every transfer answers `exists`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.config import get_settings
from suanwang.errors import DomainError
from suanwang.jobs.models import Job
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.ledger.rules import SUCCEEDED, TransferResult, TransferSpec
from suanwang.metering.models import UsageRecord
from suanwang.scheduler import PoolState, QueuedJob
from suanwang.scheduler.constraints import violation
from suanwang.scheduler.estimate import cost_fen, runtime_s
from suanwang.scheduler.policy import Policy
from suanwang.settlement import chart
from suanwang.settlement.rating import Usage, largest_remainder, rate, round_half_up
from suanwang.supply.models import Pool, RateCard, Site
from suanwang.supply.pricing import Interval
from suanwang.units import format_fen
from suanwang.vouchers import redemption

BASIS_POINTS = 10_000


class PaymentRequired(DomainError):
    status = 402
    title_key = "problem.payment-required"


class SettlementError(RuntimeError):
    """The ledger refused a settlement transfer: a bug or a data problem; the job's end is not committed."""


# --- admission -----------------------------------------------------------------------------------


def hold_amount(job: QueuedJob, pools: Sequence[PoolState], policy: Policy) -> int:
    """The most the job can cost: its estimated runtime × price on the dearest pool it may run on."""
    costs = [
        cost_fen(job.cards, runtime_s(job, pool, policy), pool.price_fen_per_card_hour)
        for pool in pools
        if violation(job, pool) is None
    ]
    return max(costs, default=0)


@dataclass(frozen=True, slots=True)
class Hold:
    job_id: int
    org_id: int
    amount_fen: int


def place_holds(session: Session, holds: Sequence[Hold], now: datetime) -> list[PaymentRequired | None]:
    """Hold each job's maximum cost on its organisation's wallet, in one ledger batch.

    One answer per hold: None when held (or nothing to hold), PaymentRequired when the wallet cannot
    cover it. Holds in one batch see each other: the second of two jobs may find the wallet empty.
    """
    wanted = [hold for hold in holds if hold.amount_fen > 0]
    if not wanted:
        return [None] * len(holds)
    accounts = chart.ensure(session, [chart.CLEARING, *(chart.wallet(h.org_id) for h in wanted)])
    clearing = accounts[chart.CLEARING.key].id
    specs = [
        TransferSpec(
            id=hold_id(hold.job_id),
            debit_account_id=accounts[chart.wallet(hold.org_id).key].id,
            credit_account_id=clearing,
            amount=hold.amount_fen,
            ledger=chart.LEDGER,
            code="hold",
            reference=f"job:{hold.job_id}",
            pending=True,
        )
        for hold in wanted
    ]
    results = dict(
        zip((h.job_id for h in wanted), ledger.create_transfers(session, specs, now=now), strict=True)
    )
    answers: list[PaymentRequired | None] = []
    for hold in holds:
        result = results.get(hold.job_id, TransferResult.OK)
        if result in SUCCEEDED:
            answers.append(None)
        elif result is TransferResult.EXCEEDS_CREDITS:
            wallet = accounts[chart.wallet(hold.org_id).key]
            answers.append(
                PaymentRequired(
                    "job.insufficient-funds",
                    needed=format_fen(hold.amount_fen),
                    available=format_fen(available_fen(session, wallet.id)),
                )
            )
        else:
            raise SettlementError(f"hold for job {hold.job_id}: {result}")
    return answers


def hold_id(job_id: int) -> str:
    return f"job/{job_id}/hold"


def available_fen(session: Session, wallet_id: int) -> int:
    """What a wallet can still pay: credits − debits − holds + its credit limit."""
    account = session.get_one(LedgerAccount, wallet_id)
    balances = ledger.balance(session, wallet_id)
    return (
        balances.credits_posted
        - balances.debits_posted
        - balances.debits_pending
        + (account.credit_limit_fen if account.debits_must_not_exceed_credits else 0)
    )


# --- finish --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Charge:
    """What a job costs, per pool (exact) and in total (rounded once, half up)."""

    by_pool: dict[int, Fraction]
    card_seconds: dict[int, int]
    total_fen: int

    def shares(self) -> dict[int, int]:
        """The rounded total split over the pools by largest remainder: the parts add up exactly."""
        pools = sorted(self.by_pool)
        return dict(
            zip(pools, largest_remainder(self.total_fen, [self.by_pool[p] for p in pools]), strict=True)
        )


def rate_job(session: Session, job_id: int, increment_s: int) -> Charge:
    """Rate every usage record of the job against its pool's rate cards."""
    usages: dict[int, list[Usage]] = defaultdict(list)
    for record in session.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)):
        usages[record.pool_id].append(
            Usage(
                cards=record.cards,
                started_at=record.started_at,
                ended_at=record.ended_at,
                card_seconds=record.card_seconds,
            )
        )
    cards = rate_cards(session, usages)
    by_pool: dict[int, Fraction] = {}
    seconds: dict[int, int] = {}
    for pool_id, records in usages.items():
        rated = rate(records, cards.get(pool_id, []), increment_s)
        by_pool[pool_id] = rated.amount_exact
        seconds[pool_id] = rated.card_seconds
    total = round_half_up(sum(by_pool.values(), Fraction(0)))
    return Charge(by_pool=by_pool, card_seconds=seconds, total_fen=total)


def rate_cards(session: Session, pool_ids: Iterable[int]) -> dict[int, list[Interval]]:
    """The rate cards ever in force on these pools (withdrawn cards never were)."""
    cards: dict[int, list[Interval]] = defaultdict(list)
    stmt = select(RateCard).where(RateCard.pool_id.in_(list(pool_ids)), RateCard.retired_at.is_(None))
    for card in session.scalars(stmt):
        cards[card.pool_id].append(
            Interval(card.id, card.price_fen_per_card_hour, card.effective_from, card.effective_until)
        )
    return cards


def settle_job(session: Session, job: Job, now: datetime) -> None:
    """Charge a job that has just ended, in the caller's transaction (the one that ends the job).

    The fee and the billing increment are the process's settings (SUANWANG_PLATFORM_FEE_BP,
    SUANWANG_BILLING_INCREMENT_S): every path that ends a job — controller, API, CLI — settles alike."""
    charge = rate_job(session, job.id, get_settings().billing_increment_s)
    providers = _providers(session, charge)
    subsidy = redemption.plan(
        session, job=job, shares=charge.shares(), providers=providers, part="", prefix="", at=now
    )
    due = charge.total_fen - subsidy.total_fen  # what the tenant pays
    held = job.hold_fen or 0
    from_hold = min(due, held)
    first: list[TransferSpec] = []
    if held:
        first.append(
            TransferSpec(
                id=f"job/{job.id}/{'charge' if from_hold else 'release'}",
                debit_account_id=0,
                credit_account_id=0,
                amount=from_hold or None,
                ledger="",
                code="",
                pending_id=hold_id(job.id),
                post_pending=from_hold > 0,
                void_pending=from_hold == 0,
                linked=True,
            )
        )
    _book(session, job, charge, providers, subsidy, first=first, over=due - from_hold, prefix="", now=now)
    job.charged_fen = charge.total_fen


def settle_late_usage(session: Session, usage_ids: Sequence[int], now: datetime) -> int:
    """Usage a provider reported after its job was settled: charged on its own (rounded once per
    record, half up), from the wallet or as arrears, and paid to the provider; ids
    `job/<id>/late/<usage id>/…`. Returns how many records were charged."""
    if not usage_ids:
        return 0
    increment = get_settings().billing_increment_s
    late = session.execute(
        select(UsageRecord, Job)
        .join(Job, Job.id == UsageRecord.job_id)
        .where(UsageRecord.id.in_(list(usage_ids)), Job.charged_fen.is_not(None))
    ).all()
    if not late:
        return 0
    cards = rate_cards(session, {record.pool_id for record, _ in late})
    for record, job in late:
        usage = Usage(record.cards, record.started_at, record.ended_at, record.card_seconds)
        rated = rate([usage], cards.get(record.pool_id, []), increment)
        charge = Charge(
            by_pool={record.pool_id: rated.amount_exact},
            card_seconds={record.pool_id: rated.card_seconds},
            total_fen=rated.amount_fen,
        )
        providers = _providers(session, charge)
        prefix = f"late/{record.id}/"
        subsidy = redemption.plan(
            session,
            job=job,
            shares=charge.shares(),
            providers=providers,
            part=f"late/{record.id}",
            prefix=prefix,
            at=now,
        )
        over = charge.total_fen - subsidy.total_fen
        _book(session, job, charge, providers, subsidy, first=[], over=over, prefix=prefix, now=now)
        job.charged_fen = (job.charged_fen or 0) + charge.total_fen
    return len(late)


def _providers(session: Session, charge: Charge) -> dict[int, int]:
    """The provider of each pool the charge is on."""
    rows = session.execute(
        select(Pool.id, Site.provider_id)
        .join(Site, Site.id == Pool.site_id)
        .where(Pool.id.in_(list(charge.by_pool)))
    )
    return {pool_id: provider_id for pool_id, provider_id in rows}


def _book(
    session: Session,
    job: Job,
    charge: Charge,
    providers: dict[int, int],
    subsidy: redemption.Plan,
    *,
    first: list[TransferSpec],
    over: int,
    prefix: str,
    now: datetime,
) -> None:
    """The transfers of a charge as one linked chain: `first` (the hold's post or release), `over`
    taken from the wallet — or, when the wallet cannot pay, booked as arrears — the vouchers' share
    from their grants with the quota it uses, and each pool's share to its provider less the
    platform's fee (what a grant paid of it, clearing does not pay again)."""
    fee_bp = get_settings().platform_fee_bp
    org = job.org_id
    accounts = chart.ensure(
        session,
        [
            chart.CLEARING,
            chart.FEE,
            chart.wallet(org),
            chart.arrears(org),
            *(chart.provider(providers[pool]) for pool in charge.by_pool),
        ],
    )

    def spec(suffix: str, debit: str, credit: str, amount: int, code: str) -> TransferSpec:
        return TransferSpec(
            id=f"job/{job.id}/{prefix}{suffix}",
            debit_account_id=accounts[debit].id,
            credit_account_id=accounts[credit].id,
            amount=amount,
            ledger=chart.LEDGER,
            code=code,
            reference=f"job:{job.id}",
            linked=True,
        )

    payouts: list[TransferSpec] = [*subsidy.quota]
    for pool, share in sorted(charge.shares().items()):
        fee = round_half_up(Fraction(share * fee_bp, BASIS_POINTS))
        provider_key = chart.provider(providers[pool]).key
        from_grants, by_grants_to_provider, by_grants_to_fee = redemption.grant_transfers(
            subsidy.by_pool.get(pool, []),
            net_fen=share - fee,
            provider_account_id=accounts[provider_key].id,
            fee_account_id=accounts[chart.FEE.key].id,
            id_prefix=f"job/{job.id}/{prefix}pool/{pool}/",
            job_id=job.id,
        )
        payouts.extend(from_grants)
        if share - fee - by_grants_to_provider:
            payouts.append(
                spec(
                    f"pool/{pool}/provider",
                    chart.CLEARING.key,
                    provider_key,
                    share - fee - by_grants_to_provider,
                    "charge",
                )
            )
        if fee - by_grants_to_fee:
            payouts.append(
                spec(f"pool/{pool}/fee", chart.CLEARING.key, chart.FEE.key, fee - by_grants_to_fee, "fee")
            )

    wallet, debt = chart.wallet(org).key, chart.arrears(org).key
    overrun = [spec("overrun", wallet, chart.CLEARING.key, over, "charge")] if over else []
    results = _commit_chain(session, [*first, *overrun, *payouts], now)
    if over and results[len(first)] is TransferResult.EXCEEDS_CREDITS:
        # The wallet cannot pay what ran past the hold: the tenant owes it (arrears), the providers are
        # paid all the same.
        overrun = [spec("arrears", debt, chart.CLEARING.key, over, "arrears")]
        results = _commit_chain(session, [*first, *overrun, *payouts], now)
    failed = [
        (s.id, r) for s, r in zip([*first, *overrun, *payouts], results, strict=True) if r not in SUCCEEDED
    ]
    if failed:
        raise SettlementError(f"settling job {job.id}: {failed}")
    session.add_all(subsidy.records)


def _commit_chain(session: Session, specs: list[TransferSpec], now: datetime) -> list[TransferResult]:
    """Send the transfers as one linked chain (all or nothing)."""
    if not specs:
        return []
    chain = [*specs[:-1], replace(specs[-1], linked=False)]
    return ledger.create_transfers(session, chain, now=now)
