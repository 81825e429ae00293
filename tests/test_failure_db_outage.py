"""PostgreSQL stops under a running platform (issue 10): while it is down every API request that needs
it answers 503 problem+json `database-unavailable` promptly (never a 500, never a hang), reads and
writes alike; when it is back, requests succeed again without restarting anything, the controller
carries on (inside the API server, and in its own process), and nothing half-written remains.

The database is a PostgreSQL cluster of the test's own (initdb into a temporary folder, pg_ctl on a
free port), so stopping it disturbs no one. Two outages: `pg_ctl stop -m fast` under an API server
with the controller inside it, then `-m immediate` (a crash: what was not committed is gone) under an
API-only worker beside `suanwang controller`. Each stops the database under requests waiting inside it
mid-transaction (on a table lock the test holds), then probes it while it is down. Tenants keep
submitting through both, each submission sent again with its Idempotency-Key while its outcome is
unknown (bench/bench_load.py's client). PostgreSQL only (its server binaries must be installed, as in
CI); about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_chaos import Cluster
from bench_load import (
    CLOUDEVENTS,
    Cast,
    Recorder,
    Submissions,
    issue_tokens,
    submit_loop,
    usage_event,
    wait_until_idle,
)
from bench_submit import free_port
from demo_db import demo_region

from suanwang.config import Settings
from suanwang.db.session import make_engine, session_scope
from suanwang.invariants import check_all, check_submissions, rows
from suanwang.timeutil import SHANGHAI
from tests.conftest import PG_URL
from tests.helpers import assert_problem

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SUANWANG_TEST_DATABASE_URL (CI does)"),
]

SEED = 20261204
ANSWER_BOUND_S = 20.0  # generous: a request still unanswered after this is a hang
SUBMIT_RATE = 4.0
PATIENCE_S = 60.0  # how long a submission is sent again with its key
DOWN_S = 3.0  # how long the probes keep asking while the database is down
DRAIN_S = 60.0  # a bound against a hang, not a timing expectation


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own. PostgreSQL refuses to run as root: as root, its commands
    run as the `postgres` user (runuser), in a folder that user owns."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.bin = pg_bin()
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_owner, str(self.bin / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.root / "data"), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        # No fsync: nothing here must survive the machine, only the server (an immediate stop is a
        # crash of the server, with recovery from the WAL at the next start).
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "postgresql.log")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")


def pg_bin() -> Path:
    """The newest installed PostgreSQL server's binaries (Debian keeps them off the PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path is None:
        pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    return Path(on_path).parent


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="suanwang-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    cluster = PrivatePostgres(root, free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):  # stopped already
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_down_answers_503_and_everything_resumes_after(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    env = demo_region(private_postgres.url, tmp_path)
    inside = Cluster(env, tmp_path, interval_s=0.5, workers=1, inside=True)
    inside.start()
    try:
        cast = issue_tokens(inside.base, tmp_path)
        first = asyncio.run(outage(inside, cast, private_postgres, "fast", SEED))
    finally:
        inside.stop()
    assert "Exception in thread" not in inside.logs[0].read_text(), "the controller thread died"

    apart = Cluster(env, tmp_path, interval_s=0.5, workers=1, inside=False)
    apart.start()
    try:
        second = asyncio.run(outage(apart, cast, private_postgres, "immediate", SEED + 1))
        assert apart.controller is not None and apart.controller.poll() is None, "the controller exited"
    finally:
        apart.stop()

    assert_nothing_half_written(private_postgres.url, first | second, tmp_path)


async def outage(cluster: Cluster, cast: Cast, db: PrivatePostgres, mode: str, seed: int) -> dict[str, int]:
    """Tenants submit steadily while the database stops (`pg_ctl stop -m mode`) for a while and starts
    again; requests answer 503 meanwhile, and afterwards every job the controller runs ends. The
    submissions' Idempotency-Keys and the jobs they were given."""
    async with httpx.AsyncClient(base_url=cluster.base, timeout=ANSWER_BOUND_S) as client:
        rec, seen = Recorder(client), Submissions()
        stop_at = time.perf_counter() + 2 * DOWN_S + 4
        submitting = asyncio.create_task(
            submit_loop(rec, cast, SUBMIT_RATE, stop_at, random.Random(seed), seen, PATIENCE_S)
        )
        await asyncio.sleep(2)
        job = await assert_served(rec, cast)
        await stop_under_waiting_requests(client, cast, db, mode, job)
        await assert_unavailable(client, cast, job)
        await asyncio.to_thread(db.start)
        await assert_served(rec, cast)
        await submitting
        assert seen.unanswered == 0, "a submission was not answered within the patience"
        assert await wait_until_idle(rec, cast.regulator, DRAIN_S) == 0, "jobs stopped ending: no controller"
    answers = {op: dict(stats.answers) for op, stats in rec.ops.items()}
    # Submissions met the outage (503, sent again with the key) and every one was answered 201 at last.
    assert "503" in answers["submit"] or "503" in answers.get("submit (retry, same key)", {}), answers
    assert all(status in ("200", "201", "409", "503") for ops in answers.values() for status in ops), answers
    return seen.keys


async def assert_served(rec: Recorder, cast: Cast) -> int:
    """The database answers again (within the bound): a tenant's job list; one of its job ids."""
    deadline = time.perf_counter() + ANSWER_BOUND_S
    while True:
        response = await rec.request("jobs list (tenant)", cast.tenants["hezhi-admin"], "GET", "/jobs")
        if response is not None and response.status_code == 200 and response.json()["items"]:
            return int(response.json()["items"][0]["id"])
        assert time.perf_counter() < deadline, "requests did not succeed again after the database came back"
        await asyncio.sleep(0.2)


async def stop_under_waiting_requests(
    client: httpx.AsyncClient, cast: Cast, db: PrivatePostgres, mode: str, job_id: int
) -> None:
    """Stop the database while requests wait inside it, mid-transaction (on a lock of the jobs table
    held meanwhile): a job list, a job, a cancel, and submissions whose transaction has already placed
    their holds on the wallet. Each must answer 503 too, and its transaction must leave nothing."""
    tenant = cast.tenants["hezhi-admin"]
    job = {"name": "outage-probe", "command": ["python3", "x"], "cards": 1, "duration_estimate_s": 60}
    calls = [
        ("GET", "/jobs", {}),
        ("GET", f"/jobs/{job_id}", {}),
        ("POST", f"/jobs/{job_id}/cancel", {}),
        *[("POST", "/jobs", {"json": job | {"accelerators": ["H800"]}}) for _ in range(3)],
    ]
    holder = await asyncio.to_thread(psycopg.connect, db.dsn)
    try:
        holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        waiting = [
            asyncio.create_task(
                client.request(
                    method,
                    "/api/v1" + path,
                    headers=tenant.auth | {"Idempotency-Key": f"outage-probe-waiting-{n}"},
                    **kwargs,
                )
            )
            for n, (method, path, kwargs) in enumerate(calls)
        ]
        await asyncio.sleep(1.0)  # they reach the lock and wait there
        assert not any(task.done() for task in waiting), "requests that should wait on the lock did not"
        await asyncio.to_thread(db.stop, mode)
        for response in await asyncio.gather(*waiting):
            assert_problem(response, 503, "database-unavailable")
    finally:
        with contextlib.suppress(psycopg.Error):  # the stop ended its session
            holder.close()


async def assert_unavailable(client: httpx.AsyncClient, cast: Cast, job_id: int) -> None:
    """Reads and writes, repeatedly while the database is down: each a prompt 503 problem+json that
    says so; the process itself still answers /healthz."""
    tenant, regulator = cast.tenants["hezhi-admin"], cast.regulator
    month = datetime.now(SHANGHAI).strftime("%Y-%m")
    job = {"name": "outage-probe", "command": ["python3", "x"], "cards": 1, "duration_estimate_s": 60}
    event = usage_event(
        "sw0",
        {"id": 1, "attempt": 1, "started_at": "2026-01-01T00:00:00+00:00", "cards": 1},
        "2026-01-01T00:01:00+00:00",
    )
    calls = [
        (tenant, "GET", "/jobs", {}),
        (tenant, "GET", f"/jobs/{job_id}", {}),
        (regulator, "GET", "/pools", {}),
        (regulator, "GET", f"/orgs/{tenant.org_id}/invoices/{month}", {}),
        (tenant, "POST", "/jobs", {"json": job | {"accelerators": ["H800"]}}),
        (tenant, "POST", f"/jobs/{job_id}/cancel", {}),
        (
            regulator,
            "POST",
            f"/orgs/{tenant.org_id}/top-ups",
            {"json": {"amount_fen": 1, "reason": "outage"}},
        ),
        (cast.operator, "POST", "/metering/events", {"content": json.dumps([event]), "headers": CLOUDEVENTS}),
    ]
    deadline = time.perf_counter() + DOWN_S
    probe = 0
    while time.perf_counter() < deadline:
        for actor, method, path, kwargs in calls:
            probe += 1
            headers = actor.auth | {"Idempotency-Key": f"outage-probe-{probe}"} | kwargs.get("headers", {})
            sent = {k: v for k, v in kwargs.items() if k != "headers"}
            response = await client.request(method, "/api/v1" + path, headers=headers, **sent)
            assert_problem(response, 503, "database-unavailable")
        assert (await client.get("/healthz")).status_code == 200


def assert_nothing_half_written(url: str, keys: dict[str, int], data_dir: Path) -> None:
    """Every invariant holds; each submission is exactly one job; no probe sent while the database was
    down left a trace (its Idempotency-Key, its job, its top-up)."""
    increment = Settings.model_fields["billing_increment_s"].default
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            checks = check_all(session, billing_increment_s=increment, launch_records=data_dir / "launches")
            checks.append(check_submissions(session, keys, "load-%"))
            probes = rows(
                session,
                """SELECT (SELECT count(*) FROM idempotency_keys WHERE key LIKE 'outage-probe-%'),
                          (SELECT count(*) FROM jobs WHERE name = 'outage-probe'),
                          (SELECT count(*) FROM ledger_transfers WHERE code = 'top-up' AND amount = 1)""",
            )[0]
            session.rollback()
    finally:
        engine.dispose()
    assert [check for check in checks if not check.ok] == []
    assert tuple(probes) == (0, 0, 0)
