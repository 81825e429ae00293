"""The jobs API: submit (admission, idempotency, nothing stored on bad input), visibility, cancel, quote
and reservations, on the test world of tests/jobs_world.py (a local, a simulated and a government pool)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from suanwang.config import Settings
from suanwang.timeutil import utcnow
from tests import factories, jobs_world
from tests.helpers import assert_problem, has_cjk, ids
from tests.jobs_world import ExecWorld, state_is

pytestmark = pytest.mark.db

COMMAND = ["python3", "train.py", "--epochs", "3"]
TABLES = ("jobs", "job_events", "launches", "reservations", "idempotency_keys")


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def stored(engine: Engine) -> dict[str, int]:
    """Rows in every table the jobs slice writes to."""
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in TABLES}


def spec(**fields: Any) -> dict[str, Any]:
    return {"command": COMMAND, "cards": 1, "duration_estimate_s": 3600} | fields


def real_now() -> datetime:
    """jobs_world.build moves the API clock to real time (like the backends')."""
    return utcnow()


def operator_of(ew: ExecWorld, provider_id: int) -> Any:
    user = factories.user(ew.regulator, role="provider_operator", provider_id=provider_id)
    return ew.regulator.as_(factories.token_for(ew.regulator, user["id"]))


# --- submit --------------------------------------------------------------------------------------


def test_submit_queues_the_job_and_records_its_history(ew: ExecWorld) -> None:
    job = ew.tenant.post(
        "/jobs",
        spec(name="resnet", accelerators=["a800"], env={"WANDB_KEY": "s3cret"}, workdir="/data/run1"),
        expect=201,
    )
    assert job["state"] == "queued"
    assert (job["org_id"], job["attempt"], job["pool_id"]) == (ew.org["id"], 0, None)
    assert job["accelerators"] == ["A800"]  # as the catalogue spells it
    assert job["priority"] == "normal" and job["classification"] == "public"
    assert job["command"] == COMMAND and job["env"] == {"WANDB_KEY": "s3cret"}
    assert job["submitted_at"] and job["ended_at"] is None
    assert ew.tenant.get(f"/jobs/{job['id']}") == job
    events = ew.tenant.get(f"/jobs/{job['id']}/events")
    assert [(e["from_state"], e["to_state"], e["cause"]) for e in events] == [
        (None, "submitted", "submitted"),
        ("submitted", "queued", "admitted"),
    ]
    assert all(e["text"] and e["attempt"] == 0 for e in events)
    assert stored(ew.engine)["jobs"] == 1


def test_the_regulator_submits_for_an_organisation_and_operators_cannot(ew: ExecWorld) -> None:
    assert_problem(ew.regulator.call("POST", "/jobs", json=spec()), 422, "job.org-required")
    job = ew.regulator.post("/jobs", spec(org_id=ew.org["id"], priority="urgent"))
    assert (job["org_id"], job["priority"]) == (ew.org["id"], "urgent")
    assert_problem(ew.operator.call("POST", "/jobs", json=spec()), 403, "job.tenants-only")
    assert_problem(
        ew.tenant.call("POST", "/jobs", json=spec(org_id=ew.other_org["id"])), 403, "job.other-org"
    )
    assert stored(ew.engine)["jobs"] == 1


def test_government_units_may_use_urgent(ew: ExecWorld) -> None:
    unit = factories.org(ew.regulator, name="Pinghu Emergency Office", kind="government_unit", is_sme=False)
    user = factories.user(ew.regulator, role="tenant_member", org_id=unit["id"])
    caller = ew.regulator.as_(factories.token_for(ew.regulator, user["id"]))
    assert caller.post("/jobs", spec(priority="urgent"))["priority"] == "urgent"


def test_an_idempotency_key_replays_the_same_job(ew: ExecWorld) -> None:
    key = {"Idempotency-Key": "submit-7f1c"}
    first = ew.tenant.call("POST", "/jobs", json=spec(name="once"), headers=key, expect=201)
    again = ew.tenant.call("POST", "/jobs", json=spec(name="once"), headers=key, expect=201)
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert stored(ew.engine)["jobs"] == 1
    other_body = ew.tenant.call("POST", "/jobs", json=spec(name="twice"), headers=key)
    assert_problem(other_body, 409, "idempotency.key-reused")
    assert stored(ew.engine)["jobs"] == 1
    # The key belongs to its user: another user's same key is another request.
    ew.member.call("POST", "/jobs", json=spec(name="once"), headers=key, expect=201)
    assert stored(ew.engine)["jobs"] == 2


BAD_SUBMITS = [
    pytest.param({"command": []}, 422, "invalid-request", None, id="empty-command"),
    pytest.param({"command": [""]}, 422, "invalid-request", "command", id="empty-program"),
    pytest.param({"command": ["   ", "x"]}, 422, "invalid-request", "command", id="blank-program"),
    pytest.param({"command": ["sh", "a\x00b"]}, 422, "invalid-request", None, id="nul-in-argument"),
    pytest.param({"cards": 17}, 422, "job.too-many-cards", "16", id="more-cards-than-any-pool"),
    pytest.param({"cards": 3, "accelerators": ["L40S"]}, 422, "job.too-many-cards", "2", id="more-than-l40s"),
    pytest.param(
        {"accelerators": ["H900"]}, 422, "job.unknown-accelerator", "H800", id="unknown-accelerator"
    ),
    pytest.param(
        {"accelerators": ["H800"]}, 422, "job.accelerator-not-offered", "A800", id="accelerator-not-offered"
    ),
    pytest.param(
        {"deadline": "2020-01-01T00:00:00+08:00"}, 422, "job.deadline-past", "2019", id="deadline-past"
    ),
    pytest.param(
        {"deadline": "2030-01-01T00:00:00"}, 422, "invalid-request", None, id="deadline-without-zone"
    ),
    pytest.param(
        {"classification": "government", "regions": ["gs-qingyang"]},
        422,
        "job.no-government-pool",
        "zj-jiaxing-pinghu",
        id="no-government-pool-in-regions",
    ),
    pytest.param({"cards": -1}, 422, "invalid-request", "cards", id="negative-cards"),
    pytest.param({"cards": 4, "cards_per_node": 3}, 422, "job.cards-per-node", None, id="cards-per-node"),
    pytest.param({"duration_estimate_s": 0}, 422, "invalid-request", None, id="zero-duration"),
    pytest.param({"max_price_fen_per_card_hour": 100}, 422, "job.no-pool", "price", id="too-cheap"),
    pytest.param({"env": {"1BAD": "x"}}, 422, "invalid-request", None, id="bad-env-name"),
    pytest.param({"env": {"K": "a\x00b"}}, 422, "invalid-request", None, id="nul-in-env-value"),
    pytest.param({"workdir": "/data/a\x00b"}, 422, "invalid-request", "workdir", id="nul-in-workdir"),
    pytest.param({"job_type": "t" * 101}, 422, "invalid-request", "job_type", id="job-type-too-long"),
    pytest.param({"priority": "urgent"}, 403, "job.urgent-reserved", None, id="urgent-by-an-enterprise"),
    pytest.param({"priority": "asap"}, 422, "invalid-request", None, id="unknown-priority"),
    pytest.param({"gpus": 2}, 422, "invalid-request", "gpus", id="unknown-field"),
]


@pytest.mark.parametrize(("change", "status", "code", "needle"), BAD_SUBMITS)
def test_bad_input_is_refused_and_nothing_is_stored(
    ew: ExecWorld, change: dict[str, Any], status: int, code: str, needle: str | None
) -> None:
    before = stored(ew.engine)
    key = {"Idempotency-Key": f"bad-{code}"}
    body = assert_problem(ew.tenant.call("POST", "/jobs", json=spec(**change), headers=key), status, code)
    if needle is not None:
        assert needle in body["detail"], body
    assert stored(ew.engine) == before
    # The refused request did not use up its key: the same key with a good body creates the job.
    ew.tenant.call("POST", "/jobs", json=spec(), headers=key, expect=201)
    assert stored(ew.engine)["jobs"] == before["jobs"] + 1


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"accelerators": ["H900"]}, 422, "job.unknown-accelerator"),
        ({"accelerators": ["H800"]}, 422, "job.accelerator-not-offered"),
        ({"cards": 17}, 422, "job.too-many-cards"),
        ({"deadline": "2020-01-01T00:00:00+08:00"}, 422, "job.deadline-past"),
        ({"classification": "government", "regions": ["gs-qingyang"]}, 422, "job.no-government-pool"),
        ({"priority": "urgent"}, 403, "job.urgent-reserved"),
        ({"cards": -1}, 422, "invalid-request"),
    ],
)
def test_refusals_speak_chinese_when_asked(
    ew: ExecWorld, change: dict[str, Any], status: int, code: str
) -> None:
    zh = {"Accept-Language": "zh-CN"}
    body = assert_problem(ew.tenant.call("POST", "/jobs", json=spec(**change), headers=zh), status, code)
    assert has_cjk(body["detail"]) and has_cjk(body["title"]), body
    en = assert_problem(ew.tenant.call("POST", "/jobs", json=spec(**change)), status, code)
    assert not has_cjk(en["detail"])


