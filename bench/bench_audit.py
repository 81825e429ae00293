"""What the audit trail costs a batch of job submissions: the intake's write path with and without it.

    python bench/bench_audit.py [--batch 16] [--batches 60] [--rounds 3] [--database URL]

On a fresh PostgreSQL database (default: `suanwang_bench_audit` on the local server, dropped and
re-created) with the Pinghu demo region, the server's intake transaction (`jobs.intake.write_batch`:
admission, the wallet holds, the jobs, their histories and idempotency records, then COMMIT) runs for
`--batches` batches of `--batch` submissions on an engine that seals the audit trail and on one that
does not (the same database, same code, `db.session._make_engine` without `audit.capture.install`),
alternating batch by batch so both see the same machine. No HTTP: this is the database work only, the
part of a submission the trail adds to. Prints the median milliseconds per batch of each and their
ratio per round, and the audit entries written per submission.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path

from bench_submit import setup
from demo_db import fresh_postgres
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanwang.api.idempotency import IdempotencyKey
from suanwang.audit.models import AuditEntry
from suanwang.config import Settings
from suanwang.db.session import _make_engine, make_engine
from suanwang.jobs.intake import Submission, write_batch
from suanwang.jobs.schemas import JobCreate
from suanwang.timeutil import utcnow

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench_audit"
BODY = {
    "command": ["python3", "train.py"],
    "cards": 8,
    "cards_per_node": 8,
    "duration_estimate_s": 3600,
    "accelerators": ["H800", "A800"],
}


def submissions(token: str, size: int) -> list[Submission]:
    """`size` submissions of the benchmark's job by `token`'s tenant, each with its own key."""
    now = utcnow()
    return [
        Submission(
            secret=token,
            idem=IdempotencyKey(uuid.uuid4().hex, uuid.uuid4().hex),
            data=JobCreate.model_validate(BODY),
            now=now,
            resolve=lambda _outcome: None,
        )
        for _ in range(size)
    ]


def write(engine: object, settings: Settings, batch: list[Submission]) -> None:
    """The intake's transaction for `batch`; every submission must be admitted."""
    with Session(engine, expire_on_commit=False) as session:  # type: ignore[call-overload]
        outcomes = write_batch(session, settings, batch)
        session.commit()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise SystemExit(f"a submission failed: {failed[0]!r}")


def batch_ms(engine: object, settings: Settings, token: str, size: int) -> float:
    batch = submissions(token, size)
    started = time.perf_counter()
    write(engine, settings, batch)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="submissions per batch (16 clients)")
    parser.add_argument("--batches", type=int, default=60, help="batches of each kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=DEFAULT_DB)
    args = parser.parse_args()
    data_dir = Path("/tmp") / f"suanwang-bench-audit-{uuid.uuid4().hex[:8]}"
    fresh_postgres(args.database)
    _, token, _ = setup(args.database, data_dir)
    settings = Settings(database_url=args.database, data_dir=data_dir, serve_controller=False)
    audited, plain = make_engine(args.database), _make_engine(args.database)
    for engine in (audited, plain):  # warm: connections, statement caches
        batch_ms(engine, settings, token, args.batch)
    rows = []
    for round_no in range(1, args.rounds + 1):
        times: dict[str, list[float]] = {"audited": [], "plain": []}
        with Session(audited) as session:
            before = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        for _ in range(args.batches):
            times["plain"].append(batch_ms(plain, settings, token, args.batch))
            times["audited"].append(batch_ms(audited, settings, token, args.batch))
        with Session(audited) as session:
            entries = (session.scalar(select(func.count()).select_from(AuditEntry)) or 0) - before
        plain_ms, audited_ms = statistics.median(times["plain"]), statistics.median(times["audited"])
        per_job = entries / (args.batches * args.batch)
        rows.append((round_no, plain_ms, audited_ms, audited_ms / plain_ms, per_job))
    print(
        f"\nThe intake's batch of {args.batch} submissions, with and without the audit trail (PostgreSQL)\n"
    )
    print("| round | median ms, no trail | median ms, with trail | ratio | entries per submission |")
    print("|--:|--:|--:|--:|--:|")
    for round_no, plain_ms, audited_ms, ratio, per_job in rows:
        print(f"| {round_no} | {plain_ms:.2f} | {audited_ms:.2f} | {ratio:.2f} | {per_job:.1f} |")


if __name__ == "__main__":
    main()
