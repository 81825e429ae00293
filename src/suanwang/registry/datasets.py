"""The registry's three datasets as spreadsheets (pure): which columns each has, how an official's header and
cell are read into canonical values, how rows are checked, and how records are written back.

Datasets: `enterprises` (key: credit_code), `projects` (key: name) and `output` (key: credit_code + month).
A header matches a field whatever its case, spacing or full-width characters ("产值（万元）" is "产值(万元)"),
in English or Chinese; a money, US-dollar or percent header may name its unit ("产值(万元)",
"investment_fen", "研发强度(%)"), else 元, US dollars and percent are meant. A caller's mapping
{file header: field} reads headers no alias knows ("" ignores a column).

Canonical values: fen and US cents as int, percent as basis points, dates as date, months as (year, month),
segments as codes (the primary first), tiers as Tier, statuses as ProjectStatus. Every problem is a RowError
with the row number a spreadsheet shows (the header is row 1), the field, the cell and a message key; a row
with a problem gives no record, so the caller can refuse the file or import the rest knowingly.

`export_table` writes what an official reads (zh: Chinese names; en: English labels) and what `parse`
reads back to the same records.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Literal, TypeVar

from suanwang.i18n import t
from suanwang.registry.models import ProjectStatus, Tier
from suanwang.registry.tabular import Cell, Table
from suanwang.tenants import credit_code as credit_codes

Lang = Literal["en", "zh"]
Record = dict[str, object]

MAX_MINOR_UNITS = 10**15  # fen or cents; XLSX keeps 15 significant digits, so larger amounts would drift
MAX_COUNT = 10_000_000  # employees, patents: the API's bound
MAX_BASIS_POINTS = 10_000  # R&D intensity: at most 100 %
MAX_NUMBER_CHARS = 40
EARLIEST = date(1900, 1, 1)
LATEST = date(2099, 12, 31)
EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 (after Excel's phantom 1900-02-29)
IGNORE = ""  # a mapping to this ignores the column
E = TypeVar("E", bound=enum.StrEnum)


class Kind(enum.StrEnum):
    TEXT = "text"
    EMAIL = "email"
    PHONE = "phone"
    CREDIT_CODE = "credit_code"
    SEGMENTS = "segments"
    SEGMENT = "segment"
    TIER = "tier"
    BOOL = "bool"
    INT = "int"
    MONEY = "money"  # CNY → fen
    USD = "usd"  # US dollars → cents
    PERCENT = "percent"  # → basis points
    DATE = "date"
    MONTH = "month"  # → (year, month)
    STATUS = "status"  # ProjectStatus


# Units a header may name, as the power of ten from the unit to the stored minor unit (fen, cents, bp):
# 万元 → fen is 10^6, so a 万元 figure may have 6 decimals and still be whole fen.
UNITS: dict[Kind, dict[str, int]] = {
    Kind.MONEY: {
        "元": 2, "人民币元": 2, "yuan": 2, "cny": 2, "rmb": 2,
        "万元": 6, "10kyuan": 6, "10kcny": 6,
        "亿元": 10, "100myuan": 10, "100mcny": 10,
        "分": 0, "fen": 0,
    },
    Kind.USD: {
        "美元": 2, "usd": 2, "万美元": 6, "10kusd": 6, "亿美元": 10, "100musd": 10, "美分": 0, "cents": 0,
    },
    Kind.PERCENT: {"%": 2, "percent": 2, "bp": 0, "基点": 0},
}  # fmt: skip
DEFAULT_UNIT = 2  # 元, US dollars, percent
EXPORT_UNIT: dict[Kind, tuple[str, str]] = {  # (en, zh) header suffixes of the exported unit
    Kind.MONEY: (" (CNY)", "(元)"),
    Kind.USD: (" (USD)", "(美元)"),
    Kind.PERCENT: (" (%)", "(%)"),
}

TIER_NAMES: dict[Tier, tuple[str, ...]] = {  # English label, Chinese name, other names officials write
    Tier.INNOVATIVE_SME: ("Innovative SME", "创新型中小企业", "创新型中小", "innovative"),
    Tier.SPECIALISED_SME: (
        "Specialised SME", "专精特新中小企业", "专精特新", "省级专精特新中小企业", "specialized sme",
    ),
    Tier.LITTLE_GIANT: (
        "Little giant", "专精特新“小巨人”", "小巨人", "小巨人企业", "专精特新小巨人企业",
        "国家级专精特新小巨人", "国家级专精特新小巨人企业",
    ),
    Tier.SINGLE_CHAMPION: (
        "Single champion", "单项冠军", "单项冠军企业", "制造业单项冠军", "制造业单项冠军企业",
    ),
    Tier.LEADER: ("Leader", "领军企业", "行业领军企业", "leading enterprise"),
    Tier.MAJOR_PROJECT_LEAD_A: ("Major project lead (A)", "重大项目牵头单位(A类)"),
    Tier.MAJOR_PROJECT_LEAD_B: ("Major project lead (B)", "重大项目牵头单位(B类)"),
}  # fmt: skip
STATUS_NAMES: dict[ProjectStatus, tuple[str, ...]] = {
    ProjectStatus.SIGNED: ("Signed", "已签约", "签约"),
    ProjectStatus.UNDER_CONSTRUCTION: ("Under construction", "在建", "建设中", "已开工", "开工"),
    ProjectStatus.IN_PRODUCTION: ("In production", "已投产", "投产", "建成投产"),
}
TRUE_WORDS = ("是", "yes", "true", "1", "y", "√", "✓")
FALSE_WORDS = ("否", "no", "false", "0", "n", "×", "✗")
BOOL_EXPORT = {"en": ("yes", "no"), "zh": ("是", "否")}

LIST_SEPARATORS = re.compile(r"[;；,，、\n\r]+")
# Removed before comparing names: spacing, quotes of any style, and the marks templates put on headers.
NOISE = re.compile(r"[\s_\-*:'\"“”‘’「」『』〝〞]+")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
CURRENCY_MARKS = re.compile(r"^[¥$]|[元]$")
DATE_TEXT = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
MONTH_TEXT = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?")
MONTH_COMPACT = re.compile(r"(\d{4})(\d{2})")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"[0-9+\-() ]{3,40}")  # as the API's contact_phone


def norm(text: str) -> str:
    """The comparable form of a header or a name: NFKC (full-width → half-width), case-folded, without
    spaces, underscores, hyphens, quotes and asterisks."""
    return NOISE.sub("", unicodedata.normalize("NFKC", text).casefold())


# --- the datasets --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A column: its record key, kind, whether a row must have it, and its headers (the first two, English
    and Chinese, are what exports write)."""

    name: str
    kind: Kind
    required: bool
    aliases: tuple[str, ...]
    max_chars: int | None = None
    maximum: int | None = None  # in stored units (the API's bound for the same field)

    def label(self, lang: Lang) -> str:
        base = self.aliases[0 if lang == "en" else 1]
        suffix = EXPORT_UNIT.get(self.kind)
        return base + (suffix[0 if lang == "en" else 1] if suffix else "")

    def exact_names(self) -> set[str]:
        """Headers meaning this field in its default unit: a unit-suffixed name ('output_fen') is not one."""
        names = {norm(alias) for alias in self.aliases}
        if self.kind not in UNITS:
            names.add(norm(self.name))
        return names


