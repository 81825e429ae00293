"""`suanwang registry`: the enterprise registry (企业梯度培育库) through the REST API — the industry chain's
segments, enterprises and their tiers, investment projects, monthly output and its statistics, cultivation
candidates, and spreadsheet import/export.

Money is typed in yuan (exact: 12.34 = 1234 fen). Lists of single enterprises or projects show exact yuan;
statistics show aggregates in 亿元 (100 million yuan) rounded half-up to two decimals as the city's report
prints them ("39.52 亿元"), with the exact yuan in the headline; `--unit wan|yuan` shows 万元 or exact yuan
instead, and `--json` prints the API's fen.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from suanwang.cli import output
from suanwang.cli.client import ApiError, Client
from suanwang.cli.output import Column, fen, joined, shanghai_time, yes_no
from suanwang.cli.vouchers import percent
from suanwang.i18n import normalize_lang, t
from suanwang.registry.datasets import TIER_NAMES
from suanwang.registry.models import ProjectStatus, Stage, Tier
from suanwang.registry.statistics import percent_text
from suanwang.units import format_fen, parse_yuan

registry_app = typer.Typer(
    help="The enterprise registry (企业梯度培育库): the industry chain, enterprises and their tiers, "
    "projects, output statistics, cultivation candidates, spreadsheet import and export.",
    no_args_is_help=True,
)

PREFIX = "/registry"
MONTH = re.compile(r"(\d{4})-(\d{2})")
MEDIA_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class Dataset(enum.StrEnum):
    ENTERPRISES = "enterprises"
    PROJECTS = "projects"
    OUTPUT = "output"


class Format(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


class Scope(enum.StrEnum):
    ABOVE_SIZE = "above_size"  # 规上 only: the report's figures
    ALL = "all"


class Unit(enum.StrEnum):
    """How aggregates are shown: 亿元 (the report's), 万元, or exact yuan."""

    YI = "yi"
    WAN = "wan"
    YUAN = "yuan"


# Minor units (fen or US cents) per shown unit, and the unit's name for CNY and USD.
UNIT_MINOR = {Unit.YI: 10**10, Unit.WAN: 10**6, Unit.YUAN: 100}
UNIT_NAMES = {Unit.YI: ("亿元", "亿美元"), Unit.WAN: ("万元", "万美元"), Unit.YUAN: ("元", "美元")}
CENT = Decimal("0.01")


def _cli() -> ModuleType:
    """cli/main.py (imported late: it imports this module to add the command group)."""
    from suanwang.cli import main

    return main


def _lang(ctx: typer.Context) -> str:
    return str(getattr(ctx.find_root().obj, "lang", "en"))


def _as_json(ctx: typer.Context) -> bool:
    return bool(_cli().state(ctx).as_json)


@contextmanager
def _client(ctx: typer.Context) -> Iterator[Client]:
    """One client for the requests of one command (in local mode each client starts the app)."""
    with _cli().state(ctx).client() as client:
        yield client


def _say(text: str) -> None:
    output.console.print(text, highlight=False, markup=False, soft_wrap=True)


def _fail(text: str) -> typer.Exit:
    """One line on stderr; the caller raises the Exit (code 2, as for every user error)."""
    output.err_console.print(f"error: {text}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


# --- parsing -------------------------------------------------------------------------------------


def parse_month(text: str) -> tuple[int, int] | None:
    """'2025-09' → (2025, 9); None unless it is YYYY-MM with a month 1-12 (the API checks the year)."""
    match = MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    return int(match[1]), int(match[2])


def _month(ctx: typer.Context, value: str) -> str:
    if parse_month(value) is None:
        raise typer.BadParameter(t("registry.bad-month-text", _lang(ctx), value=value))
    return value


def parse_amount(text: str) -> int | None:
    """Yuan with at most two decimals → fen, exactly; None for anything else, negatives included."""
    fen_value = parse_yuan(text)
    return None if fen_value is None or text.strip().startswith("-") else fen_value


def _yuan(ctx: typer.Context, value: str | None) -> str | None:
    if value is not None and parse_amount(value) is None:
        raise typer.BadParameter(t("cli.voucher-bad-amount", _lang(ctx), value=value))
    return value


def parse_mapping(pairs: list[str]) -> dict[str, str] | None:
    """['产值(万元)=output_fen', '备注='] → {file header: field} ('' ignores the column); None if a pair
    has no '=' or no header. The last '=' splits, so a header may contain one."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        header, equals, field = pair.rpartition("=")
        if not equals or not header.strip():
            return None
        mapping[header.strip()] = field.strip()
    return mapping


def format_of(path: Path, given: Format | None) -> Format | None:
    """The file's format: as given, else from its extension (.csv, .xlsx); None if neither says."""
    if given is not None:
        return given
    suffix = path.suffix.lower().lstrip(".")
    return Format(suffix) if suffix in {f.value for f in Format} else None


def _day(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


# --- showing -------------------------------------------------------------------------------------


def scaled(minor: int, unit: Unit) -> str:
    """Fen (or US cents) in the unit, rounded half-up to two decimals: 3_952_000_000_00 fen → '39.52' 亿."""
    value = (Decimal(minor) / UNIT_MINOR[unit]).quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{value:,.2f}"


def maybe_fen(value: Any) -> str:
    return "" if value is None else format_fen(int(value))


def _growth(text: Any) -> str:
    return "—" if text is None else str(text)


class Labels:
    """Names an official reads for the codes in statistics: segments from the taxonomy, stages and tiers
    in the CLI's language."""

    def __init__(self, lang: str, segments: list[dict[str, Any]]) -> None:
        self.lang = lang
        self.segments = {s["code"]: s["name_zh" if lang == "zh" else "name_en"] for s in segments}

    def segment(self, code: str) -> str:
        return self.segments.get(code) or self._other(code)

    def stage(self, code: str) -> str:
        if code in {s.value for s in Stage}:
            return t(f"cli.registry-stage.{code}", self.lang)
        return self._other(code)

    def tier(self, code: str) -> str:
        if code in {x.value for x in Tier}:
            return TIER_NAMES[Tier(code)][1 if self.lang == "zh" else 0]
        return self._other(code)

    def status(self, code: str) -> str:
        return t(f"cli.registry-status.{code}", self.lang)

    def _other(self, code: str) -> str:
        return t("cli.registry-unclassified", self.lang) if code in ("unclassified", "none") else code


def _labels(ctx: typer.Context, client: Client) -> Labels:
    segments = client.request("GET", PREFIX + "/segments", params={"include_retired": True})
    return Labels(_lang(ctx), segments)


SEGMENT_COLUMNS: list[Column] = [
    ("code", "code", None),
    ("stage", "stage", None),
    ("parent_code", "parent", None),
    ("name_zh", "name", None),
    ("name_en", "name (en)", None),
    ("position", "position", None),
    ("retired_at", "retired", lambda v: "✓" if v else ""),
]
ENTERPRISE_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("credit_code", "credit code", None),
    ("name", "name", None),
    ("tier", "tier", None),
    ("tier_granted_on", "since", None),
    ("segments", "segments", joined),
    ("stage", "stage", None),
    ("district", "district", None),
    ("park", "park", None),
    ("above_size", "规上", yes_no),
]
ENTERPRISE_DETAIL: list[Column] = [
    *ENTERPRISE_COLUMNS,
    ("name_en", "name (en)", None),
    ("org_id", "tenant org", None),
    ("locality_code", "locality", None),
    ("founded_on", "founded", None),
    ("employees", "employees", None),
    ("rd_intensity_bp", "R&D intensity", percent),
    ("patents", "invention patents", None),
    ("contact_name", "contact", None),
    ("contact_phone", "phone", None),
    ("contact_email", "email", None),
    ("created_at", "created", shanghai_time),
    ("updated_at", "updated", shanghai_time),
    ("retired_at", "retired", shanghai_time),
]
TIER_COLUMNS: list[Column] = [
    ("tier", "tier", None),
    ("granted_on", "granted", None),
    ("revoked_on", "revoked", None),
]
PROJECT_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("name", "name", None),
    ("enterprise_id", "enterprise", None),
    ("segment", "segment", None),
    ("investment_fen", "investment", fen),
    ("foreign_usd_cents", "foreign (USD cents)", lambda v: "" if v is None else f"{int(v):,}"),
    ("signed_on", "signed", None),
    ("status", "status", None),
    ("construction_on", "construction", None),
    ("production_on", "production", None),
    ("chain_leader", "chain leader", None),
]
OUTPUT_COLUMNS: list[Column] = [
    ("year", "year", None),
    ("month", "month", None),
    ("output_fen", "output", fen),
    ("revenue_fen", "revenue", maybe_fen),
    ("above_size", "规上", yes_no),
]


def _present(ctx: typer.Context, data: Any, columns: list[Column], title: str | None = None) -> None:
    _cli().present(ctx, data, columns, title)


def _get(ctx: typer.Context, path: str, params: dict[str, Any] | None = None) -> Any:
    return _cli().call(ctx, "GET", PREFIX + path, params=params)


# --- options -------------------------------------------------------------------------------------

IdArg = Annotated[int, typer.Argument(metavar="ID", help="The enterprise's id.")]
Limit = Annotated[int, typer.Option(help="Rows per page.")]
Offset = Annotated[int, typer.Option(help="Rows to skip.")]
Sort = Annotated[str | None, typer.Option(help="Sort field; '-' in front for descending.")]
Retired = Annotated[bool, typer.Option("--include-retired", help="Also list retired entries.")]
DateOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Date, YYYY-MM-DD.")]
SegmentFilter = Annotated[
    str | None, typer.Option(help="Only this segment code (its sub-segments included).")
]
YearOpt = Annotated[int, typer.Option(help="The year.")]
ScopeOpt = Annotated[
    Scope, typer.Option(help="above_size: only 规上 enterprises (the report's figures); all: every record.")
]
UnitOpt = Annotated[
    Unit, typer.Option(help="Show amounts in yi (亿元, as the report does), wan (万元) or exact yuan.")
]


# --- the chain -----------------------------------------------------------------------------------


@registry_app.command("segments")
def segments(ctx: typer.Context, include_retired: Retired = False) -> None:
    """The industry chain: stages, segments and sub-segments (edit them through the API, regulator)."""
    params = {"include_retired": include_retired or None}
    _present(ctx, _get(ctx, "/segments", params), SEGMENT_COLUMNS)


@registry_app.command("chain-map")
def chain_map(ctx: typer.Context) -> None:
    """Registered enterprises per top-level segment and tier (the industry chain map)."""
    with _client(ctx) as client:
        data = client.request("GET", PREFIX + "/statistics/chain-map")
        labels = _labels(ctx, client)
    if _as_json(ctx):
        _present(ctx, data, [])
        return
    rows = [
        {"label": labels.segment(row["segment"]), "stage": labels.stage(str(row["stage"]))}
        | {"enterprises": row["enterprises"], "above_size": row["above_size"]}
        | {f"tier:{tier}": row["counts"][tier] or "" for tier in data["tiers"]}
        for row in data["segments"]
    ]
    columns: list[Column] = [
        ("label", "segment", None),
        ("stage", "stage", None),
        ("enterprises", "enterprises", None),
        ("above_size", "规上", None),
        *[(f"tier:{tier}", labels.tier(tier), None) for tier in data["tiers"]],
    ]
    output.show(rows, columns, as_json=False)


# --- enterprises ---------------------------------------------------------------------------------


@registry_app.command("enterprises")
def enterprises(
    ctx: typer.Context,
    segment: SegmentFilter = None,
    stage: Annotated[Stage | None, typer.Option(help="Only this stage of the chain.")] = None,
    tier: Annotated[Tier | None, typer.Option(help="Only enterprises on this tier.")] = None,
    untiered: Annotated[bool, typer.Option("--untiered", help="Only enterprises with no tier.")] = False,
    district: Annotated[str | None, typer.Option(help="Only this town or sub-district (镇街道).")] = None,
    park: Annotated[str | None, typer.Option(help="Only this industrial park (园区).")] = None,
    above_size: Annotated[
        bool | None,
        typer.Option("--above-size/--below-size", help="Only 规上 enterprises / only the others."),
    ] = None,
    q: Annotated[str | None, typer.Option(help="Part of a name, or a credit code.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """Search the registry (regulator; a tenant sees its own record)."""
    params = {
        "segment": segment,
        "stage": stage,
        "tier": tier,
        "untiered": untiered or None,
        "district": district,
        "park": park,
        "above_size": above_size,
        "q": q,
        "limit": limit,
        "offset": offset,
        "sort": sort,
        "include_retired": include_retired or None,
    }
    _present(ctx, _get(ctx, "/enterprises", params), ENTERPRISE_COLUMNS)


@registry_app.command("show")
def show(ctx: typer.Context, enterprise_id: IdArg) -> None:
    """An enterprise's profile: record, tiers with dates, projects, recent output, platform use."""
    data = _get(ctx, f"/enterprises/{enterprise_id}")
    if _as_json(ctx):
        _present(ctx, data, [])
        return
    output.show(data["enterprise"], ENTERPRISE_DETAIL, as_json=False)
    sections: list[tuple[str, Any, list[Column]]] = [
        ("tiers", data["tiers"], TIER_COLUMNS),
        ("projects", data["projects"], PROJECT_COLUMNS),
        ("output", data["output"], OUTPUT_COLUMNS),
    ]
    for title, rows, columns in sections:
        if rows:
            output.show(rows, columns, as_json=False, title=title)
    platform = data.get("platform")
    if platform:
        platform_columns: list[Column] = [
            ("org_id", "tenant org", None),
            ("jobs", "jobs", lambda v: ", ".join(f"{k} {n}" for k, n in (v or {}).items())),
            ("card_seconds", "card-hours", lambda v: f"{Decimal(int(v)) / 3600:,.1f}"),
            ("charged_fen", "charged", fen),
            ("subsidy_fen", "voucher subsidy", fen),
        ]
        output.show({k: v for k, v in platform.items() if k != "grants"}, platform_columns, as_json=False)


@registry_app.command("add")
def add(
    ctx: typer.Context,
    credit_code: Annotated[str, typer.Argument(help="18-character unified social credit code.")],
    name: Annotated[str, typer.Argument(help="Name (Chinese or the official name).")],
    segment: Annotated[
        list[str] | None, typer.Option(help="A segment code; the first is primary (repeatable).")
    ] = None,
    tier: Annotated[Tier | None, typer.Option(help="The tier it holds.")] = None,
    granted_on: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="When the tier was granted, YYYY-MM-DD (default today)."),
    ] = None,
    district: Annotated[str | None, typer.Option(help="Town or sub-district (镇街道).")] = None,
    park: Annotated[str | None, typer.Option(help="Industrial park (园区).")] = None,
    above_size: Annotated[bool, typer.Option("--above-size", help="Above designated size (规上).")] = False,
    name_en: Annotated[str | None, typer.Option(help="English name.")] = None,
    founded_on: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Founding date, YYYY-MM-DD.")
    ] = None,
    employees: Annotated[int | None, typer.Option(min=0, help="Number of employees.")] = None,
    patents: Annotated[int | None, typer.Option(min=0, help="Valid invention patents.")] = None,
) -> None:
    """Register an enterprise (regulator); it is linked to the tenant organisation with its credit code."""
    body = _cli().body_of(
        credit_code=credit_code,
        name=name,
        segments=segment or None,
        tier=tier,
        tier_granted_on=_day(granted_on),
        district=district,
        park=park,
        above_size=above_size,
        name_en=name_en,
        founded_on=_day(founded_on),
        employees=employees,
        patents=patents,
    )
    data = _cli().call(ctx, "POST", PREFIX + "/enterprises", body=body)
    _present(ctx, data, ENTERPRISE_DETAIL)


TierArg = Annotated[Tier, typer.Argument(metavar="TIER", help="The tier.")]
OnOpt = Annotated[datetime, typer.Option("--on", formats=["%Y-%m-%d"], help="Date, YYYY-MM-DD.")]


@registry_app.command("grant-tier")
def grant_tier(ctx: typer.Context, enterprise_id: IdArg, tier: TierArg, on: OnOpt) -> None:
    """Record a tier granted on a date (regulator); the current tier is the latest not revoked."""
    body = {"tier": tier.value, "granted_on": _day(on)}
    data = _cli().call(ctx, "POST", f"{PREFIX}/enterprises/{enterprise_id}/tiers", body=body)
    _present(ctx, data, ENTERPRISE_COLUMNS)


@registry_app.command("revoke-tier")
def revoke_tier(ctx: typer.Context, enterprise_id: IdArg, tier: TierArg, on: OnOpt) -> None:
    """Record that a tier was revoked on a date (regulator)."""
    path = f"{PREFIX}/enterprises/{enterprise_id}/tiers/{tier.value}/revoke"
    data = _cli().call(ctx, "POST", path, body={"revoked_on": _day(on)})
    _present(ctx, data, ENTERPRISE_COLUMNS)


@registry_app.command("output")
def record_output(
    ctx: typer.Context,
    enterprise_id: IdArg,
    month: Annotated[str, typer.Argument(callback=_month, metavar="YYYY-MM", help="The month.")],
    output_yuan: Annotated[
        str,
        typer.Option(callback=_yuan, metavar="YUAN", help="Output value (产值) of the month, in yuan."),
    ],
    revenue_yuan: Annotated[
        str | None, typer.Option(callback=_yuan, metavar="YUAN", help="Revenue (营收) of the month, in yuan.")
    ] = None,
    above_size: Annotated[
        bool | None,
        typer.Option(
            "--above-size/--below-size",
            help="Counted among 规上 enterprises that month (default: the enterprise's flag).",
        ),
    ] = None,
) -> None:
    """Record or correct one month's output value and revenue (regulator)."""
    body = _cli().body_of(
        output_fen=parse_amount(output_yuan),
        revenue_fen=None if revenue_yuan is None else parse_amount(revenue_yuan),
        above_size=above_size,
    )
    path = f"{PREFIX}/enterprises/{enterprise_id}/output/{month.strip()}"
    data = _cli().call(ctx, "PUT", path, body=body)
    _present(ctx, data, [("enterprise_id", "enterprise", None), *OUTPUT_COLUMNS])


# --- projects ------------------------------------------------------------------------------------

SignedFrom = Annotated[
    datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Signed on or after, YYYY-MM-DD.")
]
SignedTo = Annotated[
    datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Signed on or before, YYYY-MM-DD.")
]
StatusFilter = Annotated[ProjectStatus | None, typer.Option(help="Only projects in this status.")]
ForeignFilter = Annotated[
    bool | None, typer.Option("--foreign/--domestic", help="Only foreign-funded / only domestic projects.")
]


def _project_filters(
    status: ProjectStatus | None,
    segment: str | None,
    signed_from: datetime | None,
    signed_to: datetime | None,
    foreign: bool | None,
) -> dict[str, Any]:
    return {
        "status": status,
        "segment": segment,
        "signed_from": _day(signed_from),
        "signed_to": _day(signed_to),
        "foreign_funded": foreign,
    }


@registry_app.command("projects")
def projects(
    ctx: typer.Context,
    status: StatusFilter = None,
    segment: SegmentFilter = None,
    enterprise: Annotated[int | None, typer.Option(help="Only this enterprise's projects.")] = None,
    signed_from: SignedFrom = None,
    signed_to: SignedTo = None,
    foreign: ForeignFilter = None,
    chain_leader: Annotated[str | None, typer.Option(help="Only this chain leader's (链长).")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """Investment projects (招商项目) (regulator)."""
    params = _project_filters(status, segment, signed_from, signed_to, foreign) | {
        "enterprise_id": enterprise,
        "chain_leader": chain_leader,
        "limit": limit,
        "offset": offset,
        "sort": sort,
        "include_retired": include_retired or None,
    }
    _present(ctx, _get(ctx, "/projects", params), PROJECT_COLUMNS)


def _summary_rows(
    rows: list[dict[str, Any]], label: Callable[[str], str], unit: Unit
) -> list[dict[str, Any]]:
    return [
        {
            "label": label(row["key"]),
            "projects": row["projects"],
            "investment": scaled(row["investment_fen"], unit),
            "foreign_projects": row["foreign_projects"],
            "foreign": scaled(row["foreign_usd_cents"], unit),
        }
        for row in rows
    ]


def _summary_columns(title: str, unit: Unit) -> list[Column]:
    cny, usd = UNIT_NAMES[unit]
    return [
        ("label", title, None),
        ("projects", "projects", None),
        ("investment", f"investment ({cny})", None),
        ("foreign_projects", "foreign-funded", None),
        ("foreign", f"foreign investment ({usd})", None),
    ]


@registry_app.command("project-summary")
def project_summary(
    ctx: typer.Context,
    signed_from: SignedFrom = None,
    signed_to: SignedTo = None,
    status: StatusFilter = None,
    segment: SegmentFilter = None,
    foreign: ForeignFilter = None,
    unit: UnitOpt = Unit.YI,
) -> None:
    """Count and investment of projects, by status, stage and segment, with the foreign-funded ones."""
    params = _project_filters(status, segment, signed_from, signed_to, foreign)
    with _client(ctx) as client:
        data = client.request("GET", PREFIX + "/projects/summary", params=params)
        labels = _labels(ctx, client)
    if _as_json(ctx):
        _present(ctx, data, [])
        return
    total, (cny, usd) = data["total"], UNIT_NAMES[unit]
    _say(
        t(
            "cli.registry-project-summary",
            _lang(ctx),
            projects=total["projects"],
            investment=f"{scaled(total['investment_fen'], unit)} {cny}",
            exact=format_fen(total["investment_fen"]),
            foreign_projects=total["foreign_projects"],
            foreign=f"{scaled(total['foreign_usd_cents'], unit)} {usd}",
        )
    )
    breakdowns = (
        ("status", data["by_status"], labels.status),
        ("stage", data["by_stage"], labels.stage),
        ("segment", data["by_segment"], labels.segment),
    )
    for title, rows, label in breakdowns:
        if rows:
            output.show(_summary_rows(rows, label, unit), _summary_columns(title, unit), as_json=False)


# --- statistics ----------------------------------------------------------------------------------


def _scope_text(lang: str, scope: str) -> str:
    return t(f"cli.registry-scope.{scope}", lang)


def growth_phrase(lang: str, text: str | None) -> str:
    """'year on year +150.9%' / '同比增长 150.9%', '同比下降 3.0%'; none without a base a year earlier."""
    if text is None:
        return t("cli.registry-no-growth", lang)
    if text.startswith("-"):
        return t("cli.registry-growth-down", lang, growth=text[1:])
    return t("cli.registry-growth-up", lang, growth=text)


def _stat_rows(rows: list[dict[str, Any]], label: Callable[[str], str], unit: Unit) -> list[dict[str, Any]]:
    return [
        {
            "label": label(row["key"]),
            "enterprises": row["enterprises"],
            "output": scaled(row["output_fen"], unit),
            "previous": scaled(row["previous_fen"], unit),
            "growth": _growth(row.get("growth_text")),
            "revenue": scaled(row["revenue_fen"], unit),
            "revenue_growth": _growth(percent_text(row["revenue_fen"], row["previous_revenue_fen"])),
        }
        for row in rows
    ]


def _stat_columns(title: str, unit: Unit) -> list[Column]:
    name = UNIT_NAMES[unit][0]
    return [
        ("label", title, None),
        ("enterprises", "enterprises", None),
        ("output", f"output ({name})", None),
        ("previous", f"a year earlier ({name})", None),
        ("growth", "growth", None),
        ("revenue", f"revenue ({name})", None),
        ("revenue_growth", "revenue growth", None),
    ]


@registry_app.command("stats")
def stats(
    ctx: typer.Context,
    year: YearOpt,
    month: Annotated[
        int, typer.Option(min=1, max=12, help="January to this month (default: December).")
    ] = 12,
    scope: ScopeOpt = Scope.ABOVE_SIZE,
    unit: UnitOpt = Unit.YI,
) -> None:
    """Output value January to a month, year on year (comparable basis), by stage, segment, tier."""
    params = {"year": year, "month": month, "scope": scope.value}
    with _client(ctx) as client:
        data = client.request("GET", PREFIX + "/statistics/output", params=params)
        labels = _labels(ctx, client)
    if _as_json(ctx):
        _present(ctx, data, [])
        return
    lang, total, name = _lang(ctx), data["total"], UNIT_NAMES[unit][0]
    _say(
        t(
            "cli.registry-stats-output",
            lang,
            scope=_scope_text(lang, data["scope"]),
            year=data["year"],
            last_month=MONTH_NAMES[data["month"] - 1] if lang == "en" else data["month"],
            amount=f"{scaled(total['output_fen'], unit)} {name}",
            exact=format_fen(total["output_fen"]),
            growth=growth_phrase(lang, total.get("growth_text")),
            previous=f"{scaled(total['previous_fen'], unit)} {name}",
            enterprises=total["enterprises"],
        )
    )
    revenue_growth = percent_text(total["revenue_fen"], total["previous_revenue_fen"])
    _say(
        t(
            "cli.registry-stats-revenue",
            lang,
            amount=f"{scaled(total['revenue_fen'], unit)} {name}",
            growth=growth_phrase(lang, revenue_growth),
            missing=total["revenue_missing"],
        )
    )
    breakdowns = (
        ("stage", data["by_stage"], labels.stage),
        ("segment", data["by_segment"], labels.segment),
        ("tier", data["by_tier"], labels.tier),
    )
    for title, rows, label in breakdowns:
        if rows:
            output.show(_stat_rows(rows, label, unit), _stat_columns(title, unit), as_json=False)


@registry_app.command("monthly")
def monthly(
    ctx: typer.Context,
    year: YearOpt,
    scope: ScopeOpt = Scope.ABOVE_SIZE,
    through: Annotated[
        int | None, typer.Option(min=1, max=12, help="The last month (default: the latest with data).")
    ] = None,
    unit: UnitOpt = Unit.YI,
) -> None:
    """Month by month: output, January-to-month, a year earlier on a comparable basis, growth (regulator)."""
    params = {"year": year, "scope": scope.value, "through": through}
    data = _get(ctx, "/statistics/output/monthly", params)
    if _as_json(ctx):
        _present(ctx, data, [])
        return
    name = UNIT_NAMES[unit][0]
    rows = [
        {
            "month": f"{data['year']}-{row['month']:02d}",
            "enterprises": row["enterprises"],
            "output": scaled(row["output_fen"], unit),
            "previous": scaled(row["previous_month_fen"], unit),
            "growth": _growth(row.get("growth_text")),
            "cumulative": scaled(row["cumulative_fen"], unit),
            "previous_cumulative": scaled(row["previous_cumulative_fen"], unit),
            "cumulative_growth": _growth(row.get("cumulative_growth_text")),
        }
        for row in data["months"]
    ]
    columns: list[Column] = [
        ("month", "month", None),
        ("enterprises", "enterprises", None),
        ("output", f"output ({name})", None),
        ("previous", f"a year earlier ({name})", None),
        ("growth", "growth", None),
        ("cumulative", f"January to month ({name})", None),
        ("previous_cumulative", f"a year earlier ({name})", None),
        ("cumulative_growth", "growth", None),
    ]
    title = _scope_text(_lang(ctx), data["scope"])
    output.show(rows, columns, as_json=False, title=title)


# --- cultivation ---------------------------------------------------------------------------------

MONEY_METRICS = {"revenue_fen", "rd_spend_fen"}
PERCENT_METRICS = {"rd_intensity_bp", "revenue_growth_bp"}


def metric_value(metric: str, value: int) -> str:
    """A criterion's figure as an official reads it: money in 万元, basis points in percent."""
    if metric in MONEY_METRICS:
        return f"{scaled(value, Unit.WAN)} 万元"
    if metric in PERCENT_METRICS:
        return percent(value)
    if metric == "above_size":
        return "✓" if value else "✗"
    return f"{value:,}"


def bounds(item: dict[str, Any]) -> str:
    """'≥ 300.00 万元', '≤ 999', '1–5'; for 规上 (a yes/no figure) '= ✓' or '= ✗'."""
    metric, low, high = item["metric"], item.get("minimum"), item.get("maximum")
    if metric == "above_size":
        return f"= {metric_value(metric, 1 if low else 0)}"
    if low is not None and high is not None:
        return f"{metric_value(metric, low)}–{metric_value(metric, high)}"
    if low is not None:
        return f"≥ {metric_value(metric, low)}"
    return f"≤ {metric_value(metric, high)}" if high is not None else ""


def outcome(item: dict[str, Any]) -> str:
    """'R&D intensity 2.5% (≥ 3%)'; an unknown figure shows as '?'."""
    value = item.get("value")
    shown = "?" if value is None else metric_value(item["metric"], int(value))
    return f"{item.get('label') or item['metric']} {shown} ({bounds(item)})"


def _outcomes(items: Any) -> str:
    return "; ".join(outcome(item) for item in items or [])


def criteria_text(items: list[dict[str, Any]], lang: str) -> str:
    """Criteria on one line; the members of a group are alternatives: '(A or B); C; D'."""
    entries: list[list[str]] = []
    groups: dict[str, list[str]] = {}
    for item in items:
        text = f"{item.get('label') or item['metric']} {bounds(item)}"
        group = item.get("group")
        if group is None:
            entries.append([text])
        elif group in groups:
            groups[group].append(text)
        else:
            groups[group] = [text]
            entries.append(groups[group])
    word = f" {t('cli.registry-or', lang)} "
    return "; ".join(e[0] if len(e) == 1 else f"({word.join(e)})" for e in entries)


@registry_app.command("criteria")
def criteria(ctx: typer.Context) -> None:
    """The criteria that propose enterprises for each tier (bracketed ones are alternatives)."""
    data = _get(ctx, "/cultivation/criteria")
    rows = [
        {
            "tier": row["tier"],
            "custom": row["custom"],
            "criteria": criteria_text(row["criteria"], _lang(ctx)),
        }
        for row in data
    ]
    columns: list[Column] = [
        ("tier", "tier", None),
        ("custom", "set by the regulator", yes_no),
        ("criteria", "criteria", None),
    ]
    _present(ctx, data if _as_json(ctx) else rows, columns)


def _criteria_file(ctx: typer.Context, path: Path) -> list[Any]:
    """A TOML file of [[criteria]] tables, or a JSON list."""
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = (
            tomllib.loads(text).get("criteria") if path.suffix.lower() == ".toml" else json.loads(text)
        )
    except OSError as exc:
        error = exc.strerror or str(exc)
        raise typer.BadParameter(t("cli.voucher-bad-file", _lang(ctx), path=str(path), error=error)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        error = str(exc).splitlines()[0]
        raise typer.BadParameter(t("cli.voucher-bad-file", _lang(ctx), path=str(path), error=error)) from None
    if not isinstance(data, list):
        raise typer.BadParameter(t("cli.registry-bad-criteria-file", _lang(ctx), path=str(path)))
    return data


@registry_app.command("set-criteria")
def set_criteria(
    ctx: typer.Context,
    tier: TierArg,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="TOML: a criteria array of tables (metric, minimum, maximum, group); or a JSON list.",
        ),
    ],
) -> None:
    """Replace a tier's cultivation criteria (regulator)."""
    body = _criteria_file(ctx, file)
    data = _cli().call(ctx, "PUT", f"{PREFIX}/cultivation/criteria/{tier.value}", body=body)
    row = {
        "tier": data["tier"],
        "custom": data["custom"],
        "criteria": criteria_text(data["criteria"], _lang(ctx)),
    }
    _present(ctx, data if _as_json(ctx) else row, [("tier", "tier", None), ("criteria", "criteria", None)])


@registry_app.command("reset-criteria")
def reset_criteria(ctx: typer.Context, tier: TierArg) -> None:
    """Go back to the shipped (simplified) criteria for a tier (regulator)."""
    with _client(ctx) as client:  # 204: no body to parse
        client.request("DELETE", f"{PREFIX}/cultivation/criteria/{tier.value}", raw=True)
    _say(t("cli.registry-criteria-reset", _lang(ctx), tier=tier.value))


CANDIDATE_COLUMNS: list[Column] = [
    ("enterprise_id", "id", None),
    ("credit_code", "credit code", None),
    ("name", "name", None),
    ("eligible", "eligible", yes_no),
    ("missed", "missed", _outcomes),
    ("unknown", "no data", _outcomes),
    ("met", "met", _outcomes),
]


@registry_app.command("candidates")
def candidates(
    ctx: typer.Context,
    tier: Annotated[Tier, typer.Option(help="The tier to propose enterprises for.")],
    as_of: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Assess on this day (default today).")
    ] = None,
) -> None:
    """Enterprises on the tier below, eligible first, with what each meets, misses or lacks data for."""
    data = _get(ctx, "/cultivation/candidates", {"tier": tier.value, "as_of": _day(as_of)})
    _present(ctx, data, CANDIDATE_COLUMNS)


# --- import and export ---------------------------------------------------------------------------

ERROR_COLUMNS: list[Column] = [
    ("row", "row", None),
    ("field", "field", None),
    ("value", "value", None),
    ("message", "message", None),
]


def _upload(
    ctx: typer.Context, dataset: Dataset, data: bytes, fmt: Format, params: dict[str, Any]
) -> dict[str, Any]:
    """Send the file as the raw body; a real import refused for invalid rows reports them like a dry run
    (the refusal lists them under `row_errors`; nothing was written)."""
    headers = {"Content-Type": MEDIA_TYPES[fmt.value]}
    path = f"{PREFIX}/import/{dataset.value}"
    with _client(ctx) as client:
        try:
            report: dict[str, Any] = client.request(
                "POST", path, params=params, content=data, headers=headers
            )
        except ApiError as exc:
            if exc.code != "registry.import-invalid":
                raise
            rows = exc.problem.get("row_errors", [])
            report = {
                "dataset": dataset.value,
                "dry_run": False,
                "rows": exc.problem.get("rows"),
                "errors": rows,
            }
            report |= {"created": 0, "updated": 0, "unchanged": 0}
    return report


def _report_key(dry_run: bool, invalid: bool) -> str:
    """The headline of an import report: counts only when every row is valid (else none are counted)."""
    if invalid:
        return "cli.registry-import-checked" if dry_run else "cli.registry-import-nothing"
    return "cli.registry-import-dry-run" if dry_run else "cli.registry-import-done"


@registry_app.command("import")
def import_file(
    ctx: typer.Context,
    dataset: Annotated[Dataset, typer.Argument(metavar="DATASET", help="What the file holds.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A .csv or .xlsx file; the header is row 1.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report what would change; write nothing.")
    ] = False,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="HEADER=FIELD",
            help="Read a header no alias knows as this field, e.g. '投资额(万元)=investment_fen'; "
            "'HEADER=' ignores the column (repeatable).",
        ),
    ] = None,
    sheet: Annotated[str | None, typer.Option(help="The xlsx sheet (default: the first).")] = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", help="csv or xlsx (default: from the file's extension).")
    ] = None,
) -> None:
    """Import a spreadsheet (regulator): all rows or none; invalid rows are listed, exit code 2."""
    lang = _lang(ctx)
    found = format_of(file, fmt)
    if found is None:
        raise typer.BadParameter(t("cli.registry-unknown-format", lang, path=str(file)))
    pairs = parse_mapping(mapping or [])
    if pairs is None:
        raise typer.BadParameter(t("cli.registry-bad-map", lang, value="; ".join(mapping or [])))
    try:
        data = file.read_bytes()
    except OSError as exc:
        error = exc.strerror or str(exc)
        raise typer.BadParameter(t("cli.voucher-bad-file", lang, path=str(file), error=error)) from None
    params: dict[str, Any] = {
        "format": found.value,
        "dry_run": "true" if dry_run else "false",
        "sheet": sheet,
        "mapping": json.dumps(pairs, ensure_ascii=False) if pairs else None,
    }
    report = _upload(ctx, dataset, data, found, params)
    errors = report.get("errors") or []
    if _as_json(ctx):
        _present(ctx, report, [])
    else:
        counts = {name: report[name] for name in ("rows", "created", "updated", "unchanged")}
        _say(t(_report_key(report["dry_run"], bool(errors)), lang, dataset=report["dataset"], **counts))
        if errors:
            output.show(errors, ERROR_COLUMNS, as_json=False)
    if errors:
        raise _fail(t("cli.registry-import-invalid", lang, count=len(errors), path=str(file)))


