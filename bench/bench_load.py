"""Sustained load on PostgreSQL: submissions, usage ingestion and settlements for minutes, then invariants.

    python bench/bench_load.py [--minutes 10] [--submit-rate 20] [--database URL]
                               [--controller-interval 1] [--drain-s 120] [--seed 1]

Two processes on loopback. On a fresh PostgreSQL database (default: database `suanwang_load` on the
local server, dropped and re-created) with the Pinghu demo region loaded, `suanwang serve`'s app runs
under uvicorn (one worker) with the controller inside it (SUANWANG_SERVE_CONTROLLER=true, a cycle every
`--controller-interval` seconds); its log goes to `server.log` in the data directory. This script is the
second process and drives it for `--minutes`:

1. submissions at a steady `--submit-rate` from six demo tenants (two hold voucher grants, one submits
   government work), each with its own Idempotency-Key. The jobs are short on the simulated backends
   (~1.5–6 s), so they really run, end and are settled during the run; ~5 % run `false` and fail. Some
   submissions are replayed with their key (the same job must come back) and some jobs are cancelled
   by their tenant 0–3 s after submission.
2. usage ingestion: Runze's operator reads its running and ended jobs through the API every second and
   posts CloudEvents batches for their launches (names `sw<instance>-<job>-<attempt>`, the instance
   learnt from the usage records the controller made). Events for running launches make the usage
   record (an agent that reports first); events for ended ones are `already-metered`. Each batch
   repeats one of its events, and the first batch and every fourth after it are sent again whole:
   every repeat must be answered `duplicate`.
3. settlements: the controller settles each job as it ends (its charge, the vouchers' share and the
   providers' payouts in one ledger chain); the regulator reads a tenant's invoice or Runze's statement
   every 5 s, tenants list their jobs and the operator its usage, to load the read side.

Per operation: requests, per second, p50/p99 latency and the answers by status; settlements per second
and how long after a job's end it was settled (from the database). Then submissions stop, the queue
drains for at most `--drain-s` seconds (what is left is cancelled, and given 60 s more), the server
stops, and the invariants are checked directly in the database: the ledger's `check_invariants`
(zero-sum, balances = transfers), no account beyond its limit, every voucher cap (programme budget,
grant, enterprise-year, order), each ended job settled exactly once with payouts equal to its charge
and its charge equal to its usage rated again, every job history a chain that never leaves an ended
state, one usage record per launch and per event. Prints tables (markdown) and each invariant with
PASS/FAIL; writes bench/results/load.json; exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bench_submit import free_port, serve
from demo_db import demo_region, fresh_postgres
from sqlalchemy import text
from sqlalchemy.orm import Session

from suanwang.config import Settings
from suanwang.db.backup import verify
from suanwang.db.session import make_engine, session_scope
from suanwang.jobs.lifecycle import TERMINAL
from suanwang.ledger import store as ledger
from suanwang.settlement.service import rate_job
from suanwang.timeutil import SHANGHAI, shanghai_date
from suanwang.vouchers import accounts
from suanwang.vouchers.grants import tenant_facts
from suanwang.vouchers.models import VoucherProgramme
from suanwang.vouchers.programmes import to_rules
from suanwang.vouchers.rules import year_cap_for

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_load"
API = "/api/v1"
CLOUDEVENTS = {"Content-Type": "application/cloudevents-batch+json"}
EVENT_SOURCE = "/providers/runze-pinghu/agents/bench-load"
OPERATOR = "runze-ops"
MAX_IN_FLIGHT = 64  # submissions waiting for their answer; beyond it the rate falls instead of piling up
REPLAY_SHARE = 0.02  # submissions sent again with the same Idempotency-Key
CANCEL_SHARE = 0.03  # jobs their tenant cancels 0-3 s after submitting
FAIL_SHARE = 0.05  # jobs whose command is `false`: they fail on the simulated backend
INGEST_PERIOD_S = 1.0
RESEND_EVERY = 4  # the first ingestion batch and every fourth after it are sent again whole
MAX_EVENTS_PER_BATCH = 200
READ_PERIOD_S = 1.0
ACTIVE_STATES = ("submitted", "queued", "placed", "running", "preempted", "lost")
ENDED_STATES = tuple(sorted(state.value for state in TERMINAL))


# --- who does what ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """A demo user and its API token."""

    name: str
    token: str
    org_id: int | None = None
    provider_id: int | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class Shape:
    """What one demo tenant submits: its admin, its share of the submissions, its job.

    `duration_s` is on the reference V100; the pools' cards are 2.5-7.9× faster and the simulated
    backends run 1 % of the estimate, so each job takes ~3 s (× 0.5-2, drawn per job)."""

    user: str
    weight: int
    duration_s: int
    spec: dict[str, Any]


SHAPES = (
    # Local SMEs with voucher grants: their work on Runze's local pools is half paid by the programme.
    Shape("trade-ai-admin", 3, 2400, {"accelerators": ["H800"], "cards": 8, "cards_per_node": 8}),
    Shape("hezhi-admin", 3, 2400, {"accelerators": ["H800"], "cards": 1, "job_type": "inference"}),
    Shape("hanshu-admin", 2, 750, {"accelerators": ["A800"], "cards": 8, "cards_per_node": 8}),
    Shape("netco-admin", 1, 2400, {"accelerators": ["H800", "H100-SXM"], "cards": 16, "cards_per_node": 8}),
    Shape(
        "gov-data-admin",
        1,
        770,
        {"accelerators": ["ASCEND-910B"], "cards": 1, "classification": "government"},
    ),
    Shape("unilab-admin", 1, 750, {"accelerators": ["A800"], "cards": 1}),
)


@dataclass(frozen=True, slots=True)
class Cast:
    """Everyone the load needs: the regulator, the tenants' admins, Runze's operator and its pools."""

    regulator: Actor
    tenants: dict[str, Actor]
    operator: Actor
    operator_pools: frozenset[int]


def issue_tokens(base: str, data_dir: Path) -> Cast:
    """Tokens for the demo users, issued by the demo regulator through the API."""
    regulator = Actor("regulator", (data_dir / "demo-regulator.token").read_text().strip())
    with httpx.Client(base_url=base + API, headers=regulator.auth, timeout=30) as client:
        users = {
            u["name"]: u
            for u in client.get("/users", params={"limit": 500}).raise_for_status().json()["items"]
        }

        def actor(name: str) -> Actor:
            user = users[name]
            body = {"name": "bench-load", "user_id": user["id"]}
            created = client.post("/tokens", json=body).raise_for_status().json()
            return Actor(name, created["token"], user["org_id"], user["provider_id"])

        tenants = {shape.user: actor(shape.user) for shape in SHAPES}
        operator = actor(OPERATOR)
        pools = client.get("/pools", params={"provider_id": operator.provider_id, "limit": 500})
        pool_ids = frozenset(p["id"] for p in pools.raise_for_status().json()["items"])
    return Cast(regulator, tenants, operator, pool_ids)


# --- measuring -------------------------------------------------------------------------------------


@dataclass(slots=True)
class OpStats:
    expected: tuple[int, ...]
    latencies_s: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        count = sum(self.answers.values())
        errors = {k: n for k, n in self.answers.items() if not k.isdigit() or int(k) not in self.expected}
        return {
            "count": count,
            "per_s": count / seconds if seconds else 0.0,
            "p50_ms": percentile(ordered, 0.50) * 1000,
            "p99_ms": percentile(ordered, 0.99) * 1000,
            "answers": dict(sorted(self.answers.items())),
            "errors": errors,
        }


def percentile(ordered: list[float], q: float) -> float:
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


class Recorder:
    """Sends requests and keeps, per operation, every latency and every answer (status or exception)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.ops: dict[str, OpStats] = {}

    async def request(
        self, op: str, actor: Actor, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response | None:
        stats = self.ops.setdefault(op, OpStats(ok))
        headers = actor.auth | kwargs.pop("headers", {})
        started = time.perf_counter()
        try:
            response = await self.client.request(method, API + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            stats.answers[type(exc).__name__] += 1
            return None
        stats.latencies_s.append(time.perf_counter() - started)
        stats.answers[str(response.status_code)] += 1
        return response

    def summary(self, seconds: float) -> dict[str, dict[str, Any]]:
        return {op: stats.summary(seconds) for op, stats in self.ops.items()}


@dataclass(slots=True)
class Submissions:
    """What the submitters saw: the jobs created (id → tenant) and the replays that came back wrong."""

    jobs: dict[int, Actor] = field(default_factory=dict)
    replays: int = 0
    replay_mismatches: int = 0
    cancels: int = 0


@dataclass(slots=True)
class Ingestion:
    """What the operator sent and was answered."""

    prefix: str | None = None  # "sw<instance>", learnt from a usage record the controller made
    reported: set[str] = field(default_factory=set)  # launches with an accepted event
    batches: int = 0
    events_sent: int = 0
    repeats_sent: int = 0  # events sent on purpose a second time (in the batch, or the batch again)
    repeats_refused: int = 0  # repeats in a batch that was not answered 200 (not expected back)
    recorded: int = 0
    duplicate: int = 0
    already_metered: int = 0


# --- the load --------------------------------------------------------------------------------------


def job_body(shape: Shape, serial: int, rng: random.Random) -> dict[str, Any]:
    program = "false" if rng.random() < FAIL_SHARE else "python3"
    duration = max(1, round(shape.duration_s * rng.uniform(0.5, 2.0)))
    return {"name": f"load-{serial}", "command": [program, "train.py"], "duration_estimate_s": duration} | (
        shape.spec
    )


async def submit_one(
    rec: Recorder, tenant: Actor, body: dict[str, Any], rng: random.Random, seen: Submissions
) -> None:
    """Submit one job; maybe replay it with its key, maybe cancel it a moment later."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    response = await rec.request("submit", tenant, "POST", "/jobs", ok=(201,), json=body, headers=key)
    if response is None or response.status_code != 201:
        return
    job_id = int(response.json()["id"])
    seen.jobs[job_id] = tenant
    if rng.random() < REPLAY_SHARE:
        again = await rec.request(
            "submit (replay)", tenant, "POST", "/jobs", ok=(201,), json=body, headers=key
        )
        seen.replays += 1
        if (
            again is None
            or again.headers.get("Idempotent-Replayed") != "true"
            or again.json()["id"] != job_id
        ):
            seen.replay_mismatches += 1
    if rng.random() < CANCEL_SHARE:
        await asyncio.sleep(rng.uniform(0, 3))
        # 409 job.already-ended: the job ended first, a legitimate answer.
        await rec.request("cancel (tenant)", tenant, "POST", f"/jobs/{job_id}/cancel", ok=(200, 409))
        seen.cancels += 1


async def submit_loop(
    rec: Recorder, cast: Cast, rate: float, stop_at: float, rng: random.Random, seen: Submissions
) -> None:
    """Submissions at a steady rate (open loop) from the tenants, weighted by their shapes."""
    weights = [shape.weight for shape in SHAPES]
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    next_at = time.perf_counter()
    serial = 0
    while (now := time.perf_counter()) < stop_at:
        if now < next_at:
            await asyncio.sleep(next_at - now)
            continue
        next_at = max(next_at + 1 / rate, now)  # late: no burst to catch up
        await in_flight.acquire()
        shape = rng.choices(SHAPES, weights)[0]
        serial += 1
        body = job_body(shape, serial, rng)
        task = asyncio.create_task(submit_one(rec, cast.tenants[shape.user], body, rng, seen))
        tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            tasks.discard(done)
            in_flight.release()

        task.add_done_callback(finished)
    await asyncio.gather(*tasks)


def usage_event(prefix: str, job: dict[str, Any], ended_at: str) -> dict[str, Any]:
    launch = f"{prefix}-{job['id']}-{job['attempt']}"
    return {
        "specversion": "1.0",
        "id": f"{launch}/usage",
        "source": EVENT_SOURCE,
        "type": "cn.suanwang.usage.v1",
        "time": datetime.now(UTC).isoformat(),
        "subject": launch,
        "data": {
            "launch": launch,
            "started_at": job["started_at"],
            "ended_at": ended_at,
            "cards": job["cards"],
        },
    }


async def learn_prefix(rec: Recorder, operator: Actor) -> str | None:
    """The launch names' prefix, from a usage record the controller made (its external id is the name)."""
    response = await rec.request("usage list (operator)", operator, "GET", "/usage", params={"limit": 50})
    if response is None or response.status_code != 200:
        return None
    for item in response.json()["items"]:
        if item["source"] == "simulated" and item["external_id"]:
            return str(item["external_id"]).rsplit("-", 2)[0]
    return None


async def operator_jobs(rec: Recorder, cast: Cast, state: str, limit: int) -> list[dict[str, Any]]:
    """The operator's jobs in `state` whose launch (first attempt, started) is on its own pools."""
    params = {"state": state, "limit": limit}
    response = await rec.request("jobs list (operator)", cast.operator, "GET", "/jobs", params=params)
    if response is None or response.status_code != 200:
        return []
    return [
        job
        for job in response.json()["items"]
        if job["pool_id"] in cast.operator_pools and job["attempt"] == 1 and job["started_at"] is not None
    ]


async def post_events(
    rec: Recorder, op: str, operator: Actor, batch: list[dict[str, Any]], ing: Ingestion
) -> bool:
    response = await rec.request(
        op, operator, "POST", "/metering/events", content=json.dumps(batch), headers=CLOUDEVENTS
    )
    if response is None or response.status_code != 200:
        return False
    answer = response.json()
    ing.recorded += answer["recorded"]
    ing.duplicate += answer["duplicate"]
    ing.already_metered += answer["already_metered"]
    return True


async def ingest_once(rec: Recorder, cast: Cast, ing: Ingestion) -> None:
    """One batch of usage events for running and ended launches of the operator's pools, one repeat
    inside it; the first batch and every RESEND_EVERY-th after it are sent again whole."""
    if ing.prefix is None:
        ing.prefix = await learn_prefix(rec, cast.operator)
        if ing.prefix is None:
            return
    running = await operator_jobs(rec, cast, "running", MAX_EVENTS_PER_BATCH)
    ended = await operator_jobs(rec, cast, "succeeded", 20)
    now = datetime.now(UTC).isoformat()  # after the reads: no running launch started later than it
    events = [usage_event(ing.prefix, job, now) for job in running]
    events += [usage_event(ing.prefix, job, job["ended_at"]) for job in ended]
    events = [e for e in events if e["data"]["launch"] not in ing.reported][:MAX_EVENTS_PER_BATCH]
    if not events:
        return
    batch = [*events, events[0]]  # the repeat must come back `duplicate`
    ing.batches += 1
    ing.events_sent += len(batch)
    ing.repeats_sent += 1
    if not await post_events(rec, "ingest", cast.operator, batch, ing):
        ing.repeats_refused += 1
        return
    ing.reported.update(e["data"]["launch"] for e in events)
    if ing.batches % RESEND_EVERY == 1:
        ing.events_sent += len(batch)
        ing.repeats_sent += len(batch)
        if not await post_events(rec, "ingest (resend)", cast.operator, batch, ing):
            ing.repeats_refused += len(batch)


async def ingest_loop(rec: Recorder, cast: Cast, stop_at: float, ing: Ingestion) -> None:
    while time.perf_counter() < stop_at:
        await ingest_once(rec, cast, ing)
        await asyncio.sleep(INGEST_PERIOD_S)


async def read_loop(rec: Recorder, cast: Cast, stop_at: float) -> None:
    """The read side: a tenant's job list every second; every fifth second the operator's usage and the
    regulator's invoice of a tenant or Runze's statement, in turn (this month, Asia/Shanghai)."""
    tenants = list(cast.tenants.values())
    tick = 0
    while time.perf_counter() < stop_at:
        tenant = tenants[tick % len(tenants)]
        await rec.request("jobs list (tenant)", tenant, "GET", "/jobs", params={"limit": 50})
        if tick % 5 == 0:
            month = datetime.now(SHANGHAI).strftime("%Y-%m")
            await rec.request("usage list (operator)", cast.operator, "GET", "/usage", params={"limit": 50})
            if tick % 10 == 0:
                path = f"/orgs/{tenants[(tick // 10) % len(tenants)].org_id}/invoices/{month}"
                await rec.request("invoice (regulator)", cast.regulator, "GET", path)
            else:
                path = f"/providers/{cast.operator.provider_id}/statements/{month}"
                await rec.request("statement (regulator)", cast.regulator, "GET", path)
        tick += 1
        await asyncio.sleep(READ_PERIOD_S)


# --- draining --------------------------------------------------------------------------------------


async def active_jobs(rec: Recorder, regulator: Actor) -> int:
    total = 0
    for state in ACTIVE_STATES:
        params = {"state": state, "limit": 1}
        response = await rec.request("jobs count (regulator)", regulator, "GET", "/jobs", params=params)
        total += response.json()["total"] if response is not None and response.status_code == 200 else 1
    return total


async def wait_until_idle(rec: Recorder, regulator: Actor, seconds: float) -> int:
    """Wait for every job to end, at most `seconds`; how many are still active."""
    deadline = time.perf_counter() + seconds
    while (left := await active_jobs(rec, regulator)) and time.perf_counter() < deadline:
        await asyncio.sleep(1.0)
    return left


async def cancel_active(rec: Recorder, regulator: Actor) -> int:
    """The regulator cancels every job still active; how many it asked to cancel."""
    asked = 0
    for state in ACTIVE_STATES:
        params = {"state": state, "limit": 500}
        response = await rec.request("jobs list (regulator)", regulator, "GET", "/jobs", params=params)
        if response is None or response.status_code != 200:
            continue
        for job in response.json()["items"]:
            await rec.request("cancel (drain)", regulator, "POST", f"/jobs/{job['id']}/cancel", ok=(200, 409))
            asked += 1
    return asked


async def drain(rec: Recorder, regulator: Actor, seconds: float) -> dict[str, Any]:
    started = time.perf_counter()
    left = await wait_until_idle(rec, regulator, seconds)
    drained_s = time.perf_counter() - started
    cancelled = await cancel_active(rec, regulator) if left else 0
    still = await wait_until_idle(rec, regulator, 60.0) if cancelled else left
    return {
        "drain_s": drained_s,
        "active_after_drain": left,
        "cancelled_at_drain": cancelled,
        "still_active": still,
    }


@dataclass(slots=True)
class Run:
    """What the client measured: the load's requests, the drain's, and the window of the load."""

    load: Recorder
    drain: Recorder
    seen: Submissions
    ing: Ingestion
    load_s: float
    started_at: datetime
    ended_at: datetime
    drained: dict[str, Any]


async def run_load(base: str, cast: Cast, minutes: float, rate: float, drain_s: float, seed: int) -> Run:
    rng = random.Random(seed)
    seen, ing = Submissions(), Ingestion()
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT + 16, max_keepalive_connections=MAX_IN_FLIGHT + 16)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        rec, drain_rec = Recorder(client), Recorder(client)
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        stop_at = started + minutes * 60
        await asyncio.gather(
            submit_loop(rec, cast, rate, stop_at, rng, seen),
            ingest_loop(rec, cast, stop_at, ing),
            read_loop(rec, cast, stop_at),
        )
        load_s, ended_at = time.perf_counter() - started, datetime.now(UTC)
        drained = await drain(drain_rec, cast.regulator, drain_s)
    return Run(rec, drain_rec, seen, ing, load_s, started_at, ended_at, drained)


# --- the server ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Processes started inside write their stderr (the server's log) to `path`; ours is restored after."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_server(env: dict[str, str], interval_s: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = env | {"SUANWANG_SERVE_CONTROLLER": "true", "SUANWANG_CONTROLLER_INTERVAL_S": str(interval_s)}
    port = free_port()
    with stderr_to(log):
        server = serve(env, port, workers=1, batch=500)
    return server, f"http://127.0.0.1:{port}"


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()  # uvicorn's shutdown stops the controller thread (its cycle finishes first)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


LOG_SIGNS = ("Traceback", "controller cycle failed", "intake batch failed", "deadlock detected", "Error on ")


def server_log_summary(log: Path) -> dict[str, Any]:
    """How often the server logged each sign of trouble, and the first such lines."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    found = [line for line in lines if any(sign in line for sign in LOG_SIGNS)]
    counts = {sign: sum(sign in line for line in lines) for sign in LOG_SIGNS}
    return {"path": str(log), "lines": len(lines), "counts": counts, "first": found[:10]}


# --- what the database says afterwards -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def rows(session: Session, sql: str, **params: Any) -> list[Any]:
    return list(session.execute(text(sql), params))


def sample(found: list[Any], n: int = 5) -> str:
    return f"{len(found)} bad, e.g. {[tuple(r) for r in found[:n]]}"


def check_ledger(url: str, session: Session) -> list[Check]:
    problems = verify(url).ledger_problems
    transfers = rows(session, "SELECT count(*) FROM ledger_transfers")[0][0]
    beyond = rows(
        session,
        """SELECT key, debits_posted + debits_pending, credits_posted, credit_limit_fen FROM ledger_accounts
           WHERE (debits_must_not_exceed_credits
                  AND debits_posted + debits_pending > credits_posted + credit_limit_fen)
              OR (credits_must_not_exceed_debits AND credits_posted + credits_pending > debits_posted)""",
    )
    return [
        Check(
            "ledger: check_invariants (zero-sum per ledger, balances = transfers, pendings resolved once)",
            not problems,
            "; ".join(problems[:5]) or f"{transfers:,} transfers",
        ),
        Check("ledger: no account beyond its limit", not beyond, sample(beyond) if beyond else "none"),
    ]


def check_voucher_caps(session: Session) -> list[Check]:
    budgets = rows(
        session,
        """SELECT p.code, p.budget_fen, coalesce(sum(g.amount_fen), 0) FROM voucher_programmes p
           LEFT JOIN voucher_grants g ON g.programme_id = p.id GROUP BY p.id
           HAVING coalesce(sum(g.amount_fen), 0) > p.budget_fen""",
    )
    grants = rows(
        session,
        """SELECT g.id, g.amount_fen, coalesce(sum(r.subsidy_fen - r.clawed_back_fen), 0),
                  coalesce(sum(r.subsidy_fen), 0) + coalesce(max(g.returned_fen), 0),
                  a.debits_posted + a.debits_pending
           FROM voucher_grants g JOIN ledger_accounts a ON a.id = g.account_id
           LEFT JOIN voucher_redemptions r ON r.grant_id = g.id
           GROUP BY g.id, a.id
           HAVING coalesce(sum(r.subsidy_fen - r.clawed_back_fen), 0) > g.amount_fen
               OR coalesce(sum(r.subsidy_fen), 0) + coalesce(max(g.returned_fen), 0)
                  <> a.debits_posted + a.debits_pending""",
    )
    orders = rows(
        session,
        """SELECT r.programme_id, r.job_id, r.part, sum(r.subsidy_fen), p.cap_order_fen
           FROM voucher_redemptions r JOIN voucher_programmes p ON p.id = r.programme_id
           GROUP BY r.programme_id, r.job_id, r.part, p.cap_order_fen
           HAVING p.cap_order_fen IS NOT NULL AND sum(r.subsidy_fen) > p.cap_order_fen""",
    )
    above_charge = rows(
        session, "SELECT id, subsidy_fen, charge_fen FROM voucher_redemptions WHERE subsidy_fen > charge_fen"
    )
    twice = rows(
        session,
        """SELECT programme_id, job_id, part, pool_id, count(*) FROM voucher_redemptions
           GROUP BY programme_id, job_id, part, pool_id HAVING count(*) > 1""",
    )
    paid = rows(
        session,
        """SELECT count(DISTINCT job_id) FILTER (WHERE subsidy_fen > 0), coalesce(sum(subsidy_fen), 0)
           FROM voucher_redemptions""",
    )
    jobs_paid, fen_paid = paid[0]
    return [
        Check(
            "vouchers: programme budgets cover their grants",
            not budgets,
            sample(budgets) if budgets else "ok",
        ),
        Check(
            "vouchers: no grant paid beyond its amount; its account paid exactly the subsidies",
            not grants,
            sample(grants) if grants else f"{jobs_paid:,} jobs subsidised, {fen_paid:,} fen",
        ),
        check_year_caps(session),
        Check(
            "vouchers: order caps; no subsidy above its line's charge",
            not orders and not above_charge,
            sample(orders + above_charge) if orders or above_charge else "ok",
        ),
        Check(
            "vouchers: one redemption per (programme, job, part, pool)",
            not twice,
            sample(twice) if twice else "ok",
        ),
    ]


def check_year_caps(session: Session) -> Check:
    """Each tenant's subsidies in a year within its annual cap (the rules' own cap for the tenant), and
    the cap's quota account moved exactly those subsidies."""
    bad = []
    found = rows(
        session,
        """SELECT programme_id, org_id, year, sum(subsidy_fen - clawed_back_fen), sum(subsidy_fen), min(at)
           FROM voucher_redemptions GROUP BY programme_id, org_id, year""",
    )
    for programme_id, org_id, year, net, gross, first_at in found:
        rules = to_rules(session.get_one(VoucherProgramme, programme_id))
        cap = year_cap_for(rules, tenant_facts(session, org_id), shanghai_date(first_at))
        if cap is None:
            continue
        account = ledger.get_account(session, key=accounts.cap(programme_id, org_id, year).key)
        moved = 0 if account is None else account.debits_posted + account.debits_pending
        if net > cap or (gross and moved != gross):
            bad.append((programme_id, org_id, year, net, cap, moved))
    detail = sample(bad) if bad else f"{len(found)} (programme, tenant, year) within their caps"
    return Check("vouchers: enterprise-year caps (quota account = subsidies)", not bad, detail)


