"""REST routes of a voucher programme's reports (regulator): burn-down, subsidy by enterprise, segment,
provider and month, and a summary; as JSON (amounts in fen), CSV or XLSX (amounts in yuan, with a header
row in the caller's language).

CSV is UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right; amounts are written
as exact yuan with two decimals. XLSX has one sheet: the header row, the rows, and a total row where the
rows add up; amounts are numbers in yuan shown with two decimals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from suanwang.api.deps import Ctx, CtxDep, request_lang
from suanwang.api.schemas import PROBLEM_RESPONSES
from suanwang.errors import Invalid
from suanwang.fields import Id
from suanwang.i18n import t
from suanwang.settlement.render import yuan
from suanwang.tenants.access import require_regulator
from suanwang.vouchers import programmes, reports
from suanwang.vouchers.models import VoucherProgramme
from suanwang.vouchers.reports import Breakdown, BurnDown, Period, Summary

router = APIRouter(
    prefix="/vouchers/programmes/{programme_id}/reports", tags=["vouchers"], responses=PROBLEM_RESPONSES
)

FORMATS = ("json", "csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
LangDep = Annotated[str, Depends(request_lang)]
FormatQuery = Annotated[str, Query(description="json (default, amounts in fen), csv or xlsx (in yuan)")]
FromQuery = Annotated[str | None, Query(alias="from", description="the first month, YYYY-MM (Asia/Shanghai)")]
ToQuery = Annotated[str | None, Query(description="the month after the last, YYYY-MM (excluded)")]

Kind = Literal["text", "int", "fen", "ratio", "name", "list", "segment"]


@dataclass(frozen=True, slots=True)
class Column:
    field: str  # a key of the row's JSON
    label: str  # its message key
    kind: Kind


def _col(field: str, kind: Kind, label: str | None = None) -> Column:
    return Column(field, f"voucher-report.col-{label or field.removesuffix('_fen').replace('_', '-')}", kind)


FIGURES = (
    _col("charge_fen", "fen"),
    _col("subsidy_fen", "fen"),
    _col("clawed_back_fen", "fen"),
    _col("orders", "int"),
    _col("leverage", "ratio"),
)
COLUMNS: dict[str, tuple[Column, ...]] = {
    "burn-down": (
        _col("month", "text"),
        _col("granted_fen", "fen"),
        _col("redeemed_fen", "fen"),
        _col("clawed_back_fen", "fen"),
        _col("cumulative_granted_fen", "fen"),
        _col("cumulative_redeemed_fen", "fen"),
        _col("remaining_fen", "fen"),
        _col("unredeemed_fen", "fen"),
    ),
    "by-enterprise": (
        _col("org_id", "int"),
        _col("credit_code", "text"),
        _col("name", "name", "enterprise"),
        _col("segments", "list"),
        *FIGURES,
    ),
    "by-segment": (_col("segment", "segment"), _col("enterprises", "int"), *FIGURES),
    "by-provider": (
        _col("provider_id", "int"),
        _col("code", "text", "provider-code"),
        _col("name", "name", "provider"),
        *FIGURES,
        _col("local_charge_fen", "fen"),
    ),
    "by-month": (_col("month", "text"), *FIGURES),
}
# The summary is one item per row: its label and its value.
SUMMARY_HEADER = ("voucher-report.col-item", "voucher-report.col-value")
SUMMARY_ITEMS = (
    _col("budget_fen", "fen"),
    _col("charge_fen", "fen"),
    _col("orders", "int"),
    _col("subsidised_charge_fen", "fen"),
    _col("subsidised_orders", "int"),
    _col("subsidy_fen", "fen"),
    _col("clawed_back_fen", "fen"),
    _col("leverage", "ratio", "leverage-subsidised"),
    _col("local_charge_fen", "fen", "local-charge-subsidised"),
    _col("local_share_bp", "int"),
    _col("local_share", "text"),
)

Report = Breakdown | BurnDown | Summary


# --- rendering -----------------------------------------------------------------------------------


def inert(text: str) -> str:
    """Text a spreadsheet program will not run as a formula (a name like '=HYPERLINK(…)' gets a quote)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _text(column: Column, row: dict[str, Any], lang: str) -> str:
    """A cell as CSV text."""
    value = row.get(column.field)
    if value is None:
        return reports.NO_RATIO if column.kind in ("int", "ratio") else ""
    if column.kind == "fen":
        return yuan(int(value))
    if column.kind == "name":
        return inert(str(value if lang == "zh" else row.get("name_en") or value))
    if column.kind == "list":
        return inert("; ".join(value))
    if column.kind == "segment" and value == reports.UNREGISTERED:
        return t("voucher-report.unregistered", lang)
    return inert(str(value))


