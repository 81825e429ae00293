"""The registry's spreadsheets (pure): reading CSV and XLSX files officials keep, matching their headers,
reading their cells to canonical values, reporting every problem by row and field, and exports that read
back to the same records in either language and format."""

from __future__ import annotations

import io
import re
import tomllib
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from suanwang.i18n import catalogue, t
from suanwang.registry import datasets, tabular
from suanwang.registry.datasets import SegmentNames, describe, export_table, parse
from suanwang.registry.models import ProjectStatus, Tier
from suanwang.registry.tabular import Table, TableError, read_table, write_csv, write_xlsx
from suanwang.tenants.credit_code import ALPHABET, complete
from tests.helpers import has_cjk

SRC = Path(__file__).resolve().parent.parent / "src" / "suanwang"
TAXONOMY = tomllib.loads((SRC / "registry" / "taxonomy.toml").read_text(encoding="utf-8"))["segment"]
SEGMENTS = SegmentNames((s["code"], s["zh"], s["en"]) for s in TAXONOMY)
CODES = [s["code"] for s in TAXONOMY]
PROPERTIES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

A = complete("91330482MA2B0001A")  # valid codes, made the way the demo makes them
B = complete("91330482MA2B0002B")
C = complete("91330482MA2B0003C")


def table(header: list[str], *rows: list[Any]) -> Table:
    return Table(header, [list(row) for row in rows])


def xlsx(*rows: list[Any], formats: dict[str, str] | None = None, title: str = "Sheet1") -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    for ref, number_format in (formats or {}).items():
        sheet[ref].number_format = number_format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def problems(parsed: datasets.Parsed) -> set[tuple[int, str, str]]:
    return {(e.row, e.field, e.key) for e in parsed.errors}


def one(dataset: str, header: list[str], row: list[Any], **kwargs: Any) -> dict[str, Any]:
    parsed = parse(dataset, table(header, row), segments=SEGMENTS, **kwargs)
    assert parsed.errors == [], parsed.errors
    (record,) = parsed.records
    return record


# --- reading files -------------------------------------------------------------------------------

CSV_TEXT = "统一社会信用代码,企业名称,产值（万元）\r\n" + f'{A},"甲公司, 平湖",12.5\r\n'
EXPECTED = Table(["统一社会信用代码", "企业名称", "产值（万元）"], [[A, "甲公司, 平湖", "12.5"]])


@pytest.mark.parametrize(
    "data",
    [CSV_TEXT.encode("utf-8"), b"\xef\xbb\xbf" + CSV_TEXT.encode("utf-8"), CSV_TEXT.encode("gbk")],
    ids=["utf-8", "utf-8-bom", "gbk"],
)
def test_csv_in_utf8_with_or_without_bom_or_in_gbk_reads_the_same(data):
    assert read_table(data, "csv") == EXPECTED


def test_trailing_blank_rows_and_columns_are_dropped_and_inner_blank_rows_keep_row_numbers():
    data = b"a,b,,\n1,,,\n,,,\n2,x,,\n,,,\n , ,,\n"
    found = read_table(data, "csv")
    assert found.header == ["a", "b"]
    assert found.rows == [["1", None], [None, None], ["2", "x"]]  # row 4 of the file is rows[2]


def test_xlsx_cells_keep_their_excel_types():
    data = xlsx(
        ["n", "f", "d", "b", "p", "s"],
        [42, 1234.5, datetime(2024, 3, 1), True, 0.043, "  text  ", None, "  "],
        formats={"C2": "yyyy-mm-dd", "E2": "0.0%"},
    )
    found = read_table(data, "xlsx")
    assert found.header == ["n", "f", "d", "b", "p", "s"]
    assert found.rows == [[42, 1234.5, datetime(2024, 3, 1), True, "4.3%", "  text  "]]
    assert isinstance(found.rows[0][0], int) and isinstance(found.rows[0][1], float)