def check_settlement(session: Session) -> list[Check]:
    ended = "(" + ", ".join(f"'{s}'" for s in ENDED_STATES) + ")"
    # The transfers that resolve the job's hold: its charge or its release, exactly one once it ended.
    once = rows(
        session,
        f"""WITH settled AS (
              SELECT j.id, j.state, j.hold_fen, j.charged_fen, count(t.id) AS resolutions,
                     count(t.id) FILTER (WHERE t.id = 'job/' || j.id || '/charge'
                                            OR t.id = 'job/' || j.id || '/release') AS settlements
              FROM jobs j LEFT JOIN ledger_transfers t ON t.pending_id = 'job/' || j.id || '/hold'
              GROUP BY j.id)
            SELECT * FROM settled
            WHERE (state IN {ended} AND (charged_fen IS NULL
                     OR (coalesce(hold_fen, 0) > 0 AND (resolutions <> 1 OR settlements <> 1))))
               OR (state NOT IN {ended} AND (charged_fen IS NOT NULL OR resolutions <> 0))""",
    )
    holds = rows(
        session,
        """SELECT j.id, j.hold_fen, t.amount FROM jobs j
           LEFT JOIN ledger_transfers t ON t.id = 'job/' || j.id || '/hold'
           WHERE coalesce(j.hold_fen, 0) > 0 AND (t.id IS NULL OR NOT t.pending OR t.amount <> j.hold_fen)""",
    )
    # Money in (the tenant's part of the charge, the grants' part) = money out (providers and fee) = charge.
    money = rows(
        session,
        r"""WITH moved AS (
              SELECT split_part(id, '/', 2)::bigint AS job_id,
                     sum(amount) FILTER (
                       WHERE id ~ '^job/\d+/(late/\d+/)?pool/\d+/(v\d+/)?(provider|fee)$') AS paid_out,
                     sum(amount) FILTER (WHERE id ~ '^job/\d+/(late/\d+/)?(charge|overrun|arrears)$'
                                            OR id ~ '^job/\d+/(late/\d+/)?pool/\d+/v\d+/(provider|fee)$')
                       AS paid_in
              FROM ledger_transfers WHERE ledger = 'CNY' AND id LIKE 'job/%' GROUP BY 1)
            SELECT j.id, j.charged_fen, coalesce(m.paid_in, 0), coalesce(m.paid_out, 0)
            FROM jobs j LEFT JOIN moved m ON m.job_id = j.id
            WHERE j.charged_fen IS NOT NULL
              AND (coalesce(m.paid_in, 0) <> j.charged_fen OR coalesce(m.paid_out, 0) <> j.charged_fen)""",
    )
    clearing = rows(
        session,
        """SELECT a.credits_posted - a.debits_posted, a.credits_pending - a.debits_pending,
                  (SELECT coalesce(sum(hold_fen), 0) FROM jobs WHERE charged_fen IS NULL)
           FROM ledger_accounts a WHERE a.key = 'platform/clearing'""",
    )
    posted, pending, open_holds = clearing[0] if clearing else (0, 0, 0)
    settled = rows(session, f"SELECT count(*) FROM jobs WHERE state IN {ended}")[0][0]
    return [
        Check(
            "settlement: each ended job settled exactly once (hold charged or released), none before its end",
            not once,
            sample(once) if once else f"{settled:,} ended jobs, one settlement each",
        ),
        Check("settlement: every job's hold placed as admitted", not holds, sample(holds) if holds else "ok"),
        Check(
            "settlement: per job, tenant + vouchers paid = providers + fee received = charge",
            not money,
            sample(money) if money else "ok",
        ),
        Check(
            "settlement: clearing holds only the open holds",
            posted == 0 and pending == open_holds,
            f"posted net {posted}, pending net {pending}, open holds {open_holds}",
        ),
        check_rating(session),
    ]