@registry_app.command("export")
def export_file(
    ctx: typer.Context,
    dataset: Annotated[Dataset, typer.Argument(metavar="DATASET", help="What to export.")],
    fmt: Annotated[Format, typer.Option("--format", help="csv or xlsx.")] = Format.CSV,
    out: Annotated[
        Path | None,
        typer.Option("--out", "--output", "-o", metavar="FILE", help="Write to FILE (default: print a CSV)."),
    ] = None,
    headers: Annotated[
        str | None, typer.Option(help="Header language, en or zh (default: the CLI's language).")
    ] = None,
) -> None:
    """Export a dataset as an official reads it (amounts in yuan); the file imports back unchanged."""
    lang = _lang(ctx)
    if fmt is Format.XLSX and out is None:
        raise typer.BadParameter(t("cli.binary-needs-out", lang, format=fmt.value))
    accept = {"Accept-Language": "zh-CN" if normalize_lang(headers or lang) == "zh" else "en"}
    with _client(ctx) as client:
        data: bytes = client.request(
            "GET", f"{PREFIX}/export/{dataset.value}", params={"format": fmt.value}, headers=accept, raw=True
        )
    if out is None:
        sys.stdout.write(data.decode("utf-8-sig"))
        return
    out.write_bytes(data)
    output.err_console.print(t("cli.saved", lang, path=str(out)), highlight=False, markup=False)