def test_unknown_accelerator_suggests_close_models(ew: ExecWorld) -> None:
    body = assert_problem(
        ew.tenant.call("POST", "/jobs", json=spec(accelerators=["A8OO"])), 422, "job.unknown-accelerator"
    )
    assert "A800" in body["detail"] and "catalog list" in body["detail"]


def test_a_government_job_is_admitted_where_a_government_pool_is(ew: ExecWorld) -> None:
    job = ew.tenant.post("/jobs", spec(classification="government", regions=["zj-jiaxing-pinghu"]))
    assert (job["state"], job["classification"]) == ("queued", "government")


def test_cards_zero_is_work_without_accelerators(ew: ExecWorld) -> None:
    assert ew.tenant.post("/jobs", spec(cards=0))["cards"] == 0


# --- visibility ----------------------------------------------------------------------------------


def test_other_tenants_and_unrelated_operators_do_not_see_a_job(ew: ExecWorld) -> None:
    job = ew.tenant.post("/jobs", spec(env={"TOKEN": "hunter2"}))
    path = f"/jobs/{job['id']}"
    for caller in (ew.other, ew.operator, operator_of(ew, ew.sim_site["provider_id"])):
        assert_problem(caller.call("GET", path), 404, "not-found")
        assert_problem(caller.call("GET", path + "/events"), 404, "not-found")
        assert_problem(caller.call("GET", path + "/logs"), 404, "not-found")
        assert_problem(caller.call("POST", path + "/cancel"), 404, "not-found")
        assert caller.get("/jobs")["total"] == 0
    assert ew.other.get("/jobs", params={"org_id": ew.org["id"]})["total"] == 0
    # Its own organisation sees it, environment included; the regulator sees it with values hidden.
    assert ew.member.get(path)["env"] == {"TOKEN": "hunter2"}
    assert ids(ew.member.get("/jobs")) == [job["id"]]
    assert ew.regulator.get(path)["env"] == {"TOKEN": "***"}
    assert ew.regulator.get("/jobs")["items"][0]["env"] == {"TOKEN": "***"}
    assert ew.job(job["id"])["state"] == "queued"  # nobody's attempt above changed it


