"""An enterprise's profile shows what its tenant organisation used on the platform and what vouchers paid:
the figures come from the jobs really settled and the redemptions in the ledger."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.config import Settings
from tests import jobs_world
from tests.jobs_world import ExecWorld
from tests.voucher_world import grant, programme, run_job

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def test_the_profile_carries_platform_use_and_subsidies(ew: ExecWorld) -> None:
    record = ew.regulator.post(
        "/registry/enterprises",
        {"credit_code": ew.org["credit_code"], "name": ew.org["name"], "segments": ["ai_applications"]},
    )
    assert record["org_id"] == ew.org["id"]
    p = programme(ew.regulator)
    g = grant(ew, p["id"], 10_000_000)
    first = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    second = run_job(ew, ew.local_pool["id"], cards=1, seconds=1800, accelerators=["A800"])

    profile = ew.tenant.get(f"/registry/enterprises/{record['id']}")["platform"]
    assert profile["jobs"] == {"succeeded": 2}
    assert profile["card_seconds"] == 2 * 3600 + 1800
    assert profile["charged_fen"] == first["charged_fen"] + second["charged_fen"] > 0
    grant_now = ew.tenant.get(f"/vouchers/grants/{g['id']}")
    assert profile["subsidy_fen"] == grant_now["redeemed_fen"] > 0
    (shown,) = profile["grants"]
    assert shown["programme"] == p["code"] and shown["available_fen"] == grant_now["available_fen"]
    # The other organisation's admin cannot see this profile.
    ew.other.get(f"/registry/enterprises/{record['id']}", expect=404)
