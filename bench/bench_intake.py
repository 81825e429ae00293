"""Where the CPU of the intake's batch goes: per step, for batches of several sizes.

    python bench/bench_intake.py [--sizes 1,8,32] [--batches 150] [--database URL]

On a fresh PostgreSQL database (default: `suanwang_bench_intake` on the local server, dropped and
re-created) with the Pinghu demo region, the server's intake transaction (`jobs.intake.write_batch`, then
COMMIT) runs `--batches` times per size, in process (no HTTP). The intake's named steps are wrapped to
add up their process CPU time: authentication, the idempotency lookup, the admission pools, the
admission checks, the job ids, the wallet holds (the ledger), the rows' COPYs, and the commit (which
seals the audit trail). Prints milliseconds of CPU per batch for each step and in all, and per
submission: the fixed cost of a batch against the cost each submission adds, which is what decides
how large a batch must be for a given rate. A CPU profile, not a wall-clock one: waits for
PostgreSQL are not counted.
"""

from __future__ import annotations

import argparse
import functools
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_audit import submissions, write
from bench_submit import setup
from sqlalchemy.orm import Session

from suanwang.config import Settings
from suanwang.db.session import make_engine
from suanwang.jobs import intake

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench_intake"
# (object, attribute, step): what write_batch calls, in its order.
STEPS: list[tuple[Any, str, str]] = [
    (intake.tenants, "authenticate_many", "authentication"),
    (intake, "find_records", "idempotency lookup"),
    (intake.snapshot, "admission_pools", "admission pools"),
    (intake.service, "prepare_job", "admission checks"),
    (intake, "allocate_ids", "job ids"),
    (intake.service, "fund", "wallet holds (ledger)"),
    (intake, "_insert", "jobs, histories, keys (COPY)"),
    (Session, "commit", "commit (audit trail sealed)"),
]


def timed(step: str, spent: defaultdict[str, float], function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[step] += time.process_time() - started

    return wrapper


@contextmanager
def steps_timed(spent: defaultdict[str, float]) -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in STEPS]
    for owner, name, step in STEPS:
        setattr(owner, name, timed(step, spent, getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,8,32", help="submissions per batch, comma-separated")
    parser.add_argument("--batches", type=int, default=150, help="batches per size")
    parser.add_argument("--database", default=DEFAULT_DB)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    data_dir = Path("/tmp") / f"suanwang-bench-intake-{uuid.uuid4().hex[:8]}"
    _, token, _ = setup(args.database, data_dir)
    settings = Settings(database_url=args.database, data_dir=data_dir, serve_controller=False)
    engine = make_engine(args.database)
    for size in sizes:  # warm: connections, statement caches, the tables' first pages
        for _ in range(10):
            write(engine, settings, submissions(token, size))
    columns: dict[int, tuple[defaultdict[str, float], float]] = {}
    for size in sizes:
        spent: defaultdict[str, float] = defaultdict(float)
        batches = [submissions(token, size) for _ in range(args.batches)]
        with steps_timed(spent):
            started = time.process_time()
            for batch in batches:
                write(engine, settings, batch)
            total = time.process_time() - started
        columns[size] = (spent, total)

    def cell(seconds: float) -> str:
        return f"{1000 * seconds / args.batches:.2f}"

    print(f"\nCPU ms per batch of the intake's transaction (PostgreSQL, {args.batches} batches per size)\n")
    print("| step | " + " | ".join(f"batch of {size}" for size in sizes) + " |")
    print("|---|" + "--:|" * len(sizes))
    for _, _, step in STEPS:
        print(f"| {step} | " + " | ".join(cell(columns[size][0][step]) for size in sizes) + " |")
    every = " | ".join(cell(columns[size][1]) for size in sizes)
    print(f"| all (with the session and the outcomes) | {every} |")
    per_submission = [1000 * columns[s][1] / args.batches / s for s in sizes]
    print("| **per submission** | " + " | ".join(f"**{ms:.2f}**" for ms in per_submission) + " |")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        each = (columns[large][1] - columns[small][1]) / args.batches / (large - small)
        fixed = columns[small][1] / args.batches - small * each
        print(f"\nfixed per batch ≈ {1000 * fixed:.2f} ms; each submission adds ≈ {1000 * each:.2f} ms")


if __name__ == "__main__":
    main()
