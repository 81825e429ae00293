"""`suanwang jobs` and `suanwang reservations`: the jobs slice of the REST API for people and scripts.

Like every command, these go through the API (cli/main.py's `call` and `present`); `--json` prints the
API's JSON. Durations are seconds or `90m`, `2h`, `1d`, `1h30m`; times without a zone are Asia/Shanghai.
"""

from __future__ import annotations

import re
import shlex
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from suanwang.cli import output
from suanwang.cli.output import Column, fen, joined, number, shanghai_time
from suanwang.i18n import t
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.schemas import PriorityClass
from suanwang.scheduler.types import Classification
from suanwang.timeutil import SHANGHAI

jobs_app = typer.Typer(
    help="Jobs: submit work, compare where it would run, follow it and cancel it.", no_args_is_help=True
)
reservations_app = typer.Typer(
    help="Reservations: cards of a pool held for one organisation over a time window.", no_args_is_help=True
)


def _cli() -> ModuleType:
    """cli/main.py (imported late: it imports this module to add the command groups)."""
    from suanwang.cli import main

    return main


def _lang(ctx: typer.Context | None) -> str:
    obj = ctx.find_root().obj if ctx is not None else None
    return str(getattr(obj, "lang", "en"))


# --- parsing durations, times and KEY=VALUE --------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_S = (86_400, 3600, 60, 1)


def parse_duration(text: str) -> int | None:
    """Seconds from '3600', '90m', '2h', '1d', '1h30m' or '2d12h'; None if it is not one of those."""
    value = text.strip().lower().replace(" ", "")
    if value.isdigit():
        return int(value)
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        return None
    return sum(int(part) * unit for part, unit in zip(match.groups(), _UNIT_S, strict=True) if part)


