"""POST /metering/events: providers report usage as CloudEvents batches — idempotent on (source, id),
one usage record per launch, all or nothing, the seen mark in the record's transaction, a constant
number of queries per batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from suanwang.db.session import session_scope
from suanwang.jobs.models import Launch
from suanwang.metering import service as metering
from suanwang.metering.models import SeenEvent, UsageRecord
from tests.conftest import NOW
from tests.helpers import assert_problem, has_cjk, statements_sent
from tests.metering_support import CLOUDEVENTS_BATCH, ENDED, STARTED, counts, event, insert_launches

pytestmark = pytest.mark.db


@pytest.fixture
def launches(world: Any, clean_engine: Engine) -> dict[str, list[str]]:
    """Three launches on pool 1 (provider 1) for org A, two on pool 2 (provider 2) for org B."""
    return {
        "p1": insert_launches(
            clean_engine,
            pool_id=world.pool1["id"],
            org_id=world.org_a["id"],
            user_id=world.users["admin_a"]["id"],
            count=3,
        ),
        "p2": insert_launches(
            clean_engine,
            pool_id=world.pool2["id"],
            org_id=world.org_b["id"],
            user_id=world.users["admin_b"]["id"],
            count=2,
        ),
    }


def ingest(api: Any, batch: Any, expect: int = 200, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", CLOUDEVENTS_BATCH)
    return api.call("POST", "/metering/events", json=batch, headers=headers, expect=expect, **kwargs).json()


def records(engine: Engine) -> list[UsageRecord]:
    with session_scope(engine) as session:
        return list(session.scalars(select(UsageRecord).order_by(UsageRecord.id)))


# --- the happy path --------------------------------------------------------------------------------


def test_a_batch_of_usage_events_is_recorded_once_per_launch(world, launches, clean_engine):
    a, b, c = launches["p1"]
    batch = [
        event(a, event_id="e1", external_id="slurm-1001"),
        event(b, event_id="e2", cards=4, card_seconds=4 * 3000),
        event(c, event_id="e3", cards=0),
    ]
    answer = ingest(world.op1, batch)

    assert (answer["recorded"], answer["duplicate"], answer["already_metered"]) == (3, 0, 0)
    assert [(r["index"], r["id"], r["status"]) for r in answer["results"]] == [
        (0, "e1", "recorded"),
        (1, "e2", "recorded"),
        (2, "e3", "recorded"),
    ]
    assert all(r["source"] == "/providers/p1/agents/node-1" for r in answer["results"])
    rows = records(clean_engine)
    assert [row.id for row in rows] == [r["usage_id"] for r in answer["results"]]
    first, second, third = rows
    assert (first.cards, first.card_seconds, first.external_id) == (8, 8 * 3600, "slurm-1001")
    assert (second.cards, second.card_seconds, second.external_id) == (4, 12_000, None)
    assert third.card_seconds == 0
    assert {row.source for row in rows} == {"event"}
    assert {row.org_id for row in rows} == {world.org_a["id"]}
    assert {row.pool_id for row in rows} == {world.pool1["id"]}
    assert (first.started_at, first.ended_at, first.recorded_at) == (STARTED, ENDED, NOW)
    with session_scope(clean_engine) as session:
        marks = session.execute(
            select(SeenEvent.source, SeenEvent.event_id, SeenEvent.outcome, SeenEvent.usage_record_id)
        ).all()
    assert sorted(marks) == sorted(
        ("/providers/p1/agents/node-1", f"e{i + 1}", "recorded", rows[i].id) for i in range(3)
    )


def test_the_regulator_may_report_usage_of_any_launch(world, launches, clean_engine):
    answer = ingest(world.regulator, [event(launches["p1"][0]), event(launches["p2"][0])])
    assert answer["recorded"] == 2
    assert counts(clean_engine) == (2, 2)


def test_plain_application_json_is_accepted_too(world, launches, clean_engine):
    answer = ingest(world.op1, [event(launches["p1"][0])], headers={"Content-Type": "application/json"})
    assert answer["recorded"] == 1


def test_an_empty_batch_records_nothing(world, launches, clean_engine):
    answer = ingest(world.op1, [])
    assert answer == {"recorded": 0, "duplicate": 0, "already_metered": 0, "results": []}


def test_card_seconds_are_cards_times_seconds_rounded_to_the_nearest(world, launches, clean_engine):
    ended = STARTED + timedelta(seconds=10, milliseconds=600)
    ingest(world.op1, [event(launches["p1"][0], cards=3, ended_at=ended)])
    assert records(clean_engine)[0].card_seconds == 32  # 3 × 10.6 = 31.8


# --- idempotency -----------------------------------------------------------------------------------


def test_retrying_the_same_batch_changes_nothing(world, launches, clean_engine):
    batch = [event(name) for name in launches["p1"]]
    first = ingest(world.op1, batch)
    again = ingest(world.op1, batch)

    assert (again["recorded"], again["duplicate"], again["already_metered"]) == (0, 3, 0)
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [r["usage_id"] for r in again["results"]] == [r["usage_id"] for r in first["results"]]
    assert counts(clean_engine) == (3, 3)


def test_a_repeated_event_within_one_batch_is_a_duplicate(world, launches, clean_engine):
    one = event(launches["p1"][0], event_id="same")
    answer = ingest(world.op1, [one, event(launches["p1"][1]), one])
    assert [r["status"] for r in answer["results"]] == ["recorded", "recorded", "duplicate"]
    assert answer["results"][2]["usage_id"] == answer["results"][0]["usage_id"]
    assert counts(clean_engine) == (2, 2)


def test_the_same_id_from_another_source_is_another_event(world, launches, clean_engine):
    a, b = launches["p1"][:2]
    answer = ingest(world.op1, [event(a, event_id="1", source="/n1"), event(b, event_id="1", source="/n2")])
    assert answer["recorded"] == 2


# --- one usage record per launch -------------------------------------------------------------------


def test_a_launch_metered_by_the_controller_gets_no_second_record(world, launches, clean_engine):
    name = launches["p1"][0]
    with session_scope(clean_engine) as session:
        launch = session.scalars(select(Launch).where(Launch.name == name)).one()
        usage = metering.record(
            session,
            launch_id=launch.id,
            job_id=launch.job_id,
            org_id=world.org_a["id"],
            pool_id=launch.pool_id,
            cards=8,
            started_at=STARTED,
            ended_at=ENDED,
            card_seconds=8 * 3600,
            source="slurm",
            now=NOW,
            external_id="4242",
        )
        session.flush()
        controller_usage_id = usage.id

    answer = ingest(world.op1, [event(name, event_id="late")])
    assert (answer["recorded"], answer["already_metered"]) == (0, 1)
    assert answer["results"][0] == {
        "index": 0,
        "source": "/providers/p1/agents/node-1",
        "id": "late",
        "status": "already-metered",
        "usage_id": controller_usage_id,
    }
    assert counts(clean_engine) == (1, 1)  # the event is marked seen; the record is the controller's
    assert records(clean_engine)[0].external_id == "4242"
    # And a retry of it is a duplicate with the same answer.
    again = ingest(world.op1, [event(name, event_id="late")])
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["usage_id"] == controller_usage_id


def test_a_second_source_reporting_the_same_launch_is_already_metered(world, launches, clean_engine):
    name = launches["p1"][0]
    first = ingest(world.op1, [event(name, source="/slurm-exporter")])
    in_one_batch = ingest(
        world.op1, [event(launches["p1"][1], source="/a"), event(launches["p1"][1], source="/b")]
    )
    later = ingest(world.regulator, [event(name, source="/agent", cards=1)])

    assert [r["status"] for r in in_one_batch["results"]] == ["recorded", "already-metered"]
    assert in_one_batch["results"][1]["usage_id"] == in_one_batch["results"][0]["usage_id"]
    assert later["results"][0]["status"] == "already-metered"
    assert later["results"][0]["usage_id"] == first["results"][0]["usage_id"]
    assert counts(clean_engine) == (2, 4)
    assert records(clean_engine)[0].cards == 8  # the first report stands


# --- all or nothing --------------------------------------------------------------------------------


def _naive(e: dict[str, Any]) -> None:
    e["data"]["started_at"] = "2025-06-01T06:00:00"


BAD_EVENTS = {
    "unknown launch": (
        lambda e: e["data"].update(launch="sw-nope-1"),
        "data.launch",
        "metering.launch-unknown",
    ),
    "ended before started": (
        lambda e: e["data"].update(ended_at=(STARTED - timedelta(seconds=1)).isoformat()),
        "data.ended_at",
        "metering.ended-before-started",
    ),
    "naive time": (_naive, "data.started_at", "timezone_aware"),
    "wrong specversion": (lambda e: e.update(specversion="0.3"), "specversion", "literal_error"),
    "wrong type": (lambda e: e.update(type="com.example.usage"), "type", "literal_error"),
    "missing id": (lambda e: e.pop("id"), "id", "missing"),
    "missing data": (lambda e: e.pop("data"), "data", "missing"),
    "missing cards": (lambda e: e["data"].pop("cards"), "data.cards", "missing"),
    "negative card-seconds": (
        lambda e: e["data"].update(card_seconds=-1),
        "data.card_seconds",
        "greater_than_equal",
    ),
    "fractional cards": (lambda e: e["data"].update(cards=2.5), "data.cards", "int_type"),
    "unknown data field": (lambda e: e["data"].update(card_second=5), "data.card_second", "extra_forbidden"),
    "more card-seconds than ran": (
        lambda e: e["data"].update(card_seconds=8 * 3600 + 1),
        "data.card_seconds",
        "metering.card-seconds-above",
    ),
    "more cards than the job had": (
        lambda e: e["data"].update(cards=9),
        "data.cards",
        "metering.cards-above-job",
    ),
    "ended in the future": (
        lambda e: e["data"].update(ended_at=(NOW + timedelta(hours=1)).isoformat()),
        "data.ended_at",
        "metering.ended-in-future",
    ),
}


@pytest.mark.parametrize("case", list(BAD_EVENTS))
def test_one_bad_event_stores_nothing_of_the_batch(world, launches, clean_engine, case):
    spoil, field, kind = BAD_EVENTS[case]
    bad = event(launches["p1"][1], event_id="bad-one")
    spoil(bad)
    batch = [event(launches["p1"][0]), bad, event(launches["p1"][2])]

    response = world.op1.call("POST", "/metering/events", json=batch, headers=CLOUDEVENTS_BATCH)

    body = assert_problem(response, 422, "metering.invalid-events")
    assert [(e["index"], e["field"], e["type"]) for e in body["errors"]] == [(1, field, kind)]
    assert body["errors"][0]["message"].strip()
    if case != "missing id":
        assert body["errors"][0]["id"] == "bad-one"
    assert "1 of 3 events" in body["detail"] and "#1" in body["detail"]
    assert counts(clean_engine) == (0, 0)


def test_every_bad_event_is_listed_by_index(world, launches, clean_engine):
    batch = [
        event("sw-nope-1"),
        event(launches["p1"][0]),
        event(launches["p1"][1], ended_at=STARTED - timedelta(hours=1)),
        {"specversion": "1.0"},
        "not an event",
    ]
    response = world.op1.call("POST", "/metering/events", json=batch, headers=CLOUDEVENTS_BATCH)
    body = assert_problem(response, 422, "metering.invalid-events")
    assert sorted({e["index"] for e in body["errors"]}) == [0, 2, 3, 4]
    assert "4 of 5 events" in body["detail"]
    assert counts(clean_engine) == (0, 0)


def test_a_duplicate_is_checked_like_any_event(world, launches, clean_engine):
    """An event seen before does not make a batch valid for a caller who could not have sent it."""
    one = event(launches["p1"][0], event_id="x")
    ingest(world.op1, [one])
    response = world.op2.call("POST", "/metering/events", json=[one], headers=CLOUDEVENTS_BATCH)
    assert_problem(response, 422, "metering.invalid-events")


def test_errors_speak_the_callers_language(world, launches, clean_engine):
    response = world.op1.call(
        "POST",
        "/metering/events",
        json=[event("sw-nope-1")],
        headers=CLOUDEVENTS_BATCH | {"Accept-Language": "zh-CN"},
    )
    body = assert_problem(response, 422, "metering.invalid-events")
    assert has_cjk(body["detail"]) and has_cjk(body["errors"][0]["message"])


# --- the seen mark commits with the record ---------------------------------------------------------


def test_a_crash_between_the_usage_insert_and_the_seen_mark_leaves_neither(
    app, world, launches, clean_engine, monkeypatch
):
    """OpenMeter #5118 marked events seen before their write committed, and lost events on a crash.
    Here the mark and the record commit together: a failure after the record's INSERT, before the mark,
    leaves no record and no mark, and the retry records the event."""
    inserted: list[int] = []
    real_insert = metering._insert_usage

    def insert_then_crash_before_marking(session: Any, rows: list[dict[str, Any]]) -> Any:
        ids = real_insert(session, rows)
        inserted.extend(usage_id for usage_id in ids.values() if usage_id is not None)
        return ids

    def crash(session: Any, marks: list[dict[str, Any]]) -> None:
        raise RuntimeError("the process dies here")

    monkeypatch.setattr(metering, "_insert_usage", insert_then_crash_before_marking)
    monkeypatch.setattr(metering, "_mark_seen", crash)
    batch = [event(name) for name in launches["p1"]]
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/api/v1/metering/events",
            json=batch,
            headers=CLOUDEVENTS_BATCH | {"Authorization": f"Bearer {world.op1.token}"},
        )
    assert_problem(response, 500, "internal")
    assert len(inserted) == 3  # the records were written inside the transaction
    assert counts(clean_engine) == (0, 0)  # and are gone with it, as is every mark

    monkeypatch.undo()
    answer = ingest(world.op1, batch)
    assert answer["recorded"] == 3
    assert counts(clean_engine) == (3, 3)


def _as_if_not_yet_committed(monkeypatch: Any, *, launch_too: bool) -> None:
    """Make this request look before the other one committed: it sees no seen marks (and, with
    `launch_too`, no usage records either), as under READ COMMITTED before the other's commit."""
    monkeypatch.setattr(metering, "_seen", lambda session, keys: {})
    if launch_too:
        monkeypatch.setattr(metering, "_metered", lambda session, launch_ids: {})


