"""`suanwang money`: accounts, balances and history; top-ups, refunds, adjustments, payouts and credit
limits (the regulator's). Amounts are given in yuan with up to two decimals (exact: 12.34 = 1234 fen)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from suanwang.cli import output
from suanwang.cli.output import Column, fen, shanghai_time
from suanwang.i18n import t
from suanwang.units import parse_yuan

money_app = typer.Typer(
    help="Money: wallets and other accounts, their history, top-ups, refunds, adjustments and payouts.",
    no_args_is_help=True,
)


def _cli() -> ModuleType:
    from suanwang.cli import main

    return main


def _lang(ctx: typer.Context) -> str:
    return str(getattr(ctx.find_root().obj, "lang", "en"))


def _amount(ctx: typer.Context, value: str) -> str:
    if parse_yuan(value) is None:
        raise typer.BadParameter(t("cli.bad-amount", _lang(ctx), value=value))
    return value


ACCOUNT_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("key", "account", None),
    ("code", "kind", None),
    ("balance_fen", "balance", fen),
    ("held_fen", "held", fen),
    ("available_fen", "available", lambda v: "" if v is None else fen(v)),
    ("credit_limit_fen", "credit limit", fen),
]
TRANSFER_COLUMNS: list[Column] = [
    ("seq", "seq", None),
    ("created_at", "time", shanghai_time),
    ("code", "kind", None),
    ("amount", "amount", fen),
    ("debit_account_id", "from", None),
    ("credit_account_id", "to", None),
    ("reference", "for", None),
    ("reason", "reason", None),
]

Amount = Annotated[
    str, typer.Argument(callback=_amount, metavar="YUAN", help="Amount in yuan, e.g. 1200.50.")
]
Reason = Annotated[str, typer.Option(help="Why the money moves (recorded with your name).")]


@money_app.command("accounts")
def accounts(
    ctx: typer.Context,
    org: Annotated[int | None, typer.Option("--org", help="Only this organisation's accounts.")] = None,
    code: Annotated[str | None, typer.Option(help="Only this kind, e.g. tenant_wallet.")] = None,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(help="Rows to skip.")] = 0,
) -> None:
    """The accounts you can see, with their balances."""
    cli = _cli()
    if org is not None:
        cli.present(ctx, cli.call(ctx, "GET", f"/orgs/{org}/accounts"), ACCOUNT_COLUMNS)
        return
    params = {"code": code, "limit": limit, "offset": offset}
    cli.present(ctx, cli.call(ctx, "GET", "/accounts", params=params), ACCOUNT_COLUMNS)


@money_app.command("balance")
def balance(
    ctx: typer.Context,
    account_id: Annotated[int, typer.Argument(help="Account id.")],
    at: Annotated[str | None, typer.Option(help="As it stood at this ISO time (with a zone).")] = None,
) -> None:
    """An account's balances, now or at a time."""
    cli = _cli()
    data = cli.call(ctx, "GET", f"/accounts/{account_id}/balance", params={"at": at})
    cli.present(
        ctx,
        data,
        [
            ("account_id", "account", None),
            ("balance_fen", "balance", fen),
            ("debits_pending", "held", fen),
            ("credits_posted", "credits", fen),
            ("debits_posted", "debits", fen),
        ],
    )