def parse_time(text: str) -> datetime | None:
    """An aware time from an ISO date or time ('Z' allowed); a date or time without zone is Shanghai's."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=SHANGHAI)


def duration_text(seconds: Any) -> str:
    """3600 -> '1h', 5400 -> '1h 30m', 90061 -> '1d 1h 1m', 42 -> '42s'."""
    if seconds is None:
        return ""
    left = int(seconds)
    if left < 60:
        return f"{left}s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        amount, left = divmod(left, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def _check_duration(ctx: typer.Context, value: str | None) -> str | None:
    if value is not None and parse_duration(value) is None:
        raise typer.BadParameter(t("cli.bad-duration", _lang(ctx), value=value))
    return value


def _check_time(ctx: typer.Context, value: str | None) -> str | None:
    if value is not None and parse_time(value) is None:
        raise typer.BadParameter(t("cli.bad-time", _lang(ctx), value=value))
    return value


def _check_env(ctx: typer.Context, values: list[str] | None) -> list[str] | None:
    for item in values or []:
        name, equals, _ = item.partition("=")
        if not equals or not name:
            raise typer.BadParameter(t("cli.bad-env", _lang(ctx), value=item))
    return values


def _iso(text: str | None) -> str | None:
    parsed = parse_time(text) if text is not None else None
    return parsed.isoformat() if parsed is not None else None


# --- options shared by submit and quote ------------------------------------------------------------

CommandArg = Annotated[
    list[str],
    typer.Argument(metavar="COMMAND...", help="The program to run and its arguments; put them after '--'."),
]
NameOpt = Annotated[str | None, typer.Option(help="A name for the job.")]
CardsOpt = Annotated[
    int | None, typer.Option(help="Cards in one pool (default 1; 0 for work without accelerators).")
]
CardsPerNodeOpt = Annotated[
    int | None, typer.Option(help="Cards on each node of a multi-node job; cards must be a multiple of it.")
]
AcceleratorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--accelerator", help="An accelerator model it may run on, e.g. A800 (repeatable; default any)."
    ),
]
MemoryOpt = Annotated[int | None, typer.Option(help="Least memory per card, in GiB.")]
DurationOpt = Annotated[
    str | None,
    typer.Option(
        callback=_check_duration,
        metavar="DURATION",
        help="Estimated runtime: seconds, or 90m, 2h, 1d, 1h30m (default 1h).",
    ),
]
DeadlineOpt = Annotated[
    str | None,
    typer.Option(
        callback=_check_time,
        metavar="TIME",
        help="Finish by this ISO time, e.g. 2025-06-01T18:00+08:00 (without a zone: Asia/Shanghai).",
    ),
]
MaxPriceOpt = Annotated[
    int | None,
    typer.Option("--max-price", help="The most it may cost, in fen per card-hour (1 yuan = 100 fen)."),
]
ClassificationOpt = Annotated[
    Classification | None,
    typer.Option(help="Data classification; government work runs only in government-zone pools."),
]
RegionOpt = Annotated[
    list[str] | None, typer.Option("--region", help="A region it may run in (repeatable; default any).")
]
PriorityOpt = Annotated[
    PriorityClass | None, typer.Option(help="Priority; urgent is for government units and the regulator.")
]
PreemptibleOpt = Annotated[
    bool, typer.Option("--preemptible", help="It may be stopped and requeued to make room for other work.")
]
JobTypeOpt = Annotated[
    str | None, typer.Option(help="Kind of work (e.g. llm-training), for per-accelerator speed estimates.")
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        callback=_check_env,
        metavar="KEY=VALUE",
        help="An environment variable of the job (repeatable).",
    ),
]
WorkdirOpt = Annotated[str | None, typer.Option(help="Working directory on the node.")]
OrgOpt = Annotated[int | None, typer.Option("--org", help="The organisation it is for (regulator only).")]
IdempotencyOpt = Annotated[
    str | None,
    typer.Option(
        help="Idempotency-Key header: repeating the command with the same key never submits twice "
        "(default: a new key for each run)."
    ),
]
SUBMIT_SETTINGS = {"allow_interspersed_args": False}  # options end where the command begins


def spec_body(
    *,
    command: list[str],
    name: str | None,
    cards: int | None,
    cards_per_node: int | None,
    accelerator: list[str] | None,
    min_memory_gib: int | None,
    duration: str | None,
    deadline: str | None,
    max_price: int | None,
    classification: Classification | None,
    region: list[str] | None,
    priority: PriorityClass | None,
    preemptible: bool,
    job_type: str | None,
    env: list[str] | None,
    workdir: str | None,
    org: int | None,
) -> dict[str, Any]:
    """The JobSpec body: only what was given, so the API's defaults apply to the rest."""
    body: dict[str, Any] = _cli().body_of(
        command=list(command),
        name=name,
        cards=cards,
        cards_per_node=cards_per_node,
        accelerators=accelerator or None,
        min_memory_gib=min_memory_gib,
        duration_estimate_s=parse_duration(duration) if duration is not None else None,
        deadline=_iso(deadline),
        max_price_fen_per_card_hour=max_price,
        classification=classification.value if classification else None,
        regions=region or None,
        priority=priority.value if priority else None,
        preemptible=preemptible or None,
        job_type=job_type,
        env=dict(item.split("=", 1) for item in env) if env else None,
        workdir=workdir,
        org_id=org,
    )
    return body


# --- columns ---------------------------------------------------------------------------------------


def _command_text(value: Any) -> str:
    return shlex.join(value) if isinstance(value, list) else ""


