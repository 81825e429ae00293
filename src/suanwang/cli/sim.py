"""`suanwang sim`: replay a trace through the scheduler under several policies and compare them.

Runs locally (no server): the simulator is a pure core over files. docs/simulator.md.
"""

from __future__ import annotations

import csv
import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from suanwang.cli import output
from suanwang.scheduler.policy import Algorithm

sim_app = typer.Typer(help="Trace-driven scheduling simulator.", no_args_is_help=True)


class TraceFormat(enum.StrEnum):
    CSV = "csv"
    GAVEL = "gavel"


# Extras shown in the table after the keys (the JSON carries every metric).
TABLE_EXTRAS = (
    "jct_median_s",
    "queue_delay_mean_s",
    "jobs_unfinished",
    "preemptions",
    "lost_card_s",
    "government_zone_violations",
    "sim_wall_s",
)


def _fail(message: str) -> typer.Exit:
    output.err_console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


def _algorithms(text: str) -> list[Algorithm]:
    names = list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    known = ", ".join(a.value for a in Algorithm)
    if not names:
        raise _fail(f"--policies is empty (policies: {known})")
    unknown = [name for name in names if name not in {a.value for a in Algorithm}]
    if unknown:
        raise _fail(f"unknown policy {unknown[0]!r} (policies: {known})")
    return [Algorithm(name) for name in names]


@sim_app.command("compare")
def compare(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option(help="Scenario TOML file, or the name of a shipped scenario (pinghu-dev).")
    ],
    trace: Annotated[Path, typer.Option(help="Trace CSV file.")],
    trace_format: Annotated[
        TraceFormat,
        typer.Option(
            "--trace-format", help="Trace format: csv (the documented columns) or gavel (Philly via Gavel)."
        ),
    ] = TraceFormat.CSV,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="Read a trace column from another CSV column: DST=SRC (repeatable)."),
    ] = None,
    policies: Annotated[
        str, typer.Option(help="Comma-separated policies: fifo, backfill, cheapest, suanwang.")
    ] = "fifo,backfill,cheapest,suanwang",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N jobs by submit time.")] = None,
    cycle_s: Annotated[
        float,
        typer.Option(
            min=0.0, help="At most one scheduling cycle per this many simulated seconds (0: every event)."
        ),
    ] = 0.0,
    failure_rate: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Probability that a job attempt fails and is retried.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed for injected failures.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON to this file.")] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write the results as CSV to this file (one row per policy).")
    ] = None,
) -> None:
    """Replay a trace under several policies and compare their metrics in one table."""
    from suanwang.scheduler.simulate import (
        compute_metrics,
        load_scenario,
        load_trace,
        parse_mapping,
        simulate,
    )

    algorithms = _algorithms(policies)
    try:
        loaded = load_scenario(scenario)
        columns = parse_mapping(mapping or [])
        jobs = load_trace(trace, fmt=trace_format.value, mapping=columns, scenario=loaded, limit=limit)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    results: dict[str, dict[str, Any]] = {}
    for algorithm in algorithms:
        output.err_console.print(f"[dim]{algorithm.value}: {len(jobs):,} jobs on {loaded.name}…[/dim]")
        try:
            result = simulate(
                loaded, jobs, loaded.policy(algorithm), cycle_s=cycle_s, failure_rate=failure_rate, seed=seed
            )
        except ValueError as exc:
            raise _fail(str(exc)) from None
        results[algorithm.value] = compute_metrics(result)
    document = {"policies": results}
    try:
        if out is not None:
            out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if csv_out is not None:
            write_csv(csv_out, results)
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror}") from None
    root = ctx.find_root().obj
    if getattr(root, "as_json", False):
        output.console.print_json(json.dumps(document, ensure_ascii=False))
    else:
        output.console.print(table(results, title=f"{loaded.name}: {len(jobs):,} jobs"))


def table(results: dict[str, dict[str, Any]], *, title: str | None = None) -> Table:
    """Rows = metrics, columns = policies."""
    from suanwang.scheduler.simulate import METRIC_KEYS

    rendered = Table(title=title, header_style="bold")
    rendered.add_column("metric")
    for policy in results:
        rendered.add_column(policy, justify="right")
    for key in (*METRIC_KEYS, *TABLE_EXTRAS):
        rendered.add_row(key, *(_cell(metrics.get(key)) for metrics in results.values()))
    pools = next(iter(results.values()), {}).get("utilization_by_pool", {})
    for pool in pools:
        rendered.add_row(
            escape(f"utilization[{pool}]"), *(_cell(m["utilization_by_pool"][pool]) for m in results.values())
        )
    return rendered


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def flat(metrics: dict[str, Any]) -> dict[str, Any]:
    """Scalar metrics, with per-pool utilization as utilization[pool] (for CSV)."""
    row = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    for pool, value in metrics.get("utilization_by_pool", {}).items():
        row[f"utilization[{pool}]"] = value
    return row


def write_csv(path: Path, results: dict[str, dict[str, Any]]) -> None:
    rows = [{"policy": policy, **flat(metrics)} for policy, metrics in results.items()]
    fields = list(dict.fromkeys(field for row in rows for field in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
