"""GET /reports/local-share, /reports/utilization and /reports/queue against a real database: figures
checked against tables computed by hand, access scoping (the regulator sees all, an operator its own
provider's pools, tenants nothing) and bad input refused with a clear error in English and Chinese.

Usage comes in as providers report it (usage CloudEvents on launches); jobs whose waits are measured are
inserted directly with the times the tables need, as the metering tests insert theirs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.db.session import session_scope
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job
from suanwang.metering.models import UsageRecord
from suanwang.scheduler.types import Classification
from suanwang.timeutil import SHANGHAI
from tests import factories
from tests.conftest import NOW
from tests.helpers import assert_problem, has_cjk
from tests.metering_support import CLOUDEVENTS_BATCH, event, insert_launches

pytestmark = pytest.mark.db


def sh(*args: int) -> datetime:
    """A wall-clock time in Asia/Shanghai, as aware UTC."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


# The window: 30 and 31 May 2025, Shanghai days.
WINDOW = {"from": sh(2025, 5, 30).isoformat(), "to": sh(2025, 6, 1).isoformat()}


def mounts_reports(routes: Any) -> bool:
    """Whether the routes (FastAPI's included routers searched too) hold suanwang.reports.api's."""
    for route in routes:
        if getattr(getattr(route, "endpoint", None), "__module__", None) == "suanwang.reports.api":
            return True
        included = getattr(route, "original_router", None)  # FastAPI ≥ 0.16x includes routers lazily
        if included is not None and mounts_reports(included.routes):
            return True
    return False


@pytest.fixture(autouse=True)
def reports_mounted(app: Any) -> None:
    """Mount the reports router on the session's app unless the app already mounts it."""
    from suanwang.reports.api import router

    if not mounts_reports(app.routes):
        app.include_router(router, prefix="/api/v1")
    assert mounts_reports(app.routes)


@dataclass
class ReportWorld:
    world: Any
    sme: dict[str, Any]  # local enterprise flagged SME (the world's org A)
    gov: dict[str, Any]  # local government unit, flagged SME: still local_other
    outsider: dict[str, Any]  # an SME registered in Shanghai


def usage(w: Any, engine: Engine, org: dict[str, Any], pool: dict[str, Any], cards: int, start, end) -> None:
    """One launch of `cards` cards on the pool, reported by the regulator as having run [start, end)."""
    (launch,) = insert_launches(
        engine, pool_id=pool["id"], org_id=org["id"], user_id=w.users["admin_a"]["id"], cards=cards
    )
    w.regulator.call(
        "POST",
        "/metering/events",
        json=[event(launch, started_at=start, ended_at=end, cards=cards)],
        headers=CLOUDEVENTS_BATCH,
        expect=200,
    )


def insert_job(
    engine: Engine,
    w: Any,
    org: dict[str, Any],
    *,
    submitted_at: datetime,
    started_at: datetime | None = None,
    state: JobState = JobState.SUCCEEDED,
    cards: int = 8,
) -> None:
    with session_scope(engine) as session:
        session.add(
            Job(
                org_id=org["id"],
                submitted_by=w.users["admin_a"]["id"],
                command=["python", "train.py"],
                env={},
                cards=cards,
                accelerators=[],
                min_memory_gib=0,
                duration_estimate_s=3600,
                classification=Classification.PUBLIC,
                regions=[],
                priority=0,
                preemptible=False,
                state=state,
                attempt=1 if started_at else 0,
                reason_params={},
                submitted_at=submitted_at,
                started_at=started_at,
                card_seconds=0,
            )
        )


@pytest.fixture
def rw(world: Any, clean_engine: Engine) -> ReportWorld:
    """Pool 1: H800 (989.4 TFLOPS), 16 cards, provider 1. Pool 2: A800 (312), 32 cards, provider 2.

    | tenant   | class       | pool | cards | Shanghai time             | in the window      |
    |----------|-------------|------|-------|---------------------------|--------------------|
    | A (SME)  | local_sme   | 1    | 8     | 30 May 22:00 – 31 May 2:00 | 16 h on each day  |
    | gov      | local_other | 2    | 4     | 31 May 10:00 – 13:00      | 12 card-h, day 2   |
    | outsider | outside     | 1    | 2     | 30 May 9:00 – 10:00       | 2 card-h, day 1    |
    | A        | local_sme   | 1    | 8     | 1 June 9:00 – 10:00       | none (after)       |
    | A        | local_sme   | 2    | 8     | 29 May 23:00 – 30 May 1:00 | 8 card-h, day 1   |
    """
    w = world
    gov = factories.org(w.regulator, name="Pinghu Data Bureau", kind="government_unit", is_sme=True)
    outsider = factories.org(w.regulator, name="Shanghai Vision", credit_code=factories.credit_code("310115"))
    usage(w, clean_engine, w.org_a, w.pool1, 8, sh(2025, 5, 30, 22), sh(2025, 5, 31, 2))
    usage(w, clean_engine, gov, w.pool2, 4, sh(2025, 5, 31, 10), sh(2025, 5, 31, 13))
    usage(w, clean_engine, outsider, w.pool1, 2, sh(2025, 5, 30, 9), sh(2025, 5, 30, 10))
    usage(w, clean_engine, w.org_a, w.pool1, 8, sh(2025, 6, 1, 9), sh(2025, 6, 1, 10))
    usage(w, clean_engine, w.org_a, w.pool2, 8, sh(2025, 5, 29, 23), sh(2025, 5, 30, 1))
    return ReportWorld(w, w.org_a, gov, outsider)