def _second(value: Any) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(str(value)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _mark(value: Any) -> str:
    return "" if value is None else "✓" if value else "✗"


JOB_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("name", "name", None),
    ("state", "state", None),
    ("org_id", "org", None),
    ("cards", "cards", number),
    ("accelerators", "accelerators", joined),
    ("priority", "priority", None),
    ("pool_id", "pool", None),
    ("attempt", "attempt", None),
    ("submitted_at", "submitted", shanghai_time),
    ("ended_at", "ended", shanghai_time),
]
JOB_DETAIL_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("name", "name", None),
    ("state", "state", None),
    ("reason", "reason", None),
    ("org_id", "org", None),
    ("command", "command", _command_text),
    ("cards", "cards", number),
    ("accelerators", "accelerators", joined),
    ("regions", "regions", joined),
    ("classification", "classification", None),
    ("priority", "priority", None),
    ("duration_estimate_s", "duration", duration_text),
    ("deadline", "deadline", shanghai_time),
    ("pool_id", "pool", None),
    ("attempt", "attempt", None),
    ("submitted_at", "submitted", _second),
    ("started_at", "started", _second),
    ("ended_at", "ended", _second),
    ("exit_code", "exit code", None),
    ("card_seconds", "card-seconds", number),
]
QUOTE_COLUMNS: list[Column] = [
    ("choice", "", None),
    ("pool_code", "pool", None),
    ("provider", "provider", None),
    ("region", "region", None),
    ("accelerator", "accelerator", None),
    ("price_fen_per_card_hour", "¥/card-h", fen),
    ("start", "start", None),
    ("runtime_s", "runtime", duration_text),
    ("end_at", "end", shanghai_time),
    ("cost_fen", "est. cost ¥", fen),
    ("meets_deadline", "meets deadline", _mark),
]
EVENT_COLUMNS: list[Column] = [
    ("at", "time (Asia/Shanghai)", _second),
    ("transition", "from → to", None),
    ("attempt", "attempt", None),
    ("text", "text", None),
]
RESERVATION_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("org_id", "org", None),
    ("pool_id", "pool", None),
    ("cards", "cards", number),
    ("starts_at", "starts", shanghai_time),
    ("ends_at", "ends", shanghai_time),
    ("cancelled_at", "cancelled", shanghai_time),
]

JobIdArg = Annotated[int, typer.Argument(metavar="JOB_ID", help="The job's id.")]
ReservationIdArg = Annotated[int, typer.Argument(metavar="ID", help="The reservation's id.")]
Limit = Annotated[int, typer.Option(help="Rows per page.")]
Offset = Annotated[int, typer.Option(help="Rows to skip.")]
Sort = Annotated[str | None, typer.Option(help="Sort field; '-' in front for descending.")]


def _say(ctx: typer.Context, data: Any, key: str, **params: Any) -> None:
    """A one-line answer for people, the API's JSON for scripts."""
    if _cli().state(ctx).as_json:
        output.show(data, [], as_json=True)
    else:
        output.console.print(t(key, _lang(ctx), **params), highlight=False, markup=False)


# --- jobs ------------------------------------------------------------------------------------------


@jobs_app.command("submit", context_settings=SUBMIT_SETTINGS)
def jobs_submit(
    ctx: typer.Context,
    command: CommandArg,
    name: NameOpt = None,
    cards: CardsOpt = None,
    cards_per_node: CardsPerNodeOpt = None,
    accelerator: AcceleratorOpt = None,
    min_memory_gib: MemoryOpt = None,
    duration: DurationOpt = None,
    deadline: DeadlineOpt = None,
    max_price: MaxPriceOpt = None,
    classification: ClassificationOpt = None,
    region: RegionOpt = None,
    priority: PriorityOpt = None,
    preemptible: PreemptibleOpt = False,
    job_type: JobTypeOpt = None,
    env: EnvOpt = None,
    workdir: WorkdirOpt = None,
    org: OrgOpt = None,
    idempotency_key: IdempotencyOpt = None,
) -> None:
    """Submit a job; it is checked now and queued, and the scheduler places it."""
    body = spec_body(
        command=command,
        name=name,
        cards=cards,
        cards_per_node=cards_per_node,
        accelerator=accelerator,
        min_memory_gib=min_memory_gib,
        duration=duration,
        deadline=deadline,
        max_price=max_price,
        classification=classification,
        region=region,
        priority=priority,
        preemptible=preemptible,
        job_type=job_type,
        env=env,
        workdir=workdir,
        org=org,
    )
    # Without --idempotency-key the client sends a fresh key, the same on each of its own retries.
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with _cli().state(ctx).client() as client:
        job = client.request("POST", "/jobs", json=body, headers=headers)
    _say(ctx, job, "cli.job-submitted", id=job["id"], state=job["state"])


