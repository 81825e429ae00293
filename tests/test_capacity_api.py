"""GET /capacity: cards and dense PFLOPS by any dimension, matching hand-computed totals."""

from __future__ import annotations

import pytest

from tests import factories
from tests.helpers import assert_problem


@pytest.fixture
def region(regulator):
    """Hand-computed: H800 and H100 989.4, A800 312, Ascend 910B from the catalogue (TFLOPS per card)."""
    runze = factories.provider(regulator, code="runze", region="pinghu")
    geely = factories.provider(regulator, code="geely", region="pinghu", kind="supercomputing_centre")
    west = factories.provider(regulator, code="west", region="western-hub")
    phase1 = factories.site(regulator, runze["id"], code="runze-1", phase="operational")
    phase3 = factories.site(regulator, runze["id"], code="runze-3", phase="planned")
    changxing = factories.site(regulator, geely["id"], code="changxing", phase="operational")
    hub = factories.site(regulator, west["id"], code="hub", phase="built")
    pools = {
        # 2 nodes × 8 H800 × 989.4 TFLOPS = 15.8304 PFLOPS
        "h800": factories.pool(regulator, phase1["id"], accelerator="H800", nodes=2, cards_per_node=8),
        # 10 × 8 A800 × 312 = 24.96 PFLOPS
        "a800": factories.pool(regulator, phase1["id"], accelerator="A800", nodes=10, cards_per_node=8),
        # 125 × 8 H100 × 989.4 = 989.4 PFLOPS (planned)
        "h100": factories.pool(regulator, phase3["id"], accelerator="H100-SXM", nodes=125, cards_per_node=8),
        # 4 × 8 A800 = 32 cards × 312 = 9.984 PFLOPS, government zone
        "gov": factories.pool(
            regulator,
            changxing["id"],
            accelerator="A800",
            nodes=4,
            cards_per_node=8,
            security_zone="government",
        ),
        # 3 × 4 H800 = 12 cards × 989.4 = 11.8728 PFLOPS (built)
        "west": factories.pool(regulator, hub["id"], accelerator="H800", nodes=3, cards_per_node=4),
    }
    return {"providers": (runze, geely, west), "pools": pools}


def rows_by_key(report):
    return {tuple(row["key"].values()): row for row in report["rows"]}


def test_totals(regulator, region):
    report = regulator.get("/capacity")
    assert report["group_by"] == []
    assert report["total"]["pools"] == 5
    assert report["total"]["cards"] == 16 + 80 + 1000 + 32 + 12
    assert report["total"]["pflops"] == pytest.approx(15.8304 + 24.96 + 989.4 + 9.984 + 11.8728, abs=0.001)
    assert report["total"]["pflops"] == 1052.047  # rounded to 0.001 PFLOPS


def test_pool_reports_its_own_pflops(regulator, region):
    pool = regulator.get(f"/pools/{region['pools']['h800']['id']}")
    assert pool["cards"] == 16
    assert pool["pflops"] == pytest.approx(15.8304)


def test_group_by_provider_and_phase(regulator, region):
    report = regulator.get("/capacity", params={"group_by": "provider,phase"})
    assert report["group_by"] == ["provider", "phase"]
    rows = rows_by_key(report)
    assert set(rows) == {
        ("runze", "operational"),
        ("runze", "planned"),
        ("geely", "operational"),
        ("west", "built"),
    }
    assert rows["runze", "operational"]["cards"] == 96
    assert rows["runze", "operational"]["pflops"] == pytest.approx(40.790, abs=0.0005)
    assert rows["runze", "operational"]["pools"] == 2
    assert rows["runze", "planned"]["pflops"] == pytest.approx(989.4)
    assert rows["geely", "operational"]["pflops"] == pytest.approx(9.984)
    assert rows["west", "built"]["cards"] == 12
    assert sum(r["cards"] for r in report["rows"]) == report["total"]["cards"]
    repeated = regulator.get("/capacity", params=[("group_by", "provider"), ("group_by", "phase")])
    assert repeated == report