def classes(row: dict[str, Any], field: str = "card_seconds") -> list[Any]:
    return [row["classes"][c][field] for c in ("local_sme", "local_other", "outside")]


# --- local share -------------------------------------------------------------------------------


def test_local_share_matches_the_hand_computed_table(rw: ReportWorld):
    report = rw.world.regulator.get("/reports/local-share", params=WINDOW | {"period": "day"})
    assert report["window"] == {
        "start": "2025-05-29T16:00:00Z",
        "end": "2025-05-31T16:00:00Z",
        "period": "day",
    }
    assert report["region_division_code"] == "330482"
    day1, day2 = report["periods"]
    assert (day1["period"], day1["start"], day1["end"]) == (
        "2025-05-30",
        "2025-05-29T16:00:00Z",
        "2025-05-30T16:00:00Z",
    )
    assert classes(day1) == [86_400, 0, 7_200]
    assert classes(day1, "card_hours") == ["24.0000", "0.0000", "2.0000"]
    assert classes(day1, "pflops_hours") == ["18.3264", "0.0000", "1.9788"]
    assert (day1["local_card_seconds"], day1["local_share_bp"], day1["local_share"]) == (
        86_400,
        9231,
        "92.31%",
    )
    assert classes(day2) == [57_600, 43_200, 0]
    assert classes(day2, "pflops_hours") == ["15.8304", "3.7440", "0.0000"]
    assert day2["total"] == {"card_seconds": 100_800, "card_hours": "28.0000", "pflops_hours": "19.5744"}
    assert (day2["local_share_bp"], day2["local_share"]) == (10_000, "100.00%")
    total = report["total"]
    assert classes(total) == [144_000, 43_200, 7_200]
    assert total["total"] == {"card_seconds": 194_400, "card_hours": "54.0000", "pflops_hours": "39.8796"}
    assert (total["local_share_bp"], total["local_share"]) == (9630, "96.30%")


def test_a_month_period_cuts_the_month_to_the_window_and_no_usage_shows_no_ratio(rw: ReportWorld):
    report = rw.world.regulator.get("/reports/local-share", params=WINDOW | {"period": "month"})
    (may,) = report["periods"]
    assert (may["period"], may["start"], may["end"]) == (
        "2025-05",
        "2025-05-29T16:00:00Z",
        "2025-05-31T16:00:00Z",
    )
    assert may["total"]["card_seconds"] == 194_400
    empty = rw.world.regulator.get(
        "/reports/local-share", params={"from": "2025-01-01T00:00:00Z", "to": "2025-01-08T00:00:00Z"}
    )
    assert len(empty["periods"]) == 8  # 1 Jan 00:00 UTC is 08:00 in Shanghai: 8 days meet the window
    assert (empty["total"]["local_share_bp"], empty["total"]["local_share"]) == (None, "—")


# --- utilization -------------------------------------------------------------------------------


def figures(row: dict[str, Any]) -> tuple[int, int, str]:
    return row["used_card_seconds"], row["available_card_seconds"], row["utilization"]


def test_utilization_by_provider_matches_the_hand_computed_table(rw: ReportWorld):
    w = rw.world
    report = w.regulator.get("/reports/utilization", params=WINDOW | {"group": "provider"})
    p1, p2 = w.p1["code"], w.p2["code"]
    assert report["group"] == "provider"
    day1, day2 = report["periods"]
    by_group = {row["group"]: row for row in day1["groups"]}
    assert figures(by_group[p1]) == (64_800, 16 * 86_400, "4.69%")  # 18 of 384 card-hours
    assert by_group[p1]["used_card_hours"] == "18.0000" and by_group[p1]["available_card_hours"] == "384.0000"
    assert figures(by_group[p2]) == (28_800, 32 * 86_400, "1.04%")
    assert figures(day1["total"]) == (93_600, 48 * 86_400, "2.26%")
    assert [figures(r) for r in day2["groups"]] == [
        (57_600, 16 * 86_400, "4.17%"),
        (43_200, 32 * 86_400, "1.56%"),
    ]
    assert [(r["group"], r["utilization_bp"]) for r in report["groups"]] == [(p1, 443), (p2, 130)]
    assert figures(report["total"]) == (194_400, 48 * 172_800, "2.34%")