def _f(
    name: str,
    kind: Kind,
    *aliases: str,
    required: bool = False,
    max_chars: int | None = None,
    maximum: int | None = None,
) -> Field:
    return Field(name, kind, required, aliases, max_chars, maximum)


CREDIT_CODE_ALIASES = (
    "Unified social credit code", "统一社会信用代码", "credit code", "信用代码", "社会信用代码",
    "企业统一社会信用代码", "统一代码",
)  # fmt: skip
ENTERPRISE_NAME = _f("enterprise_name", Kind.TEXT, "Enterprise", "企业名称", "enterprise name", "公司名称",
                     "单位名称", max_chars=200)  # fmt: skip

ENTERPRISES = (
    _f("credit_code", Kind.CREDIT_CODE, *CREDIT_CODE_ALIASES, required=True),
    _f("name", Kind.TEXT, "Name", "企业名称", "enterprise name", "company name", "公司名称", "单位名称",
       required=True, max_chars=200),
    _f("name_en", Kind.TEXT, "English name", "英文名称", "企业英文名称", max_chars=200),
    _f("district", Kind.TEXT, "District", "镇街道", "所在镇街", "所在镇街道", "镇街", "所属镇街", "镇(街道)",
       max_chars=100),
    _f("park", Kind.TEXT, "Park", "园区", "所在园区", "所属园区", "industrial park", max_chars=100),
    _f("segments", Kind.SEGMENTS, "Segments", "产业链环节", "细分领域", "所属产业链环节", "产业链细分领域",
       "chain segments"),
    _f("tier", Kind.TIER, "Tier", "梯度层级", "培育层级", "企业梯度", "梯度"),
    _f("tier_granted_on", Kind.DATE, "Tier granted on", "认定日期", "层级认定日期", "层级认定时间",
       "认定时间", "tier date"),
    _f("above_size", Kind.BOOL, "Above designated size", "规上", "是否规上", "规上企业", "是否规上企业",
       "above size"),
    _f("employees", Kind.INT, "Employees", "从业人员", "员工人数", "从业人员数", "职工人数",
       maximum=MAX_COUNT),
    _f("rd_intensity_bp", Kind.PERCENT, "R&D intensity", "研发强度", "研发投入强度", "研发投入占比",
       "rd intensity", maximum=MAX_BASIS_POINTS),
    _f("patents", Kind.INT, "Invention patents", "发明专利数", "发明专利", "有效发明专利数", "patents",
       maximum=MAX_COUNT),
    _f("founded_on", Kind.DATE, "Founded on", "成立日期", "成立时间", "注册日期", "founded"),
    _f("contact_name", Kind.TEXT, "Contact", "联系人", "contact name", max_chars=100),
    _f("contact_phone", Kind.PHONE, "Phone", "联系电话", "电话", "手机", "手机号码", "contact phone",
       max_chars=40),
    _f("contact_email", Kind.EMAIL, "Email", "邮箱", "电子邮箱", "contact email", "e-mail", max_chars=200),
)  # fmt: skip
PROJECTS = (
    _f("name", Kind.TEXT, "Project", "项目名称", "project name", "项目", required=True, max_chars=200),
    _f("credit_code", Kind.CREDIT_CODE, *CREDIT_CODE_ALIASES, required=True),
    ENTERPRISE_NAME,
    _f("segment", Kind.SEGMENT, "Segment", "产业链环节", "细分领域", "所属环节", "所属产业链环节",
       required=True),
    _f("investment_fen", Kind.MONEY, "Investment", "总投资", "投资总额", "计划总投资", "total investment",
       required=True),
    _f("foreign_funded", Kind.BOOL, "Foreign-funded", "是否外资", "外资项目", "是否外资项目"),
    _f("foreign_usd_cents", Kind.USD, "Foreign investment", "外资金额", "合同外资", "合同外资金额"),
    _f("signed_on", Kind.DATE, "Signed on", "签约日期", "签约时间", required=True),
    _f("status", Kind.STATUS, "Status", "项目状态", "进展状态", "状态", required=True),
    _f("construction_on", Kind.DATE, "Construction started", "开工日期", "开工时间"),
    _f("production_on", Kind.DATE, "Production started", "投产日期", "投产时间"),
    _f("department", Kind.TEXT, "Lead department", "牵头部门", "责任部门", max_chars=100),
    _f("chain_leader", Kind.TEXT, "Chain leader", "链长", max_chars=100),
)  # fmt: skip
OUTPUT = (
    _f("credit_code", Kind.CREDIT_CODE, *CREDIT_CODE_ALIASES, required=True),
    ENTERPRISE_NAME,
    _f("month", Kind.MONTH, "Month", "月份", "统计月份", "年月", "报告期", required=True),
    _f("output_fen", Kind.MONEY, "Output", "产值", "工业总产值", "总产值", "output value", required=True),
    _f("revenue_fen", Kind.MONEY, "Revenue", "营业收入", "营收", "主营业务收入"),
    _f("above_size", Kind.BOOL, "Above designated size", "规上", "是否规上", "规上企业", "above size"),
)  # fmt: skip
DATASETS: dict[str, tuple[Field, ...]] = {"enterprises": ENTERPRISES, "projects": PROJECTS, "output": OUTPUT}
KEYS: dict[str, tuple[str, ...]] = {
    "enterprises": ("credit_code",),
    "projects": ("name",),
    "output": ("credit_code", "month"),
}