def test_xlsx_reads_the_named_sheet_and_says_which_sheets_there_are():
    book = Workbook()
    first = book.active
    assert first is not None
    first.append(["x"])
    second = book.create_sheet("产值")
    second.append(["月份"])
    second.append(["2024-09"])
    out = io.BytesIO()
    book.save(out)
    assert read_table(out.getvalue(), "xlsx", sheet="产值") == Table(["月份"], [["2024-09"]])
    with pytest.raises(TableError) as raised:
        read_table(out.getvalue(), "xlsx", sheet="企业")
    assert raised.value.key == "registry.import.no-sheet"
    assert raised.value.params["sheets"] == "Sheet、产值"


@pytest.mark.parametrize(
    ("data", "fmt", "key"),
    [
        (xlsx(["a"]), "csv", "registry.import.not-csv"),
        (b"a,b\x00,c\n", "csv", "registry.import.not-csv"),
        (b"a,b\n1,2\n", "xlsx", "registry.import.not-xlsx"),
        (b"PK\x03\x04 broken zip", "xlsx", "registry.import.not-xlsx"),
        (b"", "csv", "registry.import.no-header"),
        (b",,\n1,2,3\n", "csv", "registry.import.no-header"),
        (b"a\n", "ods", "registry.import.unknown-format"),
    ],
)
def test_a_file_that_is_not_what_its_format_says_is_a_clear_error(data, fmt, key):
    with pytest.raises(TableError) as raised:
        read_table(data, fmt)
    assert raised.value.key == key
    t(raised.value.key, "zh", **raised.value.params)  # renders


def test_limits_on_size_rows_and_columns():
    with pytest.raises(TableError) as raised:
        read_table(b"a\n" + b"x" * tabular.MAX_BYTES, "csv")
    assert raised.value.key == "registry.import.too-large"
    assert raised.value.params == {"size_mb": "10.0", "limit_mb": 10}
    at_limit = b"a\n" + b"1\n" * tabular.MAX_ROWS + b"\n" * 1000  # trailing blank rows do not count
    assert len(read_table(at_limit, "csv").rows) == 50_000
    with pytest.raises(TableError) as raised:
        read_table(b"a\n" + b"1\n" * (tabular.MAX_ROWS + 1), "csv")
    assert raised.value.params == {"limit": 50_000}
    with pytest.raises(TableError) as raised:
        read_table(("x," * 200 + "x\n").encode(), "csv")
    assert raised.value.key == "registry.import.too-many-columns"


def test_write_csv_has_a_bom_makes_formulas_inert_and_reads_back_exactly():
    rows = [['=HYPERLINK("http://x")', "-5", "'=already", Decimal("12.30"), date(2024, 3, 1), None, 7]]
    data = write_csv(["名称", "a", "b", "c", "d", "e", "f"], rows)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and ",'-5," in text and "''=already" in text
    assert "12.30,2024-03-01,,7" in text
    back = read_table(data, "csv")
    assert back.rows == [['=HYPERLINK("http://x")', "-5", "'=already", "12.30", "2024-03-01", None, "7"]]


def test_write_xlsx_bold_frozen_header_dates_amounts_and_no_formulas():
    header = ["企业名称", "金额(元)", "日期"]
    data = write_xlsx(header, [["=1+1", Decimal("1234.50"), date(2024, 3, 1)]], "企业名录: 2024/09")
    book = load_workbook(io.BytesIO(data))
    sheet = book.active
    assert sheet is not None
    assert sheet.title == "企业名录  2024 09"
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.bold for cell in sheet[1])
    name, amount, day = sheet[2]
    assert name.data_type == "s" and name.value == "'=1+1"
    assert amount.value == 1234.5 and amount.number_format == "0.00"
    assert day.value == datetime(2024, 3, 1) and day.number_format == "yyyy-mm-dd"
    assert sheet.column_dimensions["A"].width == 10  # 4 CJK characters count 8, plus 2
    assert read_table(data, "xlsx").rows == [["=1+1", 1234.5, datetime(2024, 3, 1)]]


