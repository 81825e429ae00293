"""Controller cycle time with 10,000 queued jobs, on PostgreSQL and SQLite.

    python bench/bench_controller.py [--jobs 10000] [--cycles 5] [--databases postgresql,sqlite]

For each database: a fresh schema, the Pinghu demo region (all sites simulated but the sandbox),
`--jobs` queued jobs of mixed shapes from the demo tenants (inserted directly: this measures the
controller, not the API), then `--cycles` controller cycles back to back. Prints, per cycle, where
the time went — observe the backends, build the snapshot, schedule (the pure core), record why jobs
wait, dispatch (record each launch, commit, send) — and the placements. The baseline in the same run
is the pure `schedule()` on the same snapshot: the share of a cycle the database and backends add.
Writes bench/results/controller.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

from demo_db import demo_region, fresh_postgres
from sqlalchemy import select

from suanwang.config import Settings
from suanwang.controller import Controller
from suanwang.db.session import engine_for, session_scope
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, JobEvent
from suanwang.scheduler.types import Classification
from suanwang.tenants.models import Organisation, OrgKind, Role, User
from suanwang.timeutil import utcnow

RESULTS = Path(__file__).resolve().parent / "results" / "controller.json"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench"


def prepare(url: str, data_dir: Path, jobs: int, seed: int = 11) -> Settings:
    demo_region(url, data_dir)
    settings = Settings(database_url=url, data_dir=data_dir, serve_controller=False)
    rng = random.Random(seed)
    now = utcnow()
    with session_scope(engine_for(url)) as session:
        owners = list(
            session.execute(
                select(User.id, Organisation.id, Organisation.kind)
                .join(Organisation, Organisation.id == User.org_id)
                .where(User.role == Role.TENANT_ADMIN)
            ).all()
        )
        for i in range(jobs):
            user_id, org_id, kind = rng.choice(owners)
            cards = rng.choice([1, 1, 1, 2, 4, 8, 8, 16, 32, 64])
            submitted = now - timedelta(seconds=jobs - i)
            job = Job(
                org_id=org_id,
                submitted_by=user_id,
                command=["train.sh"],
                env={},
                cards=cards,
                cards_per_node=8 if cards >= 8 else None,
                accelerators=rng.choice([[], [], ["H800", "H100-SXM"], ["A800"], ["ASCEND-910B", "A800"]]),
                min_memory_gib=0,
                duration_estimate_s=rng.randint(600, 48 * 3600),
                classification=Classification.GOVERNMENT
                if kind is OrgKind.GOVERNMENT_UNIT
                else Classification.PUBLIC,
                regions=[],
                priority=rng.choice([0, 0, 0, 10, -10]),
                preemptible=rng.random() < 0.3,
                state=JobState.QUEUED,
                attempt=0,
                submitted_at=submitted,
                reason_params={},
                card_seconds=0,
                hold_fen=0,  # funded without a hold: the bench measures scheduling, not settlement
            )
            job.events = [
                JobEvent(at=submitted, to_state=JobState.QUEUED, attempt=0, cause="admitted", detail={})
            ]
            session.add(job)
    return settings


def run(name: str, url: str, jobs: int, cycles: int) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = prepare(url, Path(tmp), jobs)
        controller = Controller(settings, engine_for(url))
        assert controller.lock.acquire()
        rows = []
        try:
            for number in range(1, cycles + 1):
                started = utcnow()
                report = controller.cycle()
                total = (utcnow() - started).total_seconds() * 1000
                rows.append(
                    {
                        "database": name,
                        "cycle": number,
                        "observe_ms": report.observe_ms,
                        "snapshot_ms": report.snapshot_ms,
                        "schedule_ms": report.schedule_ms,
                        "reasons_ms": report.reasons_ms,
                        "dispatch_ms": report.dispatch_ms,
                        "total_ms": total,
                        "placed": report.placed,
                        "waiting": report.waiting,
                    }
                )
        finally:
            controller.lock.release()
            controller.backends.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--databases", default="postgresql,sqlite")
    args = parser.parse_args()
    rows: list[dict[str, float]] = []
    for name in args.databases.split(","):
        if name == "postgresql":
            fresh_postgres(PG_URL)
            rows += run(name, PG_URL, args.jobs, args.cycles)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                rows += run(name, f"sqlite:///{tmp}/bench.db", args.jobs, args.cycles)
    print(f"\nController cycles with {args.jobs:,} queued jobs (demo region, {os.cpu_count()} CPUs)\n")
    keys = ["observe_ms", "snapshot_ms", "schedule_ms", "reasons_ms", "dispatch_ms", "total_ms"]
    print(
        "| database | cycle | observe | snapshot | schedule | reasons | dispatch | total ms | placed |",
        end="",
    )
    print(" waiting |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        cells = " | ".join(f"{r[k]:,.0f}" for k in keys)
        print(f"| {r['database']} | {r['cycle']} | {cells} | {r['placed']:,} | {r['waiting']:,} |")
    for name in args.databases.split(","):
        mine = [r for r in rows if r["database"] == name]
        total = statistics.median(r["total_ms"] for r in mine)
        core = statistics.median(r["schedule_ms"] for r in mine)
        share = f"{core:,.0f} ms ({core / total:.0%})"
        print(f"{name}: median cycle {total:,.0f} ms, of which the pure scheduler {share}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