class SegmentNames:
    """The taxonomy as a reader of names: a segment's code, Chinese or English name (in any case or
    spacing) gives its code; a code gives the name to show."""

    def __init__(self, segments: Iterable[tuple[str, str, str]]) -> None:
        self._names: dict[str, tuple[str, str]] = {}
        self._codes: dict[str, str] = {}
        triples = list(segments)
        for code, zh, en in triples:
            self._names[code] = (en, zh)
        # Codes first, so that a name that happens to equal another segment's code never hides it.
        for position in range(3):
            for triple in triples:
                self._codes.setdefault(norm(triple[position]), triple[0])

    def code_for(self, text: str) -> str | None:
        return self._codes.get(norm(text))

    def label(self, code: str, lang: Lang) -> str:
        """The name an official reads, or the code where the name would not read back as this segment."""
        en, zh = self._names.get(code, (code, code))
        name = en if lang == "en" else zh
        ok = self.code_for(name) == code and not LIST_SEPARATORS.search(name)
        return name if ok else code


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # as a spreadsheet shows it: the header is row 1
    field: str  # the field's name; "" for a column no field claims
    value: str  # the cell as the file has it
    key: str
    params: dict[str, object]


@dataclass(frozen=True, slots=True)
class Parsed:
    records: list[Record]  # the rows without errors, each with its "row"
    errors: list[RowError]
    columns: tuple[str, ...] = ()  # the fields the file has a column for (absent ≠ blank for updates)


