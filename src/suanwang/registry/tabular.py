"""Spreadsheets as a header and rows of cells (pure: bytes in, bytes out): how the registry reads the CSV and
XLSX files officials keep, and writes its exports back in the same shape.

Reading keeps what the file knows about a cell: XLSX cells stay int, float, bool, datetime or str (a cell
formatted as a percentage becomes the text "4.3%", so 4.3% is never read as 0.043); CSV cells are str. Blank
cells are None; trailing blank rows and columns are dropped; every row has the header's width. CSV is UTF-8
(with or without a byte-order mark) or, failing that, GB18030: Excel on a Chinese Windows saves GBK.

Writing makes text inert against formula injection (a leading = + - @ gets a quote) and reading undoes it,
so a value survives the round trip exactly.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Format = Literal["csv", "xlsx"]
Cell = str | int | float | bool | Decimal | date | datetime | None

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000  # data rows, the header not counted
MAX_COLUMNS = 200
SHEET_TITLE_CHARS_MAX = 31  # Excel's limit
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
# Characters XML 1.0 forbids; openpyxl refuses them, so they are dropped on the way out.
ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
SHEET_TITLE_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


@dataclass(frozen=True, slots=True)
class Table:
    header: list[str]  # row 1 of the file, each cell as stripped text ("" when blank)
    rows: list[list[Cell]]  # rows 2, 3, …: the spreadsheet's row number is index + 2


class TableError(Exception):
    """The file cannot be read as a table: a message key and its parameters."""

    def __init__(self, key: str, params: dict[str, object] | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.params = params or {}


def inert(text: str) -> str:
    """Text a spreadsheet program will not run as a formula; a leading quote is quoted too, so that
    `uninert` is its exact inverse."""
    return QUOTE + text if text[:1] in (*FORMULA_STARTS, QUOTE) else text


def uninert(text: str) -> str:
    return text[1:] if text[:1] == QUOTE and text[1:2] in (*FORMULA_STARTS, QUOTE) else text


# --- reading -------------------------------------------------------------------------------------


def read_table(data: bytes, fmt: Format, sheet: str | None = None) -> Table:
    """The header and rows of a CSV file or of one XLSX sheet (the first unless `sheet` names one)."""
    if len(data) > MAX_BYTES:
        raise TableError(
            "registry.import.too-large",
            {"size_mb": f"{len(data) / 1024 / 1024:.1f}", "limit_mb": MAX_BYTES // 1024 // 1024},
        )
    if fmt == "csv":
        return _collect(_csv_rows(data))
    if fmt == "xlsx":
        return _read_xlsx(data, sheet)
    raise TableError("registry.import.unknown-format", {"format": fmt})


def _decode_csv(data: bytes) -> str:
    # A NUL byte never occurs in text; an XLSX (a zip) starts with PK.
    if b"\x00" in data or data.startswith(b"PK\x03\x04"):
        raise TableError("registry.import.not-csv")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise TableError("registry.import.not-csv") from None


def _csv_rows(data: bytes) -> Iterator[list[Cell]]:
    reader = csv.reader(io.StringIO(_decode_csv(data), newline=""))
    try:
        for row in reader:
            yield [_text_cell(value) for value in row]
    except csv.Error:
        raise TableError("registry.import.not-csv") from None


def _text_cell(value: str) -> Cell:
    return uninert(value) if value.strip() else None


def _read_xlsx(data: bytes, sheet: str | None) -> Table:
    from openpyxl import load_workbook  # type: ignore[import-untyped,unused-ignore]

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds (zip, XML, key errors) for a file that is not XLSX
        raise TableError("registry.import.not-xlsx") from None
    try:
        names = list(book.sheetnames)
        if sheet is not None and sheet not in names:
            raise TableError("registry.import.no-sheet", {"sheet": sheet, "sheets": "、".join(names)})
        if not names:
            raise TableError("registry.import.no-header")
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        return _collect(
            [_xlsx_cell(cell.value, getattr(cell, "number_format", "")) for cell in row]
            for row in worksheet.iter_rows()
        )
    finally:
        book.close()


def _xlsx_cell(value: object, number_format: str | None) -> Cell:
    if isinstance(value, str):
        return _text_cell(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and "%" in (number_format or ""):
        return f"{(Decimal(f'{value:.15g}') * 100).normalize():f}%"
    if value is None or isinstance(value, bool | int | float | Decimal | date):
        return value
    return str(value)  # a time of day or anything else: as text, for the dataset to judge


def _blank(row: Sequence[Cell]) -> bool:
    return all(cell is None for cell in row)


def _collect(rows: Iterable[list[Cell]]) -> Table:
    """Header and rows, with trailing blank rows and columns dropped; blank rows in between are kept
    (row numbers must match the spreadsheet's) but never held beyond the row limit."""
    iterator = iter(rows)
    header_cells = next(iterator, None)
    if header_cells is None or _blank(header_cells):
        raise TableError("registry.import.no-header")
    body: list[list[Cell]] = []
    blank_run = 0
    for row in iterator:
        if _blank(row):
            blank_run += 1
            continue
        if len(body) + blank_run >= MAX_ROWS:
            raise TableError("registry.import.too-many-rows", {"limit": MAX_ROWS})
        body.extend([] for _ in range(blank_run))
        blank_run = 0
        trimmed = _trim(row)
        if len(trimmed) > MAX_COLUMNS:  # checked as rows come, so a wide sheet is never held whole
            raise TableError("registry.import.too-many-columns", {"limit": MAX_COLUMNS})
        body.append(trimmed)
    header = [("" if cell is None else str(cell).strip()) for cell in _trim(header_cells)]
    width = max([len(header), *(len(row) for row in body)])
    if width > MAX_COLUMNS:
        raise TableError("registry.import.too-many-columns", {"limit": MAX_COLUMNS})
    header += [""] * (width - len(header))
    return Table(header, [row + [None] * (width - len(row)) for row in body])


def _trim(row: list[Cell]) -> list[Cell]:
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return row[:end]


# --- writing -------------------------------------------------------------------------------------


def _csv_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([inert(h) for h in header])
    for row in rows:
        writer.writerow([_csv_text(value) for value in row])
    return ("\ufeff" + out.getvalue()).encode()


def _width(value: Cell) -> int:
    """Characters a cell shows (a CJK character takes two)."""
    text = _csv_text(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def write_xlsx(header: Sequence[str], rows: Iterable[Sequence[Cell]], title: str) -> bytes:
    """One sheet: a bold, frozen header; dates as dates; Decimal amounts as numbers with two decimals."""
    from openpyxl import Workbook  # type: ignore[import-untyped,unused-ignore]
    from openpyxl.styles import Font  # type: ignore[import-untyped,unused-ignore]
    from openpyxl.utils import get_column_letter  # type: ignore[import-untyped,unused-ignore]

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = SHEET_TITLE_FORBIDDEN.sub(" ", title)[:SHEET_TITLE_CHARS_MAX] or "Sheet1"
    sheet.append([_xlsx_value(h) for h in header])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = [_width(h) for h in header]
    for number, row in enumerate(rows, start=2):
        widths += [0] * (len(row) - len(widths))
        for i, value in enumerate(row):
            cell = sheet.cell(row=number, column=i + 1, value=_xlsx_value(value))
            if isinstance(value, Decimal):
                cell.number_format = "0.00"
            elif isinstance(value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(value, date):
                cell.number_format = "yyyy-mm-dd"
            widths[i] = max(widths[i], _width(value))
    sheet.freeze_panes = "A2"
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = min(max(width + 2, 8), 60)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _xlsx_value(value: Cell) -> Cell:
    if isinstance(value, str):
        return inert(ILLEGAL_XML.sub("", value))
    return value
