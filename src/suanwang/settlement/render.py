"""Invoices and statements as JSON, CSV, XLSX, printable HTML and PDF, in English or Chinese.

Money is shown in yuan with two decimals from integer fen (no float anywhere); card-hours with four
decimals. The PDF uses the standard Adobe CID font STSong-Light for Chinese, which every PDF reader
with CJK support provides (nothing to install or embed).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from suanwang.i18n import t
from suanwang.settlement.statements import Invoice, Line, Statement
from suanwang.timeutil import SHANGHAI
from suanwang.units import format_fen

FORMATS = ("json", "csv", "xlsx", "html", "pdf")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)


def yuan(fen: int) -> str:
    """12345 → '123.45' (exact; for CSV and spreadsheets, without the currency sign)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def _columns(document: Invoice | Statement) -> list[tuple[str, str]]:
    base = [
        ("job_id", "statement.col-job"),
        ("job_name", "statement.col-name"),
        ("pool_code", "statement.col-pool"),
        ("accelerator", "statement.col-accelerator"),
        ("card_hours", "statement.col-card-hours"),
        ("price_fen_per_card_hour", "statement.col-rate"),
        ("amount_fen", "statement.col-amount"),
    ]
    if isinstance(document, Statement):
        base.insert(1, ("org", "statement.col-tenant"))
        base += [("fee_fen", "statement.col-fee"), ("net_fen", "statement.col-net")]
    else:
        base.insert(2, ("provider", "statement.col-provider"))
    return base


def _cell(line: Line, name: str) -> Any:
    value = getattr(line, name)
    if name.endswith("_fen") or name == "price_fen_per_card_hour":
        return yuan(int(value))
    if isinstance(value, Decimal):
        return str(value)
    return "" if value is None else value


def _totals(document: Invoice | Statement, lang: str) -> list[tuple[str, str]]:
    if isinstance(document, Invoice):
        rows = [
            ("statement.total", document.total_fen),
            ("statement.subsidies", -document.subsidy_fen),
            ("statement.due", document.due_fen),
            ("statement.wallet-opening", document.wallet_opening_fen),
            ("statement.top-ups", document.top_ups_fen),
            ("statement.wallet-closing", document.wallet_closing_fen),
        ]
    else:
        rows = [
            ("statement.gross", document.gross_fen),
            ("statement.fee", -document.fee_fen),
            ("statement.net", document.net_fen),
            ("statement.owed-opening", document.owed_opening_fen),
            ("statement.paid-out", document.paid_out_fen),
            ("statement.owed-closing", document.owed_closing_fen),
        ]
    return [(t(key, lang), format_fen(value)) for key, value in rows]


def _title(document: Invoice | Statement, lang: str) -> str:
    if isinstance(document, Invoice):
        name = document.org_name if lang == "zh" else document.org_name_en or document.org_name
        return t("statement.invoice-title", lang, name=name, month=str(document.month))
    name = document.provider_name if lang == "zh" else document.provider_name_en or document.provider_name
    return t("statement.statement-title", lang, name=name, month=str(document.month))


def as_json(document: Invoice | Statement) -> dict[str, Any]:
    data = asdict(document)
    data["month"] = str(document.month)
    for line in data["lines"]:
        line["card_hours"] = str(line["card_hours"])
    return data


def as_csv(document: Invoice | Statement, lang: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = _columns(document)
    writer.writerow([t(label, lang) for _, label in columns])
    for line in document.lines:
        writer.writerow([_cell(line, name) for name, _ in columns])
    writer.writerow([])
    for label, value in _totals(document, lang):
        writer.writerow([label, value])
    return ("\ufeff" + out.getvalue()).encode()  # a BOM, so spreadsheet programs read the Chinese right


def as_xlsx(document: Invoice | Statement, lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = str(document.month)
    sheet.append([_title(document, lang)])
    sheet["A1"].font = Font(bold=True, size=13)
    columns = _columns(document)
    sheet.append([t(label, lang) for _, label in columns])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for line in document.lines:
        row = []
        for name, _ in columns:
            value = getattr(line, name)
            if name.endswith("_fen") or name == "price_fen_per_card_hour":
                row.append(Decimal(int(value)) / 100)  # exact decimal, shown as yuan
            else:
                row.append(value)
        sheet.append(row)
    sheet.append([])
    for label, value in _totals(document, lang):
        sheet.append([label, value])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def as_html(document: Invoice | Statement, lang: str) -> str:
    columns = _columns(document)
    return _templates.get_template("statement.html").render(
        lang=lang,
        title=_title(document, lang),
        headers=[t(label, lang) for _, label in columns],
        rows=[[_cell(line, name) for name, _ in columns] for line in document.lines],
        totals=_totals(document, lang),
        empty=t("statement.empty", lang),
        note=t("statement.note", lang),
        issued=t(
            "statement.month-of", lang, start=document.month.start.astimezone(SHANGHAI).date().isoformat()
        ),
    )


def as_pdf(document: Invoice | Statement, lang: str) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    styles = getSampleStyleSheet()
    title_style = styles["Title"].clone("title", fontName=font)
    body_style = styles["BodyText"].clone("body", fontName=font, fontSize=8)
    columns = _columns(document)
    data: list[list[Any]] = [[t(label, lang) for _, label in columns]]
    data += [[str(_cell(line, name)) for name, _ in columns] for line in document.lines]
    table = Table(data, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), font),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("ALIGN", (4, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    totals = Table([[label, value] for label, value in _totals(document, lang)])
    totals.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), font), ("ALIGN", (1, 0), (1, -1), "RIGHT")]))
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), title=_title(document, lang))
    story: list[Any] = [Paragraph(_title(document, lang), title_style), Spacer(1, 8)]
    story += [table] if document.lines else [Paragraph(t("statement.empty", lang), body_style)]
    story += [Spacer(1, 12), totals, Spacer(1, 12), Paragraph(t("statement.note", lang), body_style)]
    doc.build(story)
    return buffer.getvalue()


def render(document: Invoice | Statement, fmt: str, lang: str) -> bytes | dict[str, Any]:
    if fmt == "json":
        return as_json(document)
    if fmt == "csv":
        return as_csv(document, lang)
    if fmt == "xlsx":
        return as_xlsx(document, lang)
    if fmt == "html":
        return as_html(document, lang).encode()
    return as_pdf(document, lang)