# --- headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["统一社会信用代码", " 统一社会信用代码 ", "*统一社会信用代码", "Unified Social Credit Code",
     "credit_code", "CREDIT CODE", "ｃｒｅｄｉｔ　ｃｏｄｅ"],
)  # fmt: skip
def test_headers_match_whatever_the_case_spacing_width_or_language(header):
    record = one("enterprises", [header, "企业名称"], [A, "甲"])
    assert record["credit_code"] == A


@pytest.mark.parametrize(
    ("header", "cell", "fen"),
    [
        ("产值", "1234.56", 123_456),
        ("产值(元)", "1234.56", 123_456),
        ("产值（万元）", "1.234567", 1_234_567),
        ("产值 (万元)", 12, 12_000_000),
        ("产值/亿元", "2.5", 25_000_000_000),
        ("产值(亿元)", "0.0000000001", 1),
        ("output_fen", "12345", 12_345),
        ("Output (CNY)", "1,234.50", 123_450),
        ("Output (10k CNY)", 1.5, 1_500_000),
        ("产值", "¥99", 9_900),
    ],
)
def test_money_units_from_the_header_are_exact(header, cell, fen):
    record = one("output", ["统一社会信用代码", "月份", header], [A, "2024-09", cell])
    assert record["output_fen"] == fen


@pytest.mark.parametrize(
    ("header", "cell", "places"),
    [
        ("产值", "1.234", 2),
        ("产值(万元)", "1.2345678", 6),
        ("产值(亿元)", "1.00000000001", 10),
        ("output_fen", "1.5", 0),
    ],
)
def test_more_decimals_than_the_unit_allows_is_an_error(header, cell, places):
    parsed = parse("output", table(["信用代码", "月份", header], [A, "2024-09", cell]), segments=SEGMENTS)
    (error,) = parsed.errors
    assert (error.row, error.field, error.key) == (2, "output_fen", "registry.import.too-many-places")
    assert error.params["places"] == places and parsed.records == []


def test_foreign_amounts_in_us_dollars_with_their_units():
    header = [
        "项目名称",
        "信用代码",
        "产业链环节",
        "总投资(亿元)",
        "是否外资",
        "外资金额(万美元)",
        "签约日期",
        "项目状态",
    ]
    record = one(
        "projects", header, ["算力中心", A, "数据中心", "12.3456", "是", "1500.5", "2024/3/1", "在建"]
    )
    assert record["investment_fen"] == 123_456_000_000
    assert record["foreign_usd_cents"] == 1_500_500_000
    assert record["foreign_funded"] is True and record["status"] is ProjectStatus.UNDER_CONSTRUCTION


def test_a_callers_mapping_reads_headers_no_alias_knows():
    header = ["代码", "本月产值（万元）", "所属期", "备注"]
    row = [A, "3", "2024年9月", "不导入"]
    mapping = {"代码": "credit_code", "本月产值(万元)": "output_fen", "所属期": "month", "备注": ""}
    record = one("output", header, row, mapping=mapping)
    assert (record["credit_code"], record["output_fen"], record["month"]) == (A, 3_000_000, (2024, 9))
    by_alias = one("output", header, row, mapping={**mapping, "本月产值（万元）": "产值"})
    assert by_alias["output_fen"] == 3_000_000
    parsed = parse("output", table(header, row), segments=SEGMENTS, mapping={**mapping, "备注": "remarks"})
    assert problems(parsed) == {(1, "", "registry.import.unknown-field")}


def test_unknown_duplicate_and_missing_columns_are_reported_once_in_row_1():
    header = ["企业名称", "企业名称", "行业", ""]
    rows = [["甲", "甲", "x", None], ["乙", "乙", "y", None]]
    parsed = parse("enterprises", Table(header, rows), segments=SEGMENTS)
    assert problems(parsed) == {
        (1, "name", "registry.import.duplicate-column"),
        (1, "", "registry.import.unknown-column"),
        (1, "credit_code", "registry.import.missing-column"),
    }
    assert parsed.records == []  # no row can be complete without its credit code
    unnamed = parse("enterprises", Table(["信用代码", "企业名称", ""], [[A, "甲", "?"]]), segments=SEGMENTS)
    assert problems(unnamed) == {(1, "", "registry.import.unnamed-column")}