def test_an_operator_sees_the_jobs_that_ran_on_its_pools(ew: ExecWorld) -> None:
    job = ew.tenant.post(
        "/jobs", spec(command=["true"], cards=0, regions=["zj-jiaxing-pinghu"], env={"K": "v"})
    )
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert (done["state"], done["pool_id"]) == ("succeeded", ew.local_pool["id"])
    seen = ew.operator.get(f"/jobs/{job['id']}")
    assert seen["env"] == {"K": "***"}
    assert ids(ew.operator.get("/jobs", params={"pool_id": ew.local_pool["id"]})) == [job["id"]]
    unrelated = operator_of(ew, ew.sim_site["provider_id"])
    assert unrelated.get("/jobs")["total"] == 0
    assert_problem(unrelated.call("GET", f"/jobs/{job['id']}"), 404, "not-found")
    # An ended job cannot be cancelled.
    body = assert_problem(ew.tenant.call("POST", f"/jobs/{job['id']}/cancel"), 409, "job.already-ended")
    assert "succeeded" in body["detail"]


def test_list_filters_sorts_and_pages(ew: ExecWorld) -> None:
    first = ew.tenant.post("/jobs", spec(cards=2))
    second = ew.tenant.post("/jobs", spec(cards=8))
    third = ew.other.post("/jobs", spec(cards=1))
    ew.tenant.post(f"/jobs/{first['id']}/cancel", expect=200)
    assert ids(ew.regulator.get("/jobs")) == [third["id"], second["id"], first["id"]]  # newest first
    assert ids(ew.regulator.get("/jobs", params={"state": "cancelled"})) == [first["id"]]
    assert ids(ew.regulator.get("/jobs", params={"org_id": ew.org["id"], "sort": "cards"})) == [
        first["id"],
        second["id"],
    ]
    page = ew.regulator.get("/jobs", params={"limit": 1, "offset": 1})
    assert (ids(page), page["total"]) == ([second["id"]], 3)
    assert_problem(ew.regulator.call("GET", "/jobs", params={"sort": "command"}), 422, "paging.sort")
    assert_problem(ew.regulator.call("GET", "/jobs", params={"state": "sleeping"}), 422, "invalid-request")


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_a_queued_job(ew: ExecWorld) -> None:
    job = ew.tenant.post("/jobs", spec())
    cancelled = ew.member.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert cancelled["state"] == "cancelled" and cancelled["ended_at"]
    last = ew.tenant.get(f"/jobs/{job['id']}/events")[-1]
    assert (last["from_state"], last["to_state"], last["cause"]) == ("queued", "cancelled", "cancelled")
    assert last["text"] == "Cancelled."
    # A retried cancel (its first answer lost) gets the same answer and records nothing more.
    again = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert again["state"] == "cancelled" and again["ended_at"] == cancelled["ended_at"]
    assert len(ew.tenant.get(f"/jobs/{job['id']}/events")) == 3