def test_a_concurrent_report_of_the_same_event_loses_cleanly(world, launches, clean_engine, monkeypatch):
    """Two requests with the same new event: the later commit violates the seen mark's uniqueness and
    is answered 409 (retry), storing nothing; its retry is a duplicate."""
    one = event(launches["p1"][0], event_id="racing")
    ingest(world.op1, [one])
    _as_if_not_yet_committed(monkeypatch, launch_too=False)
    response = world.op1.call("POST", "/metering/events", json=[one], headers=CLOUDEVENTS_BATCH)
    assert_problem(response, 409, "conflict.concurrent")
    monkeypatch.undo()
    assert ingest(world.op1, [one])["results"][0]["status"] == "duplicate"
    assert counts(clean_engine) == (1, 1)


def test_concurrent_reports_of_one_launch_never_make_two_records(world, launches, clean_engine, monkeypatch):
    """Two sources report the same launch at once: the usage record's one-per-launch uniqueness refuses
    the later commit (409, nothing stored); its retry is already metered."""
    name = launches["p1"][0]
    ingest(world.op1, [event(name, source="/a", event_id="1")])
    _as_if_not_yet_committed(monkeypatch, launch_too=True)
    other = event(name, source="/b", event_id="1")
    response = world.op1.call("POST", "/metering/events", json=[other], headers=CLOUDEVENTS_BATCH)
    assert_problem(response, 409, "conflict.concurrent")
    assert counts(clean_engine) == (1, 1)
    monkeypatch.undo()
    assert ingest(world.op1, [other])["results"][0]["status"] == "already-metered"
    assert counts(clean_engine) == (1, 2)


