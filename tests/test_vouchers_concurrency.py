"""Thirty-two settlements at once racing for the last 10,000 yuan of an enterprise's annual voucher cap,
on PostgreSQL: the cap is never exceeded, exactly what was left is paid, and the ledger balances.

PostgreSQL only (SQLite has one writer); CI and `make test` set SUANWANG_TEST_DATABASE_URL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.ledger import store as ledger
from suanwang.ledger.rules import TransferSpec
from suanwang.timeutil import utcnow
from suanwang.vouchers import accounts
from suanwang.vouchers.models import VoucherRedemption
from tests import factories, jobs_world
from tests.conftest import PG_URL
from tests.voucher_world import balance, end_job, grant, programme

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SUANWANG_TEST_DATABASE_URL (CI does)"),
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]
YUAN = 100
CAP = 20_000 * YUAN
LEFT = 10_000 * YUAN
EACH = 1_000 * YUAN  # each job's subsidy at 100 %: ten of them use up what is left


def test_thirty_two_settlements_never_exceed_the_annual_cap(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine
) -> None:
    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    dear = factories.pool(regulator, ew.local_site["id"], accelerator="H800", nodes=1, cards_per_node=8)
    regulator.post(
        f"/pools/{dear['id']}/prices",
        {"price_fen_per_card_hour": EACH, "effective_from": jobs_world.PRICE_FROM.isoformat()},
    )
    p = programme(
        regulator, ratio_bp=10_000, cap_enterprise_year_fen=CAP, cap_order_fen=None, min_claim_fen=0, tiers=[]
    )
    grant(ew, p["id"], CAP)
    year = utcnow().year
    cap_key = accounts.cap(p["id"], ew.org["id"], year).key
    with session_scope(clean_engine) as session:
        # This year's earlier redemptions used half the cap (the account opened at approval or here).
        from suanwang.settlement import chart

        found = chart.ensure(
            session, [accounts.cap(p["id"], ew.org["id"], year), accounts.cap_source(p["id"])]
        )
        found |= chart.ensure(session, [accounts.cap_used(p["id"])])
        cap_id = found[cap_key].id
        results = ledger.create_transfers(
            session,
            [
                TransferSpec(
                    id=f"{cap_key}/open",
                    debit_account_id=found[accounts.cap_source(p["id"]).key].id,
                    credit_account_id=cap_id,
                    amount=CAP,
                    ledger=accounts.QUOTA,
                    code="voucher-cap-open",
                ),
                TransferSpec(
                    id="earlier-redemptions",
                    debit_account_id=cap_id,
                    credit_account_id=found[accounts.cap_used(p["id"]).key].id,
                    amount=CAP - LEFT,
                    ledger=accounts.QUOTA,
                    code="voucher-cap",
                ),
            ],
            now=utcnow(),
        )
        assert [r.value for r in results] in (["ok", "ok"], ["exists", "ok"])
    jobs = [ew.submit(cards=1, duration_estimate_s=3600, accelerators=["A800"])["id"] for _ in range(32)]
    start = threading.Barrier(32)
    errors: list[BaseException] = []

    def settle(job_id: int) -> None:
        start.wait()
        try:
            end_job(clean_engine, job_id, dear["id"], cards=1, seconds=3600)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with session_scope(clean_engine) as session:
        paid = session.scalar(select(func.sum(VoucherRedemption.subsidy_fen))) or 0
        decisions = session.scalar(select(func.count()).select_from(VoucherRedemption))
        full = session.scalar(
            select(func.count()).select_from(VoucherRedemption).where(VoucherRedemption.subsidy_fen == EACH)
        )
        assert ledger.check_invariants(session) == []
    assert decisions == 32
    assert paid == LEFT and full == 10  # never above the cap, and nothing left unpaid that could be paid
    assert balance(clean_engine, cap_key) == 0
    assert balance(clean_engine, f"wallet/org/{ew.org['id']}") == factories.FUNDS_FEN - 32 * EACH + LEFT