def describe(error: RowError, dataset: str, lang: Lang) -> str:
    """'Row 3, Founded on: …' in the reader's language."""
    message = t(error.key, lang, **error.params)
    by_name = {f.name: f for f in DATASETS[dataset]}
    column = by_name[error.field].label(lang) if error.field in by_name else ""
    if column:
        return t("registry.import.at-row-column", lang, row=error.row, column=column, message=message)
    return t("registry.import.at-row", lang, row=error.row, message=message)


# --- headers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    index: int
    field: Field
    unit: int  # power of ten from the written unit to the stored one


def _column_letter(index: int) -> str:
    letters = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _unit_after(rest: str, kind: Kind) -> int | None:
    """The unit a header names after a field's name: '(万元)', '/万元', '万元' or 'fen'."""
    inner = rest.strip("()[]/（）")
    return UNITS.get(kind, {}).get(inner) if inner else None


def _resolve(header: str, fields: Sequence[Field]) -> tuple[Field, int | None] | None:
    """The field a normalised header names, with the unit it names (None: the field's default)."""
    for f in fields:
        if header in f.exact_names():
            return f, None
    for f in fields:
        if f.kind not in UNITS:
            continue
        for name in sorted(f.exact_names(), key=len, reverse=True):
            unit = _unit_after(header[len(name) :], f.kind) if header.startswith(name) else None
            if unit is not None:
                return f, unit
    return None


def _unit_suffix(header: str, kind: Kind) -> int | None:
    """A unit at the end of a header no alias knows ('投资额(万元)'), for a mapped column."""
    for unit in sorted(UNITS.get(kind, {}), key=len, reverse=True):
        if header.endswith(f"({unit})") or header.endswith(unit):
            return UNITS[kind][unit]
    return None


