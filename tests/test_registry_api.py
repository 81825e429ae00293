"""The enterprise registry through its API: the chain's taxonomy, enterprises with validated credit codes
and dated tiers, search and filters, projects with their summary, monthly output and its statistics,
the chain map, profiles with platform use, and who may see and change what."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.db.session import session_scope
from suanwang.registry.models import Enterprise, Project
from tests import factories
from tests.helpers import assert_problem

pytestmark = pytest.mark.db


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def enterprise(api: Any, **fields: Any) -> dict[str, Any]:
    body = {"credit_code": factories.credit_code(), "name": "平湖测试企业", "segments": ["servers_boards"]}
    return api.post("/registry/enterprises", body | fields)


# --- taxonomy ------------------------------------------------------------------------------------


def test_the_chain_ships_with_its_three_stages_and_every_tenant_can_read_it(world: Any) -> None:
    segments = world.member_a.get("/registry/segments")
    by_code = {s["code"]: s for s in segments}
    assert {s["stage"] for s in segments} == {"upstream", "midstream", "downstream"}
    assert by_code["optical_modules"]["parent_code"] == "network_equipment"
    assert by_code["low_altitude"]["name_zh"] == "无人机与低空经济"
    assert by_code["compute_services"]["stage"] == "midstream" and by_code["chips"]["parent_code"] is None
    world.member_a.post(
        "/registry/segments",
        {"code": "quantum", "stage": "upstream", "name_zh": "量子", "name_en": "Quantum"},
        expect=403,
    )


def test_the_regulator_edits_the_taxonomy(regulator: Any) -> None:
    added = regulator.post(
        "/registry/segments",
        {
            "code": "liquid_cooling",
            "stage": "midstream",
            "parent_code": "compute_infrastructure",
            "name_zh": "液冷",
            "name_en": "Liquid cooling",
        },
    )
    assert added["parent_code"] == "compute_infrastructure"
    renamed = regulator.patch("/registry/segments/liquid_cooling", {"name_en": "Liquid cooling systems"})
    assert renamed["name_en"] == "Liquid cooling systems"
    # Rules of the two-level tree.
    bad = [
        ({"parent_code": "optical_modules"}, "registry.parent-too-deep"),
        ({"parent_code": "chips"}, "registry.parent-other-stage"),
        ({"parent_code": "nowhere"}, "registry.unknown-parent"),
    ]
    for patch, code in bad:
        assert_problem(regulator.call("PATCH", "/registry/segments/liquid_cooling", json=patch), 422, code)
    assert_problem(
        regulator.call("PATCH", "/registry/segments/network_equipment", json={"retired": True}),
        422,
        "registry.segment-has-children",
    )
    regulator.patch("/registry/segments/liquid_cooling", {"retired": True})
    assert "liquid_cooling" not in {s["code"] for s in regulator.get("/registry/segments")}
    assert "liquid_cooling" in {s["code"] for s in regulator.get("/registry/segments?include_retired=true")}
    # A retired segment cannot be named by new records.
    response = regulator.call(
        "POST",
        "/registry/enterprises",
        json={"credit_code": factories.credit_code(), "name": "X", "segments": ["liquid_cooling"]},
    )
    assert_problem(response, 422, "registry.unknown-segment")


# --- enterprises ---------------------------------------------------------------------------------


def test_an_enterprise_is_linked_to_its_tenant_organisation_and_tenants_see_only_their_own(
    world: Any, clean_engine: Engine
) -> None:
    own = enterprise(
        world.regulator, credit_code=world.org_a["credit_code"], name="A 公司", tier="innovative_sme"
    )
    other = enterprise(world.regulator, credit_code=world.org_b["credit_code"], name="B 公司")
    unlinked = enterprise(world.regulator)
    assert own["org_id"] == world.org_a["id"] and unlinked["org_id"] is None
    assert own["locality_code"] == "330482" and own["stage"] == "upstream"

    mine = world.member_a.get("/registry/enterprises")
    assert [e["id"] for e in mine["items"]] == [own["id"]]
    profile = world.member_a.get(f"/registry/enterprises/{own['id']}")
    assert profile["platform"]["org_id"] == world.org_a["id"]
    assert profile["tiers"][0]["tier"] == "innovative_sme"
    assert world.regulator.get(f"/registry/enterprises/{unlinked['id']}")["platform"] is None
    for target in (other, unlinked):
        world.member_a.get(f"/registry/enterprises/{target['id']}", expect=404)
    # Tenants read; only the regulator writes.
    world.admin_a.patch(f"/registry/enterprises/{own['id']}", {"employees": 9}, expect=403)
    world.admin_a.post(
        "/registry/enterprises", {"credit_code": factories.credit_code(), "name": "Y"}, expect=403
    )
    # Providers have no business in the registry.
    assert_problem(world.op1.call("GET", "/registry/enterprises"), 403, "registry.regulator-or-own")
    world.op1.get(f"/registry/enterprises/{own['id']}", expect=403)
    assert count(clean_engine, Enterprise) == 3


def test_an_organisation_registered_later_is_linked_to_its_record(regulator: Any) -> None:
    record = enterprise(regulator)
    assert record["org_id"] is None
    org = factories.org(regulator, credit_code=record["credit_code"])
    assert regulator.get(f"/registry/enterprises/{record['id']}")["enterprise"]["org_id"] == org["id"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"credit_code": "91330482MA2JD00018"}, "credit-code.check"),
        ({"credit_code": "91330482ma2jd00017"}, "credit-code.lowercase"),
        ({"segments": ["teleportation"]}, "registry.unknown-segment"),
        ({"rd_intensity_bp": -1}, "invalid-request"),
        ({"employees": -3}, "invalid-request"),
    ],
)
def test_bad_enterprises_are_refused_and_nothing_is_stored(
    regulator: Any, clean_engine: Engine, fields: dict[str, Any], code: str
) -> None:
    body = {"credit_code": factories.credit_code(), "name": "Z"} | fields
    response = regulator.call("POST", "/registry/enterprises", json=body)
    problem = assert_problem(response, 422, code)
    assert problem["detail"]
    assert count(clean_engine, Enterprise) == 0


def test_a_duplicate_credit_code_is_a_conflict(regulator: Any) -> None:
    first = enterprise(regulator)
    response = regulator.call(
        "POST", "/registry/enterprises", json={"credit_code": first["credit_code"], "name": "x"}
    )
    assert_problem(response, 409, "registry.duplicate-credit-code")


def test_filters_find_enterprises_by_segment_stage_tier_district_size_and_name(regulator: Any) -> None:
    optics = enterprise(regulator, segments=["optical_modules"], district="独山港镇", above_size=True)
    switch = enterprise(regulator, segments=["switches", "routers"], tier="specialised_sme", above_size=True)
    robot = enterprise(
        regulator, name="平湖机器人", segments=["robots"], district="独山港镇", tier="little_giant"
    )
    bare = enterprise(regulator, segments=[])

    def found(query: str) -> set[int]:
        return {e["id"] for e in regulator.get(f"/registry/enterprises?{query}")["items"]}

    assert found("segment=network_equipment") == {optics["id"], switch["id"]}  # sub-segments included
    assert found("segment=routers") == {switch["id"]}
    assert found("stage=downstream") == {robot["id"]}
    assert found("tier=little_giant") == {robot["id"]}
    assert found("untiered=true") == {optics["id"], bare["id"]}
    assert found("district=独山港镇") == {optics["id"], robot["id"]}
    assert found("above_size=true") == {optics["id"], switch["id"]}
    assert found("above_size=false&segment=robots") == {robot["id"]}
    assert found("q=机器人") == {robot["id"]}
    assert found("q=%") == found("q=_") == set()  # literal characters, not wildcards
    assert found(f"q={bare['credit_code']}") == {bare["id"]}
    assert_problem(
        regulator.call("GET", "/registry/enterprises?segment=nope"), 422, "registry.unknown-segment"
    )
    ordered = regulator.get("/registry/enterprises?sort=-id")["items"]
    assert [e["id"] for e in ordered] == sorted((e["id"] for e in ordered), reverse=True)


def test_tiers_are_recorded_with_their_dates_and_the_latest_is_current(regulator: Any) -> None:
    e = enterprise(regulator, founded_on="2015-04-01", tier="innovative_sme", tier_granted_on="2021-06-30")
    path = f"/registry/enterprises/{e['id']}/tiers"
    now = regulator.post(path, {"tier": "specialised_sme", "granted_on": "2023-01-10"}, expect=200)
    assert (now["tier"], now["tier_granted_on"]) == ("specialised_sme", "2023-01-10")
    regulator.post(
        path, {"tier": "specialised_sme", "granted_on": "2023-01-10"}, expect=200
    )  # again: no change
    history = regulator.get(f"/registry/enterprises/{e['id']}")["tiers"]
    assert [(t["tier"], t["granted_on"]) for t in history] == [
        ("innovative_sme", "2021-06-30"),
        ("specialised_sme", "2023-01-10"),
    ]
    revoked = regulator.post(f"{path}/specialised_sme/revoke", {"revoked_on": "2024-02-01"}, expect=200)
    assert revoked["tier"] == "innovative_sme"
    assert_problem(
        regulator.call("POST", f"{path}/specialised_sme/revoke", json={"revoked_on": "2024-03-01"}),
        404,
        "registry.tier-not-held",
    )
    assert_problem(
        regulator.call("POST", path, json={"tier": "little_giant", "granted_on": "2010-01-01"}),
        422,
        "registry.tier-before-founding",
    )


# --- projects ------------------------------------------------------------------------------------


def project(api: Any, enterprise_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"项目 {factories.credit_code()}",
        "enterprise_id": enterprise_id,
        "segment": "data_centres",
        "investment_fen": 100_000_000_00,
        "signed_on": "2024-03-01",
    }
    return api.post("/registry/projects", body | fields)


def test_projects_move_forward_and_sum_up_like_the_report(regulator: Any, clean_engine: Engine) -> None:
    e = enterprise(regulator)
    a = project(regulator, e["id"], department="经信局", chain_leader="副市长 甲")
    b = project(
        regulator,
        e["id"],
        segment="optical_modules",
        investment_fen=50_000_000_00,
        foreign_funded=True,
        foreign_usd_cents=5_000_000_00,
        signed_on="2024-07-15",
    )
    project(regulator, e["id"], signed_on="2023-12-31", investment_fen=1_00)  # before the period
    moved = regulator.patch(f"/registry/projects/{a['id']}", {"status": "in_production"})
    assert moved["status"] == "in_production" and moved["construction_on"] and moved["production_on"]
    assert_problem(
        regulator.call("PATCH", f"/registry/projects/{a['id']}", json={"status": "signed"}),
        422,
        "registry.project-status-backwards",
    )
    summary = regulator.get("/registry/projects/summary?signed_from=2024-01-01&signed_to=2024-12-31")
    assert summary["total"] == {
        "projects": 2,
        "investment_fen": 150_000_000_00,
        "foreign_projects": 1,
        "foreign_usd_cents": 5_000_000_00,
    }
    by_status = {row["key"]: row["projects"] for row in summary["by_status"]}
    assert by_status == {"signed": 1, "under_construction": 0, "in_production": 1}
    by_segment = {row["key"]: row["investment_fen"] for row in summary["by_segment"]}
    assert by_segment == {"compute_infrastructure": 100_000_000_00, "network_equipment": 50_000_000_00}
    by_progress = [p["status"] for p in regulator.get("/registry/projects?sort=-status")["items"]]
    assert by_progress == ["in_production", "signed", "signed"]  # the project's progress, not a-z
    listed = regulator.get("/registry/projects?foreign_funded=true")["items"]
    assert [p["id"] for p in listed] == [b["id"]]
    assert [p["id"] for p in regulator.get("/registry/projects?segment=network_equipment")["items"]] == [
        b["id"]
    ]

    before = count(clean_engine, Project)
    for fields, code in [
        ({"foreign_funded": True}, "registry.foreign-needs-amount"),
        ({"foreign_usd_cents": 100}, "registry.amount-needs-foreign"),
        ({"segment": "moon"}, "registry.unknown-segment"),
        ({"name": a["name"]}, "registry.duplicate-project"),
        ({"production_on": "2020-01-01"}, "registry.project-date-before-signing"),
    ]:
        body = {
            "name": "新项目",
            "enterprise_id": e["id"],
            "segment": "data_centres",
            "investment_fen": 1,
            "signed_on": "2024-01-01",
        } | fields
        response = regulator.call("POST", "/registry/projects", json=body)
        assert response.status_code in (409, 422), response.text
        assert response.json()["code"] == code
    assert count(clean_engine, Project) == before


def test_projects_are_the_regulators(world: Any) -> None:
    e = enterprise(world.regulator, credit_code=world.org_a["credit_code"])
    p = project(world.regulator, e["id"])
    world.admin_a.get("/registry/projects", expect=403)
    world.admin_a.get(f"/registry/projects/{p['id']}", expect=403)
    world.admin_a.get("/registry/projects/summary", expect=403)
    # Its own projects appear on its own profile.
    assert [x["id"] for x in world.admin_a.get(f"/registry/enterprises/{e['id']}")["projects"]] == [p["id"]]


# --- output and statistics -----------------------------------------------------------------------


def put(api: Any, enterprise_id: int, month: str, output_fen: int, **fields: Any) -> dict[str, Any]:
    response = api.call(
        "PUT",
        f"/registry/enterprises/{enterprise_id}/output/{month}",
        json={"output_fen": output_fen} | fields,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_output_statistics_follow_the_report(regulator: Any) -> None:
    """Hand-computed: two 规上 enterprises and one below size, January-February of two years."""
    up = enterprise(regulator, segments=["servers_boards"], above_size=True, tier="specialised_sme")
    down = enterprise(regulator, segments=["robots"], above_size=True)
    small = enterprise(regulator, segments=["robots"], above_size=False)
    for month, a, b in [
        ("2023-01", 100, 50),
        ("2023-02", 100, 50),
        ("2024-01", 300, 60),
        ("2024-02", 200, 40),
    ]:
        put(regulator, up["id"], month, a * 100)
        put(regulator, down["id"], month, b * 100)
        put(regulator, small["id"], month, 999 * 100)
    # A correction replaces the month; the enterprise's flag is the default of `above_size`.
    assert put(regulator, up["id"], "2024-02", 250 * 100, revenue_fen=1)["above_size"] is True

    stats = regulator.get("/registry/statistics/output?year=2024&month=2")
    total = stats["total"]
    assert (total["output_fen"], total["previous_fen"]) == (650_00, 300_00)  # 300+250+60+40 vs 100+100+50+50
    assert total["growth"] == "116.67" and total["growth_text"] == "116.7%"
    by_stage = {row["key"]: (row["output_fen"], row["growth_text"]) for row in stats["by_stage"]}
    assert by_stage == {"upstream": (550_00, "175.0%"), "downstream": (100_00, "0.0%")}
    by_tier = {row["key"]: row["output_fen"] for row in stats["by_tier"]}
    assert by_tier == {"specialised_sme": 550_00, "unclassified": 100_00}
    everyone = regulator.get("/registry/statistics/output?year=2024&month=2&scope=all")["total"]
    assert everyone["output_fen"] == 650_00 + 2 * 999_00

    months = regulator.get("/registry/statistics/output/monthly?year=2024")["months"]
    assert [(m["month"], m["output_fen"], m["cumulative_fen"], m["growth_text"]) for m in months] == [
        (1, 360_00, 360_00, "140.0%"),
        (2, 290_00, 650_00, "93.3%"),
    ]
    assert_problem(
        regulator.call("GET", "/registry/statistics/output?year=2024&scope=x"), 422, "registry.bad-scope"
    )
    assert_problem(
        regulator.call("PUT", f"/registry/enterprises/{up['id']}/output/2024-13", json={"output_fen": 1}),
        422,
        "registry.bad-month",
    )
    assert_problem(
        regulator.call("PUT", f"/registry/enterprises/{up['id']}/output/2024-9", json={"output_fen": 1}),
        422,
        "registry.bad-month-text",
    )
    chain_map = {row["segment"]: row for row in regulator.get("/registry/statistics/chain-map")["segments"]}
    assert chain_map["servers_boards"]["counts"]["specialised_sme"] == 1
    assert (
        chain_map["ai_applications"]["enterprises"] == 2 and chain_map["ai_applications"]["above_size"] == 1
    )


def test_statistics_are_the_regulators(world: Any) -> None:
    world.admin_a.get("/registry/statistics/output?year=2024", expect=403)
    world.admin_a.get("/registry/statistics/chain-map", expect=403)
    e = enterprise(world.regulator, credit_code=world.org_a["credit_code"])
    world.admin_a.call(
        "PUT", f"/registry/enterprises/{e['id']}/output/2024-01", json={"output_fen": 1}, expect=403
    )


# --- cultivation ---------------------------------------------------------------------------------


def test_candidates_for_a_tier_show_what_each_meets_and_misses(regulator: Any) -> None:
    criteria = [
        {"metric": "revenue_fen", "minimum": 10_000_000_00},  # last year's revenue ≥ 10 million yuan
        {"metric": "rd_intensity_bp", "minimum": 300},
        {"metric": "patents", "minimum": 2, "group": "ip"},
        {"metric": "employees", "minimum": 100, "group": "ip"},
    ]
    stored = regulator.call("PUT", "/registry/cultivation/criteria/specialised_sme", json=criteria)
    assert stored.status_code == 200, stored.text
    assert stored.json()["custom"] is True and len(stored.json()["criteria"]) == 4
    ready = enterprise(regulator, name="甲", tier="innovative_sme", rd_intensity_bp=450, patents=3)
    close = enterprise(regulator, name="乙", tier="innovative_sme", rd_intensity_bp=250, employees=150)
    unknown = enterprise(regulator, name="丙", tier="innovative_sme", rd_intensity_bp=900, patents=5)
    enterprise(regulator, name="丁", tier="specialised_sme", rd_intensity_bp=900, patents=9)  # already there
    for e, monthly in ((ready, 1_000_000_00), (close, 2_000_000_00)):
        for month in range(1, 13):
            put(regulator, e["id"], f"2024-{month:02d}", monthly, revenue_fen=monthly)
    found = regulator.get("/registry/cultivation/candidates?tier=specialised_sme&as_of=2025-03-01")
    # Eligible first, then the fewest criteria missed (missing data is not a miss, but is not eligible).
    assert [c["enterprise_id"] for c in found] == [ready["id"], unknown["id"], close["id"]]
    first, third, second = found
    assert first["eligible"] is True and first["missed"] == [] and first["unknown"] == []
    assert {m["metric"] for m in second["missed"]} == {"rd_intensity_bp"}
    assert second["missed"][0]["value"] == 250
    assert [m["metric"] for m in third["unknown"]] == ["revenue_fen"]  # no revenue recorded for 2024
    zh = regulator.get(
        "/registry/cultivation/candidates?tier=specialised_sme&as_of=2025-03-01",
        headers={"Accept-Language": "zh-CN"},
    )
    assert any("研发" in m["label"] for m in zh[2]["missed"])

    bad = regulator.call(
        "PUT", "/registry/cultivation/criteria/specialised_sme", json=[{"metric": "luck", "minimum": 1}]
    )
    assert bad.status_code == 422 and bad.json()["code"].startswith("registry.cultivation.")
    regulator.call("DELETE", "/registry/cultivation/criteria/specialised_sme", expect=204)
    tiers = {c["tier"]: c for c in regulator.get("/registry/cultivation/criteria")}
    assert tiers["specialised_sme"]["custom"] is False and tiers["specialised_sme"]["criteria"]
    assert_problem(
        regulator.call("GET", "/registry/cultivation/candidates?tier=major_project_lead_a"),
        422,
        "registry.cultivation.not-on-ladder",
    )


def test_search_by_name_ignores_case_on_both_databases(regulator: Any) -> None:
    optics = enterprise(regulator, name="平湖光学", name_en="Pinghu Optics Co.")
    assert [e["id"] for e in regulator.get("/registry/enterprises?q=pinghu OPTICS")["items"]] == [
        optics["id"]
    ]
    code = optics["credit_code"].lower()
    assert [e["id"] for e in regulator.get(f"/registry/enterprises?q={code}")["items"]] == [optics["id"]]


def test_two_segments_cannot_share_a_name(regulator: Any) -> None:
    body = {"code": "cooling", "stage": "midstream", "name_zh": "数据中心", "name_en": "Cooling"}
    assert_problem(
        regulator.call("POST", "/registry/segments", json=body), 409, "registry.segment-name-taken"
    )
    response = regulator.call("PATCH", "/registry/segments/routers", json={"name_en": "switches"})
    assert_problem(response, 409, "registry.segment-name-taken")


def test_the_current_tier_is_the_highest_held_and_sorting_follows_the_ladder(regulator: Any) -> None:
    giant = enterprise(regulator, tier="little_giant", tier_granted_on="2024-01-10")
    # A later re-certification of a lower tier does not demote it.
    path = f"/registry/enterprises/{giant['id']}/tiers"
    again = regulator.post(path, {"tier": "specialised_sme", "granted_on": "2025-02-01"}, expect=200)
    assert (again["tier"], again["tier_granted_on"]) == ("little_giant", "2024-01-10")
    small = enterprise(regulator, tier="innovative_sme")
    none = enterprise(regulator)
    order = [e["id"] for e in regulator.get("/registry/enterprises?sort=-tier")["items"]]
    assert order == [giant["id"], small["id"], none["id"]]
    response = regulator.call(
        "POST",
        "/registry/enterprises",
        json={
            "credit_code": factories.credit_code(),
            "name": "X",
            "founded_on": "2020-01-01",
            "tier": "innovative_sme",
            "tier_granted_on": "2019-01-01",
        },
    )
    assert_problem(response, 422, "registry.tier-before-founding")
