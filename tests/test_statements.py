"""Invoices and provider statements: lines add up to what the ledger moved, a price change splits a
job's lines, every format renders (JSON, CSV, XLSX, HTML, PDF) in English and Chinese, roles apply."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.settlement import statements
from suanwang.supply.models import RateCard
from suanwang.timeutil import SHANGHAI, utcnow
from tests import factories, jobs_world
from tests.helpers import assert_problem, statements_sent
from tests.jobs_world import ExecWorld
from tests.test_settlement import _add_usage, sim_job

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def this_month() -> str:
    return utcnow().astimezone(SHANGHAI).strftime("%Y-%m")


def charged_job(ew: ExecWorld, engine: Engine, hours: int = 2, cards: int = 8) -> dict[str, Any]:
    job = sim_job(ew)
    _add_usage(engine, job["id"], ew.sim_pool["id"], cards=cards, seconds=hours * 3600)
    return dict(ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200))


def split_price(engine: Engine, pool_id: int, at: Any, price: int) -> None:
    """A price change at `at` (written directly: the API refuses to rewrite the past)."""
    with session_scope(engine) as session:
        card = session.scalar(
            select(RateCard).where(RateCard.pool_id == pool_id, RateCard.effective_until.is_(None))
        )
        assert card is not None
        card.effective_until = at
        session.add(
            RateCard(pool_id=pool_id, price_fen_per_card_hour=price, effective_from=at, created_at=utcnow())
        )


def test_invoice_lines_add_up_to_the_charges(ew: ExecWorld, clean_engine: Engine) -> None:
    a = charged_job(ew, clean_engine, hours=2)
    b = charged_job(ew, clean_engine, hours=1, cards=1)
    invoice = ew.tenant.get(f"/orgs/{ew.org['id']}/invoices/{this_month()}")
    assert invoice["total_fen"] == a["charged_fen"] + b["charged_fen"] == invoice["due_fen"]
    assert sum(line["amount_fen"] for line in invoice["lines"]) == invoice["total_fen"]
    by_job = {line["job_id"]: line for line in invoice["lines"]}
    assert Decimal(by_job[a["id"]]["card_hours"]) == Decimal(16)
    assert by_job[a["id"]]["price_fen_per_card_hour"] == 450 and by_job[a["id"]]["amount_fen"] == 16 * 450
    assert (
        invoice["wallet_closing_fen"]
        == invoice["wallet_opening_fen"] + invoice["top_ups_fen"] - invoice["total_fen"]
    )
    # Another month has nothing.
    assert ew.tenant.get(f"/orgs/{ew.org['id']}/invoices/2001-01")["lines"] == []


def test_a_price_change_splits_the_line(ew: ExecWorld, clean_engine: Engine) -> None:
    job = sim_job(ew)
    end = utcnow() - timedelta(minutes=1)
    split_price(clean_engine, ew.sim_pool["id"], end - timedelta(minutes=30), 900)
    _add_usage(clean_engine, job["id"], ew.sim_pool["id"], cards=1, seconds=3600)
    done = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    lines = [line for line in ew.tenant.get(f"/orgs/{ew.org['id']}/invoices/{this_month()}")["lines"]]
    assert [(line["price_fen_per_card_hour"]) for line in lines] == [450, 900]
    assert [Decimal(line["card_hours"]) for line in lines] == [Decimal("0.5"), Decimal("0.5")]
    assert sum(line["amount_fen"] for line in lines) == done["charged_fen"] == 225 + 450


def test_provider_statement_matches_the_ledger(ew: ExecWorld, clean_engine: Engine) -> None:
    job = charged_job(ew, clean_engine, hours=3)
    provider_id = ew.sim_site["provider_id"]
    statement = ew.regulator.get(f"/providers/{provider_id}/statements/{this_month()}")
    fee = (job["charged_fen"] * 500 + 5000) // 10000
    assert (statement["gross_fen"], statement["fee_fen"], statement["net_fen"]) == (
        job["charged_fen"],
        fee,
        job["charged_fen"] - fee,
    )
    assert sum(line["net_fen"] for line in statement["lines"]) == statement["net_fen"]
    assert statement["owed_closing_fen"] == statement["net_fen"]
    ew.regulator.post(f"/providers/{provider_id}/payouts", {"amount_fen": 1000, "reason": "November"})
    paid = ew.regulator.get(f"/providers/{provider_id}/statements/{this_month()}")
    assert paid["paid_out_fen"] == 1000 and paid["owed_closing_fen"] == statement["net_fen"] - 1000


def test_a_provider_statement_reads_as_many_rows_at_once_whatever_the_number_of_jobs(
    ew: ExecWorld, clean_engine: Engine
) -> None:
    # A query per job's share made a month of 6,000 jobs take seconds (bench/bench_load.py).
    provider_id = ew.sim_site["provider_id"]

    def queries() -> tuple[int, int]:
        with statements_sent(clean_engine) as sent, session_scope(clean_engine) as session:
            lines = statements.statement(session, provider_id, statements.Month.parse(this_month())).lines
        return len(lines), len(sent)

    charged_job(ew, clean_engine)
    one_line, for_one = queries()
    for _ in range(3):
        charged_job(ew, clean_engine, hours=1)
    four_lines, for_four = queries()
    assert (one_line, four_lines) == (1, 4)
    assert for_four == for_one


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_format_renders(ew: ExecWorld, clean_engine: Engine, lang: str) -> None:
    job = charged_job(ew, clean_engine)
    path = f"/orgs/{ew.org['id']}/invoices/{this_month()}"
    headers = {"Accept-Language": "zh-CN" if lang == "zh" else "en"}

    csv_body = ew.tenant.call("GET", path, params={"format": "csv"}, headers=headers, expect=200)
    assert csv_body.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_body.content.decode("utf-8-sig"))))
    assert rows[0][0] == ("作业" if lang == "zh" else "Job")
    assert (
        rows[1][0] == str(job["id"])
        and rows[1][-1] == f"{job['charged_fen'] // 100}.{job['charged_fen'] % 100:02d}"
    )

    xlsx = ew.tenant.call("GET", path, params={"format": "xlsx"}, headers=headers, expect=200)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    assert sheet.cell(row=3, column=1).value == job["id"]
    assert Decimal(str(sheet.cell(row=3, column=8).value)) == Decimal(job["charged_fen"]) / 100

    html = ew.tenant.call("GET", path, params={"format": "html"}, headers=headers, expect=200).text
    assert ("算力服务账单" if lang == "zh" else "Invoice") in html and str(job["id"]) in html

    pdf = ew.tenant.call("GET", path, params={"format": "pdf"}, headers=headers, expect=200)
    assert pdf.content.startswith(b"%PDF-") and pdf.headers["content-type"] == "application/pdf"
    assert b"STSong-Light" in pdf.content


def test_roles_and_bad_input(ew: ExecWorld, clean_engine: Engine) -> None:
    month = this_month()
    assert_problem(ew.other.call("GET", f"/orgs/{ew.org['id']}/invoices/{month}"), 403, "money.not-your-org")
    assert_problem(
        ew.tenant.call("GET", f"/orgs/{ew.org['id']}/invoices/2026-13"), 422, "statement.bad-month"
    )
    assert_problem(
        ew.tenant.call("GET", f"/orgs/{ew.org['id']}/invoices/{month}", params={"format": "doc"}),
        422,
        "statement.bad-format",
    )
    provider_id = ew.sim_site["provider_id"]
    assert_problem(
        ew.operator.call("GET", f"/providers/{provider_id}/statements/{month}"),
        403,
        "money.not-your-provider",
    )
    own = ew.local_site["provider_id"]
    assert ew.operator.get(f"/providers/{own}/statements/{month}")["lines"] == []
    assert factories is not None