def check_rating(session: Session) -> Check:
    """Each ended job's charge is its usage rated again (jobs charged for late usage are left out)."""
    # The server ran without SUANWANG_* settings of its own (demo_db strips them): the default increment.
    increment = Settings.model_fields["billing_increment_s"].default
    charged = rows(
        session,
        """SELECT id, charged_fen FROM jobs WHERE charged_fen IS NOT NULL AND NOT EXISTS
             (SELECT 1 FROM ledger_transfers t WHERE t.id LIKE 'job/' || jobs.id || '/late/%')""",
    )
    bad = [
        (job_id, fen, total)
        for job_id, fen in charged
        if (total := rate_job(session, job_id, increment).total_fen) != fen
    ]
    return Check(
        "settlement: charge = the job's usage rated again",
        not bad,
        sample(bad) if bad else f"{len(charged):,} charges rated again",
    )


def check_metering(session: Session, ing: Ingestion) -> list[Check]:
    per_launch = rows(session, "SELECT launch_id, count(*) FROM usage_records GROUP BY 1 HAVING count(*) > 1")
    unmetered = rows(
        session,
        """SELECT l.id, l.name FROM launches l LEFT JOIN usage_records u ON u.launch_id = l.id
           WHERE l.closed AND l.started_at IS NOT NULL AND l.ended_at IS NOT NULL AND u.id IS NULL""",
    )
    seen_twice = rows(
        session,
        "SELECT source, event_id, count(*) FROM metering_seen_events GROUP BY 1, 2 HAVING count(*) > 1",
    )
    (from_events, marks, distinct_records) = rows(
        session,
        """SELECT (SELECT count(*) FROM usage_records WHERE source = 'event'),
                  (SELECT count(*) FROM metering_seen_events WHERE outcome = 'recorded'),
                  (SELECT count(DISTINCT usage_record_id) FROM metering_seen_events
                   WHERE outcome = 'recorded')""",
    )[0]
    counted_once = not seen_twice and from_events == marks == distinct_records == ing.recorded
    expected_duplicates = ing.repeats_sent - ing.repeats_refused
    return [
        Check(
            "metering: one usage record per launch",
            not per_launch,
            sample(per_launch) if per_launch else "ok",
        ),
        Check(
            "metering: every ended launch that ran has its record",
            not unmetered,
            sample(unmetered) if unmetered else "ok",
        ),
        Check(
            "metering: each event counted once (records from events = 'recorded' marks = answers)",
            counted_once,
            f"{from_events} records from events, {marks} recorded marks ({distinct_records} distinct), "
            f"{ing.recorded} answered recorded, {len(seen_twice)} (source, id) seen twice",
        ),
        Check(
            "metering: every repeated event answered duplicate",
            ing.duplicate == expected_duplicates,
            f"{expected_duplicates} repeats sent in accepted batches, {ing.duplicate} answered duplicate",
        ),
    ]


