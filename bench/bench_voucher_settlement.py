"""What redeeming a compute voucher adds to settling a job: with a grant and without, in the same run.

    python bench/bench_voucher_settlement.py [--jobs 400] [--rounds 3] [--database URL]

Builds a small market on a fresh database (default: SQLite in a temporary directory; PostgreSQL with
`--database postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench_vouchers`, dropped and
re-created), the Pinghu voucher preset, a grant for one tenant and none for another, and `--jobs` jobs
of each tenant with an ended launch on the local pool. Then it settles them one job per transaction,
alternating the two tenants so both see the same machine, and prints the median milliseconds per job
of each and their ratio, per round (these machines are noisy: compare ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from demo_db import fresh_postgres
from tests import factories, jobs_world
from tests.conftest import Api, Clock
from tests.settlement_crash import add_ended_launch
from tests.voucher_world import grant, programme

from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.db.session import engine_for, session_scope, upgrade
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job
from suanwang.jobs.service import transition
from suanwang.ledger import store as ledger
from suanwang.tenants import service as tenants
from suanwang.timeutil import utcnow
from suanwang.vouchers.models import VoucherRedemption

TOKEN = "sw_bench_regulator_token_0123456789abcdef"


def settle_ms(engine: object, job_id: int) -> float:
    started = time.perf_counter()
    with Session(engine) as session:  # type: ignore[call-overload]
        job = session.get_one(Job, job_id)
        now = utcnow()
        job.ended_at, job.exit_code = now, 0
        transition(session, job, JobState.SUCCEEDED, cause="succeeded", at=now, exit_code=0)
        session.commit()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=400, help="jobs per tenant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="suanwang-vouchers-"))
    url = args.database or f"sqlite:///{workdir / 'vouchers.db'}"
    if url.startswith("postgresql"):
        fresh_postgres(url)
    upgrade(url)
    engine = engine_for(url)
    settings = Settings(database_url=url, data_dir=workdir, admin_token=None, serve_controller=False)
    app = create_app(settings, engine)
    with session_scope(engine) as session:
        tenants.ensure_regulator_token(session=session, secret=TOKEN, user_name="admin", now=utcnow())
    rng = random.Random(11)
    rows = []
    with TestClient(app) as client:
        regulator = Api(client, TOKEN)
        ew = jobs_world.build(regulator, Clock(utcnow()), settings, engine)
        p = programme(regulator, min_claim_fen=100, cap_order_fen=None)
        grant(ew, p["id"], 200_000_000)
        other_admin = factories.user(regulator, role="tenant_admin", org_id=ew.other_org["id"])
        other = regulator.as_(factories.token_for(regulator, other_admin["id"]))
        for round_no in range(1, args.rounds + 1):
            body = {"cards": 1, "duration_estimate_s": 600, "accelerators": ["A800"]}
            with_grant = [ew.submit(**body)["id"] for _ in range(args.jobs)]
            without = [ew.submit(other, **body)["id"] for _ in range(args.jobs)]
            end = utcnow()
            with session_scope(engine) as session:
                for job_id in with_grant + without:
                    add_ended_launch(
                        session,
                        job_id,
                        ew.local_pool["id"],
                        cards=1,
                        seconds=rng.randint(60, 3600),
                        end=end,
                        attempt=1,
                    )
                session.execute(
                    update(Job)
                    .where(Job.id.in_(with_grant + without))
                    .values(state=JobState.RUNNING, attempt=1, pool_id=ew.local_pool["id"])
                )
            times: dict[str, list[float]] = {"grant": [], "none": []}
            for a, b in zip(with_grant, without, strict=True):
                times["grant"].append(settle_ms(engine, a))
                times["none"].append(settle_ms(engine, b))
            grant_ms, none_ms = statistics.median(times["grant"]), statistics.median(times["none"])
            rows.append((round_no, none_ms, grant_ms, grant_ms / none_ms))
    with session_scope(engine) as session:
        redeemed = session.scalar(select(func.count()).where(VoucherRedemption.subsidy_fen > 0))
        problems = ledger.check_invariants(session)
    print(
        f"\nSettling a job with and without a voucher grant ({engine.dialect.name}), {args.jobs} jobs each\n"
    )
    print("| round | median ms, no grant | median ms, with grant | ratio |")
    print("|--:|--:|--:|--:|")
    for round_no, none_ms, grant_ms, ratio in rows:
        print(f"| {round_no} | {none_ms:.2f} | {grant_ms:.2f} | {ratio:.2f} |")
    print(f"\nredemptions with a subsidy: {redeemed}; ledger problems: {len(problems)}")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
