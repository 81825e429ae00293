"""Registry spreadsheets through the API: a dry run reports every planted error by row and field and
writes nothing, a real import is all-or-nothing, re-importing changes nothing, and an export imports
back unchanged in both languages and both formats."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.db.session import session_scope
from suanwang.registry.models import Enterprise, OutputRecord, Project
from tests import factories
from tests.helpers import assert_problem

pytestmark = pytest.mark.db

GOOD = factories.credit_code()
OTHER = factories.credit_code()


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def upload(api: Any, dataset: str, text: str, *, dry_run: bool, expect: int = 200, **params: str) -> Any:
    query = "&".join([f"dry_run={str(dry_run).lower()}", *(f"{k}={v}" for k, v in params.items())])
    response = api.call(
        "POST",
        f"/registry/import/{dataset}?{query}",
        content=text.encode("utf-8"),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == expect, response.text
    return response.json()


ENTERPRISES = f"""统一社会信用代码,企业名称,产业链环节,梯度层级,认定日期,是否规上,研发强度(%),成立日期
{GOOD},平湖甲科技有限公司,光模块,专精特新中小企业,2023-05-01,是,4.3,2015-03-01
{OTHER},平湖乙软件有限公司,base_software; industrial_internet,,,否,12,2020/6/1
"""

PLANTED = f"""统一社会信用代码,企业名称,产业链环节,是否规上,成立日期,从业人员
{GOOD},好企业,servers_boards,是,2015-03-01,10
91330482MA2JD00018,校验码错,servers_boards,是,2015-03-01,10
{OTHER},,servers_boards,是,2015-03-01,10
{factories.credit_code()},未知环节,teleportation,是,2015-03-01,10
{factories.credit_code()},坏日期,servers_boards,是,2015-02-30,10
{factories.credit_code()},负人数,servers_boards,是,2015-03-01,-5
{GOOD},重复,servers_boards,是,2015-03-01,10
"""


def test_a_dry_run_reports_each_planted_error_and_writes_nothing(
    regulator: Any, clean_engine: Engine
) -> None:
    report = upload(regulator, "enterprises", PLANTED, dry_run=True)
    found = {(e["row"], e["field"]) for e in report["errors"]}
    assert found == {
        (3, "credit_code"),
        (4, "name"),
        (5, "segments"),
        (6, "founded_on"),
        (7, "employees"),
        (8, "credit_code"),
    }
    assert all(e["message"] for e in report["errors"])
    assert report["rows"] == 7 and report["created"] == 0
    assert count(clean_engine, Enterprise) == 0
    # The real import of the same file is refused whole, with the same rows listed.
    problem = upload(regulator, "enterprises", PLANTED, dry_run=False, expect=422)
    assert problem["code"] == "registry.import-invalid"
    assert {(e["row"], e["field"]) for e in problem["row_errors"]} == found
    assert count(clean_engine, Enterprise) == 0
    zh = regulator.call(
        "POST",
        "/registry/import/enterprises?dry_run=true",
        content=PLANTED.encode(),
        headers={"Accept-Language": "zh-CN"},
    ).json()
    assert any("第 3 行" in e["message"] for e in zh["errors"])


def test_an_import_counts_what_it_creates_and_a_second_changes_nothing(
    regulator: Any, clean_engine: Engine
) -> None:
    dry = upload(regulator, "enterprises", ENTERPRISES, dry_run=True)
    assert (dry["created"], dry["updated"], dry["unchanged"], dry["errors"]) == (2, 0, 0, [])
    assert count(clean_engine, Enterprise) == 0  # a dry run counts without writing
    real = upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    assert (real["created"], real["updated"], real["unchanged"]) == (2, 0, 0)
    items = {e["credit_code"]: e for e in regulator.get("/registry/enterprises")["items"]}
    first = items[GOOD]
    assert first["segments"] == ["optical_modules"] and first["tier"] == "specialised_sme"
    assert first["tier_granted_on"] == "2023-05-01" and first["rd_intensity_bp"] == 430
    assert items[OTHER]["segments"] == ["base_software", "industrial_internet"]
    assert items[OTHER]["founded_on"] == "2020-06-01" and items[OTHER]["above_size"] is False
    again = upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert regulator.get("/registry/enterprises")["items"] == list(items.values())
    changed = ENTERPRISES.replace(",4.3,", ",5.1,")
    assert upload(regulator, "enterprises", changed, dry_run=False)["updated"] == 1


def test_projects_and_output_need_registered_enterprises(regulator: Any, clean_engine: Engine) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    stranger = factories.credit_code()
    output = f"""统一社会信用代码,统计月份,产值（万元）,营业收入（万元）
{GOOD},2024年1月,120.5,130
{GOOD},2024-02,100,
{stranger},2024-01,5,5
"""
    report = upload(regulator, "output", output, dry_run=True)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(4, "credit_code")]
    fixed = upload(regulator, "output", output.replace(f"{stranger},2024-01,5,5\n", ""), dry_run=False)
    assert fixed["created"] == 2
    with session_scope(clean_engine) as session:
        january = session.scalar(select(OutputRecord).where(OutputRecord.month == 1))
        assert january is not None
        assert (january.output_fen, january.revenue_fen) == (1_205_000_00, 1_300_000_00)  # 万元 → fen
        assert january.above_size is True  # the enterprise's flag, as the file has no column for it

    header = ",".join(
        (
            *("项目名称", "企业统一社会信用代码", "产业链环节", "总投资（亿元）"),
            *("是否外资", "外资金额（万美元）", "签约日期", "项目状态"),
        )
    )
    projects = f"""{header}