@jobs_app.command("quote", context_settings=SUBMIT_SETTINGS)
def jobs_quote(
    ctx: typer.Context,
    command: CommandArg,
    name: NameOpt = None,
    cards: CardsOpt = None,
    cards_per_node: CardsPerNodeOpt = None,
    accelerator: AcceleratorOpt = None,
    min_memory_gib: MemoryOpt = None,
    duration: DurationOpt = None,
    deadline: DeadlineOpt = None,
    max_price: MaxPriceOpt = None,
    classification: ClassificationOpt = None,
    region: RegionOpt = None,
    priority: PriorityOpt = None,
    preemptible: PreemptibleOpt = False,
    job_type: JobTypeOpt = None,
    env: EnvOpt = None,
    workdir: WorkdirOpt = None,
    org: OrgOpt = None,
) -> None:
    """Where the job would run, ranked as the scheduler would choose; nothing is submitted."""
    cli = _cli()
    body = spec_body(
        command=command,
        name=name,
        cards=cards,
        cards_per_node=cards_per_node,
        accelerator=accelerator,
        min_memory_gib=min_memory_gib,
        duration=duration,
        deadline=deadline,
        max_price=max_price,
        classification=classification,
        region=region,
        priority=priority,
        preemptible=preemptible,
        job_type=job_type,
        env=env,
        workdir=workdir,
        org=org,
    )
    data = cli.call(ctx, "POST", "/jobs/quote", body=body)
    if cli.state(ctx).as_json:
        cli.present(ctx, data, [])
        return
    lang = _lang(ctx)
    if not data["rows"]:
        output.console.print(data.get("note") or t("cli.quote-empty", lang), highlight=False, markup=False)
        return
    rows = [
        row
        | {
            "choice": "→" if i == 0 else "",
            "start": t("cli.now", lang) if row["starts_now"] else shanghai_time(row["start_at"]),
            "pool_code": row["pool_code"] + (" (R)" if row.get("reserved") else ""),
        }
        for i, row in enumerate(data["rows"])
    ]
    cli.present(ctx, rows, QUOTE_COLUMNS, title=t("cli.quote-title", lang))


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    job_state: Annotated[JobState | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    org: Annotated[int | None, typer.Option("--org", help="Only this organisation.")] = None,
    pool: Annotated[int | None, typer.Option("--pool", help="Only jobs on this pool.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
) -> None:
    """List the jobs you can see, newest first."""
    cli = _cli()
    params = {"state": job_state, "org_id": org, "pool_id": pool} | cli.paging(limit, offset, sort)
    cli.present(ctx, cli.call(ctx, "GET", "/jobs", params=params), JOB_COLUMNS)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: JobIdArg) -> None:
    """Show one job, with why it waits or how it ended."""
    cli = _cli()
    cli.present(ctx, cli.call(ctx, "GET", f"/jobs/{job_id}"), JOB_DETAIL_COLUMNS)


@jobs_app.command("events")
def jobs_events(ctx: typer.Context, job_id: JobIdArg) -> None:
    """A job's history: every change of state, when and why."""
    cli = _cli()
    events = cli.call(ctx, "GET", f"/jobs/{job_id}/events")
    if cli.state(ctx).as_json:
        cli.present(ctx, events, [])
        return
    rows = [
        event
        | {
            "transition": f"{event['from_state'] or '·'} → {event['to_state']}",
            "text": event["text"] or event["cause"],
        }
        for event in events
    ]
    cli.present(ctx, rows, EVENT_COLUMNS)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: JobIdArg) -> None:
    """Cancel a job: a waiting job ends at once, a running one is stopped on its backend."""
    job = _cli().call(ctx, "POST", f"/jobs/{job_id}/cancel")
    if job["state"] == JobState.CANCELLED.value:
        _say(ctx, job, "cli.job-state", id=job["id"], state=job["state"])
    else:
        _say(ctx, job, "cli.cancel-requested", id=job["id"], state=job["state"])