def _columns(
    fields: Sequence[Field], table: Table, mapping: Mapping[str, str] | None
) -> tuple[list[_Column], list[RowError]]:
    mapped = {norm(header): target for header, target in (mapping or {}).items()}
    by_name = {f.name: f for f in fields}
    columns: list[_Column] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}
    for index, header in enumerate(table.header):
        key = norm(header)
        letter = _column_letter(index)
        found: tuple[Field, int | None] | None
        if key in mapped:
            target = mapped[key]
            if target == IGNORE:
                continue
            found = (by_name[target], None) if target in by_name else _resolve(norm(target), fields)
            if found is None:
                errors.append(_header_error("registry.import.unknown-field", header, field=target))
                continue
            if found[1] is None:
                found = (found[0], _unit_suffix(key, found[0].kind))
        elif not key:
            if any(row[index] is not None for row in table.rows):
                errors.append(_header_error("registry.import.unnamed-column", "", column=letter))
            continue
        else:
            found = _resolve(key, fields)
            if found is None:
                errors.append(_header_error("registry.import.unknown-column", header, column=letter))
                continue
        target_field, unit = found
        if target_field.name in seen:
            errors.append(
                RowError(
                    1,
                    target_field.name,
                    header,
                    "registry.import.duplicate-column",
                    {"header": header, "first": seen[target_field.name], "column": letter},
                )
            )
            continue
        seen[target_field.name] = header
        columns.append(_Column(index, target_field, DEFAULT_UNIT if unit is None else unit))
    for f in fields:
        if f.required and f.name not in seen:
            errors.append(
                RowError(
                    1,
                    f.name,
                    "",
                    "registry.import.missing-column",
                    {"en": f.label("en"), "zh": f.label("zh")},
                )
            )
    return columns, errors


def _header_error(key: str, header: str, **params: object) -> RowError:
    return RowError(1, "", header, key, {"header": header, **params})


# --- cells ---------------------------------------------------------------------------------------


class _Bad(Exception):
    """A cell that does not hold what its column says."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def show(cell: Cell) -> str:
    """A cell as the official typed it, for error messages."""
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.15g}"
    if isinstance(cell, datetime) and cell.time() == datetime.min.time():
        return cell.date().isoformat()
    if isinstance(cell, date):
        return cell.isoformat()
    return str(cell).strip()


def _text(cell: Cell, f: Field) -> str:
    # A phone number Excel stored as a number loses its ".0".
    text = str(int(cell)) if isinstance(cell, float) and cell.is_integer() else show(cell)
    if f.max_chars is not None and len(text) > f.max_chars:
        raise _Bad("registry.import.too-long", max=f.max_chars, length=len(text))
    return text


def _email(cell: Cell, f: Field) -> str:
    text = _text(cell, f)
    if not EMAIL.fullmatch(text):
        raise _Bad("registry.import.bad-email")
    return text


def _credit_code(cell: Cell) -> str:
    code = str(cell).strip() if not isinstance(cell, float) else show(cell)
    problem = credit_codes.problem(code)
    if problem is not None:
        raise _Bad(problem.key, **problem.params, code=code)
    return code


def _decimal(cell: Cell) -> Decimal:
    """An exact number: Excel's floats to their 15 significant digits, text with thousands separators."""
    if isinstance(cell, bool) or cell is None or isinstance(cell, date):
        raise _Bad("registry.import.bad-number")
    if isinstance(cell, int | Decimal):
        number = Decimal(cell)
    elif isinstance(cell, float):
        number = Decimal(f"{cell:.15g}")
    else:
        text = CURRENCY_MARKS.sub("", cell.strip().replace(" ", "").replace("￥", "¥"))
        if THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        if len(text) > MAX_NUMBER_CHARS or not NUMBER.fullmatch(text):
            raise _Bad("registry.import.bad-number")
        number = Decimal(text)
    if not number.is_finite():
        raise _Bad("registry.import.bad-number")
    return number


