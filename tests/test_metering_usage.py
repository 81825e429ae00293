"""GET /usage: usage records, paged and filtered; tenants see their organisation's, operators their
provider's pools', the regulator all."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import NOW
from tests.helpers import assert_problem, ids
from tests.metering_support import CLOUDEVENTS_BATCH, ENDED, event, insert_launches

pytestmark = pytest.mark.db


@pytest.fixture
def usage(world: Any, clean_engine: Engine) -> dict[str, list[int]]:
    """Usage ids: two records of org A on pool 1, one of org B on pool 1, two of org B on pool 2;
    each record ends an hour after the one before it."""
    spec = [
        ("a1", world.pool1, world.org_a, "admin_a", world.op1),
        ("a1", world.pool1, world.org_a, "admin_a", world.op1),
        ("b1", world.pool1, world.org_b, "admin_b", world.op1),
        ("b2", world.pool2, world.org_b, "admin_b", world.op2),
        ("b2", world.pool2, world.org_b, "admin_b", world.op2),
    ]
    found: dict[str, list[int]] = {}
    for i, (group, pool, org, user, operator) in enumerate(spec):
        (name,) = insert_launches(
            clean_engine, pool_id=pool["id"], org_id=org["id"], user_id=world.users[user]["id"]
        )
        ended = ENDED - timedelta(hours=len(spec) - i)
        answer = operator.call(
            "POST",
            "/metering/events",
            json=[event(name, started_at=ended - timedelta(minutes=30), ended_at=ended, external_id=f"x{i}")],
            headers=CLOUDEVENTS_BATCH,
            expect=200,
        ).json()
        found.setdefault(group, []).append(answer["results"][0]["usage_id"])
    return found


def newest_first(*groups: list[int]) -> list[int]:
    return sorted((usage_id for group in groups for usage_id in group), reverse=True)


def test_a_usage_record_reads_as_the_api_documents(world, usage):
    item = world.regulator.get(f"/usage?job_id={_job_of(world, usage['a1'][0])}")["items"][0]
    assert set(item) == {
        "id",
        "job_id",
        "org_id",
        "pool_id",
        "cards",
        "started_at",
        "ended_at",
        "card_seconds",
        "source",
        "external_id",
        "measured",
        "recorded_at",
    }
    assert (item["id"], item["org_id"], item["pool_id"]) == (
        usage["a1"][0],
        world.org_a["id"],
        world.pool1["id"],
    )
    assert (item["cards"], item["card_seconds"], item["source"], item["external_id"]) == (
        8,
        8 * 1800,
        "event",
        "x0",
    )
    assert item["measured"] is None  # no node agent measured it
    assert item["ended_at"].endswith("Z") or item["ended_at"].endswith("+00:00")


def _job_of(world: Any, usage_id: int) -> int:
    items = world.regulator.get("/usage?limit=500")["items"]
    return int(next(item["job_id"] for item in items if item["id"] == usage_id))


def test_each_role_sees_its_own_usage(world, usage):
    everything = newest_first(*usage.values())
    assert ids(world.regulator.get("/usage")) == everything
    assert ids(world.admin_a.get("/usage")) == newest_first(usage["a1"])
    assert ids(world.member_a.get("/usage")) == newest_first(usage["a1"])
    assert ids(world.admin_b.get("/usage")) == newest_first(usage["b1"], usage["b2"])
    assert ids(world.op1.get("/usage")) == newest_first(usage["a1"], usage["b1"])
    assert ids(world.op2.get("/usage")) == newest_first(usage["b2"])


def test_a_filter_never_widens_what_a_caller_sees(world, usage):
    assert ids(world.admin_a.get(f"/usage?org_id={world.org_b['id']}")) == []
    assert ids(world.op2.get(f"/usage?pool_id={world.pool1['id']}")) == []
    assert world.op2.get("/usage")["total"] == 2


def test_filters_by_organisation_pool_and_job(world, usage):
    assert ids(world.regulator.get(f"/usage?org_id={world.org_b['id']}")) == newest_first(
        usage["b1"], usage["b2"]
    )
    assert ids(world.regulator.get(f"/usage?pool_id={world.pool2['id']}")) == newest_first(usage["b2"])
    one = usage["b2"][0]
    assert ids(world.regulator.get(f"/usage?job_id={_job_of(world, one)}")) == [one]
    both = f"/usage?org_id={world.org_b['id']}&pool_id={world.pool1['id']}"
    assert ids(world.op1.get(both)) == usage["b1"]


def test_from_and_to_select_by_end_time(world, usage):
    everything = newest_first(*usage.values())  # ends: ENDED-5h, -4h, -3h, -2h, -1h by id
    start = (ENDED - timedelta(hours=3)).isoformat()
    end = (ENDED - timedelta(hours=1)).isoformat()
    page = world.regulator.get("/usage", params={"from": start, "to": end})
    assert ids(page) == everything[1:3]  # [from, to): the end at `to` is left out
    assert ids(world.regulator.get("/usage", params={"from": start})) == everything[:3]
    assert ids(world.regulator.get("/usage", params={"to": end})) == everything[1:]


def test_an_empty_or_naive_time_range_is_refused(world, usage):
    same = NOW.isoformat()
    response = world.regulator.call("GET", "/usage", params={"from": same, "to": same})
    assert_problem(response, 422, "usage.empty-range")
    response = world.regulator.call("GET", "/usage", params={"from": "2025-06-01T08:00:00"})
    assert_problem(response, 422, "invalid-request")


def test_usage_pages_and_sorts(world, usage):
    everything = newest_first(*usage.values())
    first = world.regulator.get("/usage?limit=2")
    second = world.regulator.get("/usage?limit=2&offset=2")
    assert (first["total"], ids(first), ids(second)) == (5, everything[:2], everything[2:4])
    assert ids(world.regulator.get("/usage?sort=id")) == sorted(everything)
    assert ids(world.regulator.get("/usage?sort=-card_seconds")) == sorted(everything)  # equal: by id
    assert_problem(world.regulator.call("GET", "/usage?sort=cost"), 422, "paging.sort")


def test_usage_needs_a_token(world, usage):
    assert_problem(world.regulator.as_(None).call("GET", "/usage"), 401, "auth.missing")


def test_records_start_and_end_where_the_events_said(world, usage):
    first = world.regulator.get("/usage?sort=id")["items"][0]
    ended = ENDED - timedelta(hours=5)
    assert datetime.fromisoformat(first["ended_at"]) == ended
    assert datetime.fromisoformat(first["started_at"]) == ended - timedelta(minutes=30)
