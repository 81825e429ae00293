"""`suanwang usage`: metered usage records, and reporting usage events from a file (providers)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from suanwang.cli import output
from suanwang.cli.output import TIME_FORMATS, Column, number, shanghai_time
from suanwang.i18n import t

usage_app = typer.Typer(
    help="Metered usage: the card-time of every ended launch, observed by the controller or reported "
    "by providers.",
    no_args_is_help=True,
)

USAGE_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("job_id", "job", None),
    ("org_id", "org", None),
    ("pool_id", "pool", None),
    ("cards", "cards", number),
    ("started_at", "started", shanghai_time),
    ("ended_at", "ended", shanghai_time),
    ("card_seconds", "card-seconds", number),
    ("source", "source", None),
    ("external_id", "external id", None),
]


def _cli() -> ModuleType:
    """cli/main.py (imported late: it imports this module to add the command group)."""
    from suanwang.cli import main

    return main


@usage_app.command("list")
def usage_list(
    ctx: typer.Context,
    org_id: Annotated[int | None, typer.Option(help="Only this organisation.")] = None,
    pool_id: Annotated[int | None, typer.Option(help="Only this pool.")] = None,
    job_id: Annotated[int | None, typer.Option(help="Only this job.")] = None,
    ended_from: Annotated[
        datetime | None,
        typer.Option(
            "--from",
            formats=TIME_FORMATS,
            help="Only usage that ended at or after this time (without a zone: Asia/Shanghai).",
        ),
    ] = None,
    ended_to: Annotated[
        datetime | None,
        typer.Option(
            "--to",
            formats=TIME_FORMATS,
            help="Only usage that ended before this time (without a zone: Asia/Shanghai).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(help="Rows to skip.")] = 0,
    sort: Annotated[str | None, typer.Option(help="Sort field; '-' in front for descending.")] = None,
) -> None:
    """List the usage records you can see, latest end first."""
    cli = _cli()
    params = {
        "org_id": org_id,
        "pool_id": pool_id,
        "job_id": job_id,
        "from": cli._aware(ended_from),
        "to": cli._aware(ended_to),
    } | cli.paging(limit, offset, sort)
    cli.present(ctx, cli.call(ctx, "GET", "/usage", params=params), USAGE_COLUMNS)


@usage_app.command("ingest")
def usage_ingest(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A JSON file holding an array of usage CloudEvents (at most 1,000).",
        ),
    ],
) -> None:
    """Report usage events from a file (provider operators, the regulator); all are stored or none."""
    cli = _cli()
    lang = str(cli.state(ctx).lang)
    try:
        events: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise typer.BadParameter(t("cli.usage-file", lang, path=str(file), error=reason)) from None
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    with cli.state(ctx).client() as client:
        report = client.request("POST", "/metering/events", json=events, headers=headers)
    if cli.state(ctx).as_json:
        output.show(report, [], as_json=True)
        return
    line = t(
        "cli.usage-ingested",
        lang,
        recorded=report["recorded"],
        duplicate=report["duplicate"],
        already_metered=report["already_metered"],
        total=len(report["results"]),
    )
    output.console.print(line, highlight=False, markup=False)
