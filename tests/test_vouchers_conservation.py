"""Conservation across the whole ledger, generated (hypothesis): programmes with random ratios and caps,
stacked on one tenant, grants of random size, jobs of random usage on local and remote pools, settled
one by one. After every job the ledger's invariants hold, the tenant paid exactly the charge less the
subsidies, the providers and the fee received exactly the charge, the grants paid exactly the
subsidies, and no cap account ever went below zero."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.vouchers.models import VoucherRedemption
from tests import jobs_world
from tests.jobs_world import ExecWorld
from tests.voucher_world import end_job, grant, programme

pytestmark = pytest.mark.db

_programmes = itertools.count(1)


def _sums(engine: Engine, org_id: int, provider_ids: list[int]) -> dict[str, int]:
    """credits − debits (posted) of the tenant's money, the providers' payables, the fee, all grants."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                LedgerAccount.key,
                LedgerAccount.code,
                LedgerAccount.credits_posted,
                LedgerAccount.debits_posted,
            )
        ).all()
    net = {key: credits - debits for key, _, credits, debits in rows}
    return {
        "tenant": net.get(f"wallet/org/{org_id}", 0) + net.get(f"arrears/org/{org_id}", 0),
        "providers": sum(net.get(f"provider/{p}/payable", 0) for p in provider_ids),
        "fee": net.get("platform/fee", 0),
        "grants": sum(
            n for (key, code, _, _), n in zip(rows, net.values(), strict=True) if code == "voucher_grant"
        ),
        "caps_below_zero": sum(
            1
            for (_, code, _, _), n in zip(rows, net.values(), strict=True)
            if code == "voucher_cap" and n < 0
        ),
    }


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    ratio_bp=st.integers(1, 10_000),
    cap_year_fen=st.none() | st.integers(1, 5_000),
    cap_order_fen=st.none() | st.integers(1, 3_000),
    grant_fen=st.integers(1, 5_000),
    jobs=st.lists(
        st.tuples(st.booleans(), st.integers(1, 2), st.integers(60, 3 * 3600)), min_size=1, max_size=4
    ),
)
def test_money_is_conserved_whatever_the_programmes(
    ew: ExecWorld,
    clean_engine: Engine,
    ratio_bp: int,
    cap_year_fen: int | None,
    cap_order_fen: int | None,
    grant_fen: int,
    jobs: list[tuple[bool, int, int]],
) -> None:
    n = next(_programmes)
    cap_year = None if cap_year_fen is None else max(cap_year_fen, grant_fen)
    p = programme(
        ew.regulator,
        code=f"prop-{n}",
        ratio_bp=ratio_bp,
        tiers=[],
        min_claim_fen=0,
        cap_order_fen=cap_order_fen,
        cap_enterprise_year_fen=cap_year,
        stacking="ordered",
        stack_order=n,  # every example's programme stacks on the earlier ones' grants
    )
    grant(ew, p["id"], grant_fen)
    providers = [ew.local_site["provider_id"], ew.sim_site["provider_id"]]
    for local, cards, seconds in jobs:
        before = _sums(clean_engine, ew.org["id"], providers)
        job = ew.submit(cards=cards, duration_estimate_s=seconds, accelerators=["A800"])
        pool = ew.local_pool["id"] if local else ew.sim_pool["id"]
        end_job(clean_engine, job["id"], pool, cards=cards, seconds=seconds)
        charged = ew.regulator.get(f"/jobs/{job['id']}")["charged_fen"]
        with session_scope(clean_engine) as session:
            subsidy = session.scalar(
                select(func.coalesce(func.sum(VoucherRedemption.subsidy_fen), 0)).where(
                    VoucherRedemption.job_id == job["id"]
                )
            )
            assert ledger.check_invariants(session) == []
        after = _sums(clean_engine, ew.org["id"], providers)
        assert 0 <= subsidy <= charged
        assert before["tenant"] - after["tenant"] == charged - subsidy
        assert (after["providers"] + after["fee"]) - (before["providers"] + before["fee"]) == charged
        assert before["grants"] - after["grants"] == subsidy
        assert after["caps_below_zero"] == 0
        if not local:
            assert subsidy == 0  # the preset pays local providers only