def test_utilization_by_pool_accelerator_and_region(rw: ReportWorld):
    w = rw.world
    by = {
        group: {
            r["group"]: r["used_card_seconds"]
            for r in w.regulator.get(
                "/reports/utilization", params=WINDOW | {"group": group, "period": "week"}
            )["groups"]
        }
        for group in ("pool", "accelerator", "region")
    }
    assert by["pool"] == {w.pool1["code"]: 122_400, w.pool2["code"]: 72_000}
    assert by["accelerator"] == {"A800": 72_000, "H800": 122_400}
    assert by["region"] == {w.site1["region"]: 194_400}


def test_available_capacity_follows_operational_dates_and_retirement(rw: ReportWorld, clock: Any):
    """A pool retired at noon on the second day counts until then; a site operational from the second
    day counts from its Shanghai midnight; a site only built counts nothing (and shows no row)."""
    w = rw.world
    retired = factories.pool(w.regulator, w.site1["id"], nodes=1)
    late_site = factories.site(w.regulator, w.p1["id"], operational_on="2025-05-31")
    late = factories.pool(w.regulator, late_site["id"], nodes=1)
    built = factories.site(w.regulator, w.p1["id"], phase="built")
    factories.pool(w.regulator, built["id"], nodes=1)
    clock.now = sh(2025, 5, 31, 12)
    w.regulator.post(f"/pools/{retired['id']}/retire", expect=200)
    clock.now = NOW
    report = w.op1.get("/reports/utilization", params=WINDOW | {"group": "pool"})
    day1, day2 = ({r["group"]: r["available_card_seconds"] for r in p["groups"]} for p in report["periods"])
    assert day1 == {w.pool1["code"]: 16 * 86_400, retired["code"]: 8 * 86_400, late["code"]: 0}
    assert day2 == {w.pool1["code"]: 16 * 86_400, retired["code"]: 8 * 43_200, late["code"]: 8 * 86_400}


def test_an_operator_sees_only_its_own_providers_pools(rw: ReportWorld):
    w = rw.world
    for group in ("provider", "pool", "accelerator"):
        report = w.op1.get("/reports/utilization", params=WINDOW | {"group": group})
        assert figures(report["total"]) == (122_400, 16 * 172_800, "4.43%")
        assert len(report["groups"]) == 1
    report = w.op2.get("/reports/utilization", params=WINDOW)
    assert [r["group"] for r in report["groups"]] == [w.p2["code"]]
    assert figures(report["total"]) == (72_000, 32 * 172_800, "1.30%")


# --- queue and waiting times -------------------------------------------------------------------


@pytest.fixture
def jobs(rw: ReportWorld, clean_engine: Engine) -> ReportWorld:
    """Waits: A (local SME) 60, 120 and 600 s on 30 May; outsider 30 s and gov 3600 s on 31 May; A 5 s on
    1 June (after the window). Queue at NOW (1 June 08:00 UTC): A 8 cards for 1 h and 2 cards for 5 min,
    the outsider 4 cards for 3 h (back in the queue after a preemption)."""
    w, engine = rw.world, clean_engine
    day1 = sh(2025, 5, 30, 10)
    for wait in (60, 120, 600):
        insert_job(engine, w, rw.sme, submitted_at=day1, started_at=day1 + timedelta(seconds=wait))
    day2 = sh(2025, 5, 31, 11)
    insert_job(engine, w, rw.outsider, submitted_at=day2, started_at=day2 + timedelta(seconds=30))
    insert_job(engine, w, rw.gov, submitted_at=day2, started_at=day2 + timedelta(seconds=3600))
    insert_job(engine, w, rw.sme, submitted_at=sh(2025, 6, 1, 9), started_at=sh(2025, 6, 1, 9, 0, 5))
    insert_job(engine, w, rw.sme, submitted_at=NOW - timedelta(hours=1), state=JobState.QUEUED)
    insert_job(engine, w, rw.sme, submitted_at=NOW - timedelta(minutes=5), state=JobState.SUBMITTED, cards=2)
    insert_job(
        engine,
        w,
        rw.outsider,
        submitted_at=NOW - timedelta(hours=3),
        started_at=NOW - timedelta(hours=2, minutes=50),
        state=JobState.PREEMPTED,
        cards=4,
    )
    return rw


