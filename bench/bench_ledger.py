"""Ledger transfers per second: one transfer per transaction against batches, on PostgreSQL and SQLite.

    python bench/bench_ledger.py [--quick] [--repeats N] [--databases postgresql,sqlite] [--out PATH]

For each database: a fresh schema (PostgreSQL: the database suanwang_bench_ledger, dropped and made
again; SQLite: a file in a temporary directory), 1,000 wallets (debits must not exceed credits) funded
from a bank account. Each run sends random transfers of 1–100 fen between the wallets through
`store.create_transfers`, every batch in its own transaction (commit included): one transfer per
transaction, then batches of 100, 1,000 and 8,000. The specs are built before the clock starts (that is
the caller's work). Prints the median transfers/s over the runs and each batch size over single
transfers on the same database; writes bench/results/ledger.json.

The issue's target: ≥ 20,000 transfers/s batched on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from demo_db import fresh_postgres
from sqlalchemy import Engine

from suanwang.db.session import engine_for, session_scope, upgrade
from suanwang.ledger import store
from suanwang.ledger.rules import SUCCEEDED, AccountSpec, TransferResult, TransferSpec
from suanwang.timeutil import utcnow

RESULTS = Path(__file__).resolve().parent / "results" / "ledger.json"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench_ledger"
WALLETS = 1000
BATCH_SIZES = (1, 100, 1000, 8000)
TARGET_PER_S = 20_000


def prepare(url: str) -> list[int]:
    """Migrate, create the bank and the wallets, fund every wallet; the wallets' ids."""
    upgrade(url)
    engine = engine_for(url)
    now = utcnow()
    with session_scope(engine) as session:
        specs = [AccountSpec("bank", "CNY", "bank")] + [
            AccountSpec(f"wallet/org/{i}", "CNY", "wallet", "org", i, debits_must_not_exceed_credits=True)
            for i in range(WALLETS)
        ]
        accounts = [outcome.account for outcome in store.create_accounts(session, specs, now=now)]
        ids = [account.id for account in accounts if account is not None]
        bank, wallets = ids[0], ids[1:]
        funding = [
            TransferSpec(f"fund-{w}", bank, w, 10_000_000, "CNY", "topup", reference="bench") for w in wallets
        ]
        assert set(store.create_transfers(session, funding, now=now)) <= SUCCEEDED
    return wallets


def transfers(wallets: list[int], count: int, prefix: str, rng: random.Random) -> list[TransferSpec]:
    specs = []
    for n in range(count):
        debit, credit = rng.sample(wallets, 2)
        specs.append(
            TransferSpec(
                f"{prefix}-{n}", debit, credit, rng.randint(1, 100), "CNY", "charge", reference=f"job:{n}"
            )
        )
    return specs


def measure(engine: Engine, specs: list[TransferSpec], batch_size: int) -> float:
    """Transfers per second, each batch of `batch_size` created and committed in its own transaction."""
    batches = [specs[i : i + batch_size] for i in range(0, len(specs), batch_size)]
    started = time.perf_counter()
    for batch in batches:
        with session_scope(engine) as session:
            results = store.create_transfers(session, batch, now=utcnow())
        if any(result is not TransferResult.OK for result in results):
            raise AssertionError(f"bench transfers must all succeed: {set(results)}")
    return len(specs) / (time.perf_counter() - started)


def run(name: str, url: str, repeats: int, single_count: int, batched_count: int) -> list[dict[str, Any]]:
    wallets = prepare(url)
    engine = engine_for(url)
    rng = random.Random(20250601)
    rows = []
    for batch_size in BATCH_SIZES:
        count = single_count if batch_size == 1 else batched_count
        rates = []
        for repeat in range(repeats + 1):  # the first run warms caches and is not counted
            specs = transfers(wallets, count, f"b{batch_size}-r{repeat}", rng)
            rate = measure(engine, specs, batch_size)
            if repeat:
                rates.append(rate)
        rows.append(
            {
                "database": name,
                "batch": batch_size,
                "transfers_per_run": count,
                "runs": repeats,
                "median_per_s": statistics.median(rates),
                "min_per_s": min(rates),
                "max_per_s": max(rates),
            }
        )
        print(
            f"{name:<10} batch {batch_size:>5}: median {statistics.median(rates):>9,.0f} transfers/s",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of fewer transfers")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    single_count, batched_count = (300, 8000) if args.quick else (1000, 16_000)
    rows: list[dict[str, Any]] = []
    for name in args.databases.split(","):
        if name == "postgresql":
            fresh_postgres(PG_URL)
            rows += run(name, PG_URL, repeats, single_count, batched_count)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                rows += run(name, f"sqlite:///{tmp}/bench.db", repeats, single_count, batched_count)
    print(
        f"\nLedger transfers per second ({WALLETS:,} wallets; median of {repeats} runs; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()})\n"
    )
    print("| database | transfers per transaction | transfers/s (median) | min | max | × single |")
    print("|---|--:|--:|--:|--:|--:|")
    for row in rows:
        single = next(r for r in rows if r["database"] == row["database"] and r["batch"] == 1)
        print(
            f"| {row['database']} | {row['batch']:,} | {row['median_per_s']:,.0f} | {row['min_per_s']:,.0f} "
            f"| {row['max_per_s']:,.0f} | {row['median_per_s'] / single['median_per_s']:,.1f} |"
        )
    postgres = [r for r in rows if r["database"] == "postgresql" and r["batch"] > 1]
    if postgres:
        best = max(r["median_per_s"] for r in postgres)
        met = "met" if best >= TARGET_PER_S else "NOT met"
        print(f"\nTarget ≥ {TARGET_PER_S:,} transfers/s batched on PostgreSQL: {met} ({best:,.0f}/s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