甲项目一期,{GOOD},optical_modules,1.5,是,2000,2024-03-01,在建
乙项目,{OTHER},data_centres,0.2,否,,2024-04-01,已签约
丙项目,{OTHER},data_centres,0.2,是,,2024-04-01,已签约
"""
    report = upload(regulator, "projects", projects, dry_run=True)
    assert [e["row"] for e in report["errors"]] == [4]
    assert count(clean_engine, Project) == 0
    upload(
        regulator, "projects", projects.replace("丙项目,", "丙项目,").replace(",是,,", ",否,,"), dry_run=False
    )
    summary = regulator.get("/registry/projects/summary")["total"]
    assert summary["investment_fen"] == 1_9000_0000_00 and summary["foreign_usd_cents"] == 2000_0000_00


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_an_export_imports_back_unchanged(regulator: Any, fmt: str, lang: str) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    month = f"统一社会信用代码,月份,产值,营业收入,是否规上\n{GOOD},2024-03,12345.67,99,否\n"
    upload(regulator, "output", month, dry_run=False)
    for dataset in ("enterprises", "output"):
        exported = regulator.call(
            "GET", f"/registry/export/{dataset}?format={fmt}", headers={"Accept-Language": lang}, expect=200
        )
        assert exported.headers["content-disposition"].endswith(f'.{fmt}"')
        report = regulator.call(
            "POST",
            f"/registry/import/{dataset}?format={fmt}&dry_run=false",
            content=exported.content,
            expect=200,
        ).json()
        assert report["errors"] == [] and report["unchanged"] == report["rows"] > 0, report
    if fmt == "csv":
        text = regulator.call("GET", "/registry/export/enterprises", headers={"Accept-Language": lang}).text
        assert ("统一社会信用代码" in text) == (lang == "zh-CN")


def test_a_mapping_names_columns_the_registry_does_not_know(regulator: Any, clean_engine: Engine) -> None:
    text = f"代码,企业全称\n{GOOD},映射企业\n"
    refused = upload(regulator, "enterprises", text, dry_run=True)
    assert refused["errors"]
    mapping = json.dumps({"代码": "credit_code", "企业全称": "name"}, ensure_ascii=False)
    report = upload(regulator, "enterprises", text, dry_run=False, mapping=mapping)
    assert report["created"] == 1
    bad = regulator.call("POST", "/registry/import/enterprises?mapping=[1]", content=text.encode())
    assert_problem(bad, 422, "registry.bad-mapping")


def test_bad_requests_and_who_may_import(world: Any, clean_engine: Engine) -> None:
    regulator = world.regulator
    assert_problem(
        regulator.call("POST", "/registry/import/people", content=b"a,b\n"), 404, "registry.unknown-dataset"
    )
    assert_problem(
        regulator.call("POST", "/registry/import/enterprises?format=ods", content=b"a"),
        422,
        "registry.bad-format",
    )
    not_xlsx = regulator.call("POST", "/registry/import/enterprises?format=xlsx", content=b"not a workbook")
    assert not_xlsx.status_code == 422 and not_xlsx.json()["code"].startswith("registry.import.")
    for caller in (world.admin_a, world.op1):
        caller.call("POST", "/registry/import/enterprises", content=ENTERPRISES.encode(), expect=403)
        caller.call("GET", "/registry/export/enterprises", expect=403)
    assert count(clean_engine, Enterprise) == 0


def test_a_tier_in_a_file_is_granted_once_and_a_promotion_joins_the_history(regulator: Any) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    (first,) = [e for e in regulator.get("/registry/enterprises")["items"] if e["credit_code"] == GOOD]
    undated = f"统一社会信用代码,企业名称,梯度层级\n{GOOD},平湖甲科技有限公司,专精特新中小企业\n"
    # The tier it already holds, without a date: nothing changes (the grant keeps its date).
    assert upload(regulator, "enterprises", undated, dry_run=False)["unchanged"] == 1
    promoted = f"统一社会信用代码,企业名称,梯度层级,认定日期\n{GOOD},平湖甲科技有限公司,小巨人,2025-07-01\n"
    assert upload(regulator, "enterprises", promoted, dry_run=False)["updated"] == 1
    profile = regulator.get(f"/registry/enterprises/{first['id']}")
    assert profile["enterprise"]["tier"] == "little_giant"
    assert [(t["tier"], t["granted_on"]) for t in profile["tiers"]] == [
        ("specialised_sme", "2023-05-01"),
        ("little_giant", "2025-07-01"),
    ]
    # A file without a tier column leaves the tiers alone.
    plain = f"统一社会信用代码,企业名称\n{GOOD},平湖甲科技有限公司\n"
    assert upload(regulator, "enterprises", plain, dry_run=False)["unchanged"] == 1
    assert regulator.get(f"/registry/enterprises/{first['id']}")["enterprise"]["tier"] == "little_giant"


# --- what review found: a file's rows read together with the records they change -----------------


def test_a_file_without_a_column_keeps_the_stored_values(regulator: Any, clean_engine: Engine) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    # The month was below size; the enterprise is 规上 now: re-importing the month without a 规上 column
    # must not rewrite that month's history.
    upload(
        regulator, "output", f"统一社会信用代码,月份,产值,是否规上\n{GOOD},2024-01,100,否\n", dry_run=False
    )
    again = upload(regulator, "output", f"统一社会信用代码,月份,产值\n{GOOD},2024-01,100\n", dry_run=False)
    assert again["unchanged"] == 1
    with session_scope(clean_engine) as session:
        (month,) = session.scalars(select(OutputRecord)).all()
        assert month.above_size is False
    (record,) = [e for e in regulator.get("/registry/enterprises")["items"] if e["credit_code"] == GOOD]
    put = regulator.call(
        "PUT", f"/registry/enterprises/{record['id']}/output/2024-01", json={"output_fen": 5}
    )
    assert put.status_code == 200 and put.json()["above_size"] is False

    header = "项目名称,企业统一社会信用代码,产业链环节,总投资,是否外资,外资金额（万美元）,签约日期,项目状态"
    upload(
        regulator,
        "projects",
        f"{header}\n甲,{GOOD},data_centres,100,是,50,2024-03-01,已签约\n",
        dry_run=False,
    )
    plain = "项目名称,企业统一社会信用代码,产业链环节,总投资,签约日期,项目状态"
    without = f"{plain}\n甲,{GOOD},data_centres,100,2024-03-01,已签约\n"
    assert upload(regulator, "projects", without, dry_run=False)["unchanged"] == 1
    (project,) = regulator.get("/registry/projects")["items"]
    assert project["foreign_funded"] is True and project["foreign_usd_cents"] == 50_0000_00


def test_rows_that_break_the_apis_rules_are_row_errors(regulator: Any, clean_engine: Engine) -> None:
    header = "统一社会信用代码,企业名称,研发强度(%),联系电话,梯度层级,认定日期,成立日期"
    text = (
        f"{header}\n"
        f"{GOOD},甲,99999999,0573-1234567,,,\n"  # R&D intensity over 100 %
        f"{OTHER},乙,4,abc,,,\n"  # not a phone number
        f"{factories.credit_code()},丙,4,,专精特新中小企业,2010-01-01,2015-01-01\n"  # granted before founding
        f"{factories.credit_code()},丁,4,,,2020-01-01,\n"  # a date without a tier
    )
    report = upload(regulator, "enterprises", text, dry_run=True)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (2, "rd_intensity_bp"),
        (3, "contact_phone"),
        (4, "tier_granted_on"),
        (5, "tier_granted_on"),
    ]
    upload(regulator, "enterprises", text, dry_run=False, expect=422)
    assert count(clean_engine, Enterprise) == 0


def test_a_project_row_is_checked_against_the_stored_project(regulator: Any) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    header = "项目名称,企业统一社会信用代码,产业链环节,总投资,签约日期,项目状态,开工日期"
    upload(
        regulator,
        "projects",
        f"{header}\n甲,{GOOD},data_centres,100,2024-03-01,在建,2024-06-01\n",
        dry_run=False,
    )
    backwards = f"{header}\n甲,{GOOD},data_centres,100,2024-03-01,已签约,2024-06-01\n"
    report = upload(regulator, "projects", backwards, dry_run=True)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(2, "status")]
    # Moving the signing after the stored start of construction breaks the date rule.
    plain = "项目名称,企业统一社会信用代码,产业链环节,总投资,签约日期,项目状态"
    late = f"{plain}\n甲,{GOOD},data_centres,100,2030-01-01,在建\n"
    report = upload(regulator, "projects", late, dry_run=True)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(2, "construction_on")]
    (project,) = regulator.get("/registry/projects")["items"]
    assert project["construction_on"] == "2024-06-01"


def test_records_keep_a_retired_segment_through_export_and_import(regulator: Any) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)  # GOOD is in optical_modules
    regulator.patch("/registry/segments/optical_modules", {"retired": True})
    for lang in ("en", "zh-CN"):
        exported = regulator.call("GET", "/registry/export/enterprises", headers={"Accept-Language": lang})
        report = regulator.call(
            "POST", "/registry/import/enterprises?dry_run=false", content=exported.content, expect=200
        ).json()
        assert report["errors"] == [] and report["unchanged"] == 2
    # A record that did not have it cannot take it.
    moved = f"统一社会信用代码,企业名称,产业链环节\n{OTHER},乙,optical_modules\n"
    report = upload(regulator, "enterprises", moved, dry_run=True)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(2, "segments")]
    assert "optical_modules" in report["errors"][0]["message"]


def test_projects_round_trip_into_a_fresh_registry(regulator: Any, clean_engine: Engine) -> None:
    upload(regulator, "enterprises", ENTERPRISES, dry_run=False)
    header = ",".join(
        (
            *("项目名称", "企业统一社会信用代码", "产业链环节", "总投资（万元）", "是否外资"),
            *("外资金额（万美元）", "签约日期", "项目状态", "开工日期", "投产日期"),
        )
    )
    text = (
        f"{header}\n甲,{GOOD},data_centres,12.5,是,3,2024-03-01,已投产,2024-05-01,2025-01-02\n"
        f"乙,{OTHER},robots,7,否,,2024-04-01,已签约,,\n"
    )
    upload(regulator, "projects", text, dry_run=False)
    before = regulator.get("/registry/projects?sort=name")["items"]
    exported = {
        e: regulator.call("GET", f"/registry/export/{e}?format=xlsx").content
        for e in ("enterprises", "projects")
    }
    with session_scope(clean_engine) as session:
        session.query(Project).delete()
    for dataset in ("enterprises", "projects"):
        regulator.call(
            "POST",
            f"/registry/import/{dataset}?format=xlsx&dry_run=false",
            content=exported[dataset],
            expect=200,
        )
    after = regulator.get("/registry/projects?sort=name")["items"]
    drop = ("id",)
    assert [{k: v for k, v in p.items() if k not in drop} for p in after] == [
        {k: v for k, v in p.items() if k not in drop} for p in before
    ]
