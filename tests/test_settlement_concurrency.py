"""Sixteen submitters at once against one nearly empty wallet, through admission's holds, on
PostgreSQL: the wallet is never overdrawn and exactly as many jobs are admitted as it can hold.

PostgreSQL only (SQLite has one writer); CI and `make test` set SUANWANG_TEST_DATABASE_URL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.config import Settings
from suanwang.db.session import session_factory, session_scope
from suanwang.jobs import service
from suanwang.jobs.models import Job
from suanwang.jobs.schemas import JobCreate
from suanwang.ledger import store as ledger
from suanwang.settlement.service import PaymentRequired
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Role
from suanwang.timeutil import utcnow
from tests import factories, jobs_world
from tests.conftest import PG_URL

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SUANWANG_TEST_DATABASE_URL (CI does)"),
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]
SPEC = {"command": ["x"], "cards": 8, "duration_estimate_s": 3600, "accelerators": ["A800"]}


def test_sixteen_submitters_never_overdraw_a_wallet(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine
) -> None:
    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    hold = ew.submit(**SPEC)["hold_fen"]
    org = factories.org(regulator, name="Thin SME", funds_fen=3 * hold + hold // 2)
    admin = factories.user(regulator, role="tenant_admin", org_id=org["id"])
    principal = Principal(user_id=admin["id"], name=admin["name"], role=Role.TENANT_ADMIN, org_id=org["id"])
    sessions = session_factory(clean_engine)
    start = threading.Barrier(16)
    results: list[str] = []

    def submitter() -> None:
        start.wait()
        for _ in range(3):
            with sessions() as session:
                try:
                    service.submit(
                        session=session,
                        settings=settings,
                        principal=principal,
                        data=JobCreate.model_validate(SPEC),
                        now=utcnow(),
                    )
                    session.commit()
                    results.append("held")
                except PaymentRequired:
                    session.rollback()
                    results.append("refused")

    threads = [threading.Thread(target=submitter) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count("held") == 3 and results.count("refused") == 45
    with session_scope(clean_engine) as session:
        wallet = ledger.get_account(session, key=f"wallet/org/{org['id']}")
        assert wallet is not None
        assert wallet.debits_pending == 3 * hold <= wallet.credits_posted
        assert session.scalar(select(func.count()).select_from(Job).where(Job.org_id == org["id"])) == 3
        assert ledger.check_invariants(session) == []
