"""`suanwang vouchers`: compute vouchers (算力券) through the REST API — presets, programmes and their
budgets, applications and reviews, grants, redemptions and clawbacks, quarterly claims, flags and the
audit trail.

Amounts are given in yuan (exact: 12.34 = 1234 fen) and shown in yuan in tables; `--json` prints the API's
fen. Ratios are given as percentages (30%, 30 or 0.3) and sent as basis points, computed exactly.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import tomllib
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from suanwang.cli.client import ApiError
from suanwang.cli.output import Column, fen, joined, shanghai_time
from suanwang.i18n import normalize_lang, t
from suanwang.units import format_fen, parse_yuan
from suanwang.vouchers.models import ApplicationStatus, FlagKind
from suanwang.vouchers.rules import Cadence, Stacking

vouchers_app = typer.Typer(
    help="Compute vouchers (算力券): programmes, applications, reviews, grants, redemptions, clawbacks, "
    "flags and the audit trail.",
    no_args_is_help=True,
)
presets_app = typer.Typer(invoke_without_command=True)
programmes_app = typer.Typer(
    help="Voucher programmes: their rules, periods and budgets (created by the regulator).",
    no_args_is_help=True,
)
applications_app = typer.Typer(help="Applications for a grant and their reviews.", no_args_is_help=True)
grants_app = typer.Typer(help="Grants and their balances.", no_args_is_help=True)
redemptions_app = typer.Typer(
    help="Redemptions: the voucher's decision on each charge, with what was not subsidised and why.",
    no_args_is_help=True,
)
flags_app = typer.Typer(
    help="Flags on organisations: suspended redemptions and credit-default records (regulator).",
    no_args_is_help=True,
)
vouchers_app.add_typer(presets_app, name="presets")
vouchers_app.add_typer(programmes_app, name="programmes")
vouchers_app.add_typer(applications_app, name="applications")
vouchers_app.add_typer(grants_app, name="grants")
vouchers_app.add_typer(redemptions_app, name="redemptions")
vouchers_app.add_typer(flags_app, name="flags")

PREFIX = "/vouchers"


def _cli() -> ModuleType:
    """cli/main.py (imported late: it imports this module to add the command group)."""
    from suanwang.cli import main

    return main


def _lang(ctx: typer.Context) -> str:
    return str(getattr(ctx.find_root().obj, "lang", "en"))


def _msg(ctx: typer.Context, key: str, **params: Any) -> str:
    return t(key, _lang(ctx), **params)


# --- parsing -------------------------------------------------------------------------------------

_RATIO = re.compile(r"\d+(?:\.\d+)?")


def parse_ratio(text: str) -> int | None:
    """'30%' or '12.5 %' (a percentage, with its sign) or '0.3' (a fraction, at most 1) → basis points,
    exactly (Decimal, never float). A bare number above 1 is refused rather than guessed at: is '30'
    30 % or 3000 %? None if it is not such a ratio, is not a whole number of basis points, or is not
    above 0 and at most 100 %."""
    value = text.strip().replace(" ", "")
    percent = value.endswith(("%", "％"))
    if percent:
        value = value[:-1]
    if not _RATIO.fullmatch(value):
        return None
    number = Decimal(value)
    if not percent and number > 1:
        return None
    bp = number * (100 if percent else 10_000)
    if bp != bp.to_integral_value() or not 0 < bp <= 10_000:
        return None
    return int(bp)


def _ratio(ctx: typer.Context, value: str | None) -> str | None:
    if value is not None and parse_ratio(value) is None:
        raise typer.BadParameter(_msg(ctx, "cli.voucher-bad-ratio", value=value))
    return value


def _yuan(ctx: typer.Context, value: str | None) -> str | None:
    if value is not None and (parse_yuan(value) is None or value.strip().startswith("-")):
        raise typer.BadParameter(_msg(ctx, "cli.voucher-bad-amount", value=value))
    return value


def _fen_of(value: str | None) -> int | None:
    return None if value is None else parse_yuan(value)


def _day(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


def attachment(path: Path) -> dict[str, Any]:
    """What the API keeps of an attachment: its name, size, SHA-256 and media type (never its content)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    found = {"name": path.name, "size_bytes": size, "sha256": digest.hexdigest()}
    media_type, _ = mimetypes.guess_type(path.name)
    return found | ({"media_type": media_type} if media_type else {})


