"""Settlement under kill -9, as many trials as asked: no money created, lost or posted twice.

    python bench/bench_settlement_crash.py [--trials 1000] [--jobs 1500] [--database URL]

Builds a small market on a fresh database (default: SQLite in a temporary directory; PostgreSQL with
`--database postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench_crash`, dropped and
re-created), admits `--jobs` jobs through the API (each held on the wallet), gives each an ended launch
with usage, then forks settling workers and SIGKILLs each after a random delay (tests/settlement_crash.py)
until `--trials` workers died with work left; a last worker finishes. Prints the trials, the kills and
every problem found (none expected), and how long a settled job took on average.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from demo_db import fresh_postgres
from tests import jobs_world
from tests.conftest import Api, Clock
from tests.settlement_crash import check, prepare_running, run_trials

from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.db.session import engine_for, session_scope, upgrade
from suanwang.ledger.models import LedgerAccount
from suanwang.tenants import service as tenants
from suanwang.timeutil import utcnow

TOKEN = "sw_bench_regulator_token_0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--database", default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="suanwang-crash-"))
    url = args.database or f"sqlite:///{workdir / 'crash.db'}"
    if url.startswith("postgresql"):
        fresh_postgres(url)
    upgrade(url)
    engine = engine_for(url)
    settings = Settings(database_url=url, data_dir=workdir, admin_token=None, serve_controller=False)
    app = create_app(settings, engine)
    with session_scope(engine) as session:
        tenants.ensure_regulator_token(session=session, secret=TOKEN, user_name="admin", now=utcnow())
    rng = random.Random(args.seed)
    with TestClient(app) as client:
        regulator = Api(client, TOKEN)
        ew = jobs_world.build(regulator, Clock(utcnow()), settings, engine)
        jobs = [
            ew.submit(
                cards=rng.choice([1, 2, 8]), duration_estimate_s=rng.randint(60, 7200), accelerators=["A800"]
            )
            for _ in range(args.jobs)
        ]
    used = prepare_running(engine, [j["id"] for j in jobs], ew.sim_pool["id"], rng)
    wallet_key = f"wallet/org/{ew.org['id']}"
    with session_scope(engine) as session:
        wallet = session.scalar(select(LedgerAccount).where(LedgerAccount.key == wallet_key))
        assert wallet is not None
        before = wallet.credits_posted - wallet.debits_posted
    started = time.perf_counter()
    trials, killed = run_trials(engine, url, trials=args.trials, rng=rng)
    elapsed = time.perf_counter() - started
    problems = check(
        engine,
        used=used,
        holds={j["id"]: j["hold_fen"] for j in jobs},
        price=450,
        wallet_key=wallet_key,
        wallet_before=before,
        provider_key=f"provider/{ew.sim_site['provider_id']}/payable",
    )
    print(f"\nSettlement under kill -9 ({engine.dialect.name}), seed {args.seed}\n")
    print("| jobs | trials | workers killed with work left | problems | wall s |")
    print("|--:|--:|--:|--:|--:|")
    print(f"| {len(jobs)} | {trials} | {killed} | {len(problems)} | {elapsed:.1f} |")
    for problem in problems[:20]:
        print("  -", problem)
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
