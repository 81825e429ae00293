"""`suanwang audit`: the trail of every write — check its hash chain, print its head, list entries."""

from __future__ import annotations

from datetime import datetime
from types import ModuleType
from typing import Annotated

import typer

from suanwang.audit.chain import Verdict
from suanwang.cli import output
from suanwang.cli.output import TIME_FORMATS, Column, shanghai_time
from suanwang.i18n import t

audit_app = typer.Typer(
    help="The audit trail: every write by a user or the controller, hash-chained.", no_args_is_help=True
)

AUDIT_COLUMNS: list[Column] = [
    ("seq", "seq", None),
    ("at", "at", shanghai_time),
    ("actor", "actor", None),
    ("action", "action", None),
    ("table_name", "table", None),
    ("row_key", "key", None),
    ("after", "after", None),
]


def _cli() -> ModuleType:
    from suanwang.cli import main  # late: main imports this module to add the group

    return main


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            help="SEQ:HASH printed by `suanwang audit head` earlier and kept elsewhere; repeatable.",
        ),
    ] = None,
) -> None:
    """Check the whole chain in the database: exit 0 if sound, 1 if any entry was changed or removed."""
    from suanwang.audit.chain import Head
    from suanwang.audit.service import verify_database
    from suanwang.db.session import engine_for

    state = _cli().state(ctx)
    try:
        anchors = [Head.parse(text) for text in anchor or ()]
    except ValueError as exc:
        output.err_console.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    verdict = verify_database(engine_for(state.settings.effective_database_url), anchors)
    report_audit(verdict, state.lang)
    if not verdict.ok:
        raise typer.Exit(1)


def report_audit(verdict: Verdict, lang: str) -> None:
    """The chain's state in a line, or a line per problem found (also for `suanwang db verify`)."""
    if verdict.ok:
        output.console.print(t("cli.audit-sound", lang, count=f"{verdict.checked:,}", head=str(verdict.last)))
        return
    for problem in verdict.problems or []:
        kind = t(f"cli.audit-{problem.kind}", lang)
        output.console.print(
            t("cli.audit-problem", lang, seq=problem.seq, kind=kind, detail=problem.detail),
            highlight=False,
            markup=False,
        )


@audit_app.command("head")
def audit_head(ctx: typer.Context) -> None:
    """Print the chain's head as SEQ:HASH: keep it elsewhere, and `verify --anchor` it later."""
    from suanwang.audit.chain import GENESIS, Head
    from suanwang.audit.service import head
    from suanwang.db.session import engine_for, session_scope

    state = _cli().state(ctx)
    with session_scope(engine_for(state.settings.effective_database_url)) as session:
        found = head(session) or Head(0, GENESIS)
    output.console.print(str(found), highlight=False, markup=False)


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    table: Annotated[str | None, typer.Option(help="Only this table, e.g. jobs.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this row key (with --table).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor, e.g. user:12.")] = None,
    at_from: Annotated[
        datetime | None,
        typer.Option("--from", formats=TIME_FORMATS, help="At or after (no zone: Asia/Shanghai)."),
    ] = None,
    at_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=TIME_FORMATS, help="Before (no zone: Asia/Shanghai)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(help="Rows to skip.")] = 0,
    sort: Annotated[str | None, typer.Option(help="Sort field (seq, at); '-' for descending.")] = None,
) -> None:
    """List entries, newest first (regulator only)."""
    cli = _cli()
    params = {
        "table": table,
        "key": key,
        "actor": actor,
        "from": cli._aware(at_from),
        "to": cli._aware(at_to),
    } | cli.paging(limit, offset, sort)
    cli.present(ctx, cli.call(ctx, "GET", "/audit", params=params), AUDIT_COLUMNS)