def _jsonable(value: Any) -> Any:
    """TOML's dates and times as the ISO strings the API takes."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _programme_file(ctx: typer.Context, path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except OSError as exc:
        error = exc.strerror or str(exc)
        raise typer.BadParameter(
            _msg(ctx, "cli.voucher-bad-programme-file", path=str(path), error=error)
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise typer.BadParameter(
            _msg(ctx, "cli.voucher-bad-programme-file", path=str(path), error=str(exc).splitlines()[0])
        ) from None
    if not isinstance(data, dict):
        raise typer.BadParameter(
            _msg(ctx, "cli.voucher-bad-programme-file", path=str(path), error=type(data).__name__)
        )
    return dict(_jsonable(data))


# --- showing -------------------------------------------------------------------------------------


def percent(value: Any) -> str:
    """Basis points as a percentage: 5000 → '50%', 1250 → '12.5%'."""
    if value is None:
        return ""
    return f"{Decimal(int(value)) / 100:f}%"


def maybe_fen(value: Any) -> str:
    return "" if value is None else format_fen(int(value))


def _json(value: Any) -> str:
    return "" if value in (None, {}, []) else json.dumps(value, ensure_ascii=False)


def _refusals(value: Any) -> str:
    return "; ".join(f"{r.get('reason')} {format_fen(int(r.get('amount_fen', 0)))}" for r in value or [])


def _tiers(value: Any) -> str:
    return ", ".join(f"{tier.get('name')} {percent(tier.get('ratio_bp'))}" for tier in value or [])


PRESET_COLUMNS: list[Column] = [
    ("preset", "preset", None),
    ("name", "name", None),
    ("ratio_bp", "ratio", percent),
    ("tiers", "tiers", _tiers),
    ("cap_enterprise_year_fen", "cap/year", maybe_fen),
    ("cap_order_fen", "cap/order", maybe_fen),
    ("budget_fen", "budget", maybe_fen),
    ("required", "required", joined),
]
PRESET_DETAIL: list[Column] = [
    *PRESET_COLUMNS,
    ("name_en", "name (en)", None),
    ("issuer", "issuer", None),
    ("min_claim_fen", "min claim", maybe_fen),
    ("starts_on", "from", None),
    ("ends_on", "to", None),
    ("grant_validity_days", "valid days", None),
    ("cadence", "cadence", None),
    ("stacking", "stacking", None),
    ("stack_order", "stack order", None),
    ("tenant_rules", "tenants", _json),
    ("provider_rules", "providers", _json),
    ("excluded_kinds", "excluded", joined),
    ("notes", "notes", None),
    ("source", "source", None),
]
PROGRAMME_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("code", "code", None),
    ("name", "name", None),
    ("starts_on", "from", None),
    ("ends_on", "to", None),
    ("ratio_bp", "ratio", percent),
    ("tiers", "tiers", _tiers),
    ("budget_fen", "budget", fen),
    ("cap_enterprise_year_fen", "cap/year", maybe_fen),
    ("cap_order_fen", "cap/order", maybe_fen),
    ("min_claim_fen", "min claim", fen),
    ("cadence", "cadence", None),
    ("stacking", "stacking", None),
]
PROGRAMME_DETAIL: list[Column] = [
    *PROGRAMME_COLUMNS,
    ("issuer", "issuer", None),
    ("preset", "preset", None),
    ("tenant_rules", "tenants", _json),
    ("provider_rules", "providers", _json),
    ("excluded_kinds", "excluded", joined),
    ("grant_validity_days", "valid days", None),
    ("created_at", "created", shanghai_time),
]
BUDGET_COLUMNS: list[Column] = [
    ("programme_id", "programme", None),
    ("budget_fen", "budget", fen),
    ("granted_fen", "granted", fen),
    ("unallocated_fen", "unallocated", fen),
    ("redeemed_fen", "redeemed", fen),
    ("claimed_fen", "claimed (pending)", fen),
    ("clawed_back_fen", "clawed back", fen),
]
APPLICATION_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("programme_id", "programme", None),
    ("org_id", "org", None),
    ("requested_fen", "requested", fen),
    ("status", "status", None),
    ("approved_fen", "approved", maybe_fen),
    ("grant_id", "grant", None),
    ("submitted_at", "submitted", shanghai_time),
    ("purpose", "purpose", None),
    ("review_reason", "review", None),
]
APPLICATION_DETAIL: list[Column] = [
    *APPLICATION_COLUMNS,
    ("attachments", "attachments", _json),
    ("reviewed_at", "reviewed", shanghai_time),
]
GRANT_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("programme_id", "programme", None),
    ("org_id", "org", None),
    ("amount_fen", "granted", fen),
    ("redeemed_fen", "redeemed", fen),
    ("claimed_fen", "claimed", fen),
    ("available_fen", "available", fen),
    ("valid_until", "valid until", shanghai_time),
    ("status", "status", None),
]
REDEMPTION_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("programme_id", "programme", None),
    ("org_id", "org", None),
    ("job_id", "job", None),
    ("part", "part", None),
    ("at", "at", shanghai_time),
    ("charge_fen", "charge", fen),
    ("subsidy_fen", "subsidy", fen),
    ("tier", "tier", None),
    ("status", "status", None),
    ("clawed_back_fen", "clawed back", fen),
    ("refusals", "not subsidised", _refusals),
]
FLAG_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("org_id", "org", None),
    ("kind", "kind", None),
    ("effective_on", "on", None),
    ("reason", "reason", None),
    ("lifted_at", "lifted", shanghai_time),
    ("lift_reason", "lift reason", None),
]
AUDIT_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("at", "at", shanghai_time),
    ("actor_id", "actor", None),
    ("action", "action", None),
    ("programme_id", "programme", None),
    ("org_id", "org", None),
    ("grant_id", "grant", None),
    ("job_id", "job", None),
    ("amount_fen", "amount", maybe_fen),
    ("reason", "reason", None),
]


def _present(ctx: typer.Context, data: Any, columns: list[Column], rows: Any = None) -> None:
    """JSON as the API sent it (fen), or a table of `rows` (default: the data itself)."""
    cli = _cli()
    cli.present(ctx, data if cli.state(ctx).as_json or rows is None else rows, columns)


def _post(ctx: typer.Context, path: str, body: Any = None, idempotency_key: str | None = None) -> Any:
    # Without --idempotency-key the client sends a fresh key, the same on each of its own retries.
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with _cli().state(ctx).client() as client:
        return client.request("POST", PREFIX + path, json=body, headers=headers)


def _get(ctx: typer.Context, path: str, params: dict[str, Any] | None = None) -> Any:
    return _cli().call(ctx, "GET", PREFIX + path, params=params)


# --- options -------------------------------------------------------------------------------------

IdArg = Annotated[int, typer.Argument(metavar="ID", help="The id.")]
Limit = Annotated[int, typer.Option(help="Rows per page.")]
Offset = Annotated[int, typer.Option(help="Rows to skip.")]
Sort = Annotated[str | None, typer.Option(help="Sort field; '-' in front for descending.")]
ProgrammeFilter = Annotated[int | None, typer.Option("--programme", help="Only this programme.")]
OrgFilter = Annotated[int | None, typer.Option("--org", help="Only this organisation.")]
YuanOpt = Annotated[str | None, typer.Option(callback=_yuan, metavar="YUAN")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit trail with your name).")]
IdempotencyOpt = Annotated[
    str | None,
    typer.Option(
        help="Idempotency-Key header: repeating the command with the same key never submits twice "
        "(default: a new key for each run)."
    ),
]


def _paging(limit: int, offset: int, sort: str | None) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "sort": sort}


# --- presets -------------------------------------------------------------------------------------


def _preset_row(preset: dict[str, Any]) -> dict[str, Any]:
    return {"preset": preset["name"], **preset["values"], "required": preset["required"]} | (
        {"notes": preset["notes"]} if preset.get("notes") else {}
    )


@presets_app.callback()
def presets(ctx: typer.Context) -> None:
    """Real programmes' parameters shipped as data, with their sources and what each leaves open."""
    if ctx.invoked_subcommand is None:
        data = _get(ctx, "/presets")
        _present(ctx, data, PRESET_COLUMNS, [_preset_row(p) for p in data])