# --- who may report --------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["admin_a", "member_a"])
def test_tenants_cannot_report_usage(world, launches, clean_engine, caller):
    api = getattr(world, caller)
    response = api.call(
        "POST", "/metering/events", json=[event(launches["p1"][0])], headers=CLOUDEVENTS_BATCH
    )
    assert_problem(response, 403, "access.role-required")
    assert counts(clean_engine) == (0, 0)


def test_an_operator_reports_only_launches_on_its_own_providers_pools(world, launches, clean_engine):
    batch = [event(launches["p2"][0]), event(launches["p1"][0])]
    response = world.op1.call("POST", "/metering/events", json=batch, headers=CLOUDEVENTS_BATCH)
    body = assert_problem(response, 422, "metering.invalid-events")
    # The same answer as for a launch that does not exist: nothing about other providers leaks.
    assert [(e["index"], e["type"]) for e in body["errors"]] == [(0, "metering.launch-unknown")]
    assert counts(clean_engine) == (0, 0)
    assert ingest(world.op2, [event(launches["p2"][0])])["recorded"] == 1


def test_reporting_usage_needs_a_token(world, launches, clean_engine):
    response = world.op1.as_(None).call(
        "POST", "/metering/events", json=[event(launches["p1"][0])], headers=CLOUDEVENTS_BATCH
    )
    assert_problem(response, 401, "auth.missing")


