"""Usage events ingested per second: POST /api/v1/metering/events against a real server on PostgreSQL.

    python bench/bench_ingest.py [--batches 1,100,1000] [--events 20000] [--runs 3] [--clients 8]
                                 [--workers 1] [--database URL]

Starts `suanwang serve`'s app under uvicorn (no controller) on a fresh PostgreSQL database (default:
database `suanwang_bench_ingest` on the local server, dropped and re-created), loads the Pinghu demo
region, and inserts one running job with one launch on a Runze pool for every event to be sent, so every
event makes a new usage record (the work ingestion really does; a retried batch only reads). The
provider's operator then posts CloudEvents batches of 1, 100 and 1,000 events from `--clients`
concurrent connections, the bodies serialised before the clock starts. Batches of 1 are the baseline in
the same run (they send `--events` / 10 events, for time). Each size runs `--runs` times, the sizes
interleaved so that drift on the machine touches them alike; the table shows the median events/s.
Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from bench_submit import analyze, free_port, serve
from demo_db import cli, demo_region, fresh_postgres
from sqlalchemy import func, insert, select

from suanwang.db.session import engine_for, session_scope
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, Launch
from suanwang.metering.models import UsageRecord
from suanwang.scheduler.types import Classification
from suanwang.supply.models import Pool, Provider, Site
from suanwang.tenants.models import Organisation, User
from suanwang.timeutil import utcnow

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench_ingest"
PROVIDER = "runze"  # its operator, runze-ops, reports the usage
HEADERS = {"Content-Type": "application/cloudevents-batch+json"}


def setup(url: str, data_dir: Path) -> tuple[dict[str, str], str]:
    """A demo region in a fresh database; returns the env and a token of the provider's operator."""
    fresh_postgres(url)
    env = demo_region(url, data_dir)
    users = json.loads(cli(env, "--json", "users", "list", "--role", "provider_operator", "--limit", "100"))
    operator = next(u for u in users["items"] if u["name"] == f"{PROVIDER}-ops")
    created = json.loads(
        cli(env, "--json", "tokens", "create", "--user-id", str(operator["id"]), "--name", "bench")
    )
    return env, created["token"]


def make_launches(url: str, count: int) -> list[tuple[str, int]]:
    """`count` running jobs with one launch each on the provider's first pool; (launch name, cards)."""
    engine = engine_for(url)
    now = utcnow()
    with session_scope(engine) as session:
        pool_id, cards_per_node = session.execute(
            select(Pool.id, Pool.cards_per_node)
            .join(Site, Site.id == Pool.site_id)
            .join(Provider, Provider.id == Site.provider_id)
            .where(Provider.code.startswith(PROVIDER))
            .order_by(Pool.id)
            .limit(1)
        ).one()
        org_id = session.scalars(select(Organisation.id).order_by(Organisation.id).limit(1)).one()
        user_id = session.scalars(select(User.id).order_by(User.id).limit(1)).one()
        started = now - timedelta(hours=2)
        jobs = [
            {
                "org_id": org_id,
                "submitted_by": user_id,
                "name": f"bench-ingest-{i}",
                "command": ["python", "train.py"],
                "env": {},
                "cards": cards_per_node,
                "accelerators": [],
                "min_memory_gib": 0,
                "duration_estimate_s": 3600,
                "classification": Classification.PUBLIC,
                "regions": [],
                "priority": 0,
                "preemptible": False,
                "state": JobState.RUNNING,
                "attempt": 1,
                "pool_id": pool_id,
                "reason_params": {},
                "submitted_at": started,
                "started_at": started,
                "card_seconds": 0,
            }
            for i in range(count)
        ]
        job_table, launch_table = Job.__table__, Launch.__table__
        ids = dict(session.execute(insert(job_table).returning(job_table.c.name, job_table.c.id), jobs).all())
        launches = [
            {
                "job_id": ids[f"bench-ingest-{i}"],
                "attempt": 1,
                "pool_id": pool_id,
                "name": f"sw-bench-{ids[f'bench-ingest-{i}']}-1",
                "remote_state": "running",
                "borrowing": False,
                "recorded_at": started,
                "started_at": started,
                "closed": False,
            }
            for i in range(count)
        ]
        session.execute(insert(launch_table), launches)
    return [(str(launch["name"]), cards_per_node) for launch in launches]