def test_group_by_every_dimension(regulator, region):
    expected = {
        "phase": {("operational",): 128, ("planned",): 1000, ("built",): 12},
        "region": {("pinghu",): 1128, ("western-hub",): 12},
        "zone": {("public",): 1108, ("government",): 32},
        "site": {("runze-1",): 96, ("runze-3",): 1000, ("changxing",): 32, ("hub",): 12},
        "domestic": {("false",): 1140},
    }
    for dim, cards in expected.items():
        report = regulator.get("/capacity", params={"group_by": dim})
        assert {k: r["cards"] for k, r in rows_by_key(report).items()} == cards, dim
    by_accelerator = rows_by_key(regulator.get("/capacity", params={"group_by": "accelerator"}))
    assert {k[0]: r["cards"] for k, r in by_accelerator.items()} == {
        "H800": 28,
        "A800": 112,
        "H100-SXM": 1000,
    }


def test_filters(regulator, region):
    operational = regulator.get("/capacity", params={"phase": "operational"})
    assert operational["total"]["cards"] == 128
    assert operational["total"]["pflops"] == pytest.approx(15.8304 + 24.96 + 9.984, abs=0.001)
    gov = regulator.get("/capacity", params={"zone": "government"})
    assert gov["total"]["cards"] == 32
    runze = region["providers"][0]
    assert regulator.get("/capacity", params={"provider_id": runze["id"]})["total"]["cards"] == 1096
    assert regulator.get("/capacity", params={"accelerator": "h800"})["total"]["cards"] == 28
    assert regulator.get("/capacity", params={"region": "western-hub"})["total"]["pflops"] == pytest.approx(
        11.873, abs=0.0005
    )


def test_retired_pools_leave_the_roll_up(regulator, region):
    regulator.post(f"/pools/{region['pools']['h100']['id']}/retire", expect=200)
    report = regulator.get("/capacity", params={"group_by": "phase"})
    assert ("planned",) not in rows_by_key(report)
    assert report["total"]["cards"] == 140


def test_changing_nodes_changes_capacity(regulator, region):
    regulator.patch(f"/pools/{region['pools']['h800']['id']}", {"nodes": 3})
    rows = rows_by_key(regulator.get("/capacity", params={"group_by": "provider,phase"}))
    assert rows["runze", "operational"]["cards"] == 104


def test_empty_region(regulator):
    report = regulator.get("/capacity", params={"group_by": "provider"})
    assert report["rows"] == []
    assert report["total"] == {
        "key": {},
        "pools": 0,
        "cards": 0,
        "pflops": 0.0,
        "verified_cards": 0,
        "verified_pflops": 0.0,
    }


@pytest.mark.parametrize("group_by", ["colour", "provider,colour", "provider,,size"])
def test_unknown_dimension_is_422(regulator, region, group_by):
    problem = assert_problem(
        regulator.call("GET", "/capacity", params={"group_by": group_by}), 422, "capacity.dimension"
    )
    assert "provider, site, phase" in problem["detail"]
    assert group_by.split(",")[-1] in problem["detail"]


def test_bad_filter_value_is_422(regulator):
    assert_problem(regulator.call("GET", "/capacity", params={"phase": "someday"}), 422, "invalid-request")


def test_capacity_is_public_to_signed_in_users_only(world, client):
    assert world.member_b.get("/capacity")["total"]["cards"] == 48
    assert world.op2.get("/capacity", params={"group_by": "provider"})["total"]["cards"] == 48
    assert_problem(client.get("/api/v1/capacity"), 401, "auth.missing")


def test_home_page_shows_the_region(regulator, region, client):
    page = client.get("/")
    assert page.status_code == 200
    assert "989 PFLOPS" in page.text  # planned: the H100 pool
    assert "51 PFLOPS" in page.text  # operational: 15.8304 + 24.96 + 9.984
    zh = client.get("/?lang=zh")
    assert "已投运" in zh.text