def _minor(number: Decimal, places: int, limit: int) -> int:
    """`number` in a unit 10^places times the stored one, as a whole count of stored units."""
    if number < 0:
        raise _Bad("registry.import.negative")
    if number.adjusted() > 30:
        raise _Bad("registry.import.too-big", limit=limit)
    with localcontext() as context:
        context.prec = 100
        scaled = number.scaleb(places)
        if scaled != scaled.to_integral_value():
            raise _Bad("registry.import.too-many-places", places=places)
    if scaled > limit:
        raise _Bad("registry.import.too-big", limit=limit)
    return int(scaled)


def _amount(cell: Cell, column: _Column) -> int:
    places = column.unit
    if column.field.kind is Kind.PERCENT and isinstance(cell, str) and cell.strip().endswith("%"):
        cell, places = cell.strip()[:-1], 2  # "4.3%" is percent whatever the header says
    return _minor(_decimal(cell), places, column.field.maximum or MAX_MINOR_UNITS)


def _count(cell: Cell, f: Field) -> int:
    number = _decimal(cell)
    if number != number.to_integral_value():
        raise _Bad("registry.import.not-whole")
    return _minor(number, 0, f.maximum or MAX_COUNT)


def _phone(cell: Cell, f: Field) -> str:
    text = _text(cell, f)
    if not PHONE.fullmatch(text):
        raise _Bad("registry.import.bad-phone")
    return text


def _bool(cell: Cell) -> bool:
    if isinstance(cell, bool):
        return cell
    word = norm(show(cell))
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _Bad("registry.import.bad-bool")


def _checked_date(year: int, month: int, day: int) -> date:
    try:
        found = date(year, month, day)
    except ValueError:
        raise _Bad("registry.import.bad-date") from None
    if not EARLIEST <= found <= LATEST:
        raise _Bad("registry.import.bad-date")
    return found


def _date(cell: Cell) -> date:
    if isinstance(cell, datetime):
        return _checked_date(cell.year, cell.month, cell.day)
    if isinstance(cell, date):
        return _checked_date(cell.year, cell.month, cell.day)
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        if isinstance(cell, int) and DATE_COMPACT.fullmatch(str(cell)):
            return _date(str(cell))
        if 61 <= cell < 73_051:  # an Excel serial date from 1900-03-01 to 2099-12-31
            return EXCEL_EPOCH + timedelta(days=int(cell))
        raise _Bad("registry.import.bad-date")
    text = show(cell)
    match = DATE_TEXT.fullmatch(text) or DATE_COMPACT.fullmatch(text)
    if match is None:
        raise _Bad("registry.import.bad-date")
    return _checked_date(int(match[1]), int(match[2]), int(match[3]))


def _month(cell: Cell) -> tuple[int, int]:
    if isinstance(cell, date):
        return cell.year, cell.month
    if isinstance(cell, float):
        raise _Bad("registry.import.bad-month")  # 2024.10 is stored as 2024.1: October or January?
    text = show(cell)
    match = MONTH_TEXT.fullmatch(text) or MONTH_COMPACT.fullmatch(text)
    if match is None:
        try:
            day = _date(text)
        except _Bad:
            raise _Bad("registry.import.bad-month") from None
        return day.year, day.month
    year, month = int(match[1]), int(match[2])
    if not (1 <= month <= 12 and EARLIEST.year <= year <= LATEST.year):
        raise _Bad("registry.import.bad-month")
    return year, month


def _lookup(names: Mapping[E, tuple[str, ...]]) -> dict[str, E]:
    """Every way of writing a value (its code and its names), normalised, to the value."""
    found: dict[str, E] = {}
    for value in names:
        for word in (str(value), *names[value]):
            found.setdefault(norm(word), value)
    return found


TIERS = _lookup(TIER_NAMES)
STATUSES = _lookup(STATUS_NAMES)


def _tier(cell: Cell) -> Tier:
    found = TIERS.get(norm(show(cell)))
    if found is None:
        raise _Bad("registry.import.unknown-tier")
    return found