# --- cells ---------------------------------------------------------------------------------------

ENTERPRISE = ["统一社会信用代码", "企业名称"]


@pytest.mark.parametrize(
    ("cell", "tier"),
    [
        ("专精特新中小企业", Tier.SPECIALISED_SME),
        ("专精特新", Tier.SPECIALISED_SME),
        ('专精特新"小巨人"', Tier.LITTLE_GIANT),
        ("专精特新“小巨人”", Tier.LITTLE_GIANT),
        ("专精特新「小巨人」企业", Tier.LITTLE_GIANT),
        ("小巨人", Tier.LITTLE_GIANT),
        ("单项冠军", Tier.SINGLE_CHAMPION),
        ("领军企业", Tier.LEADER),
        ("创新型中小企业", Tier.INNOVATIVE_SME),
        ("Little giant", Tier.LITTLE_GIANT),
        ("little_giant", Tier.LITTLE_GIANT),
        ("innovative_sme", Tier.INNOVATIVE_SME),
    ],
)
def test_tiers_in_the_words_officials_write(cell, tier):
    assert one("enterprises", [*ENTERPRISE, "梯度层级"], [A, "甲", cell])["tier"] is tier


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("是", True), ("否", False), ("YES", True), ("no", False), ("True", True), ("false", False),
     ("1", True), (0, False), ("Y", True), ("n", False), (True, True), (1.0, True)],
)  # fmt: skip
def test_yes_and_no(cell, expected):
    assert one("enterprises", [*ENTERPRISE, "是否规上"], [A, "甲", cell])["above_size"] is expected


@pytest.mark.parametrize(
    "cell",
    ["2024-03-01", "2024/3/1", "2024.3.1", "2024年3月1日", "2024 年 3 月 1 日", "20240301", 20240301,
     "2024-03-01 00:00:00", datetime(2024, 3, 1), date(2024, 3, 1), 45352],
)  # fmt: skip
def test_dates_in_any_common_form_and_excel_serials(cell):
    assert one("enterprises", [*ENTERPRISE, "成立日期"], [A, "甲", cell])["founded_on"] == date(2024, 3, 1)


@pytest.mark.parametrize(
    "cell", ["2024-09", "2024-9", "2024/9", "2024年9月", "2024年09月", "202409", 202409, "2024-09-01",
             datetime(2024, 9, 30), "2024/9/1"],
)  # fmt: skip
def test_months_in_any_common_form(cell):
    assert one("output", ["信用代码", "月份", "产值"], [A, cell, "1"])["month"] == (2024, 9)


@pytest.mark.parametrize(
    ("header", "cell", "bp"),
    [("研发强度(%)", "4.3", 430), ("研发强度", "4.3%", 430), ("研发强度(%)", "4.35%", 435),
     ("研发强度", 12, 1200), ("rd_intensity_bp", 437, 437), ("研发强度（%）", 0.5, 50)],
)  # fmt: skip
def test_percent_to_basis_points(header, cell, bp):
    assert one("enterprises", [*ENTERPRISE, header], [A, "甲", cell])["rd_intensity_bp"] == bp


def test_segments_by_code_or_name_with_any_separator_primary_first():
    cell = "GPU；芯片, ai_accelerators、Data centres\n数据中心;gpu"
    record = one("enterprises", [*ENTERPRISE, "产业链环节"], [A, "甲", cell])
    assert record["segments"] == ["gpu", "chips", "ai_accelerators", "data_centres"]
    assert one("enterprises", ENTERPRISE, [A, "甲"])["segments"] == []


def test_project_statuses():
    header = ["项目名称", "信用代码", "产业链环节", "总投资", "签约日期", "项目状态"]
    for cell, status in [("签约", ProjectStatus.SIGNED), ("已投产", ProjectStatus.IN_PRODUCTION),
                         ("under construction", ProjectStatus.UNDER_CONSTRUCTION)]:  # fmt: skip
        assert one("projects", header, ["p", A, "gpu", "1", "2024-01-01", cell])["status"] is status