def _cell(column: Column, row: dict[str, Any], lang: str) -> Any:
    """A cell as a spreadsheet value: amounts and ratios as exact decimal numbers."""
    value = row.get(column.field)
    if column.kind == "fen" and value is not None:
        return Decimal(int(value)) / 100
    if column.kind == "int" and value is not None:
        return int(value)
    if column.kind == "ratio" and value not in (None, reports.NO_RATIO):
        return Decimal(str(value))
    return _text(column, row, lang)


Rows = list[tuple[list[Column], dict[str, Any]]]


def _table(report: Report, lang: str) -> tuple[list[str], Rows, bool]:
    """The header row; each row with its columns and values; whether the last row is a total."""
    if isinstance(report, Summary):
        data = report.as_json()
        text = Column("label", "", "text")
        items: Rows = [
            (
                [text, Column("value", "", item.kind)],
                {"label": t(item.label, lang), "value": data[item.field]},
            )
            for item in SUMMARY_ITEMS
        ]
        return [t(key, lang) for key in SUMMARY_HEADER], items, False
    columns = list(COLUMNS[_name(report)])
    body = report.as_json()
    rows: Rows = [(columns, row) for row in body["rows"]]
    if body["total"] is not None:
        first = columns[0]
        total = {first.field: t("voucher-report.total", lang)} | body["total"]
        as_text = [Column(first.field, first.label, "text"), *columns[1:]]
        rows.append((as_text, total))
    return [t(column.label, lang) for column in columns], rows, body["total"] is not None