def _status(cell: Cell) -> ProjectStatus:
    found = STATUSES.get(norm(show(cell)))
    if found is None:
        raise _Bad("registry.import.unknown-status")
    return found


def _segment(text: str, segments: SegmentNames) -> str:
    code = segments.code_for(text)
    if code is None:
        raise _Bad("registry.import.unknown-segment", segment=text)
    return code


def _segments(cell: Cell, segments: SegmentNames) -> list[str]:
    codes: list[str] = []
    for item in LIST_SEPARATORS.split(show(cell)):
        if item.strip():
            code = _segment(item.strip(), segments)
            if code not in codes:
                codes.append(code)
    return codes


Reader = Callable[[Cell, _Column, SegmentNames], object]
READERS: dict[Kind, Reader] = {
    Kind.TEXT: lambda cell, column, _: _text(cell, column.field),
    Kind.EMAIL: lambda cell, column, _: _email(cell, column.field),
    Kind.CREDIT_CODE: lambda cell, _, __: _credit_code(cell),
    Kind.SEGMENTS: lambda cell, _, segments: _segments(cell, segments),
    Kind.SEGMENT: lambda cell, _, segments: _segment(show(cell), segments),
    Kind.TIER: lambda cell, _, __: _tier(cell),
    Kind.BOOL: lambda cell, _, __: _bool(cell),
    Kind.INT: lambda cell, column, _: _count(cell, column.field),
    Kind.PHONE: lambda cell, column, _: _phone(cell, column.field),
    Kind.MONEY: lambda cell, column, _: _amount(cell, column),
    Kind.USD: lambda cell, column, _: _amount(cell, column),
    Kind.PERCENT: lambda cell, column, _: _amount(cell, column),
    Kind.DATE: lambda cell, _, __: _date(cell),
    Kind.MONTH: lambda cell, _, __: _month(cell),
    Kind.STATUS: lambda cell, _, __: _status(cell),
}


# --- rows ----------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """What checking a file's rows accumulates: errors, and where each key was first seen."""

    dataset: str
    known_credit_codes: set[str] | None
    errors: list[RowError] = field(default_factory=list)
    first_row: dict[tuple[object, ...], int] = field(default_factory=dict)

    def fail(self, row: int, name: str, value: str, key: str, **params: object) -> None:
        self.errors.append(RowError(row, name, value, key, {"value": value, **params}))


def _blank_record(fields: Sequence[Field], row: int) -> Record:
    record: Record = {f.name: None for f in fields}
    record["row"] = row
    if "segments" in record:
        record["segments"] = []
    return record


def _cross_check(record: Record, bad: set[str], rows: _Rows) -> None:
    """A project is foreign-funded exactly when it has a foreign amount; a blank flag follows the amount."""
    if "foreign_funded" not in record or {"foreign_funded", "foreign_usd_cents"} & bad:
        return
    row = int(str(record["row"]))
    amount = record["foreign_usd_cents"]
    has_amount = isinstance(amount, int) and amount > 0
    if record["foreign_funded"] is None:
        record["foreign_funded"] = has_amount
    if record["foreign_funded"] and not has_amount:
        rows.fail(row, "foreign_usd_cents", show(amount if isinstance(amount, int) else None),
                  "registry.import.foreign-needs-amount")  # fmt: skip
        bad.add("foreign_usd_cents")
    elif not record["foreign_funded"] and has_amount:
        rows.fail(row, "foreign_usd_cents", str(amount), "registry.import.amount-needs-foreign")
        bad.add("foreign_usd_cents")
    elif not has_amount:
        record["foreign_usd_cents"] = None  # a 0 for a domestic project is no amount