# --- limits and the body's form --------------------------------------------------------------------


def test_a_batch_of_1001_events_is_refused(world, launches, clean_engine):
    batch = [event(launches["p1"][0]) for _ in range(1001)]
    response = world.op1.call("POST", "/metering/events", json=batch, headers=CLOUDEVENTS_BATCH)
    body = assert_problem(response, 413, "metering.batch-too-many")
    assert "1001" in body["detail"] and "1000" in body["detail"]
    assert counts(clean_engine) == (0, 0)


def test_a_batch_of_1000_events_is_taken(world, clean_engine):
    names = insert_launches(
        clean_engine,
        pool_id=world.pool1["id"],
        org_id=world.org_a["id"],
        user_id=world.users["admin_a"]["id"],
        count=1000,
    )
    answer = ingest(world.op1, [event(name) for name in names])
    assert answer["recorded"] == 1000
    assert counts(clean_engine) == (1000, 1000)


def test_a_body_over_the_byte_limit_is_refused_before_it_is_read(world, launches, clean_engine, monkeypatch):
    monkeypatch.setattr(metering, "MAX_BATCH_BYTES", 100)
    response = world.op1.call(
        "POST", "/metering/events", json=[event(launches["p1"][0])], headers=CLOUDEVENTS_BATCH
    )
    assert_problem(response, 413, "metering.batch-bytes")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"[]", "text/plain", 415, "metering.content-type"),
        (b"[", "application/json", 422, "metering.batch-not-json"),
        (b'{"specversion": "1.0"}', "application/cloudevents+json", 415, "metering.content-type"),
        (b'{"specversion": "1.0"}', "application/json", 422, "metering.batch-not-array"),
    ],
)
def test_the_body_must_be_a_json_array_of_events(world, clean_engine, content, content_type, status, code):
    response = world.op1.call(
        "POST", "/metering/events", content=content, headers={"Content-Type": content_type}
    )
    assert_problem(response, status, code)