@money_app.command("history")
def history(
    ctx: typer.Context,
    account_id: Annotated[int, typer.Argument(help="Account id.")],
    after_seq: Annotated[int, typer.Option(help="Only transfers after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 100,
) -> None:
    """Every transfer in or out of an account, oldest first."""
    cli = _cli()
    params = {"after_seq": after_seq, "limit": limit}
    cli.present(
        ctx, cli.call(ctx, "GET", f"/accounts/{account_id}/transfers", params=params), TRANSFER_COLUMNS
    )


def _move(ctx: typer.Context, path: str, amount: str, reason: str) -> None:
    cli = _cli()
    data = cli.call(ctx, "POST", path, body={"amount_fen": parse_yuan(amount), "reason": reason})
    if cli.state(ctx).as_json:
        output.show(data, [], as_json=True)
    else:
        text = t("cli.money-moved", _lang(ctx), id=data["id"], amount=fen(data["amount"]))
        output.console.print(text, highlight=False, markup=False)


@money_app.command("top-up")
def top_up(
    ctx: typer.Context,
    org_id: Annotated[int, typer.Argument(help="Organisation id.")],
    amount: Amount,
    reason: Reason,
) -> None:
    """Record money received from an organisation (regulator); repays its arrears first."""
    _move(ctx, f"/orgs/{org_id}/top-ups", amount, reason)


@money_app.command("refund")
def refund(
    ctx: typer.Context,
    org_id: Annotated[int, typer.Argument(help="Organisation id.")],
    amount: Amount,
    reason: Reason,
) -> None:
    """Return money from an organisation's wallet to it (regulator)."""
    _move(ctx, f"/orgs/{org_id}/refunds", amount, reason)


@money_app.command("adjust")
def adjust(
    ctx: typer.Context,
    org_id: Annotated[int, typer.Argument(help="Organisation id.")],
    amount: Amount,
    reason: Reason,
) -> None:
    """Correct a wallet up (positive) or down (negative, e.g. -- -12.50) (regulator)."""
    _move(ctx, f"/orgs/{org_id}/adjustments", amount, reason)


@money_app.command("payout")
def payout(
    ctx: typer.Context,
    provider_id: Annotated[int, typer.Argument(help="Provider id.")],
    amount: Amount,
    reason: Reason,
) -> None:
    """Record money paid to a provider from what it is owed (regulator)."""
    _move(ctx, f"/providers/{provider_id}/payouts", amount, reason)


@money_app.command("credit-limit")
def credit_limit(
    ctx: typer.Context, org_id: Annotated[int, typer.Argument(help="Organisation id.")], amount: Amount
) -> None:
    """How far an organisation's wallet may go below zero (regulator; 0 = prepaid only)."""
    cli = _cli()
    fen_value = parse_yuan(amount)
    data = cli.call(ctx, "PUT", f"/orgs/{org_id}/credit-limit", body={"credit_limit_fen": fen_value})
    cli.present(ctx, data, ACCOUNT_COLUMNS)


FormatOpt = Annotated[str, typer.Option("--format", help="json, csv, xlsx, html or pdf.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", metavar="FILE", help="Write the document to FILE (default: print it).")
]


def _document(ctx: typer.Context, path: str, fmt: str, out: Path | None) -> None:
    cli = _cli()
    with cli.state(ctx).client() as client:
        data: bytes = client.request("GET", path, params={"format": fmt}, raw=True)
    if out is not None:
        out.write_bytes(data)
        output.err_console.print(t("cli.saved", _lang(ctx), path=str(out)), highlight=False, markup=False)
    elif fmt in ("xlsx", "pdf"):
        raise typer.BadParameter(t("cli.binary-needs-out", _lang(ctx), format=fmt))
    else:
        sys.stdout.write(data.decode("utf-8-sig"))


@money_app.command("invoice")
def invoice(
    ctx: typer.Context,
    org_id: Annotated[int, typer.Argument(help="Organisation id.")],
    month: Annotated[str, typer.Argument(metavar="YYYY-MM", help="The month (Asia/Shanghai).")],
    fmt: FormatOpt = "json",
    out: OutOpt = None,
) -> None:
    """An organisation's invoice for a month: a line per job, pool and price, and the totals."""
    _document(ctx, f"/orgs/{org_id}/invoices/{month}", fmt, out)


@money_app.command("statement")
def statement(
    ctx: typer.Context,
    provider_id: Annotated[int, typer.Argument(help="Provider id.")],
    month: Annotated[str, typer.Argument(metavar="YYYY-MM", help="The month (Asia/Shanghai).")],
    fmt: FormatOpt = "json",
    out: OutOpt = None,
) -> None:
    """A provider's statement for a month: earnings per job, the platform fee, payouts, what is owed."""
    _document(ctx, f"/providers/{provider_id}/statements/{month}", fmt, out)