def _check_keys(record: Record, bad: set[str], rows: _Rows) -> None:
    row = int(str(record["row"]))
    code = record.get("credit_code")
    if (
        rows.dataset != "enterprises"
        and rows.known_credit_codes is not None
        and isinstance(code, str)
        and "credit_code" not in bad
        and code not in rows.known_credit_codes
    ):
        rows.fail(row, "credit_code", code, "registry.import.unknown-enterprise")
        bad.add("credit_code")
    names = KEYS[rows.dataset]
    if bad & set(names) or any(record[name] is None for name in names):
        return
    key = tuple(record[name] for name in names)
    first = rows.first_row.setdefault(key, row)
    if first != row:
        shown = " ".join(f"{v[0]:04d}-{v[1]:02d}" if isinstance(v, tuple) else str(v) for v in key)
        rows.fail(row, names[0], shown, "registry.import.duplicate", first_row=first)
        bad.add(names[0])


def parse(
    dataset: str,
    table: Table,
    *,
    segments: SegmentNames,
    known_credit_codes: set[str] | None = None,
    mapping: dict[str, str] | None = None,
) -> Parsed:
    """The file's rows as canonical records, and every problem with its row and field. Blank rows are
    skipped; `known_credit_codes` (when given) are the enterprises projects and output may name."""
    fields = DATASETS[dataset]
    columns, header_errors = _columns(fields, table, mapping)
    rows = _Rows(dataset, known_credit_codes, errors=header_errors)
    records: list[Record] = []
    for index, cells in enumerate(table.rows):
        if all(cell is None for cell in cells):
            continue
        row = index + 2
        record = _blank_record(fields, row)
        bad: set[str] = set()
        for column in columns:
            cell = cells[column.index] if column.index < len(cells) else None
            name = column.field.name
            if cell is None:
                if column.field.required:
                    rows.fail(row, name, "", "registry.import.required")
                    bad.add(name)
                continue
            try:
                record[name] = READERS[column.field.kind](cell, column, segments)
            except _Bad as problem:
                rows.fail(row, name, show(cell), problem.key, **problem.params)
                bad.add(name)
        _cross_check(record, bad, rows)
        _check_keys(record, bad, rows)
        if not bad and not any(f.required and f.name not in {c.field.name for c in columns} for f in fields):
            records.append(record)
    return Parsed(records, rows.errors, tuple(c.field.name for c in columns))


# --- export --------------------------------------------------------------------------------------


def _export_value(value: object, kind: Kind, lang: Lang, segments: SegmentNames | None) -> Cell:
    if value is None:
        return None
    if kind in (Kind.MONEY, Kind.USD, Kind.PERCENT) and isinstance(value, int):
        return Decimal(value).scaleb(-2)
    if kind is Kind.BOOL:
        return BOOL_EXPORT[lang][0 if value else 1]
    if kind is Kind.MONTH and isinstance(value, tuple):
        return f"{value[0]:04d}-{value[1]:02d}"
    if kind is Kind.TIER and isinstance(value, Tier):
        return TIER_NAMES[value][0 if lang == "en" else 1]
    if kind is Kind.STATUS and isinstance(value, ProjectStatus):
        return STATUS_NAMES[value][0 if lang == "en" else 1]
    if kind is Kind.SEGMENT:
        return segments.label(str(value), lang) if segments else str(value)
    if kind is Kind.SEGMENTS and isinstance(value, list):
        return "; ".join(segments.label(str(code), lang) if segments else str(code) for code in value)
    if isinstance(value, int | date):
        return value
    return str(value)


def headers(dataset: str, lang: Lang) -> list[str]:
    """The header row an export (or a blank template) has."""
    return [f.label(lang) for f in DATASETS[dataset]]


def export_table(
    dataset: str, records: Iterable[Mapping[str, object]], lang: Lang, *, segments: SegmentNames | None = None
) -> tuple[list[str], list[list[Cell]]]:
    """Records (with the keys `parse` gives; missing keys are blank) as a header and rows: amounts as exact
    yuan or dollars with two decimals, percent with two decimals, months 'YYYY-MM', names in `lang`
    (segments as codes when no `segments` is given)."""
    fields = DATASETS[dataset]
    rows = [[_export_value(record.get(f.name), f.kind, lang, segments) for f in fields] for record in records]
    return headers(dataset, lang), rows