def batches(launches: list[tuple[str, int]], size: int, tag: str) -> list[bytes]:
    """One event per launch, in JSON bodies of `size` events (serialised now, not while timed)."""
    ended = utcnow() - timedelta(minutes=1)
    started = ended - timedelta(hours=1)
    events = [
        {
            "specversion": "1.0",
            "id": f"{tag}-{i}",
            "source": f"/providers/{PROVIDER}/agents/bench",
            "type": "cn.suanwang.usage.v1",
            "time": ended.isoformat(),
            "data": {
                "launch": name,
                "started_at": started.isoformat(),
                "ended_at": ended.isoformat(),
                "cards": cards,
                "external_id": f"slurm-{i}",
            },
        }
        for i, (name, cards) in enumerate(launches)
    ]
    return [json.dumps(events[i : i + size]).encode() for i in range(0, len(events), size)]


async def send(base: str, token: str, bodies: list[bytes], clients: int, size: int) -> dict[str, Any]:
    """Post every body from `clients` connections; events/s over the whole run and request latencies."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    recorded = errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = HEADERS | {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def one_client() -> None:
            nonlocal recorded, errors
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                response = await client.post("/api/v1/metering/events", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code == 200:
                    recorded += response.json()["recorded"]
                else:
                    errors += 1
                    print(f"  {response.status_code}: {response.text[:300]}", file=sys.stderr)

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(min(clients, len(bodies)))))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "batch": size,
        "events": recorded,
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "per_s": recorded / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,100,1000", help="events per request (1 is the baseline)")
    parser.add_argument("--events", type=int, default=20_000, help="events per run (batches of 1: a tenth)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database", default=DEFAULT_DB)
    args = parser.parse_args()
    sizes = [int(size) for size in args.batches.split(",")]

    def events_for(size: int) -> int:
        return args.events // 10 if size == 1 else args.events

    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"suanwang-bench-ingest-{os.getpid()}"
    env, token = setup(args.database, data_dir)
    warm_up = 2000
    needed = warm_up + args.runs * sum(events_for(size) for size in sizes)
    print(f"inserting {needed:,} launches …", file=sys.stderr)
    launches = make_launches(args.database, needed)
    plan: list[tuple[int, int, list[bytes]]] = []
    at = warm_up
    for run in range(args.runs):
        for size in sizes:
            count = events_for(size)
            plan.append((run, size, batches(launches[at : at + count], size, f"r{run}-b{size}")))
            at += count

    port = free_port()
    server = serve(env, port, args.workers, 500)
    rows: list[dict[str, Any]] = []
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(send(base, token, batches(launches[:warm_up], 100, "warm"), args.clients, 100))
        analyze(args.database)  # statistics, as autovacuum keeps them on a live server
        for run, size, bodies in plan:
            row = asyncio.run(send(base, token, bodies, args.clients, size)) | {"run": run}
            print(f"  run {run + 1}, batch {size}: {row['per_s']:,.0f} events/s", file=sys.stderr)
            rows.append(row)
    finally:
        server.terminate()
        server.wait(timeout=30)

    with session_scope(engine_for(args.database)) as session:
        stored = session.scalar(select(func.count()).select_from(UsageRecord))
    assert stored == needed, f"{stored} usage records for {needed} events"

    print(
        f"\nUsage events ingested, PostgreSQL, {args.workers} uvicorn worker(s), {args.clients} concurrent "
        f"clients, {platform.node()} ({os.cpu_count()} CPUs); median of {args.runs} runs\n"
    )
    print(
        "| events per request | events per run | events/s (median) | runs (events/s) | p50 ms/request "
        "| p99 ms/request | errors | ÷ batch 1 |"
    )
    print("|" + "|".join("--:" for _ in range(8)) + "|")
    by_size = {size: [row for row in rows if row["batch"] == size] for size in sizes}
    medians = {size: statistics.median(row["per_s"] for row in mine) for size, mine in by_size.items()}
    for size, mine in by_size.items():
        each = ", ".join(f"{row['per_s']:,.0f}" for row in mine)
        versus = f"{medians[size] / medians[1]:.1f}" if 1 in medians else "-"
        p50 = statistics.median(row["p50_ms"] for row in mine)
        p99 = statistics.median(row["p99_ms"] for row in mine)
        errors = sum(row["errors"] for row in mine)
        print(
            f"| {size:,} | {events_for(size):,} | {medians[size]:,.0f} | {each} | {p50:.1f} | {p99:.1f} "
            f"| {errors} | {versus} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "clients": args.clients, "workers": args.workers}, indent=2))


if __name__ == "__main__":
    main()