def check_jobs(session: Session, seen: Submissions, transport_errors: int) -> list[Check]:
    active = "(" + ", ".join(f"'{s}'" for s in ACTIVE_STATES) + ")"
    ended = "(" + ", ".join(f"'{s}'" for s in ENDED_STATES) + ")"
    left = rows(session, f"SELECT count(*) FROM jobs WHERE state IN {active}")[0][0]
    stored = rows(session, "SELECT count(*) FROM jobs WHERE name LIKE 'load-%'")[0][0]
    # Each transition starts where the previous one ended, and nothing leaves an ended state.
    broken = rows(
        session,
        f"""SELECT job_id, id, previous, from_state, to_state, cause FROM (
              SELECT job_id, id, from_state, to_state, cause,
                     lag(to_state) OVER (PARTITION BY job_id ORDER BY id) AS previous
              FROM job_events) AS history
            WHERE previous IS DISTINCT FROM from_state OR previous IN {ended} ORDER BY job_id, id""",
    )
    # A submission whose answer was lost (transport error) may have been stored: the only allowed excess.
    one_each = len(seen.jobs) <= stored <= len(seen.jobs) + transport_errors and not seen.replay_mismatches
    return [
        Check(
            "jobs: every history a chain of transitions; no job left an ended state",
            not broken,
            sample(broken) if broken else "ok",
        ),
        Check(
            "jobs: every job ended (drained, or cancelled after the drain)", left == 0, f"{left} still active"
        ),
        Check(
            "jobs: one job per submission; replays with the key returned the same job",
            one_each,
            f"{stored:,} stored, {len(seen.jobs):,} answered 201, {seen.replays} replays, "
            f"{seen.replay_mismatches} replay mismatches",
        ),
    ]