@presets_app.command("show")
def presets_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Preset name.")]) -> None:
    """One preset: every value, its source and notes."""
    data = _get(ctx, f"/presets/{name}")
    row = _preset_row(data)
    # What the preset leaves out is shown by `required` (or takes the API's default): no empty rows.
    columns = [c for c in PRESET_DETAIL if c[0] == "required" or row.get(c[0]) not in (None, "", [], {})]
    _present(ctx, data, columns, row)


# --- programmes ----------------------------------------------------------------------------------

# The option that gives each field the API may say is missing.
FIELD_OPTIONS = {
    "code": "--code",
    "name": "--name",
    "issuer": "--issuer",
    "starts_on": "--starts-on",
    "ends_on": "--ends-on",
    "budget_fen": "--budget",
    "ratio_bp": "--ratio",
    "cap_enterprise_year_fen": "--cap-enterprise-year",
    "cap_order_fen": "--cap-order",
    "min_claim_fen": "--min-claim",
    "grant_validity_days": "--validity-days",
    "tenant_rules.localities": "--locality",
    "provider_rules.designated": "--designated-provider",
}


@programmes_app.command("create")
def programmes_create(
    ctx: typer.Context,
    preset: Annotated[
        str | None, typer.Option(help="Start from this preset (see `vouchers presets`).")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            metavar="FILE",
            help="A TOML or JSON file with the programme as the API takes it (fen, basis points); "
            "options given as well override it.",
        ),
    ] = None,
    code: Annotated[str | None, typer.Option(help="Unique code: lower-case letters, digits and '-'.")] = None,
    name: Annotated[str | None, typer.Option(help="Name (Chinese or the official name).")] = None,
    name_en: Annotated[str | None, typer.Option(help="English name.")] = None,
    issuer: Annotated[str | None, typer.Option(help="The issuing authority.")] = None,
    starts_on: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD.")
    ] = None,
    ends_on: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day (inclusive), YYYY-MM-DD.")
    ] = None,
    budget: Annotated[
        str | None, typer.Option(callback=_yuan, metavar="YUAN", help="Budget in yuan.")
    ] = None,
    ratio: Annotated[
        str | None,
        typer.Option(
            callback=_ratio,
            metavar="PERCENT",
            help="Subsidy ratio: a percentage (30%) or a fraction at most 1 (0.3); exact to 0.01 %.",
        ),
    ] = None,
    cap_enterprise_year: Annotated[
        str | None,
        typer.Option(callback=_yuan, metavar="YUAN", help="Most one organisation gets in a year, in yuan."),
    ] = None,
    cap_order: Annotated[
        str | None, typer.Option(callback=_yuan, metavar="YUAN", help="Most one order gets, in yuan.")
    ] = None,
    min_claim: Annotated[
        str | None,
        typer.Option(callback=_yuan, metavar="YUAN", help="Least amount one may apply for, in yuan."),
    ] = None,
    validity_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Days a grant stays valid from its approval (default: to the programme's end)."
        ),
    ] = None,
    stacking: Annotated[
        Stacking | None, typer.Option(help="none: no other programme on the same spend; ordered: stacks.")
    ] = None,
    stack_order: Annotated[
        int | None, typer.Option(min=0, help="Order among stacking programmes (lower first).")
    ] = None,
    cadence: Annotated[
        Cadence | None,
        typer.Option(
            help="per_job: the provider is paid at each job; quarterly: claims settled per quarter."
        ),
    ] = None,
    locality: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CODE", help="Only tenants of this GB/T 2260 division-code prefix (repeatable)."
        ),
    ] = None,
    designated_provider: Annotated[
        list[str] | None,
        typer.Option(metavar="CODE", help="Only this provider, by code (repeatable)."),
    ] = None,
    local_only: Annotated[
        bool | None,
        typer.Option("--local-only/--any-provider", help="Only providers local to this platform's region."),
    ] = None,
    idempotency_key: IdempotencyOpt = None,
) -> None:
    """Create a programme (regulator), from a preset or from scratch; its budget is funded in the ledger."""
    cli = _cli()
    body = _programme_file(ctx, file) if file is not None else {}
    body |= cli.body_of(
        preset=preset,
        code=code,
        name=name,
        name_en=name_en,
        issuer=issuer,
        starts_on=_day(starts_on),
        ends_on=_day(ends_on),
        budget_fen=_fen_of(budget),
        ratio_bp=None if ratio is None else parse_ratio(ratio),
        cap_enterprise_year_fen=_fen_of(cap_enterprise_year),
        cap_order_fen=_fen_of(cap_order),
        min_claim_fen=_fen_of(min_claim),
        grant_validity_days=validity_days,
        stacking=stacking,
        stack_order=stack_order,
        cadence=cadence,
    )
    if locality:
        body["tenant_rules"] = dict(body.get("tenant_rules") or {}) | {"localities": locality}
    provider_rules = cli.body_of(designated=designated_provider or None, local_only=local_only)
    if provider_rules:
        body["provider_rules"] = dict(body.get("provider_rules") or {}) | provider_rules
    try:
        data = _post(ctx, "/programmes", body, idempotency_key)
    except ApiError as exc:
        if exc.code != "voucher.missing-fields":
            raise
        words = set(re.findall(r"[a-z_]+(?:\.[a-z_]+)*", exc.detail))
        options = [option for field, option in FIELD_OPTIONS.items() if field in words]
        if not options:
            raise
        hint = _msg(ctx, "cli.voucher-give-options", options=", ".join(options))
        space = "" if normalize_lang(_lang(ctx)) == "zh" else " "
        raise ApiError(exc.status, exc.code, f"{exc.detail}{space}{hint}") from None
    _present(ctx, data, PROGRAMME_DETAIL)


