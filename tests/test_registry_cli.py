"""`suanwang registry` through the in-process CLI (local mode on the test database): a spreadsheet import
checked by a dry run (a planted error is listed by row, exit code 2, nothing written), a real import, the
listing, an export that imports back unchanged, monthly output typed in exact yuan, the statistics with
their growth as the report writes it, cultivation candidates, bad input as one line with exit code 2, and
Chinese help and output."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from suanwang.cli import main as cli
from suanwang.cli.registry import (
    Format,
    Unit,
    format_of,
    growth_phrase,
    parse_amount,
    parse_mapping,
    parse_month,
    scaled,
)
from suanwang.config import get_settings
from suanwang.db.session import session_scope
from suanwang.registry.models import Enterprise, OutputRecord
from suanwang.units import format_fen
from tests import factories
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.db

Run = Any
A, B, C = factories.credit_code(), factories.credit_code(), factories.credit_code()
HEADER = (
    "统一社会信用代码,企业名称,产业链环节,梯度层级,认定日期,规上,从业人员,研发强度(%),发明专利数,成立日期"
)
ROWS = [
    f"{A},平湖智算服务器有限公司,servers_boards,,,是,300,3.5,2,2015-03-01",
    f"{B},平湖视觉应用有限公司,ai_applications,创新型中小企业,2023-05-10,否,80,,,2019-07-01",
    f"{C},平湖数据中心有限公司,data_centres,,,否,,,,",
]


@pytest.fixture
def run(
    regulator: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, clean_engine: Engine, cli_run: Any
) -> Run:
    """The CLI on the test database, as the regulator."""
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    get_settings.cache_clear()

    def _run(*args: str, lang: str = "en") -> tuple[int, str, str]:
        code, out, err = cli_run("--token", ADMIN_TOKEN, "--lang", lang, *args)
        return int(code), str(out), str(err)

    return _run


def ok(run: Run, *args: str, lang: str = "en") -> str:
    code, out, err = run(*args, lang=lang)
    assert code == 0, out + err
    return out


def as_json(run: Run, *args: str) -> Any:
    return json.loads(ok(run, "--json", *args))


def fails(run: Run, *args: str, lang: str = "en") -> tuple[str, str]:
    """The command fails with exit code 2 and one line on stderr; (stdout, that line)."""
    code, out, err = run(*args, lang=lang)
    assert code == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return out, err


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def csv_file(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def imported(run: Run, tmp_path: Path) -> dict[str, int]:
    """The three enterprises imported for real; their ids by credit code."""
    ok(run, "registry", "import", "enterprises", str(csv_file(tmp_path / "e.csv", HEADER, *ROWS)))
    listed = as_json(run, "registry", "enterprises", "--sort", "id")["items"]
    return {e["credit_code"]: e["id"] for e in listed}


# --- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "month"),
    [
        ("2025-09", (2025, 9)),
        (" 2025-12 ", (2025, 12)),
        ("2025-13", None),
        ("2025-00", None),
        ("2025-9", None),
        ("2025/09", None),
        ("202509", None),
        ("", None),
    ],
)
def test_months_are_yyyy_mm(text: str, month: tuple[int, int] | None) -> None:
    assert parse_month(text) == month


@pytest.mark.parametrize(
    ("text", "fen_value"),
    [
        ("1200", 120_000),
        ("1200.5", 120_050),
        ("¥1,200.05", 120_005),
        ("0", 0),
        ("0.01", 1),
        ("12.345", None),
        ("-5", None),
        ("1e3", None),
        ("abc", None),
        ("", None),
    ],
)
def test_yuan_become_exact_fen_and_never_negative(text: str, fen_value: int | None) -> None:
    assert parse_amount(text) == fen_value


@given(st.integers(min_value=0, max_value=10**15))
def test_any_amount_in_fen_survives_yuan_text(fen_value: int) -> None:
    assert parse_amount(f"{fen_value // 100}.{fen_value % 100:02d}") == fen_value
    assert parse_amount(format_fen(fen_value)) == fen_value


@pytest.mark.parametrize(
    ("minor", "unit", "shown"),
    [
        (3_952_000_000_00, Unit.YI, "39.52"),
        (250_900_000_00, Unit.YI, "2.51"),  # 2.509 亿: half-up
        (250_400_000_00, Unit.YI, "2.50"),  # 2.504 亿: down
        (250_500_000_00, Unit.YI, "2.51"),  # 2.505 亿: a tie goes up
        (-250_500_000_00, Unit.YI, "-2.51"),  # and away from zero
        (1_234_567_890_123_45, Unit.YI, "12,345.68"),  # 12,345.6789 亿
        (250_900_000_00, Unit.WAN, "25,090.00"),
        (12_345, Unit.WAN, "0.01"),
        (12_345, Unit.YUAN, "123.45"),
        (0, Unit.YI, "0.00"),
    ],
)
def test_aggregates_are_shown_rounded_half_up_in_the_unit(minor: int, unit: Unit, shown: str) -> None:
    assert scaled(minor, unit) == shown


@given(st.integers(min_value=0, max_value=10**17))
def test_yuan_unit_is_exact_and_yi_is_within_half_a_cent_of_a_yi(minor: int) -> None:
    assert "¥" + scaled(minor, Unit.YUAN) == format_fen(minor)
    shown = Decimal(scaled(minor, Unit.YI).replace(",", ""))
    assert abs(shown * 10**10 - minor) <= Decimal(10**10) / 200


def test_mappings_formats_and_growth_phrases() -> None:
    assert parse_mapping(["产值(万元)=output_fen", "备注=", "a=b=c"]) == {
        "产值(万元)": "output_fen",
        "备注": "",
        "a=b": "c",
    }
    assert parse_mapping([]) == {}
    assert parse_mapping(["no equals"]) is None
    assert parse_mapping(["=output_fen"]) is None
    assert format_of(Path("x.CSV"), None) is Format.CSV
    assert format_of(Path("x.xlsx"), None) is Format.XLSX
    assert format_of(Path("x.txt"), None) is None
    assert format_of(Path("x.txt"), Format.CSV) is Format.CSV
    assert growth_phrase("zh", "150.9%") == "同比增长 150.9%"
    assert growth_phrase("zh", "-3.0%") == "同比下降 3.0%"
    assert growth_phrase("en", "150.9%") == "year on year +150.9%"
    assert "上年同期为零" in growth_phrase("zh", None)


# --- import and export ---------------------------------------------------------------------------


def test_a_dry_run_lists_the_planted_error_by_row_and_writes_nothing(
    run: Run, tmp_path: Path, clean_engine: Engine
) -> None:
    bad = ROWS[1].replace("2023-05-10", "2023-02-30")  # data row 2 is spreadsheet row 3
    path = csv_file(tmp_path / "enterprises.csv", HEADER, ROWS[0], bad, ROWS[2])
    out, err = fails(run, "registry", "import", "enterprises", str(path), "--dry-run")
    assert "Dry run" in out and "3 rows checked" in out
    error_lines = [line for line in out.splitlines() if "2023-02-30" in line]
    assert len(error_lines) == 1 and "│ 3 " in error_lines[0] and "tier_granted_on" in error_lines[0]
    assert "1 problem(s)" in err and "enterprises.csv" in err
    assert count(clean_engine, Enterprise) == 0
    report = json.loads(run("--json", "registry", "import", "enterprises", str(path), "--dry-run")[1])
    assert report["dry_run"] is True and report["rows"] == 3
    assert [(e["row"], e["field"], e["value"]) for e in report["errors"]] == [
        (3, "tier_granted_on", "2023-02-30")
    ]
    # A real import of the same file is refused whole, and shows the same rows.
    out, err = fails(run, "registry", "import", "enterprises", str(path))
    assert "Nothing of enterprises was imported" in out and "2023-02-30" in out
    assert count(clean_engine, Enterprise) == 0
    # In Chinese, the row's message is Chinese too.
    out, err = fails(run, "registry", "import", "enterprises", str(path), "--dry-run", lang="zh")
    assert "试运行" in out and "第 3 行" in out and "错误" in err


def test_an_import_lists_exports_and_imports_back_unchanged(run: Run, tmp_path: Path) -> None:
    ids = imported(run, tmp_path)
    assert set(ids) == {A, B, C}
    out = ok(run, "registry", "enterprises")
    assert "平湖智算服务器有限公司" in out and "平湖视觉应用有限公司" in out and "innovative_sme" in out
    above = as_json(run, "registry", "enterprises", "--above-size")["items"]
    assert [e["credit_code"] for e in above] == [A]
    (tiered,) = as_json(run, "registry", "enterprises", "--tier", "innovative_sme")["items"]
    assert tiered["credit_code"] == B and tiered["tier_granted_on"] == "2023-05-10"
    assert as_json(run, "registry", "enterprises", "--stage", "midstream")["items"][0]["credit_code"] == C
    # The same file again: nothing changes.
    again = as_json(run, "registry", "import", "enterprises", str(tmp_path / "e.csv"))
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)

    # Exports (CSV in Chinese, xlsx in English) read back to the same records.
    zh_csv = tmp_path / "export.csv"
    code, _, err = run("registry", "export", "enterprises", "--out", str(zh_csv), "--headers", "zh")
    assert code == 0 and "Saved to" in err
    assert zh_csv.read_text(encoding="utf-8-sig").startswith("统一社会信用代码")
    xlsx = tmp_path / "export.xlsx"
    ok(run, "registry", "export", "enterprises", "--format", "xlsx", "-o", str(xlsx))
    assert xlsx.read_bytes()[:2] == b"PK"
    for path in (zh_csv, xlsx):
        report = as_json(run, "registry", "import", "enterprises", str(path))
        assert (report["rows"], report["created"], report["updated"], report["unchanged"]) == (3, 0, 0, 3)
    printed = ok(run, "registry", "export", "enterprises")  # CSV to stdout in the CLI's language
    assert printed.startswith("Unified social credit code") and A in printed
    fails(run, "registry", "export", "enterprises", "--format", "xlsx")  # binary needs --out

    # A changed cell is an update, and only that.
    changed = (tmp_path / "e.csv").read_text(encoding="utf-8").replace(",300,", ",320,")
    report = as_json(run, "registry", "import", "enterprises", str(csv_file(tmp_path / "e2.csv", changed)))
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 2)
    assert as_json(run, "registry", "show", str(ids[A]))["enterprise"]["employees"] == 320


def test_bad_imports_are_one_line(run: Run, tmp_path: Path, clean_engine: Engine) -> None:
    path = csv_file(tmp_path / "e.csv", HEADER, *ROWS)
    _, err = fails(run, "registry", "import", "enterprises", str(tmp_path / "e.txt"))
    assert "--format" in err
    _, err = fails(run, "registry", "import", "enterprises", str(tmp_path / "missing.csv"))
    assert "missing.csv" in err
    _, err = fails(run, "registry", "import", "enterprises", str(path), "--map", "产值")
    assert "HEADER=FIELD" in err
    _, err = fails(run, "registry", "import", "vessels", str(path))
    assert "vessels" in err
    assert count(clean_engine, Enterprise) == 0


# --- output and statistics -----------------------------------------------------------------------


def test_output_statistics_print_the_growth_as_the_report_does(
    run: Run, tmp_path: Path, clean_engine: Engine
) -> None:
    ids = imported(run, tmp_path)
    a, b = str(ids[A]), str(ids[B])
    # A (规上): 100,000,000.00 yuan a year earlier; this year's month comes from a file in 万元 whose
    # header no alias knows, read through a mapping: 25,090 万元 = 250,900,000 yuan.
    record = as_json(
        run, "registry", "output", a, "2024-01", "--output-yuan", "100000000", "--revenue-yuan", "80000000"
    )
    assert record["output_fen"] == 10_000_000_000 and record["revenue_fen"] == 8_000_000_000
    assert record["above_size"] is True
    path = csv_file(
        tmp_path / "o.csv", "统一社会信用代码,月份,本月产值(万元),营业收入", f"{A},2025-01,25090,90000000"
    )
    report = as_json(run, "registry", "import", "output", str(path), "--map", "本月产值(万元)=output_fen")
    assert report["created"] == 1
    # B (not 规上): 10,000,000.00 → 9,700,000.00, typed with cents.
    ok(run, "registry", "output", b, "2024-01", "--output-yuan", "10000000.00")
    ok(run, "registry", "output", b, "2025-01", "--output-yuan", "9700000.00")
    assert count(clean_engine, OutputRecord) == 4

    out = ok(run, "registry", "stats", "--year", "2025", "--month", "1")
    assert "January to January 2025: 2.51 亿元 (¥250,900,000.00), year on year +150.9%" in out
    assert "comparable basis 1.00 亿元; 1 enterprises" in out
    assert "Revenue: 0.90 亿元, year on year +12.5%" in out  # 90 / 80 million
    assert "Upstream" in out and "Servers and boards" in out and "Innovative SME" not in out
    # Every enterprise: (250.9 + 9.7 - 110) / 110 = 136.909...% → 136.9%; in exact yuan.
    out = ok(run, "registry", "stats", "--year", "2025", "--month", "1", "--scope", "all", "--unit", "yuan")
    assert "260,600,000.00 元" in out and "+136.9%" in out and "-3.0%" in out  # B's own row falls
    data = as_json(run, "registry", "stats", "--year", "2025", "--month", "1", "--scope", "all")
    assert data["total"]["output_fen"] == 26_060_000_000 and data["total"]["growth_text"] == "136.9%"
    out = ok(run, "registry", "stats", "--year", "2025", "--month", "1", lang="zh")
    assert "规上企业 2025 年 1-1 月产值 2.51 亿元" in out and "同比增长 150.9%" in out and "上游" in out
    out = ok(run, "registry", "monthly", "--year", "2025", "--scope", "all", "--unit", "wan")
    assert "2025-01" in out and "26,060.00" in out and "136.9%" in out

    # Bad months and amounts: one line, exit code 2, nothing stored.
    _, err = fails(run, "registry", "output", a, "2025-13", "--output-yuan", "1")
    assert "2025-13" in err and "YYYY-MM" in err
    _, err = fails(run, "registry", "output", a, "2025-02", "--output-yuan", "12.345")
    assert "12.345" in err
    fails(run, "registry", "output", a, "2025-02", "--output-yuan", "-5")
    _, err = fails(run, "registry", "output", a, "1999-02", "--output-yuan", "5")  # the API's check
    assert "1999" in err
    _, err = fails(run, "registry", "output", a, "2025-13", "--output-yuan", "1", lang="zh")
    assert "不是月份" in err
    fails(run, "registry", "stats", "--year", "2025", "--month", "13")
    assert count(clean_engine, OutputRecord) == 4


# --- tiers, projects, cultivation ----------------------------------------------------------------


def test_tiers_projects_and_candidates(run: Run, tmp_path: Path, regulator: Any) -> None:
    ids = imported(run, tmp_path)
    added = as_json(
        run,
        "registry",
        "add",
        factories.credit_code(),
        "平湖芯片设计有限公司",
        "--segment",
        "gpu",
        "--tier",
        "innovative_sme",
        "--granted-on",
        "2024-01-01",
        "--district",
        "当湖街道",
        "--above-size",
    )
    assert added["segments"] == ["gpu"] and added["tier"] == "innovative_sme" and added["above_size"] is True
    assert added["tier_granted_on"] == "2024-01-01" and added["district"] == "当湖街道"
    granted = as_json(run, "registry", "grant-tier", str(ids[B]), "specialised_sme", "--on", "2025-06-01")
    assert granted["tier"] == "specialised_sme" and granted["tier_granted_on"] == "2025-06-01"
    fails(run, "registry", "grant-tier", str(ids[B]), "emperor", "--on", "2025-06-01")
    fails(run, "registry", "grant-tier", str(ids[B]), "leader", "--on", "2025-02-30")
    profile = ok(run, "registry", "show", str(ids[B]))
    assert "innovative_sme" in profile and "2023-05-10" in profile and "specialised_sme" in profile

    # Projects: two, one foreign-funded; the summary in 亿元 and 亿美元.
    for name, fen_value, usd in (
        ("智算中心二期", 1_200_000_000_00, None),
        ("光模块产线", 290_400_000_00, 3_200_000_00),
    ):
        body = {
            "name": name,
            "enterprise_id": ids[A],
            "segment": "optical_modules" if usd else "data_centres",
            "investment_fen": fen_value,
            "signed_on": "2024-03-01",
        } | ({"foreign_funded": True, "foreign_usd_cents": usd} if usd else {})
        regulator.post("/registry/projects", body)
    listed = as_json(run, "registry", "projects", "--foreign")["items"]
    assert [p["name"] for p in listed] == ["光模块产线"]
    out = ok(run, "registry", "project-summary", "--signed-from", "2024-01-01")
    assert "2 projects, total investment 14.90 亿元 (¥1,490,400,000.00); 1 foreign-funded, 0.03 亿美元" in out
    out = ok(run, "registry", "project-summary", "--unit", "wan", lang="zh")
    assert "共 2 个项目，总投资 149,040.00 万元" in out and "合同外资 320.00 万美元" in out
    assert "已签约" in out
    assert ok(run, "registry", "project-summary", "--signed-from", "2025-01-01").startswith("0 projects")

    # Candidates for 创新型中小企业 among the untiered (A and C): A has every figure but its revenue
    # growth, which needs two years of revenue; C has none.
    ok(run, "registry", "output", str(ids[A]), "2024-01", "--output-yuan", "1000", "--revenue-yuan", "800")
    ok(run, "registry", "output", str(ids[A]), "2025-01", "--output-yuan", "1000", "--revenue-yuan", "900")
    found = as_json(run, "registry", "candidates", "--tier", "innovative_sme", "--as-of", "2026-03-01")
    assert [(c["credit_code"], c["eligible"]) for c in found] == [(A, True), (C, False)]
    assert {m["metric"] for m in found[1]["unknown"]} >= {"patents", "rd_intensity_bp"}
    out = ok(run, "registry", "candidates", "--tier", "innovative_sme", "--as-of", "2026-03-01")
    assert "平湖智算服务器有限公司" in out and "✓" in out and "3.5% (≥ 2%)" in out and "? (≥ 1)" in out
    # As of 2025-03-01 the growth of A (2024 over 2023) has no base: A is not eligible then.
    earlier = as_json(run, "registry", "candidates", "--tier", "innovative_sme", "--as-of", "2025-03-01")
    assert not any(c["eligible"] for c in earlier)
    # The regulator's own criteria, and back to the defaults.
    (tmp_path / "c.toml").write_text('[[criteria]]\nmetric = "patents"\nminimum = 3\n', encoding="utf-8")
    ok(run, "registry", "set-criteria", "innovative_sme", str(tmp_path / "c.toml"))
    stricter = as_json(run, "registry", "candidates", "--tier", "innovative_sme", "--as-of", "2026-03-01")
    assert not any(c["eligible"] for c in stricter)
    (mine,) = [row for row in as_json(run, "registry", "criteria") if row["tier"] == "innovative_sme"]
    assert mine["custom"] and [(c["metric"], c["minimum"]) for c in mine["criteria"]] == [("patents", 3)]
    criteria = ok(run, "registry", "criteria")
    assert "patents ≥ 3" in criteria
    assert "(Employees ≤ 999 or " in criteria  # the SME test of the other tiers: alternatives
    ok(run, "registry", "reset-criteria", "innovative_sme")
    found = as_json(run, "registry", "candidates", "--tier", "innovative_sme", "--as-of", "2026-03-01")
    assert found[0]["eligible"] is True
    fails(run, "registry", "candidates", "--tier", "innovative_sme", "--as-of", "2026-13-01")
    ok(run, "registry", "segments")
    assert "servers_boards" in ok(run, "registry", "segments")


# --- help ----------------------------------------------------------------------------------------


def test_registry_help_is_bilingual(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["--lang", "zh", "registry", "--help"]) == 0
    out = capsys.readouterr().out
    assert "企业梯度培育库" in out and "命令" in out
    monkeypatch.setenv("SUANWANG_LANG", "zh")
    assert cli.main(["registry", "import", "--help"]) == 0
    out = capsys.readouterr().out
    assert "试运行" in out and "全部导入或全部不导入" in out
    monkeypatch.delenv("SUANWANG_LANG")
    assert cli.main(["registry", "stats", "--help"]) == 0
    assert "comparable basis" in capsys.readouterr().out
