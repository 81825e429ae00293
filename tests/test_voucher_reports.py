"""Voucher reports for the finance bureau and auditors: burn-down, subsidy by enterprise, segment,
provider and month, and the summary, checked against tables computed by hand from a world with real
settlements (three tenants, a local and a non-local provider, a clawback, an expired grant), in JSON,
CSV and XLSX, in Chinese and English; regulator only."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, update

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.i18n import t
from suanwang.registry.models import Enterprise
from suanwang.timeutil import utcnow
from suanwang.vouchers import grants as grant_service
from suanwang.vouchers.models import VoucherGrant
from suanwang.vouchers.reports import (
    Breakdown,
    EnterpriseRow,
    Figures,
    Month,
    Period,
    leverage,
    months,
    percent,
    share_bp,
)
from suanwang.vouchers.reports_api import COLUMNS, as_csv, as_xlsx
from tests import factories, jobs_world
from tests.helpers import assert_problem, has_cjk
from tests.jobs_world import ExecWorld
from tests.voucher_world import grant, programme, redemptions, run_job

BUDGET = 2_000_000_000
REPORTS = ("burn-down", "by-enterprise", "by-segment", "by-provider", "by-month", "summary")


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


# --- exact ratios and months (no database) -------------------------------------------------------


@pytest.mark.parametrize(
    ("charge", "subsidy", "expected"),
    [
        (2700, 1250, "2.16"),
        (9300, 4050, "2.30"),  # 2.2963
        (3900, 1350, "2.89"),  # 2.8889
        (1, 8, "0.13"),  # 0.125 rounds half up
        (1, 3, "0.33"),
        (200, 100, "2.00"),
        (10**15 + 1, 10**13, "100.00"),  # far beyond a float's exact integers
        (5, 0, "—"),
        (0, 0, "—"),
    ],
)
def test_leverage_is_exact_with_two_decimals(charge: int, subsidy: int, expected: str) -> None:
    assert leverage(charge, subsidy) == expected


def test_shares_in_basis_points_and_percent() -> None:
    assert share_bp(3600, 9000) == 4000 and percent(4000) == "40.00%"
    assert share_bp(1, 3) == 3333 and percent(3333) == "33.33%"
    assert share_bp(2, 3) == 6667 and percent(6667) == "66.67%"
    assert share_bp(1, 20_000) == 1  # half a basis point rounds up
    assert share_bp(5, 5) == 10_000 and percent(10_000) == "100.00%"
    assert share_bp(0, 0) is None and percent(None) == "—"


def test_months_and_periods() -> None:
    assert [str(m) for m in months(Month(2025, 11), Month(2026, 2))] == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert str(Month.parse("2026-03")) == "2026-03" and Month(2026, 12).next() == Month(2027, 1)
    # A time is seen in Asia/Shanghai: 16:30 UTC on 31 January is already February there.
    from datetime import UTC, datetime

    assert Month.of(datetime(2026, 1, 31, 16, 30, tzinfo=UTC)) == Month(2026, 2)
    period = Period.parse("2026-01", "2026-03")
    assert Month(2026, 1) in period and Month(2026, 2) in period and Month(2026, 3) not in period
    assert Month(2025, 12) in Period.parse(None, "2026-01") and Month(2030, 1) in Period.parse(
        "2026-01", None
    )


def test_names_never_run_as_formulas_in_a_spreadsheet() -> None:
    row = EnterpriseRow(
        org_id=7,
        credit_code="91330482000000001X",
        name='=HYPERLINK("http://x")',
        name_en="@SUM(A1)",
        segments=["-ai"],
        figures=Figures(900, 450, 0, 1),
    )
    report = Breakdown("by-enterprise", 1, "p", Period(), [row], Figures(900, 450, 0, 1))
    lines = list(csv.reader(io.StringIO(as_csv(report, "zh").decode("utf-8-sig"))))
    assert lines[1][2:4] == ['\'=HYPERLINK("http://x")', "'-ai"]
    assert lines[1][4:] == ["9.00", "4.50", "0.00", "1", "2.00"] and lines[2][0] == "合计"
    sheet = load_workbook(io.BytesIO(as_xlsx(report, "en"))).active
    assert sheet is not None
    assert sheet.cell(row=2, column=3).value == "'@SUM(A1)" and sheet.cell(row=2, column=3).data_type == "s"
    assert sheet.cell(row=3, column=1).value == "Total"


# --- the world -----------------------------------------------------------------------------------


@dataclass
class ReportWorld:
    ew: ExecWorld
    programme_id: int
    org_a: dict[str, Any]  # registry: two segments
    org_b: dict[str, Any]  # no registry row
    org_c: dict[str, Any]  # a registry row without a segment
    local_provider: int
    sim_provider: int
    month: str


def build(ew: ExecWorld, engine: Engine) -> ReportWorld:
    """Pinghu's programme, opened to non-local providers too (so the local share is not trivially 100 %),
    with a small minimum claim so a tiny grant can run out.

    | tenant | job | pool  | cards × s | charge | subsidy | note                       |
    |--------|-----|-------|-----------|--------|---------|----------------------------|
    | A      | A1  | local | 2 × 3600  |    900 |     450 | 100 clawed back            |
    | A      | A2  | sim   | 8 × 1800  |   1800 |     900 |                            |
    | B      | B1  | local | 2 × 7200  |   1800 |     900 |                            |
    | B      | B2  | sim   | 4 × 3600  |   1800 |     900 | grant expires afterwards   |
    | C      | C1  | sim   | 8 × 1800  |   1800 |     900 | grant of 1000              |
    | C      | C2  | local | 2 × 3600  |    900 |     100 | grant exhausted            |
    | C      | C3  | local | 2 × 1200  |    300 |       0 | refused: nothing left      |
    """
    p = programme(ew.regulator, provider_rules={"local_only": False}, min_claim_fen=100)
    org_c = factories.org(ew.regulator, name="Pinghu New Materials")
    admin_c = factories.user(ew.regulator, role="tenant_admin", org_id=org_c["id"])
    tenant_c = ew.regulator.as_(factories.token_for(ew.regulator, admin_c["id"]))
    with session_scope(engine) as session:
        for org, segments in ((ew.org, ["new-materials", "ai-vision"]), (org_c, [])):
            session.add(
                Enterprise(
                    credit_code=org["credit_code"],
                    name=org["name"],
                    org_id=org["id"],
                    locality_code="330482",
                    segments=segments,
                )
            )
    grant(ew, p["id"], 1_000_000)
    grant_b = grant(ew, p["id"], 600_000, api=ew.other)
    grant(ew, p["id"], 1_000, api=tenant_c)

    local, sim = ew.local_pool["id"], ew.sim_pool["id"]
    chip = {"accelerators": ["A800"]}
    a1 = run_job(ew, local, cards=2, seconds=3600, **chip)
    run_job(ew, sim, cards=8, seconds=1800, **chip)
    run_job(ew, local, cards=2, seconds=7200, api=ew.other, **chip)
    run_job(ew, sim, cards=4, seconds=3600, api=ew.other, **chip)
    run_job(ew, sim, cards=8, seconds=1800, api=tenant_c, **chip)
    run_job(ew, local, cards=2, seconds=3600, api=tenant_c, **chip)
    c3 = run_job(ew, local, cards=2, seconds=1200, api=tenant_c, **chip)
    assert [r.subsidy_fen for r in redemptions(engine, c3["id"])] == [0]

    (record,) = redemptions(engine, a1["id"])
    ew.regulator.post(
        f"/vouchers/redemptions/{record.id}/clawbacks", {"amount_fen": 100, "reason": "duplicate invoice"}
    )
    with session_scope(engine) as session:
        session.execute(
            update(VoucherGrant)
            .where(VoucherGrant.id == grant_b["id"])
            .values(valid_until=utcnow() - timedelta(minutes=1))
        )
        assert grant_service.expire_grants(session, now=utcnow()) == (1, 600_000 - 1800)
    return ReportWorld(
        ew=ew,
        programme_id=p["id"],
        org_a=ew.org,
        org_b=ew.other_org,
        org_c=org_c,
        local_provider=ew.local_site["provider_id"],
        sim_provider=ew.sim_site["provider_id"],
        month=str(Month.of(record.at)),
    )


def get(rw: ReportWorld, report: str, **params: str) -> dict[str, Any]:
    return dict(
        rw.ew.regulator.get(f"/vouchers/programmes/{rw.programme_id}/reports/{report}", params=params)
    )


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["charge_fen"], row["subsidy_fen"], row["clawed_back_fen"], row["orders"], row["leverage"])


# Hand-computed (see `build`): charge, subsidy net of clawbacks, clawed back, orders, leverage.
A = (2700, 1250, 100, 2, "2.16")
B = (3600, 1800, 0, 2, "2.00")
C = (3000, 1000, 0, 3, "3.00")
TOTAL = (9300, 4050, 100, 7, "2.30")
LOCAL = (3900, 1350, 100, 4, "2.89")  # A1, B1, C2, C3
SIM = (5400, 2700, 0, 3, "2.00")  # A2, B2, C1
GRANTED = 1_000_000 + 600_000 + 1_000 - (600_000 - 1800)  # less what B's grant returned at expiry
REDEEMED_GROSS = 4150


# --- the numbers ---------------------------------------------------------------------------------


@pytest.mark.db
def test_reports_match_the_hand_computed_tables(ew: ExecWorld, clean_engine: Engine) -> None:
    rw = build(ew, clean_engine)

    enterprises = get(rw, "by-enterprise")
    assert [(r["org_id"], r["segments"], figures(r)) for r in enterprises["rows"]] == [
        (rw.org_b["id"], [], B),  # most subsidised first
        (rw.org_a["id"], ["ai-vision", "new-materials"], A),
        (rw.org_c["id"], [], C),
    ]
    assert enterprises["rows"][1]["credit_code"] == rw.org_a["credit_code"]
    assert enterprises["rows"][1]["name"] == rw.org_a["name"]
    assert figures(enterprises["total"]) == TOTAL
    assert enterprises["from"] is None and enterprises["to"] is None

    segments = get(rw, "by-segment")
    assert [(r["segment"], r["enterprises"], figures(r)) for r in segments["rows"]] == [
        ("ai-vision", 1, A),
        ("new-materials", 1, A),  # A is in both segments and counts in full in each
        ("unregistered", 2, (6600, 2800, 0, 5, "2.36")),  # B (no registry row) and C (no segment)
    ]
    assert segments["total"] is None  # overlapping rows: no grand total
    assert sum(r["subsidy_fen"] for r in segments["rows"]) == 1250 + 4050  # A twice: not a total

    providers = get(rw, "by-provider")
    assert [(r["provider_id"], figures(r), r["local_charge_fen"]) for r in providers["rows"]] == [
        (rw.sim_provider, SIM, 0),
        (rw.local_provider, LOCAL, 3900),
    ]
    assert figures(providers["total"]) == TOTAL

    by_month = get(rw, "by-month")
    assert [(r["month"], figures(r)) for r in by_month["rows"]] == [(rw.month, TOTAL)]
    assert figures(by_month["total"]) == TOTAL

    summary = get(rw, "summary")
    assert {k: v for k, v in summary.items() if k not in ("programme_id", "programme_code")} == {
        "report": "summary",
        "from": None,
        "to": None,
        "budget_fen": BUDGET,
        "charge_fen": 9300,
        "orders": 7,
        "subsidised_charge_fen": 9000,  # all but C3, whose subsidy was refused
        "subsidised_orders": 6,
        "subsidy_fen": 4050,
        "clawed_back_fen": 100,
        "leverage": "2.22",  # 9000 ÷ 4050
        "local_charge_fen": 3600,  # A1 900 + B1 1800 + C2 900
        "local_share_bp": 4000,
        "local_share": "40.00%",
    }

    burn = get(rw, "burn-down")
    start = Month.of(utcnow().date() - timedelta(days=30))  # the programme's first month
    assert [r["month"] for r in burn["rows"]] == [str(m) for m in months(start, Month.parse(rw.month))]
    for quiet in burn["rows"][:-1]:
        assert quiet == {
            "month": quiet["month"],
            "granted_fen": 0,
            "redeemed_fen": 0,
            "clawed_back_fen": 0,
            "cumulative_granted_fen": 0,
            "cumulative_redeemed_fen": 0,
            "remaining_fen": BUDGET,
            "unredeemed_fen": 0,
        }
    closing = {
        "granted_fen": GRANTED,
        "redeemed_fen": 4050,
        "clawed_back_fen": 100,
        "cumulative_granted_fen": GRANTED,
        "cumulative_redeemed_fen": 4050,
        "remaining_fen": BUDGET - GRANTED + 100,  # the clawback went back to the budget
        "unredeemed_fen": GRANTED - REDEEMED_GROSS,  # what A's grant still holds
    }
    assert burn["rows"][-1] == {"month": rw.month} | closing
    assert burn["total"] == closing and burn["budget_fen"] == BUDGET

    # The totals agree with each other and with the ledger's view of the programme.
    budget = ew.regulator.get(f"/vouchers/programmes/{rw.programme_id}/budget")
    assert budget["granted_fen"] == GRANTED == burn["total"]["cumulative_granted_fen"]
    assert budget["unallocated_fen"] == burn["total"]["remaining_fen"]
    assert budget["clawed_back_fen"] == 100 == summary["clawed_back_fen"]
    net = budget["redeemed_fen"] - budget["clawed_back_fen"]
    assert (
        net
        == sum(r["subsidy_fen"] for r in enterprises["rows"])
        == enterprises["total"]["subsidy_fen"]
        == summary["subsidy_fen"]
        == burn["total"]["redeemed_fen"]
        == 4050
    )
    a_grant = ew.tenant.get("/vouchers/grants")["items"][0]
    assert a_grant["available_fen"] == burn["total"]["unredeemed_fen"]


@pytest.mark.db
def test_a_period_keeps_the_months_inside_it(ew: ExecWorld, clean_engine: Engine) -> None:
    rw = build(ew, clean_engine)
    this, after = Month.parse(rw.month), Month.parse(rw.month).next()

    inside = get(rw, "by-enterprise", **{"from": str(this), "to": str(after)})
    assert inside["from"] == str(this) and inside["to"] == str(after)
    assert figures(inside["total"]) == TOTAL and len(inside["rows"]) == 3
    later = get(rw, "by-enterprise", **{"from": str(after)})
    assert later["rows"] == [] and figures(later["total"]) == (0, 0, 0, 0, "—")
    assert get(rw, "by-provider", to=str(this))["rows"] == []
    assert get(rw, "summary", **{"from": str(after)})["local_share"] == "—"
    assert get(rw, "by-segment", to=str(this))["rows"] == []

    # The burn-down accumulates from the start and shows only the period's months.
    only = get(rw, "burn-down", **{"from": str(this)})
    assert [r["month"] for r in only["rows"]] == [str(this)]
    assert only["rows"][0]["cumulative_granted_fen"] == GRANTED
    before = get(rw, "burn-down", to=str(this))
    assert this not in {Month.parse(r["month"]) for r in before["rows"]}
    assert before["total"]["remaining_fen"] == BUDGET and before["total"]["granted_fen"] == 0


# --- exports -------------------------------------------------------------------------------------


def download(rw: ReportWorld, report: str, fmt: str, lang: str) -> Any:
    return rw.ew.regulator.call(
        "GET",
        f"/vouchers/programmes/{rw.programme_id}/reports/{report}",
        params={"format": fmt},
        headers={"Accept-Language": "zh-CN,zh;q=0.9" if lang == "zh" else "en-GB"},
        expect=200,
    )


def read_csv(response: Any) -> list[list[str]]:
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads the Chinese right
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def as_fen(value: Any) -> int:
    """A yuan amount read back from a spreadsheet or CSV, in fen (exactly)."""
    amount = Decimal(str(value)) * 100
    assert amount == amount.to_integral_value(), value
    return int(amount)


@pytest.mark.db
def test_csv_in_chinese_and_english(ew: ExecWorld, clean_engine: Engine) -> None:
    rw = build(ew, clean_engine)

    zh = read_csv(download(rw, "by-enterprise", "csv", "zh"))
    assert zh[0] == [
        "组织编号",
        "统一社会信用代码",
        "企业名称",
        "产业链环节",
        "算力消费（元）",
        "补贴金额（扣除追回，元）",
        "追回金额（元）",
        "订单数",
        "撬动倍数（消费÷补贴）",
    ]
    assert zh[2] == [
        str(rw.org_a["id"]),
        rw.org_a["credit_code"],
        rw.org_a["name"],
        "ai-vision; new-materials",
        "27.00",
        "12.50",
        "1.00",
        "2",
        "2.16",
    ]
    assert zh[-1] == ["合计", "", "", "", "93.00", "40.50", "1.00", "7", "2.30"]
    assert len(zh) == 1 + 3 + 1

    en = read_csv(download(rw, "by-enterprise", "csv", "en"))
    assert en[0][:3] == ["Organisation ID", "Unified social credit code", "Enterprise"]
    assert en[0][4:] == [
        "Compute spend (yuan)",
        "Subsidy, net of clawbacks (yuan)",
        "Clawed back (yuan)",
        "Orders",
        "Leverage (spend ÷ subsidy)",
    ]
    assert en[1:] == [*zh[1:-1], ["Total", *zh[-1][1:]]]

    segments = read_csv(download(rw, "by-segment", "csv", "zh"))
    assert segments[0][:2] == ["产业链环节", "企业数"]
    assert [row[0] for row in segments[1:]] == ["ai-vision", "new-materials", "未入库企业"]  # no total
    assert segments[3][2:] == ["66.00", "28.00", "0.00", "5", "2.36"]

    summary = read_csv(download(rw, "summary", "csv", "zh"))
    assert summary[0] == ["项目", "数值"]
    items = dict((row[0], row[1]) for row in summary[1:])
    assert items["计划预算（元）"] == "20000000.00"
    assert items["受补贴订单消费（元）"] == "90.00" and items["撬动倍数（受补贴订单消费÷补贴）"] == "2.22"
    assert items["本地服务商受补贴消费占比（基点）"] == "4000"
    assert items["本地服务商受补贴消费占比"] == "40.00%"

    burn = read_csv(download(rw, "burn-down", "csv", "en"))
    assert burn[0][0] == "Month" and burn[-1][0] == "Total"
    assert [as_fen(v) for v in burn[-1][1:]] == [
        GRANTED,
        4050,
        100,
        GRANTED,
        4050,
        BUDGET - GRANTED + 100,
        GRANTED - REDEEMED_GROSS,
    ]
    response = download(rw, "by-month", "csv", "zh")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["content-disposition"].endswith('-by-month.csv"')


@pytest.mark.db
def test_xlsx_gives_the_same_numbers_as_json(ew: ExecWorld, clean_engine: Engine) -> None:
    rw = build(ew, clean_engine)
    for lang in ("zh", "en"):
        for report in REPORTS:
            response = download(rw, report, "xlsx", lang)
            assert response.headers["content-type"].startswith(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
            book = load_workbook(io.BytesIO(response.content))
            assert len(book.sheetnames) == 1
            sheet = book.active
            assert sheet is not None
            rows = [list(row) for row in sheet.iter_rows(values_only=True)]
            body = get(rw, report)
            if report == "summary":
                assert rows[0] == [t("voucher-report.col-item", lang), t("voucher-report.col-value", lang)]
                values = [row[1] for row in rows[1:]]
                assert [as_fen(v) for v in values[:2]] == [BUDGET, 9300]
                assert values[2] == 7 and as_fen(values[3]) == 9000 and values[4] == 6
                assert Decimal(str(values[7])) == Decimal("2.22") and values[9] == 4000
                assert values[10] == "40.00%"
                continue
            columns = COLUMNS[report]
            assert rows[0] == [t(c.label, lang) for c in columns]
            assert has_cjk("".join(rows[0])) == (lang == "zh")
            expected = body["rows"] + ([body["total"]] if body["total"] is not None else [])
            assert len(rows) == 1 + len(expected)
            for got, want in zip(rows[1:], expected, strict=True):
                for column, value in zip(columns, got, strict=True):
                    if column.field not in want:
                        continue
                    if column.kind == "fen":
                        assert as_fen(value) == want[column.field], (report, column.field)
                    elif column.kind == "ratio":
                        assert Decimal(str(value)) == Decimal(want[column.field]), (report, column.field)
                    elif column.kind == "int" and column is not columns[0]:
                        assert value == want[column.field], (report, column.field)
            if body["total"] is not None:
                assert rows[-1][0] == t("voucher-report.total", lang)
            if report == "by-enterprise":
                assert sheet.cell(row=2, column=5).number_format == "0.00"


# --- who may read, and bad input -----------------------------------------------------------------


@pytest.mark.db
def test_only_the_regulator_reads_reports_and_bad_input_is_refused(ew: ExecWorld) -> None:
    p = programme(ew.regulator)
    base = f"/vouchers/programmes/{p['id']}/reports"
    for report in REPORTS:
        for caller in (ew.tenant, ew.member, ew.other, ew.operator):
            assert_problem(caller.call("GET", f"{base}/{report}"), 403, "access.role-required")
        assert_problem(
            ew.regulator.call("GET", f"/vouchers/programmes/9999/reports/{report}"), 404, "not-found"
        )
        empty = ew.regulator.get(f"{base}/{report}")
        assert empty["programme_id"] == p["id"]
    assert ew.regulator.get(f"{base}/by-enterprise")["rows"] == []
    assert ew.regulator.get(f"{base}/summary")["leverage"] == "—"

    bad = assert_problem(
        ew.regulator.call(
            "GET", f"{base}/by-month", params={"format": "pdf"}, headers={"Accept-Language": "zh-CN"}
        ),
        422,
        "voucher-report.bad-format",
    )
    assert has_cjk(bad["detail"]) and "json, csv, xlsx" in bad["detail"]
    bad = assert_problem(
        ew.regulator.call("GET", f"{base}/by-month", params={"format": "pdf"}),
        422,
        "voucher-report.bad-format",
    )
    assert "pdf" in bad["detail"] and "json, csv, xlsx" in bad["detail"]
    assert_problem(
        ew.regulator.call("GET", f"{base}/burn-down", params={"from": "2026-13"}),
        422,
        "statement.bad-month",
    )
    assert_problem(
        ew.regulator.call("GET", f"{base}/summary", params={"from": "2026-03", "to": "2026-03"}),
        422,
        "voucher-report.bad-range",
    )
