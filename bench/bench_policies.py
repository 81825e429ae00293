"""Replay the development trace under every policy and compare them against the issue's targets.

    python bench/bench_policies.py [--limit N] [--policies fifo,backfill,cheapest,suanwang]

Scenario: pinghu-dev (shipped); trace: shared/data/traces/gavel_philly_msr (the Gavel/Philly trace).
Prints one table of metrics per policy, the target ratios measured in the same run, and the wall time
per policy; writes bench/results/policies.json. Ratios, not absolute times, are what to compare
across machines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from suanwang.scheduler.policy import Algorithm
from suanwang.scheduler.simulate import metrics
from suanwang.scheduler.simulate.engine import simulate
from suanwang.scheduler.simulate.scenario import load_scenario
from suanwang.scheduler.simulate.trace import load_trace

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT.parent / "shared" / "data" / "traces" / "gavel_philly_msr" / "gavel_msr_seed0.csv"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N jobs")
    parser.add_argument("--policies", default="fifo,backfill,cheapest,suanwang")
    args = parser.parse_args()
    scenario = load_scenario("pinghu-dev")
    jobs = load_trace(TRACE, fmt="gavel", scenario=scenario, limit=args.limit)
    results: dict[str, dict[str, float]] = {}
    for name in args.policies.split(","):
        started = time.perf_counter()
        result = simulate(scenario, jobs, scenario.policy(Algorithm(name)))
        row = metrics.compute(result)
        row["wall_s"] = time.perf_counter() - started
        results[name] = row
    console = Console(width=200)
    table = Table(title=f"pinghu-dev × gavel_msr_seed0 ({len(jobs)} jobs)")
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    for key in (*metrics.KEYS, "wall_s"):
        table.add_row(key, *(_fmt(results[name].get(key)) for name in results))
    console.print(table)
    targets = {}
    if {"suanwang", "backfill", "cheapest"} <= set(results):
        s, b, c = results["suanwang"], results["backfill"], results["cheapest"]
        targets = {
            "jct_mean suanwang/backfill (≤ 0.8)": ratio(s["jct_mean_s"], b["jct_mean_s"]),
            "cost suanwang/cheapest (≤ 1.05)": ratio(s["cost_total_fen"], c["cost_total_fen"]),
            "local-SME p95 delay suanwang/backfill (≤ 0.5)": ratio(
                s["queue_delay_p95_s_local_sme"], b["queue_delay_p95_s_local_sme"]
            ),
            "constraint violations, all policies (= 0)": sum(
                r["constraint_violations"] for r in results.values()
            ),
        }
        for label, value in targets.items():
            console.print(f"{label}: {_fmt(value)}")
    out = ROOT / "bench" / "results" / "policies.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"jobs": len(jobs), "policies": results, "targets": targets}, indent=2))


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
