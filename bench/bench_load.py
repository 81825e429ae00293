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
stops, and the invariants are checked directly in the database (suanwang/invariants.py, shared with
the chaos benchmark and the failure tests): the ledger's `check_invariants` (zero-sum, balances =
transfers), no account beyond its limit, every voucher cap (programme budget, grant, enterprise-year,
order), each ended job settled exactly once with payouts equal to its charge and its charge equal to
its usage rated again, every job history a chain that never leaves an ended state, one usage record
per launch and per event, no job run twice on the simulated backend (its launch records against the
launches); and what the client saw: one job per answered submission, every replay and every repeated
event answered as such. Prints tables (markdown) and each invariant with PASS/FAIL; writes
bench/results/load.json; exits 1 on any FAIL. bench/bench_chaos.py runs this load while it kill -9s
the server and the controller.
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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bench_submit import free_port, serve
from demo_db import demo_region, fresh_postgres
from sqlalchemy.orm import Session

from suanwang.config import Settings
from suanwang.db.session import make_engine, session_scope
from suanwang.invariants import ACTIVE_STATES, ENDED_STATES, Check, check_all, check_submissions, rows
from suanwang.timeutil import SHANGHAI

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_load"
API = "/api/v1"
CLOUDEVENTS = {"Content-Type": "application/cloudevents-batch+json"}
EVENT_SOURCE = "/providers/runze-pinghu/agents/bench-load"
OPERATOR = "runze-ops"
MAX_IN_FLIGHT = 64  # submissions waiting for their answer; beyond it the rate falls instead of piling up
RETRY_PAUSE_S = 0.5  # between tries of a submission whose outcome is unknown (--patience-s)
REPLAY_SHARE = 0.02  # submissions sent again with the same Idempotency-Key
CANCEL_SHARE = 0.03  # jobs their tenant cancels 0-3 s after submitting
FAIL_SHARE = 0.05  # jobs whose command is `false`: they fail on the simulated backend
INGEST_PERIOD_S = 1.0
RESEND_EVERY = 4  # the first ingestion batch and every fourth after it are sent again whole
MAX_EVENTS_PER_BATCH = 200
READ_PERIOD_S = 1.0


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
    """What the submitters saw: the jobs created (id → tenant), the job each Idempotency-Key was given,
    the replays that came back wrong, and the submissions never answered (their job may exist)."""

    jobs: dict[int, Actor] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    replay_mismatches: int = 0
    cancels: int = 0
    unanswered: int = 0  # no answer, or a 5xx, even after the retries: stored or not, unknown
    recovered: int = 0  # retries answered as a replay: the first try was stored, its answer lost


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
    unanswered: int = 0  # events in batches with no answer or a 5xx: stored or not, unknown


# --- the load --------------------------------------------------------------------------------------


def job_body(shape: Shape, serial: int, rng: random.Random) -> dict[str, Any]:
    program = "false" if rng.random() < FAIL_SHARE else "python3"
    duration = max(1, round(shape.duration_s * rng.uniform(0.5, 2.0)))
    return {"name": f"load-{serial}", "command": [program, "train.py"], "duration_estimate_s": duration} | (
        shape.spec
    )


def unknown_outcome(response: httpx.Response | None) -> bool:
    """No answer (the connection broke) or a 5xx: the request may or may not have been carried out."""
    return response is None or response.status_code >= 500


async def send_until_answered(
    rec: Recorder,
    tenant: Actor,
    body: dict[str, Any],
    key: dict[str, str],
    patience_s: float,
    seen: Submissions,
    op: str = "submit",
) -> httpx.Response | None:
    """POST the job; while its outcome is unknown, send it again with the same key (a careful client
    after a crash or an outage), every RETRY_PAUSE_S for at most `patience_s` (0: never). `op` names
    the first try in the record: "submit", or "submit (replay)" for a submission sent again on purpose."""
    response = await rec.request(op, tenant, "POST", "/jobs", ok=(201,), json=body, headers=key)
    deadline = time.perf_counter() + patience_s
    while unknown_outcome(response) and time.perf_counter() < deadline:
        await asyncio.sleep(RETRY_PAUSE_S)
        response = await rec.request(
            "submit (retry, same key)", tenant, "POST", "/jobs", ok=(201,), json=body, headers=key
        )
        if op == "submit" and response is not None and response.headers.get("Idempotent-Replayed") == "true":
            seen.recovered += 1
    return response