def test_the_regulator_cancels_any_job(ew: ExecWorld) -> None:
    job = ew.tenant.post("/jobs", spec())
    assert ew.regulator.post(f"/jobs/{job['id']}/cancel", expect=200)["state"] == "cancelled"


def test_cancel_of_a_running_job_is_requested_then_done_by_the_controller(ew: ExecWorld) -> None:
    job = ew.tenant.post("/jobs", spec(command=["sleep", "30"], cards=0, regions=["zj-jiaxing-pinghu"]))
    ew.run_until(job["id"], state_is("running"))
    requested = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert requested["state"] == "running" and requested["cancel_requested_at"]
    # Asking twice does not record a second request.
    ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    causes = [e["cause"] for e in ew.tenant.get(f"/jobs/{job['id']}/events")]
    assert causes.count("cancel-requested") == 1
    done = ew.run_until(job["id"], state_is("cancelled", "failed", "succeeded"))
    assert done["state"] == "cancelled"


# --- quote ---------------------------------------------------------------------------------------


def test_quote_ranks_the_cheapest_first_and_stores_nothing(ew: ExecWorld) -> None:
    before = stored(ew.engine)
    quote = ew.tenant.post("/jobs/quote", spec(), expect=200)
    rows = quote["rows"]
    assert {r["pool_id"] for r in rows} == {ew.local_pool["id"], ew.sim_pool["id"], ew.gov_pool["id"]}
    costs = [r["cost_fen"] for r in rows]
    assert costs == sorted(costs)
    assert all(r["meets_deadline"] is None for r in rows)
    for row in rows:
        assert row["start_at"] <= row["end_at"] and row["runtime_s"] > 0
        assert row["starts_now"] and not row["reserved"]
        assert row["provider"] and row["region"] and row["accelerator"] and row["price_fen_per_card_hour"] > 0
    assert stored(ew.engine) == before


def test_quote_for_government_work_offers_only_the_government_pool(ew: ExecWorld) -> None:
    rows = ew.tenant.post("/jobs/quote", spec(classification="government"), expect=200)["rows"]
    assert [(r["pool_id"], r["zone"]) for r in rows] == [(ew.gov_pool["id"], "government")]