@jobs_app.command("logs")
def jobs_logs(
    ctx: typer.Context,
    job_id: JobIdArg,
    tail: Annotated[
        int | None,
        typer.Option("--tail", metavar="BYTES", help="Only the last BYTES of output (default 64 KiB)."),
    ] = None,
    download: Annotated[
        Path | None,
        typer.Option(
            "--download", metavar="FILE", help="Write all of the output to FILE instead of printing it."
        ),
    ] = None,
    attempt: Annotated[
        int | None, typer.Option(help="The output of this attempt (default: the latest).")
    ] = None,
) -> None:
    """A job's output (stdout and stderr) from the backend it ran on."""
    cli = _cli()
    params = {"tail_bytes": tail, "attempt": attempt, "download": "true" if download else None}
    with cli.state(ctx).client() as client:
        data: bytes = client.request("GET", f"/jobs/{job_id}/logs", params=params, raw=True)
    if download is not None:
        download.write_bytes(data)
        output.err_console.print(
            t("cli.logs-written", _lang(ctx), bytes=len(data), id=job_id, path=str(download)),
            highlight=False,
            markup=False,
        )
        return
    text = data.decode("utf-8", errors="replace")
    if cli.state(ctx).as_json:
        output.show({"job_id": job_id, "attempt": attempt, "log": text}, [], as_json=True)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


# --- reservations ----------------------------------------------------------------------------------


@reservations_app.command("create")
def reservations_create(
    ctx: typer.Context,
    pool: Annotated[int, typer.Option("--pool", help="The pool's id.")],
    cards: Annotated[int, typer.Option(help="Cards to hold.")],
    start: Annotated[
        str,
        typer.Option(
            callback=_check_time,
            metavar="TIME",
            help="Time; a date or time without zone is read in Asia/Shanghai.",
        ),
    ],
    end: Annotated[
        str,
        typer.Option(
            callback=_check_time,
            metavar="TIME",
            help="Time; a date or time without zone is read in Asia/Shanghai.",
        ),
    ],
    org: OrgOpt = None,
) -> None:
    """Hold cards of a pool for your organisation over [start, end) (tenant admins, the regulator)."""
    cli = _cli()
    body = cli.body_of(pool_id=pool, cards=cards, starts_at=_iso(start), ends_at=_iso(end), org_id=org)
    cli.present(ctx, cli.call(ctx, "POST", "/reservations", body=body), RESERVATION_COLUMNS)


@reservations_app.command("list")
def reservations_list(
    ctx: typer.Context,
    pool: Annotated[int | None, typer.Option("--pool", help="Only this pool.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
) -> None:
    """List the reservations you can see."""
    cli = _cli()
    params = {"pool_id": pool} | cli.paging(limit, offset, sort)
    cli.present(ctx, cli.call(ctx, "GET", "/reservations", params=params), RESERVATION_COLUMNS)


@reservations_app.command("show")
def reservations_show(ctx: typer.Context, reservation_id: ReservationIdArg) -> None:
    """Show one reservation."""
    cli = _cli()
    cli.present(ctx, cli.call(ctx, "GET", f"/reservations/{reservation_id}"), RESERVATION_COLUMNS)


@reservations_app.command("cancel")
def reservations_cancel(ctx: typer.Context, reservation_id: ReservationIdArg) -> None:
    """Cancel a reservation: its cards are offered to everyone again."""
    cli = _cli()
    cli.present(ctx, cli.call(ctx, "POST", f"/reservations/{reservation_id}/cancel"), RESERVATION_COLUMNS)