def as_csv(report: Report, lang: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    header, rows, _ = _table(report, lang)
    writer.writerow(header)
    for columns, row in rows:
        writer.writerow([_text(column, row, lang) for column in columns])
    return ("\ufeff" + out.getvalue()).encode()


def as_xlsx(report: Report, lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = t(f"voucher-report.title.{_name(report)}", lang)[:31]
    header, rows, has_total = _table(report, lang)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for columns, row in rows:
        sheet.append([_cell(column, row, lang) for column in columns])
        for column, cell in zip(columns, sheet[sheet.max_row], strict=True):
            if column.kind in ("fen", "ratio") and not isinstance(cell.value, str):
                cell.number_format = "0.00"
    if has_total:
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEFGHIJKLMNOP", _widths(header, rows, lang), strict=False):
        sheet.column_dimensions[letter].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _widths(header: Sequence[str], rows: Rows, lang: str) -> list[int]:
    """Column widths that fit the longest text (a CJK character takes two)."""

    def width(text: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)

    found = [width(h) for h in header]
    for columns, row in rows:
        for i, column in enumerate(columns):
            found[i] = max(found[i], width(_text(column, row, lang)))
    return [min(max(w + 2, 8), 60) for w in found]


def _name(report: Report) -> str:
    if isinstance(report, BurnDown):
        return "burn-down"
    if isinstance(report, Summary):
        return "summary"
    return report.report


def _respond(report: Report, fmt: str, lang: str) -> Any:
    if fmt == "json":
        return report.as_json()
    body = as_csv(report, lang) if fmt == "csv" else as_xlsx(report, lang)
    parts = ["voucher", report.programme_code, _name(report)]
    if report.period.start is not None:
        parts.append(f"from-{report.period.start}")
    if report.period.end is not None:
        parts.append(f"to-{report.period.end}")
    return Response(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{"-".join(parts)}.{fmt}"'},
    )


# --- routes --------------------------------------------------------------------------------------


def _report(
    ctx: Ctx,
    programme_id: int,
    fmt: str,
    lang: str,
    start: str | None,
    end: str | None,
    build: Callable[[VoucherProgramme, Period], Report],
) -> Any:
    """Regulator only; the format and the period are checked before anything is read."""
    require_regulator(ctx.principal)
    if fmt not in FORMATS:
        raise Invalid("voucher-report.bad-format", value=fmt, formats=", ".join(FORMATS))
    period = Period.parse(start, end)
    programme = programmes.get_programme(ctx.session, programme_id)
    return _respond(build(programme, period), fmt, lang)


@router.get("/burn-down")
def burn_down(
    programme_id: Id,
    ctx: CtxDep,
    lang: LangDep,
    format: FormatQuery = "json",
    start: FromQuery = None,
    to: ToQuery = None,
) -> Any:
    """The budget month by month: granted (net of expiry returns), redeemed (net of clawbacks), cumulative
    redeemed, the budget left to grant and what grants still hold."""
    return _report(
        ctx,
        programme_id,
        format,
        lang,
        start,
        to,
        lambda p, period: reports.burn_down(ctx.session, p, period, now=ctx.now),
    )


@router.get("/by-enterprise")
def by_enterprise(
    programme_id: Id,
    ctx: CtxDep,
    lang: LangDep,
    format: FormatQuery = "json",
    start: FromQuery = None,
    to: ToQuery = None,
) -> Any:
    """Spend, subsidy, clawbacks, orders and leverage per organisation, with the programme's total."""
    return _report(
        ctx,
        programme_id,
        format,
        lang,
        start,
        to,
        lambda p, period: reports.by_enterprise(ctx.session, p, period),
    )


@router.get("/by-segment")
def by_segment(
    programme_id: Id,
    ctx: CtxDep,
    lang: LangDep,
    format: FormatQuery = "json",
    start: FromQuery = None,
    to: ToQuery = None,
) -> Any:
    """The same per industry-chain segment of the registry ("unregistered": no registry row or segment).
    An organisation in several segments counts in each, so the rows overlap and have no total."""
    return _report(
        ctx,
        programme_id,
        format,
        lang,
        start,
        to,
        lambda p, period: reports.by_segment(ctx.session, p, period),
    )


@router.get("/by-provider")
def by_provider(
    programme_id: Id,
    ctx: CtxDep,
    lang: LangDep,
    format: FormatQuery = "json",
    start: FromQuery = None,
    to: ToQuery = None,
) -> Any:
    """The same per provider, with the spend at its sites in the local regions."""
    return _report(
        ctx,
        programme_id,
        format,
        lang,
        start,
        to,
        lambda p, period: reports.by_provider(ctx.session, p, period),
    )


@router.get("/by-month")
def by_month(
    programme_id: Id,
    ctx: CtxDep,
    lang: LangDep,
    format: FormatQuery = "json",
    start: FromQuery = None,
    to: ToQuery = None,
) -> Any:
    """The same per month of settlement (Asia/Shanghai)."""
    return _report(
        ctx, programme_id, format, lang, start, to, lambda p, period: reports.by_month(ctx.session, p, period)
    )


@router.get("/summary")
def summary(
    programme_id: Id,
    ctx: CtxDep,
    lang: LangDep,
    format: FormatQuery = "json",
    start: FromQuery = None,
    to: ToQuery = None,
) -> Any:
    """Spend on subsidised orders, subsidy, leverage, and the share of subsidised spend at local
    providers (in basis points and as a percentage)."""
    return _report(
        ctx, programme_id, format, lang, start, to, lambda p, period: reports.summary(ctx.session, p, period)
    )
