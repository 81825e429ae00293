"""The Pinghu demo region: idempotent loading and capacity roll-ups that match hand-computed totals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from suanwang.config import Settings
from suanwang.db.base import Base
from suanwang.db.session import session_scope
from suanwang.demo.loader import load_demo, nodes_for

# Derivation by hand (docs/demo-region.md): nodes = round(PFLOPS × 1000 / TFLOPS / 8), 8 cards per node.
EXPECTED_NODES = {
    "runze-p1-h800": 1819,  # 14,400,000 / 989.4 / 8 = 1,819.29
    "runze-p1-h100": 758,  # 6,000,000 / 989.4 / 8 = 758.04
    "runze-p1-a800": 1442,  # 3,600,000 / 312 / 8 = 1,442.31
    "runze-p1b-h800": 3158,  # 25,000,000 / 989.4 / 8 = 3,158.48
    "runze-p2-h100": 8338,  # 66,000,000 / 989.4 / 8 = 8,338.39
    "runze-p3-h100": 33101,  # 262,000,000 / 989.4 / 8 = 33,100.87
    "geely-a800": 495,  # 1,235,000 / 312 / 8 = 494.79
    "pingshu-l40s": 16,  # 46,400 / 362.05 / 8 = 16.02
    "pingshu-910b": 8,  # 20,500 / 320 / 8 = 8.01
    "gov-910b": 8,
    "gov-a800": 4,  # 10,000 / 312 / 8 = 4.01
    "qingyang-a800": 200,  # 500,000 / 312 / 8 = 200.32
    "qingyang-h20": 100,  # 118,400 / 148 / 8 = 100.0
    "sandbox-local": 1,  # this machine: one node given, not derived
}
# cards × TFLOPS / 1000, summed by phase by hand.
EXPECTED_BY_PHASE = {
    # Runze P1 14,552×989.4 + 6,064×989.4 + 11,536×312; Geely 3,960×312; gov 64×320 + 32×312;
    # Qingyang 1,600×312 + 800×148; the sandbox's one L40S card (362.05 TFLOPS)
    "operational": (38609, Decimal("25880.648")),
    "built": (25264, Decimal("24996.202")),  # 25,264 × 989.4
    # Runze P2 66,704×989.4 + P3 264,808×989.4; Pingshu 128×362.05 + 64×320
    "planned": (331704, Decimal("328064.795")),
}


@pytest.fixture
def demo_settings(db_url: str, clean_engine, tmp_path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path, serve_controller=False)


def _counts(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def test_demo_loads_once_and_a_second_run_changes_nothing(demo_settings, clean_engine):
    first = load_demo(demo_settings)
    counts = _counts(clean_engine)
    second = load_demo(demo_settings)
    assert sum(first.created.values()) > 0
    assert sum(second.created.values()) == 0
    assert _counts(clean_engine) == counts
    assert second.regulator_token == first.regulator_token
    assert counts["providers"] == 6 and counts["pools"] == 14 and counts["organisations"] == 6
    assert counts["voucher_programmes"] == 1 and counts["voucher_grants"] == 2
    assert (counts["enterprises"], counts["registry_projects"], counts["output_records"]) == (14, 29, 189)
    assert second.existing["registry output"] == 189


def test_demo_registry_reproduces_the_reports_figures(demo_settings, regulator):
    """2023 output of the chain's 规上 enterprises 27.44亿元; January-September 2024 39.52亿元, +150.9 %;
    29 compute projects signed since 2024 worth 290.4亿元, 4 foreign-funded worth 3.2亿美元 [report §一]."""
    load_demo(demo_settings)
    year_2023 = regulator.get("/registry/statistics/output?year=2023&month=12")["total"]
    assert year_2023["output_fen"] == 2_744_000_000_00
    sep_2024 = regulator.get("/registry/statistics/output?year=2024&month=9")["total"]
    assert sep_2024["output_fen"] == 3_952_000_000_00
    assert sep_2024["growth"] == "150.92" and sep_2024["growth_text"] == "150.9%"
    # The chip designer below designated size is in the registry but not in the report's figure.
    everyone = regulator.get("/registry/statistics/output?year=2024&month=9&scope=all")["total"]
    assert everyone["output_fen"] > sep_2024["output_fen"]
    projects = regulator.get("/registry/projects/summary?signed_from=2024-01-01")["total"]
    assert projects == {
        "projects": 29,
        "investment_fen": 29_040_000_000_00,
        "foreign_projects": 4,
        "foreign_usd_cents": 320_000_000_00,
    }
    # The demo tenants are linked to their registry records and see only their own.
    (own,) = regulator.get("/registry/enterprises?q=商贸智模")["items"]
    assert own["org_id"] is not None and own["tier"] == "innovative_sme"
    # Re-importing what the registry exports changes nothing.
    for dataset in ("enterprises", "projects", "output"):
        exported = regulator.call("GET", f"/registry/export/{dataset}?format=xlsx", expect=200).content
        report = regulator.call(
            "POST", f"/registry/import/{dataset}?format=xlsx&dry_run=false", content=exported, expect=200
        ).json()
        assert report["errors"] == [] and report["created"] == report["updated"] == 0, report


def test_demo_voucher_programme_is_open_and_its_grants_are_funded(demo_settings, regulator):
    load_demo(demo_settings)
    (programme,) = regulator.get("/vouchers/programmes")["items"]
    assert programme["preset"] == "pinghu-2026" and programme["ratio_bp"] == 5000
    grants = regulator.get("/vouchers/grants")["items"]
    assert sorted(g["amount_fen"] for g in grants) == [20_000_000, 50_000_000]
    assert all(g["available_fen"] == g["amount_fen"] and g["status"] == "active" for g in grants)
    budget = regulator.get(f"/vouchers/programmes/{programme['id']}/budget")
    assert budget["granted_fen"] == 70_000_000
    assert budget["unallocated_fen"] == programme["budget_fen"] - 70_000_000


def test_demo_pool_sizes_follow_the_derivation(demo_settings, regulator):
    load_demo(demo_settings)
    pools = {p["code"]: p for p in regulator.get("/pools", params={"limit": 100})["items"]}
    assert {code: p["nodes"] for code, p in pools.items()} == EXPECTED_NODES
    assert all(p["cards_per_node"] == 8 for code, p in pools.items() if code != "sandbox-local")


def test_demo_capacity_by_phase_matches_hand_computed_totals(demo_settings, regulator):
    load_demo(demo_settings)
    report = regulator.get("/capacity", params={"group_by": "phase"})
    got = {row["key"]["phase"]: (row["cards"], Decimal(str(row["pflops"]))) for row in report["rows"]}
    assert got == EXPECTED_BY_PHASE
    # Runze phase 1 as the report counts it: about 24,000 operational and 49,000 built in all.
    runze = regulator.get("/capacity", params={"group_by": "provider,phase", "region": "zj-jiaxing-pinghu"})
    runze_rows = {
        r["key"]["phase"]: r["pflops"] for r in runze["rows"] if r["key"]["provider"] == "runze-pinghu"
    }
    assert round(runze_rows["operational"]) == 23997
    assert round(runze_rows["operational"] + runze_rows["built"]) == 48993


def test_demo_government_pools_are_in_the_government_zone_only(demo_settings, regulator):
    load_demo(demo_settings)
    zones = regulator.get("/capacity", params={"group_by": "provider,zone"})["rows"]
    government = {r["key"]["provider"] for r in zones if r["key"]["zone"] == "government"}
    assert government == {"pinghu-gov-dc"}


def test_demo_tenants_locality(demo_settings, regulator):
    load_demo(demo_settings)
    orgs = {o["credit_code"]: o for o in regulator.get("/orgs")["items"]}
    local = {code for code, o in orgs.items() if o["is_local"]}
    assert local == {"91330482MA2JD00017", "91330482MA2JD0002A", "91330482MA2JD0003D", "11330482MB1A000012"}


def test_nodes_for_rounds_half_up_and_never_below_one():
    assert nodes_for(Decimal("0.001"), "H800", 8) == 1
    assert nodes_for(Decimal("989.4") * 8 * Decimal("1.5") / 1000, "H800", 8) == 2  # exactly 1.5 nodes
    with pytest.raises(ValueError):
        nodes_for(Decimal(1), "NOPE", 8)


def test_demo_sites_run_on_simulated_backends_and_the_sandbox_on_this_machine(demo_settings, regulator):
    load_demo(demo_settings)
    sites = {s["code"]: s for s in regulator.get("/sites", params={"limit": 100})["items"]}
    assert sites["sandbox-this-machine"]["backend_kind"] == "local"
    assert all(
        s["backend_kind"] == "simulated" for code, s in sites.items() if code != "sandbox-this-machine"
    )