def longest_pause(times: list[datetime], start: datetime, end: datetime) -> float:
    """The longest stretch of [start, end] in seconds without one of `times`."""
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(edges))


def settlement_stats(session: Session, run: Run) -> dict[str, Any]:
    """Settlements as the controller made them. A job is settled in the transaction that ends it, which
    writes the job: its `updated_at` is when (the server's clock; the ledger's transfers carry the job's
    end instead). Per second during the load, how long after the job's end and after its submission,
    and the longest pause in job starts and in settlements during the load."""
    found = rows(session, "SELECT state, submitted_at, started_at, ended_at, updated_at FROM jobs")
    settled = [r for r in found if r.state in ENDED_STATES]
    in_load = [r for r in settled if run.started_at <= r.updated_at <= run.ended_at]
    ran = [r for r in settled if r.state in ("succeeded", "failed") and r.ended_at is not None]
    lag = sorted((r.updated_at - r.ended_at).total_seconds() for r in ran)
    turnaround = sorted((r.updated_at - r.submitted_at).total_seconds() for r in ran)
    starts = [r.started_at for r in found if r.started_at is not None]
    subsidy = rows(
        session,
        """SELECT count(DISTINCT job_id), coalesce(sum(subsidy_fen), 0) FROM voucher_redemptions
           WHERE subsidy_fen > 0""",
    )[0]
    charged = rows(session, "SELECT coalesce(sum(charged_fen), 0) FROM jobs")[0][0]
    return {
        "settled": len(settled),
        "settled_during_load": len(in_load),
        "settled_per_s": len(in_load) / run.load_s,
        "end_to_settled_p50_s": percentile(lag, 0.5),
        "end_to_settled_p99_s": percentile(lag, 0.99),
        "submit_to_settled_p50_s": percentile(turnaround, 0.5),
        "submit_to_settled_p99_s": percentile(turnaround, 0.99),
        "longest_pause_in_starts_s": longest_pause(starts, run.started_at, run.ended_at),
        "longest_pause_in_settlements_s": longest_pause(
            [r.updated_at for r in settled], run.started_at, run.ended_at
        ),
        "jobs_by_state": dict(Counter(r.state for r in found)),
        "charged_fen": int(charged),
        "subsidised_jobs": int(subsidy[0]),
        "subsidy_fen": int(subsidy[1]),
    }


