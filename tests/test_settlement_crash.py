"""kill -9 during settlement, 200+ times per database: afterwards no money is created, lost or posted
twice, and every job is settled exactly once (tests/settlement_crash.py does the killing)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import Engine, select

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.ledger.models import LedgerAccount
from tests import factories, jobs_world
from tests.settlement_crash import check, prepare_running, run_trials

pytestmark = pytest.mark.db

JOBS = 320
TRIALS = 200
PRICE = 450  # the jobs world's A800 pool


def test_settlement_survives_kill_9_at_random_points(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine, db_url: str
) -> None:
    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    rng = random.Random(20261127)
    jobs = [
        ew.submit(
            cards=rng.choice([1, 2, 8]), duration_estimate_s=rng.randint(60, 7200), accelerators=["A800"]
        )
        for _ in range(JOBS)
    ]
    used = prepare_running(clean_engine, [j["id"] for j in jobs], ew.sim_pool["id"], rng)
    wallet_key = f"wallet/org/{ew.org['id']}"
    with session_scope(clean_engine) as session:
        wallet = session.scalar(select(LedgerAccount).where(LedgerAccount.key == wallet_key))
        assert wallet is not None
        before = wallet.credits_posted - wallet.debits_posted

    trials, killed = run_trials(clean_engine, db_url, trials=TRIALS, rng=rng)

    assert (trials, killed) == (TRIALS, TRIALS), "every trial must kill a worker with jobs left to settle"
    problems = check(
        clean_engine,
        used=used,
        holds={j["id"]: j["hold_fen"] for j in jobs},
        price=PRICE,
        wallet_key=wallet_key,
        wallet_before=before,
        provider_key=f"provider/{ew.sim_site['provider_id']}/payable",
    )
    assert problems == []


def test_the_trials_can_see_a_double_posting(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine, db_url: str
) -> None:
    """The checker is not blind: a transfer that pays the provider twice is reported."""
    from suanwang.ledger import store as ledger
    from suanwang.ledger.rules import TransferSpec
    from suanwang.timeutil import utcnow

    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    rng = random.Random(1)
    jobs = [ew.submit(cards=1, duration_estimate_s=600, accelerators=["A800"]) for _ in range(3)]
    used = prepare_running(clean_engine, [j["id"] for j in jobs], ew.sim_pool["id"], rng)
    wallet_key = f"wallet/org/{ew.org['id']}"
    provider_key = f"provider/{ew.sim_site['provider_id']}/payable"
    with session_scope(clean_engine) as session:
        wallet = session.scalar(select(LedgerAccount).where(LedgerAccount.key == wallet_key))
        assert wallet is not None
        before = wallet.credits_posted - wallet.debits_posted
    run_trials(clean_engine, db_url, trials=0, rng=rng)
    with session_scope(clean_engine) as session:
        clearing = session.scalar(select(LedgerAccount).where(LedgerAccount.key == "platform/clearing"))
        provider = session.scalar(select(LedgerAccount).where(LedgerAccount.key == provider_key))
        assert clearing is not None and provider is not None
        topup = factories.FUNDS_FEN  # any money will do: move some from the wallet again, by hand
        results = ledger.create_transfers(
            session,
            [
                TransferSpec(
                    id="again/1",
                    debit_account_id=wallet.id,
                    credit_account_id=provider.id,
                    amount=min(topup, 100),
                    ledger="CNY",
                    code="charge",
                    reference=f"job:{jobs[0]['id']}",
                )
            ],
            now=utcnow(),
        )
        assert [r.value for r in results] == ["ok"]
    holds = {j["id"]: j["hold_fen"] for j in jobs}
    problems = check(
        clean_engine,
        used=used,
        holds=holds,
        price=PRICE,
        wallet_key=wallet_key,
        wallet_before=before,
        provider_key=provider_key,
    )
    assert any("transfers, expected" in p for p in problems)
    assert any(p.startswith("wallet") for p in problems) and any(p.startswith("provider") for p in problems)