def test_a_blank_foreign_flag_follows_the_amount():
    header = ["项目名称", "信用代码", "产业链环节", "总投资", "签约日期", "项目状态", "外资金额"]
    base = ["p", A, "gpu", "1", "2024-01-01", "签约"]
    assert one("projects", header, [*base, "10"])["foreign_funded"] is True
    domestic = one("projects", header, [*base, "0"])
    assert domestic["foreign_funded"] is False and domestic["foreign_usd_cents"] is None
    parsed = parse("projects", table([*header, "是否外资"], [*base, "10", "否"]), segments=SEGMENTS)
    assert problems(parsed) == {(2, "foreign_usd_cents", "registry.import.amount-needs-foreign")}


def test_output_above_size_is_none_when_the_column_is_absent_and_revenue_is_optional():
    record = one("output", ["信用代码", "月份", "产值"], [A, "2024-09", "1"])
    assert record["above_size"] is None and record["revenue_fen"] is None
    parsed = parse("output", table(["信用代码", "月份", "产值"], [A, "2024-09", "1"]), segments=SEGMENTS)
    assert parsed.columns == ("credit_code", "month", "output_fen")


def test_credit_codes_must_be_among_the_known_enterprises():
    header = ["信用代码", "月份", "产值"]
    parsed = parse(
        "output", table(header, [A, "2024-09", "1"], [B, "2024-09", "1"]), segments=SEGMENTS,
        known_credit_codes={A},
    )  # fmt: skip
    assert problems(parsed) == {(3, "credit_code", "registry.import.unknown-enterprise")}
    assert [r["credit_code"] for r in parsed.records] == [A]


# --- a file with planted errors ------------------------------------------------------------------


def test_every_planted_error_is_reported_by_row_and_field_and_nothing_else():
    wrong_check = A[:17] + ("0" if A[17] != "0" else "1")
    lower = B.lower()
    csv_text = "\n".join(
        [
            "统一社会信用代码,企业名称,产业链环节,成立日期,备注",
            f"{A},甲公司,芯片,2020-01-01,",  # 2: fine
            f"{wrong_check},乙公司,芯片,2020-01-01,",  # 3: bad check character
            f"{lower},丙公司,芯片,2020-01-01,",  # 4: lower-case code
            f"{C},丁公司,量子计算,2020-01-01,",  # 5: unknown segment
            f"{complete('91330482MA2B0004D')},戊公司,芯片,2020-02-30,",  # 6: bad date
            f"{complete('91330482MA2B0005E')},,芯片,2020-01-01,",  # 7: missing name
            f"{A},甲公司重复,芯片,2020-01-01,",  # 8: duplicate credit code
        ]
    )
    parsed = parse("enterprises", read_table(csv_text.encode("gbk"), "csv"), segments=SEGMENTS)
    assert problems(parsed) == {
        (1, "", "registry.import.unknown-column"),
        (3, "credit_code", "credit-code.check"),
        (4, "credit_code", "credit-code.lowercase"),
        (5, "segments", "registry.import.unknown-segment"),
        (6, "founded_on", "registry.import.bad-date"),
        (7, "name", "registry.import.required"),
        (8, "credit_code", "registry.import.duplicate"),
    }
    assert len(parsed.errors) == 7
    assert [r["row"] for r in parsed.records] == [2]
    by_row = {e.row: e for e in parsed.errors}
    assert by_row[3].value == wrong_check and by_row[3].params["code"] == wrong_check
    assert by_row[5].params["segment"] == "量子计算"
    assert by_row[8].params["first_row"] == 2
    for error in parsed.errors:  # every message has all it needs, in both languages
        for lang in ("en", "zh"):
            assert "{" not in describe(error, "enterprises", lang), (error, lang)

    output = "信用代码,月份,产值\n" + f"{A},2024-09,-5\n{A},2024-10,5\n{A},2024-9,6\n"
    parsed = parse("output", read_table(output.encode(), "csv"), segments=SEGMENTS, known_credit_codes={A})
    assert problems(parsed) == {
        (2, "output_fen", "registry.import.negative"),
        (4, "credit_code", "registry.import.duplicate"),
    }

    projects = (
        "项目名称,信用代码,产业链环节,总投资(万元),是否外资,外资金额(美元),签约日期,项目状态\n"
        f"外资项目,{A},数据中心,100,是,,2024-01-01,签约\n"
        f"内资项目,{A},数据中心,100,否,,2024-01-01,在建\n"
    )
    parsed = parse(
        "projects", read_table(projects.encode(), "csv"), segments=SEGMENTS, known_credit_codes={A}
    )
    assert problems(parsed) == {(2, "foreign_usd_cents", "registry.import.foreign-needs-amount")}
    assert [r["name"] for r in parsed.records] == ["内资项目"]