def test_quote_with_a_deadline_puts_pools_that_meet_it_first(ew: ExecWorld) -> None:
    deadline = (real_now() + timedelta(days=2)).isoformat()
    rows = ew.tenant.post("/jobs/quote", spec(deadline=deadline), expect=200)["rows"]
    assert rows and all(r["meets_deadline"] is True for r in rows)
    rows = ew.tenant.post("/jobs/quote", spec(accelerators=["A800"], cards=16), expect=200)["rows"]
    assert [r["pool_id"] for r in rows] == [ew.sim_pool["id"]]


def test_quote_refuses_what_submit_refuses_on_its_face(ew: ExecWorld) -> None:
    assert_problem(
        ew.tenant.call("POST", "/jobs/quote", json=spec(accelerators=["H900"])),
        422,
        "job.unknown-accelerator",
    )
    assert_problem(ew.tenant.call("POST", "/jobs/quote", json=spec(command=[])), 422, "invalid-request")
    assert_problem(ew.operator.call("POST", "/jobs/quote", json=spec()), 403, "job.tenants-only")
    # Nothing fits: no rows (and nothing stored).
    before = stored(ew.engine)
    assert ew.tenant.post("/jobs/quote", spec(max_price_fen_per_card_hour=1), expect=200)["rows"] == []
    assert stored(ew.engine) == before


# --- reservations --------------------------------------------------------------------------------


def window(ew: ExecWorld, start_h: float, end_h: float) -> dict[str, str]:
    now = real_now().replace(microsecond=0)
    return {
        "starts_at": (now + timedelta(hours=start_h)).isoformat(),
        "ends_at": (now + timedelta(hours=end_h)).isoformat(),
    }


def test_reservations_are_created_by_tenant_admins_only(ew: ExecWorld) -> None:
    body = {"pool_id": ew.sim_pool["id"], "cards": 8} | window(ew, 1, 3)
    before = stored(ew.engine)
    assert_problem(ew.member.call("POST", "/reservations", json=body), 403, "access.role-required")
    assert_problem(ew.operator.call("POST", "/reservations", json=body), 403, "job.tenants-only")
    assert_problem(ew.regulator.call("POST", "/reservations", json=body), 422, "job.org-required")
    assert stored(ew.engine) == before
    made = ew.tenant.post("/reservations", body)
    assert (made["org_id"], made["pool_id"], made["cards"], made["cancelled_at"]) == (
        ew.org["id"],
        ew.sim_pool["id"],
        8,
        None,
    )
    on_behalf = ew.regulator.post("/reservations", body | {"org_id": ew.other_org["id"]})
    assert on_behalf["org_id"] == ew.other_org["id"]


def test_reservations_never_promise_more_than_the_pool_has(ew: ExecWorld) -> None:
    pool = ew.sim_pool["id"]  # 16 cards
    ew.tenant.post("/reservations", {"pool_id": pool, "cards": 10} | window(ew, 1, 3))
    ew.other.post("/reservations", {"pool_id": pool, "cards": 6} | window(ew, 2, 4))
    before = stored(ew.engine)
    full = assert_problem(
        ew.other.call("POST", "/reservations", json={"pool_id": pool, "cards": 1} | window(ew, 2.5, 5)),
        409,
        "reservation.full",
    )
    assert "0" in full["detail"]
    assert stored(ew.engine) == before
    # Windows are [start, end): one that starts when the first ends has 10 cards free again.
    ew.other.post("/reservations", {"pool_id": pool, "cards": 10} | window(ew, 4, 6))
    # More than the pool has, on its own.
    assert_problem(
        ew.tenant.call("POST", "/reservations", json={"pool_id": pool, "cards": 17} | window(ew, 10, 11)),
        409,
        "reservation.full",
    )