def stats(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k] for k in ("jobs", "mean_wait_s", "p50_wait_s", "p90_wait_s", "max_wait_s"))


def test_waits_and_the_queue_match_the_hand_computed_table(jobs: ReportWorld):
    report = jobs.world.regulator.get("/reports/queue", params=WINDOW)
    day1, day2 = report["waits"]["periods"]
    assert day1["period"] == "2025-05-30"
    assert stats(day1["classes"]["local_sme"]) == (3, 260, 120, 600, 600)
    assert stats(day1["everyone_else"]) == (0, None, None, None, None)
    assert stats(day2["classes"]["local_sme"])[0] == 0
    assert stats(day2["classes"]["outside"]) == (1, 30, 30, 30, 30)
    assert stats(day2["classes"]["local_other"]) == (1, 3600, 3600, 3600, 3600)
    assert stats(day2["everyone_else"]) == (2, 1815, 30, 3600, 3600)
    assert stats(report["waits"]["total"]["all"]) == (5, 882, 120, 3600, 3600)
    queue = report["queue"]
    assert queue["at"] == "2025-06-01T08:00:00Z"
    sme = queue["classes"]["local_sme"]
    assert (sme["jobs"], sme["cards"], sme["oldest_wait_s"]) == (2, 10, 3600)
    assert sme["oldest_submitted_at"] == "2025-06-01T07:00:00Z"
    assert queue["classes"]["local_other"] == {
        "jobs": 0,
        "cards": 0,
        "oldest_submitted_at": None,
        "oldest_wait_s": None,
    }
    assert (queue["everyone_else"]["jobs"], queue["everyone_else"]["oldest_wait_s"]) == (1, 10_800)
    assert (queue["all"]["jobs"], queue["all"]["cards"], queue["all"]["oldest_wait_s"]) == (3, 14, 10_800)


# --- access and bad input ----------------------------------------------------------------------


def test_tenants_are_refused_every_report_and_operators_all_but_utilization(rw: ReportWorld):
    w = rw.world
    for caller in (w.admin_a, w.member_b):
        for path in ("local-share", "utilization", "queue"):
            assert_problem(caller.call("GET", f"/reports/{path}", params=WINDOW), 403, "access.role-required")
    for path in ("local-share", "queue"):
        assert_problem(w.op1.call("GET", f"/reports/{path}", params=WINDOW), 403, "access.role-required")
    assert_problem(w.regulator.as_(None).call("GET", "/reports/queue", params=WINDOW), 401, "auth.missing")


def counts(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        usage_records = session.scalar(select(func.count()).select_from(UsageRecord)) or 0
        job_rows = session.scalar(select(func.count()).select_from(Job)) or 0
    return usage_records, job_rows


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("local-share", {"from": WINDOW["to"], "to": WINDOW["from"]}, "report.empty-window"),
        ("queue", {"from": WINDOW["from"], "to": WINDOW["from"]}, "report.empty-window"),
        (
            "utilization",
            {"from": "2024-01-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"},
            "report.too-many-periods",
        ),
        ("local-share", WINDOW | {"period": "year"}, "report.unknown-period"),
        ("utilization", WINDOW | {"group": "country"}, "report.unknown-group"),
        ("queue", {"from": "2025-05-30T00:00:00", "to": WINDOW["to"]}, "invalid-request"),  # naive
        ("utilization", {"to": WINDOW["to"]}, "invalid-request"),  # no from
    ],
)
def test_bad_input_is_refused_clearly_in_both_languages_and_changes_nothing(
    rw: ReportWorld, clean_engine: Engine, path: str, params: dict[str, str], code: str
):
    before = counts(clean_engine)
    english = assert_problem(rw.world.regulator.call("GET", f"/reports/{path}", params=params), 422, code)
    chinese = assert_problem(
        rw.world.regulator.call(
            "GET", f"/reports/{path}", params=params, headers={"Accept-Language": "zh-CN"}
        ),
        422,
        code,
    )
    assert not has_cjk(english["detail"]) and has_cjk(chinese["detail"])
    assert counts(clean_engine) == before


def test_errors_say_how_to_fix_them(rw: ReportWorld):
    w = rw.world
    long_window = {"from": "2024-01-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}
    detail = w.regulator.call("GET", "/reports/local-share", params=long_window).json()["detail"]
    assert "400" in detail and "week or month" in detail
    assert w.regulator.get("/reports/local-share", params=long_window | {"period": "week"})["periods"]
    detail = w.regulator.call("GET", "/reports/utilization", params=WINDOW | {"group": "x"}).json()["detail"]
    assert "provider, pool, region, accelerator" in detail