# --- batching --------------------------------------------------------------------------------------


def test_the_queries_of_a_batch_do_not_grow_with_its_size(world, clean_engine):
    names = insert_launches(
        clean_engine,
        pool_id=world.pool1["id"],
        org_id=world.org_a["id"],
        user_id=world.users["admin_a"]["id"],
        count=60,
    )

    def queries_for(batch: list[dict[str, Any]]) -> list[str]:
        with statements_sent(clean_engine, signing_in=False) as statements:
            ingest(world.op1, batch)
        return statements

    small = len(queries_for([event_for(name) for name in names[:5]]))
    statements = queries_for([event_for(name) for name in names[5:]])
    large = len(statements)
    # Launches, seen marks and existing records, one query each; records and marks, one INSERT each;
    # one to find records of jobs already settled (charged late); and the audit trail's at commit:
    # lock its head, insert the entries (by COPY on PostgreSQL, which this count does not see), move
    # the head.
    audit = 2 if clean_engine.dialect.name == "postgresql" else 3
    assert small == large == 6 + audit
    assert sum("audit_" in statement for statement in statements) == audit
    retry = len(queries_for([event_for(name) for name in names[5:]]))
    assert retry == 3  # a retry only reads


def event_for(name: str) -> dict[str, Any]:
    return event(name, event_id=f"id-{name}")


# --- with the controller ---------------------------------------------------------------------------


def test_usage_the_controller_metered_is_not_charged_again_from_an_event(
    regulator, clock, settings, clean_engine
):
    """A job really runs (simulated site) and the controller records its usage; a provider's event
    about the same launch is then already metered."""
    from tests import jobs_world
    from tests.jobs_world import state_is

    ew = jobs_world.build(regulator, clock, settings, clean_engine)
    job = ew.submit(cards=8, regions=[ew.sim_site["region"]], duration_estimate_s=60)
    ew.run_until(job["id"], state_is("succeeded"))
    with session_scope(clean_engine) as session:
        name = session.scalars(select(Launch.name).where(Launch.job_id == job["id"])).one()
        metered = session.scalars(select(UsageRecord)).one()
    ended = clock.now - timedelta(seconds=1)
    answer = ingest(
        ew.regulator, [event(name, started_at=ended - timedelta(minutes=1), ended_at=ended, cards=8)]
    )
    assert answer["results"][0]["status"] == "already-metered"
    assert answer["results"][0]["usage_id"] == metered.id
    assert counts(clean_engine) == (1, 1)