@pytest.mark.parametrize(
    ("cell", "key"),
    [("abc", "bad-number"), ("1.5", "not-whole"), ("-3", "negative"), ("1e30", "too-big"),
     ("3000000000", "too-big"), (True, "bad-number")],
)  # fmt: skip
def test_counts_are_whole_non_negative_and_bounded(cell, key):
    parsed = parse("enterprises", table([*ENTERPRISE, "员工人数"], [A, "甲", cell]), segments=SEGMENTS)
    assert problems(parsed) == {(2, "employees", f"registry.import.{key}")}


def test_errors_read_in_both_languages_with_the_row_and_column():
    parsed = parse(
        "enterprises", table([*ENTERPRISE, "成立日期"], [A, "甲", "2024-13-01"]), segments=SEGMENTS
    )
    (error,) = parsed.errors
    zh = describe(error, "enterprises", "zh")
    en = describe(error, "enterprises", "en")
    assert zh.startswith("第 2 行“成立日期”：") and "2024-13-01" in zh and has_cjk(zh)
    assert en.startswith("Row 2, Founded on: '2024-13-01' is not a date") and not has_cjk(
        en.split("2024年")[0]
    )


def test_every_import_key_the_code_uses_exists_and_every_key_is_used():
    source = "".join(
        (SRC / "registry" / name).read_text(encoding="utf-8") for name in ("tabular.py", "datasets.py")
    )
    used = set(re.findall(r'"(registry\.import\.[a-z-]+)"', source))
    ours = {key for key in catalogue() if key.startswith("registry.import.")}
    assert used and used <= ours
    assert ours <= used, f"keys nobody uses: {ours - used}"


# --- exports read back -----------------------------------------------------------------------------

CODE_CHARS = st.text(ALPHABET, min_size=9, max_size=9)
credit_codes = st.builds(
    lambda head, division, body: complete(head + division + body),
    st.text(ALPHABET, min_size=2, max_size=2),
    st.text("0123456789", min_size=6, max_size=6),
    CODE_CHARS,
)
words = (
    st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)
maybe_words = st.none() | words
emails = st.builds(lambda a, b: f"{a}@{b}.cn", st.from_regex(r"[a-z0-9.]{1,10}", fullmatch=True),
                   st.from_regex(r"[a-z]{1,10}", fullmatch=True))  # fmt: skip
days = st.integers(0, 60 * 366).map(lambda n: date(1970, 1, 1).fromordinal(date(1970, 1, 1).toordinal() + n))
months = st.tuples(st.integers(2000, 2030), st.integers(1, 12))
fen = st.integers(0, datasets.MAX_MINOR_UNITS)
counts = st.none() | st.integers(0, 10**6)


@st.composite
def enterprise(draw: st.DrawFn, code: str) -> dict[str, Any]:
    return {
        "credit_code": code,
        "name": draw(words),
        "name_en": draw(maybe_words),
        "district": draw(maybe_words),
        "park": draw(maybe_words),
        "segments": draw(st.lists(st.sampled_from(CODES), unique=True, max_size=4)),
        "tier": draw(st.none() | st.sampled_from(Tier)),
        "tier_granted_on": draw(st.none() | days),
        "above_size": draw(st.none() | st.booleans()),
        "employees": draw(counts),
        "rd_intensity_bp": draw(st.none() | st.integers(0, 10_000)),
        "patents": draw(counts),
        "founded_on": draw(st.none() | days),
        "contact_name": draw(maybe_words),
        "contact_phone": draw(st.none() | st.from_regex(r"[0-9]{3,4}-?[0-9]{7,8}", fullmatch=True)),
        "contact_email": draw(st.none() | emails),
    }


