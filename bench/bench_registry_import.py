"""What importing the registry's spreadsheets costs: reading and checking a file (the baseline, no
database) against a dry run, a real import and re-importing the same file, in the same run.

    python bench/bench_registry_import.py [--enterprises 2000] [--months 12] [--rounds 3] [--database URL]

Builds a CSV of `--enterprises` enterprises (valid credit codes, segments, tiers for a third of them) and
one of their monthly output for `--months` months, then per round on a fresh database (default: SQLite in
a temporary directory; PostgreSQL with `--database postgresql+psycopg://postgres@127.0.0.1:5432/
suanwang_bench_registry`, dropped and re-created): parse only, dry run, real import, re-import (which must
change nothing). Prints the median seconds and rows per second of each step and its ratio to parsing
(these machines are noisy: compare ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_db import fresh_postgres
from sqlalchemy import Engine

from suanwang.db.session import engine_for, session_scope, upgrade
from suanwang.registry import datasets, tabular, transfer
from suanwang.registry.taxonomy import shipped
from suanwang.tenants.access import Principal
from suanwang.tenants.credit_code import complete
from suanwang.tenants.models import Role
from suanwang.timeutil import utcnow

REGULATOR = Principal(user_id=1, name="bench", role=Role.REGULATOR)
SEGMENTS = ("servers_boards", "optical_modules", "data_centres", "robots", "industrial_internet")
TIERS = ("创新型中小企业", "专精特新中小企业", "")


def files(enterprises: int, months: int) -> dict[str, bytes]:
    codes = [complete(f"91330482MB{i:07d}"[:17]) for i in range(enterprises)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["统一社会信用代码", "企业名称", "产业链环节", "梯度层级", "认定日期", "是否规上", "研发强度(%)"]
    )
    for i, code in enumerate(codes):
        tier = TIERS[i % 3]
        writer.writerow([code, f"企业{i}", SEGMENTS[i % 5], tier, "2023-06-30" if tier else "", "是", "4.5"])
    enterprises_csv = out.getvalue().encode()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["统一社会信用代码", "统计月份", "产值（万元）", "营业收入（万元）"])
    for i, code in enumerate(codes):
        for month in range(1, months + 1):
            writer.writerow([code, f"2024-{month:02d}", 100 + i % 50 + month, 110 + i % 50])
    return {"enterprises": enterprises_csv, "output": out.getvalue().encode()}


def import_once(engine: Engine, dataset: str, body: bytes, *, dry_run: bool) -> transfer.ImportReport:
    with session_scope(engine) as session:
        report = transfer.import_file(
            session,
            principal=REGULATOR,
            dataset=dataset,
            data=body,
            fmt="csv",
            dry_run=dry_run,
            now=utcnow(),
            lang="en",
        )
        if dry_run:
            session.rollback()
        return report


def measure(
    engine: Engine, dataset: str, body: bytes, names: datasets.SegmentNames, known: set[str] | None
) -> dict[str, float]:
    """Seconds of each step on one dataset; the re-import must change nothing."""
    found: dict[str, float] = {}
    started = time.perf_counter()
    datasets.parse(dataset, tabular.read_table(body, "csv"), segments=names, known_credit_codes=known)
    found["parse only"] = time.perf_counter() - started
    for step, dry_run in (("dry run", True), ("import", False), ("re-import", False)):
        started = time.perf_counter()
        report = import_once(engine, dataset, body, dry_run=dry_run)
        found[step] = time.perf_counter() - started
        assert not report.errors, report.errors[:3]
        if step == "re-import":
            assert report.unchanged == report.rows, report
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enterprises", type=int, default=2000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    data = files(args.enterprises, args.months)
    names = datasets.SegmentNames([(s["code"], s["zh"], s["en"]) for s in shipped()])
    seconds: dict[tuple[str, str], list[float]] = {}
    rows = {name: len(tabular.read_table(body, "csv").rows) for name, body in data.items()}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
            if args.database:
                fresh_postgres(url)
            upgrade(url)
            engine = engine_for(url)
            known = None
            for dataset in ("enterprises", "output"):
                for step, elapsed in measure(engine, dataset, data[dataset], names, known).items():
                    seconds.setdefault((dataset, step), []).append(elapsed)
                known = {row[0] for row in csv.reader(io.StringIO(data["enterprises"].decode())) if row}
            engine.dispose()
    database = "PostgreSQL" if args.database else "SQLite"
    print(f"registry import, {database}, median of {args.rounds} rounds")
    print(f"{'dataset':<12} {'step':<11} {'rows':>7} {'seconds':>8} {'rows/s':>9} {'÷ parse':>8}")
    for (dataset, step), values in seconds.items():
        median = statistics.median(values)
        base = statistics.median(seconds[(dataset, "parse only")])
        count = rows[dataset]
        print(
            f"{dataset:<12} {step:<11} {count:>7} {median:>8.2f} {count / median:>9.0f} {median / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