def test_reservation_windows_must_end_in_the_future_and_after_they_start(ew: ExecWorld) -> None:
    pool = ew.sim_pool["id"]
    assert_problem(
        ew.tenant.call("POST", "/reservations", json={"pool_id": pool, "cards": 1} | window(ew, -3, -1)),
        422,
        "reservation.in-past",
    )
    assert_problem(
        ew.tenant.call("POST", "/reservations", json={"pool_id": pool, "cards": 1} | window(ew, 3, 1)),
        422,
        "invalid-request",
    )
    assert_problem(
        ew.tenant.call("POST", "/reservations", json={"pool_id": pool, "cards": 0} | window(ew, 1, 3)),
        422,
        "invalid-request",
    )
    assert_problem(
        ew.tenant.call("POST", "/reservations", json={"pool_id": 99999, "cards": 1} | window(ew, 1, 3)),
        404,
        "not-found",
    )
    assert stored(ew.engine)["reservations"] == 0


def test_reservations_list_show_cancel_and_who_sees_them(ew: ExecWorld) -> None:
    mine = ew.tenant.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 4} | window(ew, 1, 3))
    theirs = ew.other.post("/reservations", {"pool_id": ew.local_pool["id"], "cards": 1} | window(ew, 1, 3))
    assert ids(ew.tenant.get("/reservations")) == [mine["id"]]
    assert ids(ew.member.get("/reservations")) == [mine["id"]]
    assert ids(ew.other.get("/reservations")) == [theirs["id"]]
    assert ids(ew.regulator.get("/reservations")) == [mine["id"], theirs["id"]]
    assert ids(ew.regulator.get("/reservations", params={"pool_id": ew.local_pool["id"]})) == [theirs["id"]]
    # The local provider's operator sees the reservation on its pool, not the other one.
    assert ids(ew.operator.get("/reservations")) == [theirs["id"]]
    assert ew.tenant.get(f"/reservations/{mine['id']}") == mine
    assert_problem(ew.other.call("GET", f"/reservations/{mine['id']}"), 404, "not-found")
    assert_problem(ew.other.call("POST", f"/reservations/{mine['id']}/cancel"), 404, "not-found")
    cancelled = ew.tenant.post(f"/reservations/{mine['id']}/cancel", expect=200)
    assert cancelled["cancelled_at"]
    assert ew.tenant.post(f"/reservations/{mine['id']}/cancel", expect=200) == cancelled  # idempotent
    # Its cards are free again: the whole pool can be reserved over the same window.
    ew.other.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 16} | window(ew, 1, 3))


def test_a_reservation_in_force_shows_in_its_tenants_quote(ew: ExecWorld) -> None:
    ew.tenant.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 8} | window(ew, -1, 5))
    rows = ew.tenant.post("/jobs/quote", spec(accelerators=["A800"], cards=8), expect=200)["rows"]
    assert any(r["reserved"] and r["pool_id"] == ew.sim_pool["id"] for r in rows), rows


def test_other_tenants_are_not_quoted_reserved_cards(ew: ExecWorld) -> None:
    ew.tenant.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 8} | window(ew, -1, 5))
    others = ew.other.post("/jobs/quote", spec(accelerators=["A800"], cards=8), expect=200)["rows"]
    assert others and not any(r["reserved"] for r in others), others


def test_other_tenants_work_is_not_placed_on_reserved_cards(ew: ExecWorld) -> None:
    ew.tenant.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 16} | window(ew, -1, 5))
    job = ew.other.post("/jobs", spec(command=["sleep", "1"], accelerators=["A800"], cards=8))
    ew.cycle()
    assert ew.regulator.get(f"/jobs/{job['id']}")["state"] == "queued"


def test_a_reservation_opening_on_a_busy_pool_does_not_oversubscribe_it(ew: ExecWorld) -> None:
    busy = ew.other.post(
        "/jobs", spec(command=["train"], accelerators=["A800"], cards=16, duration_estimate_s=86_400)
    )
    ew.run_until(busy["id"], state_is("running"))
    ew.tenant.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 16} | window(ew, -0.1, 5))
    mine = ew.tenant.post("/jobs", spec(command=["train"], accelerators=["A800"], cards=16))
    ew.cycle()
    states = {ew.regulator.get(f"/jobs/{j['id']}")["state"] for j in (busy, mine)}
    assert "running" in states and "queued" in states, states  # one of them waits (or was preempted)