@st.composite
def project(draw: st.DrawFn, name: str) -> dict[str, Any]:
    foreign = draw(st.booleans())
    return {
        "name": name,
        "credit_code": draw(credit_codes),
        "enterprise_name": draw(maybe_words),
        "segment": draw(st.sampled_from(CODES)),
        "investment_fen": draw(fen),
        "foreign_funded": foreign,
        "foreign_usd_cents": draw(st.integers(1, 10**13)) if foreign else None,
        "signed_on": draw(days),
        "status": draw(st.sampled_from(ProjectStatus)),
        "construction_on": draw(st.none() | days),
        "production_on": draw(st.none() | days),
        "department": draw(maybe_words),
        "chain_leader": draw(maybe_words),
    }


@st.composite
def output(draw: st.DrawFn, key: tuple[str, tuple[int, int]]) -> dict[str, Any]:
    return {
        "credit_code": key[0],
        "enterprise_name": draw(maybe_words),
        "month": key[1],
        "output_fen": draw(fen),
        "revenue_fen": draw(st.none() | fen),
        "above_size": draw(st.none() | st.booleans()),
    }


def records(dataset: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Records of one dataset with distinct keys, as `parse` gives them."""
    if dataset == "enterprises":
        keys: st.SearchStrategy[list[Any]] = st.lists(credit_codes, unique=True, max_size=6)
        make: Any = enterprise
    elif dataset == "projects":
        keys, make = st.lists(words, unique=True, max_size=6), project
    else:
        keys, make = st.lists(st.tuples(credit_codes, months), unique=True, max_size=6), output
    return keys.flatmap(lambda ks: st.tuples(*(make(k) for k in ks)).map(list))


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("dataset", ["enterprises", "projects", "output"])
@PROPERTIES
@given(data=st.data())
def test_an_export_reads_back_to_the_same_records(dataset, fmt, lang, data):
    expected = data.draw(records(dataset))
    header, rows = export_table(dataset, expected, lang, segments=SEGMENTS)
    body = write_csv(header, rows) if fmt == "csv" else write_xlsx(header, rows, dataset)
    parsed = parse(dataset, read_table(body, fmt), segments=SEGMENTS)
    assert parsed.errors == []
    assert parsed.records == [{**record, "row": i + 2} for i, record in enumerate(expected)]


def test_export_speaks_the_officials_language():
    record = {"credit_code": A, "name": "甲", "segments": ["gpu", "data_centres"], "tier": Tier.LITTLE_GIANT,
              "above_size": True, "rd_intensity_bp": 430, "founded_on": date(2020, 1, 2)}  # fmt: skip
    header, (row,) = export_table("enterprises", [record], "zh", segments=SEGMENTS)
    cells = dict(zip(header, row, strict=True))
    assert cells["产业链环节"] == "GPU; 数据中心"
    assert cells["梯度层级"] == "专精特新“小巨人”"
    assert cells["规上"] == "是" and cells["研发强度(%)"] == Decimal("4.30")
    assert cells["成立日期"] == date(2020, 1, 2) and cells["英文名称"] is None
    header, (row,) = export_table("enterprises", [record], "en", segments=SEGMENTS)
    cells = dict(zip(header, row, strict=True))
    assert cells["Segments"] == "GPUs; Data centres" and cells["Tier"] == "Little giant"
    header, (row,) = export_table("output", [{"credit_code": A, "month": (2024, 9), "output_fen": 123}], "en")
    assert header[3] == "Output (CNY)" and row[2:4] == ["2024-09", Decimal("1.23")]