def check_database(url: str, run: Run, transport_errors: int) -> tuple[list[Check], dict[str, Any]]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            checks = [
                *check_ledger(url, session),
                *check_voucher_caps(session),
                *check_settlement(session),
                *check_metering(session, run.ing),
                *check_jobs(session, run.seen, transport_errors),
            ]
            stats = settlement_stats(session, run)
            session.rollback()  # only read
    finally:
        engine.dispose()
    return checks, stats


# --- the report ------------------------------------------------------------------------------------


def print_operations(ops: dict[str, dict[str, Any]]) -> None:
    print("| operation | requests | per s | p50 ms | p99 ms | answers | errors |")
    print("|---|--:|--:|--:|--:|---|--:|")
    for op, s in ops.items():
        answers = ", ".join(f"{k}×{n}" for k, n in s["answers"].items())
        print(
            f"| {op} | {s['count']:,} | {s['per_s']:.2f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
            f"{answers} | {sum(s['errors'].values())} |"
        )


def print_report(result: dict[str, Any], checks: list[Check]) -> None:
    cfg, st, ing, d = result["config"], result["settlement"], result["ingestion"], result["drain"]
    submitted = result["operations"].get("submit", {}).get("per_s", 0.0)
    print(
        f"\nSustained load, PostgreSQL, {cfg['host']} ({cfg['cpus']} CPUs): {result['load_s']:.0f} s, "
        f"submissions {submitted:.1f}/s of {cfg['submit_rate']:g}/s asked, controller every "
        f"{cfg['controller_interval']:g} s\n"
    )
    print_operations(result["operations"])
    print(
        f"\nSettlements (by the controller): {st['settled_during_load']:,} during the load "
        f"({st['settled_per_s']:.2f}/s), {st['settled']:,} in all; end → settled p50 "
        f"{st['end_to_settled_p50_s']:.2f} s, p99 {st['end_to_settled_p99_s']:.2f} s; submit → settled "
        f"p50 {st['submit_to_settled_p50_s']:.2f} s, p99 {st['submit_to_settled_p99_s']:.2f} s; longest "
        f"pause during the load: {st['longest_pause_in_starts_s']:.1f} s without a job start, "
        f"{st['longest_pause_in_settlements_s']:.1f} s without a settlement"
    )
    print(
        f"Jobs by state: {st['jobs_by_state']}; charged {st['charged_fen']:,} fen, of which vouchers paid "
        f"{st['subsidy_fen']:,} fen on {st['subsidised_jobs']:,} jobs"
    )
    print(
        f"Ingestion: {ing['batches']} batches, {ing['events_sent']:,} events sent ({ing['repeats_sent']} "
        f"of them repeats): {ing['recorded']} recorded, {ing['already_metered']} already-metered, "
        f"{ing['duplicate']} duplicate"
    )
    print(
        f"Drain: {d['drain_s']:.1f} s, {d['active_after_drain']} jobs active after it, "
        f"{d['cancelled_at_drain']} cancelled, {d['still_active']} still active"
    )
    log = result["server_log"]
    print(f"Server log ({log['path']}): " + ", ".join(f"{k!r} ×{n}" for k, n in log["counts"].items()) + "\n")
    print("| invariant | result | detail |")
    print("|---|---|---|")
    for check in checks:
        print(f"| {check.name} | {'PASS' if check.ok else 'FAIL'} | {check.detail} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--submit-rate", type=float, default=20.0, help="job submissions per second")
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--controller-interval", type=float, default=1.0, help="seconds between cycles")
    parser.add_argument("--drain-s", type=float, default=120.0, help="most seconds to wait for the queue")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"suanwang-load-{os.getpid()}"
    fresh_postgres(args.database)
    env = demo_region(args.database, data_dir)
    log = data_dir / "server.log"
    server, base = start_server(env, args.controller_interval, log)
    try:
        cast = issue_tokens(base, data_dir)
        run = asyncio.run(run_load(base, cast, args.minutes, args.submit_rate, args.drain_s, args.seed))
    finally:
        stop_server(server)

    ops = run.load.summary(run.load_s)
    transport_errors = sum(n for k, n in ops.get("submit", {}).get("answers", {}).items() if not k.isdigit())
    checks, settlement = check_database(args.database, run, transport_errors)
    result = {
        "config": vars(args) | {"host": platform.node(), "cpus": os.cpu_count()},
        "load_s": run.load_s,
        "started_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat(),
        "operations": ops,
        "settlement": settlement,
        "ingestion": {k: v for k, v in asdict(run.ing).items() if k != "reported"},
        "submissions": {
            "created": len(run.seen.jobs),
            "replays": run.seen.replays,
            "replay_mismatches": run.seen.replay_mismatches,
            "cancels": run.seen.cancels,
        },
        "drain": run.drained | {"operations": run.drain.summary(run.drained["drain_s"])},
        "server_log": server_log_summary(log),
        "invariants": [asdict(check) for check in checks],
    }
    print_report(result, checks)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    failed = [check.name for check in checks if not check.ok]
    print(
        f"\n{len(checks) - len(failed)} of {len(checks)} invariants hold"
        + (f"; FAILED: {failed}" if failed else "")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
