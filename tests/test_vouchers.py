"""Compute vouchers end to end: programmes from presets, applications and reviews, grants funded from the
budget, redemption inside settlement as linked ledger transfers, expiry, clawback, flags, quarterly
claims, and bad input that changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.ledger import store as ledger
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Role
from suanwang.timeutil import SHANGHAI, utcnow
from suanwang.vouchers import grants as grant_service
from suanwang.vouchers import redemption as redemption_service
from suanwang.vouchers.models import VoucherAudit, VoucherProgramme
from tests import factories, jobs_world
from tests.jobs_world import ExecWorld
from tests.voucher_world import balance, end_job, grant, programme, redemptions, run_job

pytestmark = pytest.mark.db

PRICE = 450  # fen per card-hour on the world's pools
FEE_BP = 500


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def invariants(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return ledger.check_invariants(session)


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- programmes ----------------------------------------------------------------------------------


def test_a_programme_from_a_preset_funds_its_budget(ew: ExecWorld, clean_engine: Engine) -> None:
    created = programme(ew.regulator)
    assert created["ratio_bp"] == 5000 and created["cap_order_fen"] == 20_000_000
    assert created["tenant_rules"]["localities"] == ["330482"] and created["preset"] == "pinghu-2026"
    assert balance(clean_engine, f"voucher/{created['id']}/budget") == created["budget_fen"] == 2_000_000_000
    budget = ew.regulator.get(f"/vouchers/programmes/{created['id']}/budget")
    assert budget["unallocated_fen"] == 2_000_000_000 and budget["granted_fen"] == 0
    # Tenants may read programmes (to know what to apply for), not create them.
    assert ew.tenant.get(f"/vouchers/programmes/{created['id']}")["code"] == created["code"]
    ew.tenant.post("/vouchers/programmes", {"preset": "pinghu-2026", "code": "mine"}, expect=403)
    assert invariants(clean_engine) == []


def test_presets_list_their_sources_and_what_they_leave_open(ew: ExecWorld) -> None:
    presets = {p["name"]: p for p in ew.tenant.get("/vouchers/presets")}
    assert {"chengdu-2023", "shenzhen-2024", "qingyang-2024", "beijing-2023", "pinghu-2026"} <= set(presets)
    assert all(p["values"]["source"] for p in presets.values())
    assert "ratio_bp" in presets["jiaxing"]["required"]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"ratio_bp": 0}, 422, "voucher.ratio-out-of-range"),
        ({"ratio_bp": 10_001}, 422, "voucher.ratio-out-of-range"),
        ({"ratio_bp": -5}, 422, "voucher.ratio-out-of-range"),
        ({"cap_order_fen": 100_000}, 422, "voucher.cap-below-min-claim"),  # min claim is 5,000 yuan
        ({"ends_on": "2020-01-01"}, 422, "voucher.period-reversed"),
        ({"preset": "jiaxing"}, 422, "voucher.missing-fields"),  # the source states no ratio or budget
        ({"preset": "atlantis"}, 404, "voucher.unknown-preset"),
    ],
)
def test_bad_programmes_are_refused_and_nothing_is_stored(
    ew: ExecWorld, clean_engine: Engine, fields: dict[str, Any], status: int, code: str
) -> None:
    response = ew.regulator.call(
        "POST",
        "/vouchers/programmes",
        json={
            "preset": "pinghu-2026",
            "code": "bad",
            "starts_on": utcnow().date().isoformat(),
            "ends_on": (utcnow().date() + timedelta(days=30)).isoformat(),
        }
        | fields,
        headers={"Accept-Language": "zh-CN"},
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert count(clean_engine, VoucherProgramme) == 0
    with session_scope(clean_engine) as session:
        assert ledger.get_account(session, key="voucher/1/budget") is None


def test_overlapping_programmes_must_both_stack(ew: ExecWorld, clean_engine: Engine) -> None:
    programme(ew.regulator)
    clash = programme(ew.regulator, expect=409, code="another")
    assert clash["code"] == "voucher.overlap-no-stacking"
    assert count(clean_engine, VoucherProgramme) == 1
    # Shanghai's city and district money stack in a stated order.
    today = utcnow().date()
    period = {"starts_on": today.isoformat(), "ends_on": (today + timedelta(days=90)).isoformat()}
    city = {"preset": "shanghai-2025-city", "budget_fen": 10**9, "tenant_rules": {"localities": ["31"]}}
    district = {
        "preset": "shanghai-2025-district",
        "budget_fen": 10**9,
        "tenant_rules": {"localities": ["31"]},
    }
    ew.regulator.post(
        "/vouchers/programmes", city | period | {"starts_on": "2030-01-01", "ends_on": "2030-12-31"}
    )
    ew.regulator.post("/vouchers/programmes", district | {"starts_on": "2030-01-01", "ends_on": "2030-12-31"})


# --- applications, reviews, grants ---------------------------------------------------------------


def test_apply_review_grant(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    application = ew.tenant.post(
        "/vouchers/applications",
        {
            "programme_id": p["id"],
            "requested_fen": 50_000_000,
            "purpose": "train a defect-detection model",
            "attachments": [{"name": "plan.pdf", "size_bytes": 1024, "sha256": "a" * 64}],
        },
        headers={"Idempotency-Key": "apply-1"},
    )
    assert application["status"] == "submitted" and application["org_id"] == ew.org["id"]
    again = ew.tenant.post(
        "/vouchers/applications",
        {
            "programme_id": p["id"],
            "requested_fen": 50_000_000,
            "purpose": "train a defect-detection model",
            "attachments": [{"name": "plan.pdf", "size_bytes": 1024, "sha256": "a" * 64}],
        },
        headers={"Idempotency-Key": "apply-1"},
    )
    assert again["id"] == application["id"]  # a retry, not a second application
    second = ew.tenant.post(
        "/vouchers/applications",
        {"programme_id": p["id"], "requested_fen": 600_000, "purpose": "more"},
        expect=409,
    )
    assert second["code"] == "voucher.application-open"
    # Tenants cannot review; other tenants do not see the application.
    ew.tenant.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "approve", "reason": "x"},
        expect=403,
    )
    ew.other.get(f"/vouchers/applications/{application['id']}", expect=404)
    assert ew.other.get("/vouchers/applications")["total"] == 0

    reviewed = ew.regulator.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "approve", "amount_fen": 30_000_000, "reason": "approved in part"},
        expect=200,
    )
    assert reviewed["status"] == "approved" and reviewed["approved_fen"] == 30_000_000
    g = ew.tenant.get(f"/vouchers/grants/{reviewed['grant_id']}")
    assert g["amount_fen"] == g["available_fen"] == 30_000_000 and g["status"] == "active"
    assert balance(clean_engine, f"voucher/{p['id']}/budget") == 2_000_000_000 - 30_000_000
    ew.regulator.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "reject", "reason": "changed my mind"},
        expect=409,
    )
    actions = [a["action"] for a in ew.regulator.get("/vouchers/audit?sort=id")["items"]]
    assert actions == ["programme.created", "application.submitted", "application.approved"]
    assert invariants(clean_engine) == []


def test_rejection_grants_nothing(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    application = ew.tenant.post(
        "/vouchers/applications", {"programme_id": p["id"], "requested_fen": 600_000, "purpose": "x"}
    )
    reviewed = ew.regulator.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "reject", "reason": "purpose not eligible"},
        expect=200,
    )
    assert reviewed["status"] == "rejected" and reviewed["grant_id"] is None
    assert reviewed["review_reason"] == "purpose not eligible"
    assert balance(clean_engine, f"voucher/{p['id']}/budget") == 2_000_000_000


@pytest.mark.parametrize(
    ("org_fields", "requested", "status", "code"),
    [
        (
            {"credit_code": factories.credit_code("110105")},
            600_000,
            422,
            "voucher.tenant-ineligible.locality",
        ),
        ({"is_sme": False}, 600_000, 422, "voucher.tenant-ineligible.sme"),
        ({"kind": "government_unit"}, 600_000, 422, "voucher.tenant-ineligible.kind"),
        ({}, 499_999, 422, "voucher.below-min-claim"),
        ({}, 200_000_001, 422, "voucher.above-cap"),
    ],
)
def test_ineligible_applications_are_refused_and_nothing_is_stored(
    ew: ExecWorld, clean_engine: Engine, org_fields: dict[str, Any], requested: int, status: int, code: str
) -> None:
    p = programme(ew.regulator)
    org = factories.org(ew.regulator, **org_fields)
    admin = factories.user(ew.regulator, role="tenant_admin", org_id=org["id"])
    api = ew.regulator.as_(factories.token_for(ew.regulator, admin["id"]))
    problem = api.post(
        "/vouchers/applications",
        {"programme_id": p["id"], "requested_fen": requested, "purpose": "x"},
        expect=status,
    )
    assert problem["code"] == code
    assert ew.regulator.get("/vouchers/applications")["total"] == 0
    assert [a["action"] for a in ew.regulator.get("/vouchers/audit")["items"]] == ["programme.created"]


def test_a_grant_cannot_exceed_the_budget(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator, budget_fen=1_000_000, cap_enterprise_year_fen=1_000_000, cap_order_fen=None)
    first = grant(ew, p["id"], 700_000)
    assert first["amount_fen"] == 700_000
    other_admin = factories.user(ew.regulator, role="tenant_admin", org_id=ew.other_org["id"])
    api = ew.regulator.as_(factories.token_for(ew.regulator, other_admin["id"]))
    application = api.post(
        "/vouchers/applications", {"programme_id": p["id"], "requested_fen": 700_000, "purpose": "x"}
    )
    problem = ew.regulator.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "approve", "reason": "ok"},
        expect=409,
    )
    assert problem["code"] == "voucher.budget-exhausted"
    assert ew.regulator.get(f"/vouchers/applications/{application['id']}")["status"] == "submitted"
    assert balance(clean_engine, f"voucher/{p['id']}/budget") == 300_000


# --- redemption at settlement --------------------------------------------------------------------


def test_settlement_redeems_the_voucher_share(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    g = grant(ew, p["id"], 10_000_000)
    wallet_key = f"wallet/org/{ew.org['id']}"
    provider_key = f"provider/{ew.local_site['provider_id']}/payable"
    before_wallet = balance(clean_engine, wallet_key)

    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    charge = 2 * PRICE  # two card-hours
    assert job["charged_fen"] == charge
    subsidy = charge * 5000 // 10_000  # 50 % on an imported L40S
    (record,) = redemptions(clean_engine, job["id"])
    assert record.subsidy_fen == subsidy and record.status == "paid"
    assert {r["reason"]: r["amount_fen"] for r in record.refusals} == {"tenant-share": charge - subsidy}
    assert balance(clean_engine, wallet_key) == before_wallet - (charge - subsidy)
    fee = (charge * FEE_BP + 5000) // 10_000
    assert balance(clean_engine, provider_key) == charge - fee  # the provider gets the full charge less fee
    after = ew.tenant.get(f"/vouchers/grants/{g['id']}")
    assert after["redeemed_fen"] == subsidy and after["available_fen"] == 10_000_000 - subsidy
    # The invoice shows the subsidy and what is due.
    month = utcnow().astimezone(SHANGHAI).strftime("%Y-%m")
    invoice = ew.tenant.get(f"/orgs/{ew.org['id']}/invoices/{month}")
    assert invoice["subsidy_fen"] == subsidy and invoice["due_fen"] == invoice["total_fen"] - subsidy
    assert invoice["subsidies"][0]["programme"] == p["code"]
    # The cap account moved by the same amount (quota).
    cap_key = f"voucher/{p['id']}/cap/{ew.org['id']}/{utcnow().year}"
    assert balance(clean_engine, cap_key) == 200_000_000 - subsidy
    assert ew.tenant.get(f"/vouchers/redemptions?job_id={job['id']}")["total"] == 1
    # The provider's statement shows the whole charge, whoever paid it.
    statement = ew.regulator.get(f"/providers/{ew.local_site['provider_id']}/statements/{month}")
    assert (statement["gross_fen"], statement["fee_fen"], statement["net_fen"]) == (charge, fee, charge - fee)
    assert ew.other.get(f"/vouchers/redemptions?job_id={job['id']}")["total"] == 0
    assert invariants(clean_engine) == []


def test_a_full_subsidy_pays_the_provider_and_the_fee_from_the_grant(
    ew: ExecWorld, clean_engine: Engine
) -> None:
    p = programme(ew.regulator, ratio_bp=10_000, tiers=[])
    grant(ew, p["id"], 10_000_000)
    wallet_key = f"wallet/org/{ew.org['id']}"
    before = balance(clean_engine, wallet_key)
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    charge = 2 * PRICE
    fee = (charge * FEE_BP + 5000) // 10_000
    (record,) = redemptions(clean_engine, job["id"])
    assert record.subsidy_fen == charge and record.refusals == []
    assert sorted(record.transfer_ids) == [
        f"job/{job['id']}/pool/{ew.local_pool['id']}/v{p['id']}/fee",
        f"job/{job['id']}/pool/{ew.local_pool['id']}/v{p['id']}/provider",
    ]
    assert balance(clean_engine, wallet_key) == before  # the tenant pays nothing
    assert balance(clean_engine, f"provider/{ew.local_site['provider_id']}/payable") == charge - fee
    month = utcnow().astimezone(SHANGHAI).strftime("%Y-%m")
    statement = ew.regulator.get(f"/providers/{ew.local_site['provider_id']}/statements/{month}")
    assert (statement["gross_fen"], statement["fee_fen"], statement["net_fen"]) == (charge, fee, charge - fee)
    invoice = ew.tenant.get(f"/orgs/{ew.org['id']}/invoices/{month}")
    assert (invoice["total_fen"], invoice["subsidy_fen"], invoice["due_fen"]) == (charge, charge, 0)
    assert invariants(clean_engine) == []


def test_non_local_and_affiliated_providers_get_no_subsidy(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    grant(ew, p["id"], 10_000_000)
    away = run_job(ew, ew.sim_pool["id"], cards=8, seconds=1800, accelerators=["A800"])
    (record,) = redemptions(clean_engine, away["id"])
    assert record.subsidy_fen == 0
    assert record.refusals == [
        {"reason": "provider-ineligible", "amount_fen": away["charged_fen"], "detail": "local"}
    ]
    # Same group as the local provider: refused whatever the rules.
    ew.regulator.patch(f"/providers/{ew.local_site['provider_id']}", {"affiliation_group": "Group A"})
    ew.regulator.patch(f"/orgs/{ew.org['id']}", {"affiliation_group": "Group A"})
    near = run_job(ew, ew.local_pool["id"], cards=2, seconds=600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, near["id"])
    assert record.subsidy_fen == 0 and record.refusals[0]["reason"] == "affiliated"
    refused = ew.regulator.get(f"/vouchers/audit?action=redemption.refused&org_id={ew.org['id']}")
    assert refused["total"] == 2
    assert invariants(clean_engine) == []


def test_domestic_chips_get_the_higher_ratio_and_the_order_cap_holds(
    ew: ExecWorld, clean_engine: Engine
) -> None:
    p = programme(ew.regulator, cap_order_fen=1_000, min_claim_fen=100)  # a ¥10 cap per order
    ascend = factories.pool(
        ew.regulator, ew.local_site["id"], accelerator="ASCEND-910B", nodes=1, cards_per_node=8
    )
    ew.regulator.post(
        f"/pools/{ascend['id']}/prices",
        {"price_fen_per_card_hour": 300, "effective_from": jobs_world.PRICE_FROM.isoformat()},
    )
    grant(ew, p["id"], 10_000_000)
    small = run_job(ew, ascend["id"], cards=1, seconds=3600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, small["id"])
    assert record.tier == "domestic-chips" and record.subsidy_fen == 300 * 6000 // 10_000
    big = run_job(ew, ascend["id"], cards=8, seconds=3600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, big["id"])
    assert record.subsidy_fen == 1_000
    refused = {r["reason"]: r["amount_fen"] for r in record.refusals}
    assert refused == {"tenant-share": 2400 - 1440, "order-cap": 1440 - 1_000}


def test_a_suspended_tenant_stops_redeeming_until_the_flag_is_lifted(
    ew: ExecWorld, clean_engine: Engine
) -> None:
    p = programme(ew.regulator)
    grant(ew, p["id"], 10_000_000)
    flag = ew.regulator.post(
        "/vouchers/flags",
        {
            "org_id": ew.org["id"],
            "kind": "suspended",
            "effective_on": utcnow().date().isoformat(),
            "reason": "invoices under review",
        },
    )
    held = run_job(ew, ew.local_pool["id"], cards=2, seconds=600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, held["id"])
    assert record.subsidy_fen == 0 and record.refusals[0]["reason"] == "tenant-flagged"
    ew.regulator.post(f"/vouchers/flags/{flag['id']}/lift", {"reason": "cleared"}, expect=200)
    freed = run_job(ew, ew.local_pool["id"], cards=2, seconds=600, accelerators=["A800"])
    assert redemptions(clean_engine, freed["id"])[0].subsidy_fen > 0
    actions = [
        a["action"] for a in ew.regulator.get(f"/vouchers/audit?org_id={ew.org['id']}&sort=id")["items"]
    ]
    assert actions[-4:] == ["flag.suspended", "redemption.refused", "flag.lifted", "redemption"]


def test_a_grant_that_runs_out_pays_what_is_left(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator, min_claim_fen=100)
    g = grant(ew, p["id"], 300)
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, job["id"])
    assert record.subsidy_fen == 300
    assert {r["reason"] for r in record.refusals} == {"tenant-share", "grant-exhausted"}
    assert ew.tenant.get(f"/vouchers/grants/{g['id']}")["available_fen"] == 0
    assert invariants(clean_engine) == []


def test_expiry_returns_what_is_left_to_the_budget(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    g = grant(ew, p["id"], 1_000_000)
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    used = redemptions(clean_engine, job["id"])[0].subsidy_fen
    with session_scope(clean_engine) as session:
        assert grant_service.expire_grants(session, now=utcnow()) == (0, 0)  # not yet
        expired = grant_service.expire_grants(session, now=utcnow() + timedelta(days=366))
    assert expired == (1, 1_000_000 - used)
    after = ew.tenant.get(f"/vouchers/grants/{g['id']}")
    assert (
        after["status"] == "expired"
        and after["available_fen"] == 0
        and after["returned_fen"] == 1_000_000 - used
    )
    assert balance(clean_engine, f"voucher/{p['id']}/budget") == 2_000_000_000 - used
    # An expired grant pays nothing more; the tenant may apply again.
    later = run_job(ew, ew.local_pool["id"], cards=2, seconds=600, accelerators=["A800"])
    assert redemptions(clean_engine, later["id"]) == []
    assert invariants(clean_engine) == []


def test_clawback_takes_the_subsidy_back_with_a_reason(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    grant(ew, p["id"], 10_000_000)
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, job["id"])
    wallet_key = f"wallet/org/{ew.org['id']}"
    before = balance(clean_engine, wallet_key)
    ew.regulator.post(
        f"/vouchers/redemptions/{record.id}/clawbacks", {"amount_fen": 100, "reason": "duplicate invoice"}
    )
    too_much = ew.regulator.post(
        f"/vouchers/redemptions/{record.id}/clawbacks",
        {"amount_fen": record.subsidy_fen, "reason": "x"},
        expect=422,
    )
    assert too_much["code"] == "voucher.clawback-too-much"
    assert balance(clean_engine, wallet_key) == before - 100
    assert balance(clean_engine, f"voucher/{p['id']}/budget") == 2_000_000_000 - 10_000_000 + 100
    cap_key = f"voucher/{p['id']}/cap/{ew.org['id']}/{utcnow().year}"
    assert balance(clean_engine, cap_key) == 200_000_000 - record.subsidy_fen + 100
    audit = ew.regulator.get("/vouchers/audit?action=clawback")["items"]
    assert audit[0]["reason"] == "duplicate invoice" and audit[0]["amount_fen"] == 100
    ew.tenant.post(f"/vouchers/redemptions/{record.id}/clawbacks", {"reason": "x"}, expect=403)
    assert invariants(clean_engine) == []


def test_quarterly_claims_pay_the_provider_when_the_quarter_is_settled(
    ew: ExecWorld, clean_engine: Engine
) -> None:
    today = utcnow().date()
    p = programme(
        ew.regulator,
        preset="qingyang-2024",
        code="qingyang-test",
        budget_fen=1_000_000_000,
        tenant_rules={"localities": ["33"]},
        starts_on=(today - timedelta(days=30)).isoformat(),
        ends_on=(today + timedelta(days=30)).isoformat(),
    )
    grant(ew, p["id"], 1_000_000)
    provider_key = f"provider/{ew.local_site['provider_id']}/payable"
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    (record,) = redemptions(clean_engine, job["id"])
    charge, subsidy = 900, 900 * 3000 // 10_000
    fee = (charge * FEE_BP + 5000) // 10_000
    assert record.status == "claimed" and record.subsidy_fen == subsidy
    assert balance(clean_engine, provider_key) == charge - fee - subsidy  # the voucher's share is pending
    quarter = f"{utcnow().year}Q{(utcnow().month - 1) // 3 + 1}"
    early = ew.regulator.post(f"/vouchers/programmes/{p['id']}/claims/{quarter}/settle", expect=422)
    assert early["code"] == "voucher.quarter-not-ended"
    regulator = Principal(user_id=1, name="admin", role=Role.REGULATOR)
    with session_scope(clean_engine) as session:
        settled = redemption_service.settle_claims(
            session,
            principal=regulator,
            programme_id=p["id"],
            quarter=quarter,
            now=utcnow() + timedelta(days=100),
        )
    assert settled.claims == 1 and settled.amount_fen == subsidy
    assert balance(clean_engine, provider_key) == charge - fee
    assert redemptions(clean_engine, job["id"])[0].status == "settled"
    assert invariants(clean_engine) == []


def test_settling_a_job_twice_never_subsidises_twice(ew: ExecWorld, clean_engine: Engine) -> None:
    from suanwang.jobs.models import Job
    from suanwang.settlement.service import settle_job

    p = programme(ew.regulator)
    grant(ew, p["id"], 10_000_000)
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    with session_scope(clean_engine) as session:
        settle_job(session, session.get_one(Job, job["id"]), utcnow())
    assert len(redemptions(clean_engine, job["id"])) == 1
    g = ew.regulator.get("/vouchers/grants")["items"][0]
    assert g["redeemed_fen"] == redemptions(clean_engine, job["id"])[0].subsidy_fen
    assert invariants(clean_engine) == []


def test_late_usage_is_subsidised_on_its_own(ew: ExecWorld, clean_engine: Engine) -> None:
    """Usage an agent reports after the job was settled is charged then, and the voucher pays its share
    of it as its own part."""
    from suanwang.jobs.models import Launch
    from tests.metering_support import CLOUDEVENTS_BATCH, event

    p = programme(ew.regulator)
    grant(ew, p["id"], 10_000_000)
    job = ew.submit(cards=2, duration_estimate_s=3600, accelerators=["A800"])
    end = utcnow() - timedelta(minutes=10)
    with session_scope(clean_engine) as session:
        session.add(
            Launch(
                job_id=job["id"],
                attempt=0,
                pool_id=ew.local_pool["id"],
                name=f"late-{job['id']}",
                remote_state="lost",
                recorded_at=end - timedelta(hours=1),
                closed=True,
            )
        )
    end_job(clean_engine, job["id"], ew.local_pool["id"], cards=2, seconds=1800)
    operator = factories.user(
        ew.regulator, role="provider_operator", provider_id=ew.local_site["provider_id"]
    )
    agent = ew.regulator.as_(factories.token_for(ew.regulator, operator["id"]))
    report = agent.post(
        "/metering/events",
        json=[event(f"late-{job['id']}", started_at=end - timedelta(hours=1), ended_at=end, cards=2)],
        headers=CLOUDEVENTS_BATCH,
        expect=200,
    )
    assert report["recorded"] == 1
    parts = {r.part: r.subsidy_fen for r in redemptions(clean_engine, job["id"])}
    assert parts.pop("") == 450 * 5000 // 10_000  # one card-hour at half
    ((late_part, late_subsidy),) = parts.items()
    assert late_part.startswith("late/") and late_subsidy == 900 * 5000 // 10_000  # two card-hours at half
    assert invariants(clean_engine) == []


def test_every_decision_is_audited_with_its_actor(ew: ExecWorld, clean_engine: Engine) -> None:
    p = programme(ew.regulator)
    grant(ew, p["id"], 10_000_000)
    run_job(ew, ew.local_pool["id"], cards=2, seconds=600, accelerators=["A800"])
    with session_scope(clean_engine) as session:
        rows = session.scalars(select(VoucherAudit).order_by(VoucherAudit.id)).all()
        by_action = {row.action: row for row in rows}
    assert by_action["application.submitted"].actor_id is not None
    assert by_action["application.approved"].actor_id == 1  # the regulator
    assert by_action["redemption"].actor_id is None  # the platform, at settlement
    assert by_action["redemption"].detail["refused"]["tenant-share"] > 0