@programmes_app.command("list")
def programmes_list(ctx: typer.Context, limit: Limit = 50, offset: Offset = 0, sort: Sort = None) -> None:
    """Every programme (tenants too: what they can apply for)."""
    _present(ctx, _get(ctx, "/programmes", _paging(limit, offset, sort)), PROGRAMME_COLUMNS)


@programmes_app.command("show")
def programmes_show(ctx: typer.Context, programme_id: IdArg) -> None:
    """One programme with all its rules."""
    _present(ctx, _get(ctx, f"/programmes/{programme_id}"), PROGRAMME_DETAIL)


@programmes_app.command("budget")
def programmes_budget(ctx: typer.Context, programme_id: IdArg) -> None:
    """Where a programme's money stands: granted, unallocated, redeemed, claimed, clawed back (regulator)."""
    _present(ctx, _get(ctx, f"/programmes/{programme_id}/budget"), BUDGET_COLUMNS)


@programmes_app.command("settle-claims")
def programmes_settle_claims(
    ctx: typer.Context,
    programme_id: IdArg,
    quarter: Annotated[str, typer.Argument(metavar="YYYYQN", help="An ended quarter, e.g. 2026Q3.")],
) -> None:
    """Pay providers a quarterly programme's claims of an ended quarter (regulator); never twice."""
    data = _post(ctx, f"/programmes/{programme_id}/claims/{quarter}/settle")
    _present(
        ctx,
        data,
        [
            ("programme_id", "programme", None),
            ("quarter", "quarter", None),
            ("claims", "claims", None),
            ("amount_fen", "amount", fen),
        ],
    )


