"""kill -9 under load (issue 10): the API workers and the controller die at seeded random moments
while tenants submit, the operator reports usage and the controller runs and settles jobs; each is
started again and the load goes on. Afterwards no job is lost or run twice, and no money is lost or
created.

A real platform on loopback: uvicorn with two API workers and `suanwang controller` in its own
process, on PostgreSQL with the demo region, driven by bench/bench_load.py's load (six tenants, each
submission with its own Idempotency-Key, sent again with that key while its outcome is unknown, as a
careful client does). bench/bench_chaos.py does the killing (it runs the same for minutes). PostgreSQL
only; about a minute.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_chaos import Cluster, Kill, chaos, kills_summary
from bench_load import check_database, issue_tokens, run_load, server_log_summary
from demo_db import demo_region

from suanwang.db.session import session_scope
from suanwang.invariants import check_ledger, check_runs, check_submissions, simulated_runs
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, Launch
from tests.conftest import PG_URL

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SUANWANG_TEST_DATABASE_URL (CI does)"),
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]

SEED = 20261203
LOAD_S = 30.0
SUBMIT_RATE = 8.0  # per second, from six tenants
# In this order, 2-4 s apart (seeded): the controller alone, the whole server with the controller at
# the same moment, one API worker (its supervisor starts another; the other worker serves meanwhile).
TARGETS = ("controller", "both", "worker", "controller", "worker")
KILL_EVERY_S = (2.0, 4.0)
PATIENCE_S = 60.0  # a submission is sent again with its key for at most this long
DRAIN_S = 45.0  # generous: a bound against a hang, not a timing expectation


def test_kill_9_of_api_workers_and_controller_loses_nothing_and_runs_nothing_twice(
    clean_engine: Engine, db_url: str, tmp_path: Path
) -> None:
    env = demo_region(db_url, tmp_path)
    cluster = Cluster(env, tmp_path, interval_s=0.5, workers=2)
    rng = random.Random(SEED)
    kills: list[Kill] = []

    def killer(stop_at: float) -> Any:
        return chaos(cluster, iter(TARGETS), KILL_EVERY_S, rng, stop_at, kills)

    cluster.start()
    try:
        cast = issue_tokens(cluster.base, tmp_path)
        load = run_load(
            cluster.base, cast, LOAD_S / 60, SUBMIT_RATE, DRAIN_S, SEED, patience_s=PATIENCE_S, beside=killer
        )
        run = asyncio.run(load)
    finally:
        cluster.stop()

    print(kills_summary(kills), f"{len(run.seen.keys)} submissions, {run.seen.recovered} answers lost")
    killed = {kill.target for kill in kills}
    assert {"controller", "both", "worker"} <= killed, kills
    # Every submission got its answer in the end (a retry with its key), and the queue drained by itself.
    assert run.seen.unanswered == 0
    assert len(run.seen.keys) >= LOAD_S * SUBMIT_RATE / 2
    assert run.drained["active_after_drain"] == 0, run.drained
    checks, _ = check_database(db_url, run, tmp_path)
    failed = [check for check in checks if not check.ok]
    assert failed == [], failed
    # No cycle, intake batch or request failed for it. (A job's end may be retried next cycle when an
    # operator's usage event for its launch lands first: logged, and harmless, as the checks show.)
    log = server_log_summary(cluster.logs)
    troubles = ("controller cycle failed", "intake batch failed", "deadlock detected", "Error on ")
    assert [log["counts"][sign] for sign in troubles] == [0, 0, 0, 0], log

    assert_the_checks_see_a_double_run_and_money_made(clean_engine, run.seen.keys, tmp_path / "launches")


def assert_the_checks_see_a_double_run_and_money_made(
    engine: Engine, keys: dict[str, int], launches: Path
) -> None:
    """The invariants would catch the faults this test is about (in a transaction rolled back): a job
    sent twice, a job the backend ran without a launch, a submission lost, a fen made from nothing."""
    runs = simulated_runs(launches)
    with session_scope(engine) as session:
        job = session.scalars(select(Job).where(Job.state == JobState.SUCCEEDED).limit(1)).one()
        first = session.scalars(select(Launch).where(Launch.job_id == job.id)).one()
        again = first.name + "-again"
        job.attempt += 1
        session.add(
            Launch(
                job_id=job.id,
                attempt=job.attempt,
                pool_id=first.pool_id,
                name=again,
                handle=again,
                recorded_at=first.recorded_at,
                closed=True,
            )
        )
        session.flush()
        ran_twice = dict(runs) | {again: dict(runs[first.name], name=again)}
        assert [check.ok for check in check_runs(session, ran_twice)] == [True, True, False]
        unrecorded = dict(runs) | {"sw-not-recorded-1": dict(runs[first.name], name="sw-not-recorded-1")}
        assert not check_runs(session, unrecorded)[1].ok
        assert not check_submissions(session, keys | {"lost": 10**9}, "load-%").ok
        session.execute(text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = 1"))
        assert not check_ledger(session)[0].ok
        session.rollback()
