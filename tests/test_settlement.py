"""Settlement end to end: a hold at admission, the charge at finish in the same transaction as the job's
final state, providers and the fee paid, arrears when a job outruns its hold, top-ups and the money API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.jobs.models import Job
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.metering.models import UsageRecord
from suanwang.timeutil import SHANGHAI, utcnow
from tests import factories, jobs_world
from tests.helpers import assert_problem
from tests.jobs_world import ExecWorld, state_is
from tests.settlement_crash import add_ended_launch

pytestmark = pytest.mark.db

PRICE = 450  # fen per card-hour on the world's simulated A800 pool (jobs_world)


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def wallet(api: Any, org_id: int) -> dict[str, Any]:
    accounts = api.get(f"/orgs/{org_id}/accounts")
    return next(a for a in accounts if a["code"] == "tenant_wallet")


def arrears(api: Any, org_id: int) -> dict[str, Any]:
    accounts = api.get(f"/orgs/{org_id}/accounts")
    return next(a for a in accounts if a["code"] == "tenant_arrears")


def account(engine: Engine, key: str) -> Any:
    with session_scope(engine) as session:
        found = ledger.get_account(session, key=key)
        assert found is not None, key
        session.expunge(found)
        return found


def invariants(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return ledger.check_invariants(session)


def sim_job(ew: ExecWorld, api: Any | None = None, expect: int = 201, **spec: Any) -> dict[str, Any]:
    body = {"cards": 8, "duration_estimate_s": 3600, "accelerators": ["A800"]} | spec
    return ew.submit(api, expect=expect, **body)


def test_a_job_is_held_at_admission_and_charged_what_it_used(ew: ExecWorld, clean_engine: Engine) -> None:
    before = wallet(ew.tenant, ew.org["id"])
    job = sim_job(ew)
    assert job["hold_fen"] > 0 and job["charged_fen"] is None
    held = wallet(ew.tenant, ew.org["id"])
    assert held["held_fen"] == job["hold_fen"]
    assert held["available_fen"] == before["available_fen"] - job["hold_fen"]

    done = ew.run_until(job["id"], state_is("succeeded"))
    with session_scope(clean_engine) as session:
        usage = session.scalars(select(UsageRecord).where(UsageRecord.job_id == job["id"])).all()
    card_seconds = sum(u.card_seconds for u in usage)
    assert all(u.external_id for u in usage)  # the backend's own id of the launch
    expected = (card_seconds * PRICE + 1800) // 3600  # half up, once
    assert done["charged_fen"] == expected
    after = wallet(ew.tenant, ew.org["id"])
    assert after["held_fen"] == 0  # the rest of the hold is released
    assert after["balance_fen"] == before["balance_fen"] - expected

    fee = (expected * 500 + 5000) // 10000
    provider_id = ew.sim_site["provider_id"]
    assert account(clean_engine, f"provider/{provider_id}/payable").credits_posted == expected - fee
    assert account(clean_engine, "platform/fee").credits_posted == fee
    clearing = account(clean_engine, "platform/clearing")
    assert clearing.credits_posted == clearing.debits_posted and clearing.credits_pending == 0
    assert invariants(clean_engine) == []


def test_a_cancelled_queued_job_releases_its_hold(ew: ExecWorld, clean_engine: Engine) -> None:
    before = wallet(ew.tenant, ew.org["id"])
    job = sim_job(ew)
    cancelled = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert cancelled["state"] == "cancelled" and cancelled["charged_fen"] == 0
    after = wallet(ew.tenant, ew.org["id"])
    assert (after["held_fen"], after["balance_fen"]) == (0, before["balance_fen"])
    assert invariants(clean_engine) == []


def test_no_funds_refuses_the_job_and_stores_nothing(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine
) -> None:
    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    poor = factories.org(regulator, name="Poor SME", funds_fen=100)
    admin = factories.user(regulator, role="tenant_admin", org_id=poor["id"])
    api = regulator.as_(factories.token_for(regulator, admin["id"]))
    with clean_engine.connect() as conn:
        jobs_before = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
    response = api.call(
        "POST",
        "/jobs",
        json={"command": ["x"], "cards": 8, "duration_estimate_s": 3600, "accelerators": ["A800"]},
        headers={"Accept-Language": "zh-CN"},
    )
    assert_problem(response, 402, "job.insufficient-funds")
    assert "充值" in response.json()["detail"]
    with clean_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == jobs_before
    # CPU work costs nothing and needs no funds.
    assert ew.submit(api, cards=0)["hold_fen"] == 0
    # After a top-up the same job is admitted.
    regulator.post(f"/orgs/{poor['id']}/top-ups", {"amount_fen": 10_000_000, "reason": "paid by bank"})
    assert sim_job(ew, api)["state"] == "queued"


def test_several_jobs_in_one_batch_share_one_wallet(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine
) -> None:
    """The wallet covers two holds and not a third: the third is refused, the first two are held."""
    from suanwang.api.idempotency import IdempotencyKey
    from suanwang.jobs.intake import Submission, write_batch
    from suanwang.jobs.schemas import JobCreate

    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    probe = sim_job(ew)
    org = factories.org(regulator, name="Two Jobs SME", funds_fen=2 * probe["hold_fen"] + 1)
    admin = factories.user(regulator, role="tenant_admin", org_id=org["id"])
    token = factories.token_for(regulator, admin["id"])
    spec = {"command": ["x"], "cards": 8, "duration_estimate_s": 3600, "accelerators": ["A800"]}
    batch = [
        Submission(
            secret=token,
            idem=IdempotencyKey(key=f"k{i}", fingerprint="f" * 64),
            data=JobCreate.model_validate(spec),
            now=utcnow(),
            resolve=lambda outcome: None,
        )
        for i in range(3)
    ]
    with session_scope(clean_engine) as session:
        outcomes = write_batch(session, settings, batch)
    assert [getattr(o, "status_code", None) for o in outcomes[:2]] == [201, 201]
    assert getattr(outcomes[2], "code", None) == "job.insufficient-funds"
    assert wallet(regulator, org["id"])["available_fen"] == 1
    assert invariants(clean_engine) == []


def test_a_job_that_outruns_its_hold_books_arrears_when_the_wallet_is_empty(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine
) -> None:
    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    probe = sim_job(ew)
    org = factories.org(regulator, name="Tight SME", funds_fen=probe["hold_fen"])
    admin = factories.user(regulator, role="tenant_admin", org_id=org["id"])
    api = regulator.as_(factories.token_for(regulator, admin["id"]))
    job = sim_job(ew, api)
    assert wallet(api, org["id"])["available_fen"] == 0
    # An earlier attempt of it ran far longer than estimated (then it was cancelled while queued).
    hours = 8 * 3 * job["hold_fen"] // (8 * PRICE) + 8
    _add_usage(clean_engine, job["id"], ew.sim_pool["id"], cards=8, seconds=hours * 3600 // 8)
    done = api.post(f"/jobs/{job['id']}/cancel", expect=200)
    charge = done["charged_fen"]
    assert charge == (8 * (hours * 3600 // 8) * PRICE + 1800) // 3600
    assert charge > job["hold_fen"]
    assert wallet(api, org["id"])["balance_fen"] == 0  # the whole hold was taken
    owed = arrears(api, org["id"])
    assert owed["debits_posted"] - owed["credits_posted"] == charge - job["hold_fen"]
    provider_id = ew.sim_site["provider_id"]
    fee = (charge * 500 + 5000) // 10000
    assert account(clean_engine, f"provider/{provider_id}/payable").credits_posted == charge - fee
    # A top-up repays the arrears first.
    regulator.post(f"/orgs/{org['id']}/top-ups", {"amount_fen": charge, "reason": "paid by bank"})
    owed = arrears(api, org["id"])
    assert owed["debits_posted"] == owed["credits_posted"]
    assert wallet(api, org["id"])["balance_fen"] == job["hold_fen"]
    assert invariants(clean_engine) == []


def test_a_job_that_outruns_its_hold_pays_from_the_wallet_when_it_can(
    ew: ExecWorld, clean_engine: Engine
) -> None:
    before = wallet(ew.tenant, ew.org["id"])
    job = sim_job(ew)
    _add_usage(clean_engine, job["id"], ew.sim_pool["id"], cards=8, seconds=10 * 3600)
    done = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert done["charged_fen"] == 8 * 10 * PRICE > job["hold_fen"]
    assert wallet(ew.tenant, ew.org["id"])["balance_fen"] == before["balance_fen"] - done["charged_fen"]
    owed = arrears(ew.tenant, ew.org["id"])
    assert owed["debits_posted"] == 0
    assert invariants(clean_engine) == []


def _add_usage(engine: Engine, job_id: int, pool_id: int, *, cards: int, seconds: int) -> None:
    """An ended earlier attempt of the job with its usage record, as the controller writes them."""
    with session_scope(engine) as session:
        add_ended_launch(
            session,
            job_id,
            pool_id,
            cards=cards,
            seconds=seconds,
            end=utcnow() - timedelta(minutes=1),
            attempt=0,
        )


def test_settling_twice_changes_nothing(ew: ExecWorld, clean_engine: Engine) -> None:
    from suanwang.settlement.service import settle_job

    job = sim_job(ew)
    ew.run_until(job["id"], state_is("succeeded"))
    with clean_engine.connect() as conn:
        transfers = conn.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one()
    with session_scope(clean_engine) as session:
        settle_job(session, session.get_one(Job, job["id"]), utcnow())
    with clean_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one() == transfers
    assert invariants(clean_engine) == []


def test_money_api_roles_and_errors(ew: ExecWorld, clean_engine: Engine) -> None:
    org_id = ew.org["id"]
    # Tenants see their own accounts, not others'; they cannot move money.
    assert {a["owner_id"] for a in ew.tenant.get("/accounts")["items"]} == {org_id}
    ew.tenant.get(f"/orgs/{ew.other_org['id']}/accounts", expect=403)
    ew.tenant.post(f"/orgs/{org_id}/top-ups", {"amount_fen": 100, "reason": "x"}, expect=403)
    # Bad input: a clear error, nothing stored.
    with clean_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one()
    ew.regulator.post(f"/orgs/{org_id}/top-ups", {"amount_fen": 0, "reason": "x"}, expect=422)
    ew.regulator.post(f"/orgs/{org_id}/top-ups", {"amount_fen": 100, "reason": ""}, expect=422)
    ew.regulator.post(f"/orgs/{org_id}/top-ups", {"amount_fen": 1.5, "reason": "x"}, expect=422)
    ew.regulator.post(f"/orgs/{org_id}/adjustments", {"amount_fen": 0, "reason": "x"}, expect=422)
    too_much = wallet(ew.regulator, org_id)["available_fen"] + 1
    response = ew.regulator.call(
        "POST", f"/orgs/{org_id}/refunds", json={"amount_fen": too_much, "reason": "closing"}
    )
    assert_problem(response, 409, "money.insufficient")
    with clean_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one() == before
    # A top-up with an Idempotency-Key is made once.
    first = ew.regulator.post(
        f"/orgs/{org_id}/top-ups", {"amount_fen": 500, "reason": "bank"}, headers={"Idempotency-Key": "t1"}
    )
    again = ew.regulator.post(
        f"/orgs/{org_id}/top-ups", {"amount_fen": 500, "reason": "bank"}, headers={"Idempotency-Key": "t1"}
    )
    assert first == again and first["user_id"] is not None and first["reason"] == "bank"
    # Adjust down, credit limit, history and balance at a time.
    ew.regulator.post(f"/orgs/{org_id}/adjustments", {"amount_fen": -200, "reason": "duplicate top-up"})
    limited = ew.regulator.call("PUT", f"/orgs/{org_id}/credit-limit", json={"credit_limit_fen": 1000})
    assert limited.status_code == 200 and limited.json()["credit_limit_fen"] == 1000
    w = wallet(ew.tenant, org_id)
    history = ew.tenant.get(f"/accounts/{w['id']}/transfers")
    assert [t["code"] for t in history][-2:] == ["top-up", "adjustment"]
    past = ew.tenant.get(f"/accounts/{w['id']}/balance", params={"at": "2000-01-01T00:00:00Z"})
    assert past["balance_fen"] == 0
    ew.tenant.get(f"/accounts/{w['id']}/balance", params={"at": "2000-01-01T00:00:00"}, expect=422)
    # Payouts: never more than the provider is owed.
    provider_id = ew.sim_site["provider_id"]
    response = ew.regulator.call(
        "POST", f"/providers/{provider_id}/payouts", json={"amount_fen": 1, "reason": "monthly"}
    )
    assert_problem(response, 409, "money.insufficient")
    assert invariants(clean_engine) == []


def test_the_chart_keeps_every_ledger_at_zero(ew: ExecWorld, clean_engine: Engine) -> None:
    for _ in range(3):
        sim_job(ew)
    with session_scope(clean_engine) as session:
        totals = session.execute(
            select(
                func.sum(LedgerAccount.credits_posted - LedgerAccount.debits_posted),
                func.sum(LedgerAccount.credits_pending - LedgerAccount.debits_pending),
            )
        ).one()
    assert tuple(totals) == (0, 0)


def test_unfunded_jobs_can_wait_for_a_top_up(
    regulator: Any, clock: Any, settings: Settings, clean_engine: Engine
) -> None:
    """SUANWANG_UNFUNDED=queue: a job the wallet cannot cover is kept, says why it waits, is never
    scheduled, and is held and placed by the controller after a top-up."""
    from suanwang.api.idempotency import IdempotencyKey
    from suanwang.jobs.intake import Submission, write_batch
    from suanwang.jobs.schemas import JobCreate

    queue = settings.model_copy(update={"unfunded": "queue"})
    ew = jobs_world.build(regulator, clock, queue, clean_engine)
    poor = factories.org(regulator, name="Waiting SME", funds_fen=0)
    admin = factories.user(regulator, role="tenant_admin", org_id=poor["id"])
    api = regulator.as_(factories.token_for(regulator, admin["id"]))
    spec = {"command": ["x"], "cards": 8, "duration_estimate_s": 3600, "accelerators": ["A800"]}
    item = Submission(
        secret=api.token,
        idem=IdempotencyKey(key="w1", fingerprint="f" * 64),
        data=JobCreate.model_validate(spec),
        now=utcnow(),
        resolve=lambda outcome: None,
    )
    with session_scope(clean_engine) as session:
        (outcome,) = write_batch(session, queue, [item])
    job_id = json.loads(getattr(outcome, "body", b"{}"))["id"]
    waiting = api.get(f"/jobs/{job_id}", headers={"Accept-Language": "en"})
    assert waiting["state"] == "queued" and waiting["hold_fen"] is None
    assert waiting["reason"].startswith("waiting for funds")
    report = ew.cycle()
    assert report.funded == 0 and api.get(f"/jobs/{job_id}")["state"] == "queued"

    regulator.post(f"/orgs/{poor['id']}/top-ups", {"amount_fen": 10_000_000, "reason": "paid"})
    report = ew.cycle()
    assert report.funded == 1
    placed = api.get(f"/jobs/{job_id}")
    assert placed["hold_fen"] > 0 and placed["state"] in ("placed", "running", "succeeded")
    assert wallet(api, poor["id"])["held_fen"] in (placed["hold_fen"], 0)
    assert invariants(clean_engine) == []


def test_the_controller_releases_expired_holds(ew: ExecWorld, clean_engine: Engine) -> None:
    from suanwang.ledger.rules import TransferSpec
    from suanwang.settlement import chart

    with session_scope(clean_engine) as session:
        accounts = chart.ensure(session, [chart.wallet(ew.org["id"]), chart.CLEARING])
        results = ledger.create_transfers(
            session,
            [
                TransferSpec(
                    id="test/short-hold",
                    debit_account_id=accounts[chart.wallet(ew.org["id"]).key].id,
                    credit_account_id=accounts[chart.CLEARING.key].id,
                    amount=700,
                    ledger="CNY",
                    code="hold",
                    pending=True,
                    timeout_s=60,
                )
            ],
            now=utcnow(),
        )
        assert [r.value for r in results] == ["ok"]
    assert wallet(ew.tenant, ew.org["id"])["held_fen"] == 700
    later = ew.controller(clock=lambda: utcnow() + timedelta(minutes=2))
    try:
        assert later.lock.acquire()
        report = later.cycle()
    finally:
        later.lock.release()
        later.backends.close()
    assert report.expired_holds == 1
    assert wallet(ew.tenant, ew.org["id"])["held_fen"] == 0
    assert invariants(clean_engine) == []


def test_usage_reported_after_settlement_is_charged_late(ew: ExecWorld, clean_engine: Engine) -> None:
    """A provider's agent reports an earlier attempt after the job was settled: it is charged then,
    from the wallet, and paid to the provider — metered usage never goes unbilled."""
    from suanwang.jobs.models import Launch
    from tests.metering_support import CLOUDEVENTS_BATCH, event

    job = sim_job(ew)
    end = utcnow() - timedelta(minutes=10)
    with session_scope(clean_engine) as session:
        session.add(
            Launch(
                job_id=job["id"],
                attempt=0,
                pool_id=ew.sim_pool["id"],
                name=f"late-{job['id']}",
                remote_state="lost",
                recorded_at=end - timedelta(hours=1),
                closed=True,
            )
        )
    settled = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert settled["charged_fen"] == 0
    before = wallet(ew.tenant, ew.org["id"])["balance_fen"]

    operator = factories.user(ew.regulator, role="provider_operator", provider_id=ew.sim_site["provider_id"])
    agent = ew.regulator.as_(factories.token_for(ew.regulator, operator["id"]))
    report = agent.post(
        "/metering/events",
        json=[event(f"late-{job['id']}", started_at=end - timedelta(hours=1), ended_at=end, cards=8)],
        headers=CLOUDEVENTS_BATCH,
        expect=200,
    )
    assert report["recorded"] == 1
    charged = ew.tenant.get(f"/jobs/{job['id']}")["charged_fen"]
    assert charged == 8 * PRICE  # 8 card-hours
    assert wallet(ew.tenant, ew.org["id"])["balance_fen"] == before - charged
    fee = (charged * 500 + 5000) // 10000
    provider_id = ew.sim_site["provider_id"]
    assert account(clean_engine, f"provider/{provider_id}/payable").credits_posted == charged - fee
    month = utcnow().astimezone(SHANGHAI).strftime("%Y-%m")
    statement = ew.regulator.get(f"/providers/{provider_id}/statements/{month}")
    assert statement["net_fen"] == charged - fee and statement["gross_fen"] == charged
    invoice = ew.tenant.get(f"/orgs/{ew.org['id']}/invoices/{month}")
    assert sum(line["amount_fen"] for line in invoice["lines"]) == invoice["total_fen"] == charged
    assert invariants(clean_engine) == []