# --- applications and reviews --------------------------------------------------------------------


@vouchers_app.command("apply")
def apply(
    ctx: typer.Context,
    programme: Annotated[int, typer.Option("--programme", help="The programme's id.")],
    amount: Annotated[str, typer.Option(callback=_yuan, metavar="YUAN", help="Amount asked for, in yuan.")],
    purpose: Annotated[str, typer.Option(help="What the compute is for.")],
    attachment_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--attachment",
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="PATH",
            help="A supporting file (repeatable): only its name, size and SHA-256 are sent.",
        ),
    ] = None,
    org: Annotated[
        int | None, typer.Option("--org", help="The organisation it is for (regulator only).")
    ] = None,
    idempotency_key: IdempotencyOpt = None,
) -> None:
    """Apply for a grant (the tenant's admin, or the regulator on its behalf)."""
    files = []
    for path in attachment_paths or []:
        try:
            files.append(attachment(path))
        except OSError as exc:
            error = exc.strerror or str(exc)
            raise typer.BadParameter(_msg(ctx, "cli.voucher-bad-file", path=str(path), error=error)) from None
    body = _cli().body_of(
        programme_id=programme,
        requested_fen=parse_yuan(amount),
        purpose=purpose,
        attachments=files,
        org_id=org,
    )
    _present(ctx, _post(ctx, "/applications", body, idempotency_key), APPLICATION_DETAIL)