async def submit_one(
    rec: Recorder,
    tenant: Actor,
    body: dict[str, Any],
    rng: random.Random,
    seen: Submissions,
    patience_s: float = 0.0,
) -> None:
    """Submit one job (retried with its key while `patience_s` lasts); maybe replay it with its key,
    maybe cancel it a moment later."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    response = await send_until_answered(rec, tenant, body, key, patience_s, seen)
    if unknown_outcome(response):
        seen.unanswered += 1
    if response is None or response.status_code != 201:
        return
    job_id = int(response.json()["id"])
    seen.jobs[job_id] = tenant
    seen.keys[key["Idempotency-Key"]] = job_id
    if rng.random() < REPLAY_SHARE:
        # A replay a kill or an outage cuts short is sent again too: its answer, once there is one, must
        # be the same job, marked replayed.
        again = await send_until_answered(rec, tenant, body, key, patience_s, seen, op="submit (replay)")
        seen.replays += 1
        if unknown_outcome(again):
            seen.unanswered += 1
        elif (
            again is None
            or again.status_code != 201
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
    rec: Recorder,
    cast: Cast,
    rate: float,
    stop_at: float,
    rng: random.Random,
    seen: Submissions,
    patience_s: float = 0.0,
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
        task = asyncio.create_task(submit_one(rec, cast.tenants[shape.user], body, rng, seen, patience_s))
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
    if unknown_outcome(response):
        ing.unanswered += len(batch)
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


async def run_load(
    base: str,
    cast: Cast,
    minutes: float,
    rate: float,
    drain_s: float,
    seed: int,
    *,
    patience_s: float = 0.0,
    beside: Callable[[float], Awaitable[Any]] | None = None,
) -> Run:
    """The load for `minutes`, then the drain. `beside(stop_at)` runs along with the load (the chaos
    benchmark's killer); `patience_s`: how long a submission is retried with its key (0: never)."""
    rng = random.Random(seed)
    seen, ing = Submissions(), Ingestion()
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT + 16, max_keepalive_connections=MAX_IN_FLIGHT + 16)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        rec, drain_rec = Recorder(client), Recorder(client)
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        stop_at = started + minutes * 60
        await asyncio.gather(
            submit_loop(rec, cast, rate, stop_at, rng, seen, patience_s),
            ingest_loop(rec, cast, stop_at, ing),
            read_loop(rec, cast, stop_at),
            *([beside(stop_at)] if beside is not None else []),
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


def start_server(
    env: dict[str, str],
    interval_s: float,
    log: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    controller: bool = True,
) -> tuple[subprocess.Popen[bytes], str]:
    """`suanwang serve`'s app under uvicorn, with the controller inside unless `controller` is false
    (API workers beside a separate `suanwang controller`); returns once /healthz answers."""
    env = env | {
        "SUANWANG_SERVE_CONTROLLER": "true" if controller else "false",
        "SUANWANG_CONTROLLER_INTERVAL_S": str(interval_s),
    }
    port = port or free_port()
    with stderr_to(log):
        server = serve(env, port, workers=workers, batch=500)
    return server, f"http://127.0.0.1:{port}"


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()  # uvicorn's shutdown stops the controller thread (its cycle finishes first)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


LOG_SIGNS = ("Traceback", "controller cycle failed", "intake batch failed", "deadlock detected", "Error on ")


def server_log_summary(logs: list[Path]) -> dict[str, Any]:
    """How often the server (and the controller, when apart) logged each sign of trouble, and the first
    such lines."""
    lines = [line for log in logs if log.exists() for line in log.read_text(errors="replace").splitlines()]
    found = [line for line in lines if any(sign in line for sign in LOG_SIGNS)]
    counts = {sign: sum(sign in line for line in lines) for sign in LOG_SIGNS}
    return {"path": ", ".join(map(str, logs)), "lines": len(lines), "counts": counts, "first": found[:10]}


# --- what the database says afterwards -------------------------------------------------------------


def check_client(session: Session, run: Run) -> list[Check]:
    """What the database must agree with the client on: one job per answered submission (and no more,
    but for submissions never answered), every replay the same job, every repeated event a duplicate."""
    seen, ing = run.seen, run.ing
    expected_duplicates = ing.repeats_sent - ing.repeats_refused
    replayed = dict(run.load.ops["submit (replay)"].answers) if "submit (replay)" in run.load.ops else {}
    return [
        check_submissions(session, seen.keys, "load-%", unanswered=seen.unanswered),
        Check(
            "jobs: replays with the key returned the same job",
            not seen.replay_mismatches,
            f"{seen.replays} replays, {seen.replay_mismatches} mismatches (first answers: {replayed}); "
            f"{seen.recovered} retries after a lost answer given the stored job",
        ),
        Check(
            "metering: every repeated event answered duplicate",
            expected_duplicates <= ing.duplicate <= expected_duplicates + ing.unanswered,
            f"{expected_duplicates} repeats sent in accepted batches, {ing.duplicate} answered duplicate"
            + (f" ({ing.unanswered} events in batches whose answer was lost)" if ing.unanswered else ""),
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


def check_database(url: str, run: Run, data_dir: Path) -> tuple[list[Check], dict[str, Any]]:
    """The invariants (suanwang.invariants, the simulated backend's runs under `data_dir` included) and
    the client's checks, then the settlement figures."""
    # The server ran without SUANWANG_* settings of its own (demo_db strips them): the default increment.
    increment = Settings.model_fields["billing_increment_s"].default
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            checks = check_all(
                session,
                billing_increment_s=increment,
                launch_records=data_dir / "launches",
                metering_answered=(run.ing.recorded, run.ing.unanswered),
            )
            checks += check_client(session, run)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--submit-rate", type=float, default=20.0, help="job submissions per second")
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--controller-interval", type=float, default=1.0, help="seconds between cycles")
    parser.add_argument("--drain-s", type=float, default=120.0, help="most seconds to wait for the queue")
    parser.add_argument("--seed", type=int, default=1)


def prepare(database: str, name: str) -> tuple[dict[str, str], Path]:
    """A fresh database with the demo region; the environment that points at it, and its data dir."""
    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"suanwang-{name}-{os.getpid()}"
    fresh_postgres(database)
    return demo_region(database, data_dir), data_dir


def report(
    args: argparse.Namespace, run: Run, data_dir: Path, logs: list[Path], results: Path, **extra: Any
) -> int:
    """Check the invariants, print the tables, write `results`; the exit status (1 on any FAIL)."""
    ops = run.load.summary(run.load_s)
    checks, settlement = check_database(args.database, run, data_dir)
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
            "unanswered": run.seen.unanswered,
            "recovered": run.seen.recovered,
        },
        "drain": run.drained | {"operations": run.drain.summary(run.drained["drain_s"])},
        "server_log": server_log_summary(logs),
        **extra,
        "invariants": [asdict(check) for check in checks],
    }
    print_report(result, checks)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2, default=str))
    failed = [check.name for check in checks if not check.ok]
    print(
        f"\n{len(checks) - len(failed)} of {len(checks)} invariants hold"
        + (f"; FAILED: {failed}" if failed else "")
    )
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    env, data_dir = prepare(args.database, "load")
    log = data_dir / "server.log"
    server, base = start_server(env, args.controller_interval, log)
    try:
        cast = issue_tokens(base, data_dir)
        run = asyncio.run(run_load(base, cast, args.minutes, args.submit_rate, args.drain_s, args.seed))
    finally:
        stop_server(server)
    sys.exit(report(args, run, data_dir, [log], RESULTS))


if __name__ == "__main__":
    main()