@applications_app.command("list")
def applications_list(
    ctx: typer.Context,
    programme: ProgrammeFilter = None,
    status: Annotated[ApplicationStatus | None, typer.Option(help="Only applications in this state.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
) -> None:
    """Applications you may see (tenants: their organisation's; the regulator: all)."""
    params = {"programme_id": programme, "status": status} | _paging(limit, offset, sort)
    _present(ctx, _get(ctx, "/applications", params), APPLICATION_COLUMNS)


@applications_app.command("show")
def applications_show(ctx: typer.Context, application_id: IdArg) -> None:
    """One application, with its attachments and review."""
    _present(ctx, _get(ctx, f"/applications/{application_id}"), APPLICATION_DETAIL)


@vouchers_app.command("review")
def review(
    ctx: typer.Context,
    application_id: IdArg,
    approve: Annotated[
        bool, typer.Option("--approve/--reject", help="Approve (a grant funded from the budget) or reject.")
    ],
    reason: Reason,
    amount: Annotated[
        str | None,
        typer.Option(
            callback=_yuan, metavar="YUAN", help="Approve: the amount granted, in yuan (default: as asked)."
        ),
    ] = None,
) -> None:
    """Decide an application (regulator): --approve [--amount YUAN] or --reject, always with a reason."""
    body = _cli().body_of(
        decision="approve" if approve else "reject", amount_fen=_fen_of(amount), reason=reason
    )
    _present(ctx, _post(ctx, f"/applications/{application_id}/review", body), APPLICATION_DETAIL)


# --- grants, redemptions, clawbacks --------------------------------------------------------------


@grants_app.command("list")
def grants_list(
    ctx: typer.Context,
    programme: ProgrammeFilter = None,
    org: OrgFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
) -> None:
    """Grants you may see, with what is redeemed, claimed and still available."""
    params = {"programme_id": programme, "org_id": org} | _paging(limit, offset, sort)
    _present(ctx, _get(ctx, "/grants", params), GRANT_COLUMNS)


@grants_app.command("show")
def grants_show(ctx: typer.Context, grant_id: IdArg) -> None:
    """One grant and its balances."""
    _present(ctx, _get(ctx, f"/grants/{grant_id}"), GRANT_COLUMNS)


@grants_app.command("expire")
def grants_expire(ctx: typer.Context) -> None:
    """Expire every grant past its validity now; what is left goes back to the budget (regulator)."""
    data = _post(ctx, "/grants/expire")
    _present(ctx, data, [("grants", "grants expired", None), ("returned_fen", "returned", fen)])


@redemptions_app.command("list")
def redemptions_list(
    ctx: typer.Context,
    programme: ProgrammeFilter = None,
    org: OrgFilter = None,
    job: Annotated[int | None, typer.Option("--job", help="Only this job.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
) -> None:
    """Every voucher decision on a charge, with the reasons for what was not subsidised."""
    params = {"programme_id": programme, "org_id": org, "job_id": job} | _paging(limit, offset, sort)
    _present(ctx, _get(ctx, "/redemptions", params), REDEMPTION_COLUMNS)


@vouchers_app.command("clawback")
def clawback(
    ctx: typer.Context,
    redemption_id: Annotated[int, typer.Argument(metavar="REDEMPTION_ID", help="The redemption's id.")],
    reason: Reason,
    amount: Annotated[
        str | None,
        typer.Option(
            callback=_yuan,
            metavar="YUAN",
            help="How much to take back, in yuan (default: all not yet clawed back).",
        ),
    ] = None,
    idempotency_key: IdempotencyOpt = None,
) -> None:
    """Take a subsidy back (regulator): the tenant repays it to the programme's budget."""
    body = _cli().body_of(amount_fen=_fen_of(amount), reason=reason)
    data = _post(ctx, f"/redemptions/{redemption_id}/clawbacks", body, idempotency_key)
    _present(ctx, data, REDEMPTION_COLUMNS)


# --- flags and audit -----------------------------------------------------------------------------


@flags_app.command("add")
def flags_add(
    ctx: typer.Context,
    org: Annotated[int, typer.Option("--org", help="The organisation.")],
    kind: Annotated[
        FlagKind, typer.Option(help="suspended: no redemptions until lifted; credit_default: a dated record.")
    ],
    on: Annotated[
        datetime,
        typer.Option("--on", formats=["%Y-%m-%d"], help="From this day, YYYY-MM-DD (not later than today)."),
    ],
    reason: Reason,
    idempotency_key: IdempotencyOpt = None,
) -> None:
    """Suspend an organisation's redemptions, or record a dated credit default (regulator)."""
    body = {"org_id": org, "kind": kind, "effective_on": _day(on), "reason": reason}
    _present(ctx, _post(ctx, "/flags", body, idempotency_key), FLAG_COLUMNS)


@flags_app.command("list")
def flags_list(
    ctx: typer.Context,
    org: OrgFilter = None,
    include_lifted: Annotated[bool, typer.Option("--all", help="Also list lifted flags.")] = False,
) -> None:
    """Flags in force (regulator)."""
    params = {"org_id": org, "include_lifted": include_lifted or None}
    _present(ctx, _get(ctx, "/flags", params), FLAG_COLUMNS)


@flags_app.command("lift")
def flags_lift(ctx: typer.Context, flag_id: IdArg, reason: Reason) -> None:
    """Lift a flag (regulator)."""
    _present(ctx, _post(ctx, f"/flags/{flag_id}/lift", {"reason": reason}), FLAG_COLUMNS)


@vouchers_app.command("audit")
def audit(
    ctx: typer.Context,
    programme: ProgrammeFilter = None,
    org: OrgFilter = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. application.approved or clawback.")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
) -> None:
    """Every voucher decision: who, when, what, why (regulator)."""
    params = {"programme_id": programme, "org_id": org, "action": action} | _paging(limit, offset, sort)
    _present(ctx, _get(ctx, "/audit", params), AUDIT_COLUMNS)
