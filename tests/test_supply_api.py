"""The supply slice over HTTP: providers, sites, pools, bad input, role scoping and retirement."""

from __future__ import annotations

import pytest

from tests import factories
from tests.helpers import assert_problem, ids

# --- bad input: each is a clear problem and changes nothing ---------------------------------------


def test_unknown_accelerator_suggests_a_close_match_and_creates_nothing(world):
    reg = world.regulator
    before = reg.get("/pools", params={"include_retired": "true"})
    response = reg.call(
        "POST",
        "/pools",
        json={
            "site_id": world.site1["id"],
            "code": "bad",
            "name": "Bad",
            "accelerator": "H801",
            "nodes": 1,
            "cards_per_node": 8,
        },
    )
    body = assert_problem(response, 422, "pool.unknown-accelerator")
    assert "H801" in body["detail"]
    assert "Did you mean H800?" in body["detail"]
    assert "ASCEND-910B" in body["detail"]  # lists the known models
    assert reg.get("/pools", params={"include_retired": "true"}) == before


def test_accelerator_is_matched_case_insensitively_and_stored_canonically(world):
    pool = factories.pool(world.regulator, world.site1["id"], accelerator=" h100-sxm ", nodes=1)
    assert pool["accelerator"] == "H100-SXM"
    assert pool["dense_fp16_tflops_per_card"] == pytest.approx(989.4)
    assert world.regulator.get(f"/pools/{pool['id']}")["accelerator"] == "H100-SXM"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nodes", 0),
        ("nodes", -1),
        ("cards_per_node", 0),
        ("cards_per_node", -8),
        ("cards_per_node", 65),
        ("nodes", 2.0),
        ("nodes", "2"),
        ("nodes", 1.5),
        ("nodes", None),
        ("nodes", True),
    ],
)
def test_bad_card_counts_are_refused_and_create_nothing(world, field, value):
    reg = world.regulator
    before = reg.get("/pools")["total"]
    body = {
        "site_id": world.site1["id"],
        "code": "bad-count",
        "name": "Bad",
        "accelerator": "H800",
        "nodes": 2,
        "cards_per_node": 8,
    } | {field: value}
    problem = assert_problem(reg.call("POST", "/pools", json=body), 422, "invalid-request")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert field in problem["detail"]
    assert reg.get("/pools")["total"] == before


@pytest.mark.parametrize("value", [0, -3, 1.5, "4"])
def test_bad_node_count_on_update_changes_nothing(world, value):
    reg = world.regulator
    response = reg.call("PATCH", f"/pools/{world.pool1['id']}", json={"nodes": value})
    assert_problem(response, 422, "invalid-request")
    assert reg.get(f"/pools/{world.pool1['id']}")["nodes"] == world.pool1["nodes"]


def test_missing_and_unknown_fields_are_named(regulator):
    response = regulator.call(
        "POST", "/providers", json={"code": "x", "kind": "edge_centre", "colour": "red"}
    )
    problem = assert_problem(response, 422, "invalid-request")
    fields = {e["field"]: e["type"] for e in problem["errors"]}
    assert fields == {"name": "missing", "region": "missing", "colour": "extra_forbidden"}
    assert regulator.get("/providers")["total"] == 0


def test_bad_enum_and_code_format(regulator):
    response = regulator.call(
        "POST", "/providers", json={"code": "Bad Code", "name": "x", "kind": "bakery", "region": "pinghu"}
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert {e["field"] for e in problem["errors"]} == {"code", "kind"}
    assert regulator.get("/providers")["total"] == 0


def test_duplicate_codes_conflict(world):
    reg = world.regulator
    response = reg.call(
        "POST",
        "/providers",
        json={"code": world.p1["code"], "name": "Again", "kind": "edge_centre", "region": "pinghu"},
    )
    assert_problem(response, 409, "duplicate-code")
    assert reg.get("/providers")["total"] == 2
    response = reg.call(
        "POST",
        "/pools",
        json={
            "site_id": world.site2["id"],
            "code": world.pool1["code"],
            "name": "x",
            "accelerator": "A800",
            "nodes": 1,
            "cards_per_node": 8,
        },
    )
    assert_problem(response, 409, "duplicate-code")


def test_references_to_missing_objects_are_404(world):
    reg = world.regulator
    assert_problem(reg.call("GET", "/providers/9999"), 404, "not-found")
    assert_problem(reg.call("GET", "/sites/9999"), 404, "not-found")
    assert_problem(reg.call("GET", "/pools/9999"), 404, "not-found")
    assert_problem(reg.call("GET", "/pools/9999/prices"), 404, "not-found")
    body = {"provider_id": 9999, "code": "orphan", "name": "Orphan", "phase": "planned"}
    assert_problem(reg.call("POST", "/sites", json=body), 404, "not-found")
    assert reg.get("/sites")["total"] == 2


def test_unknown_route_and_hard_delete_are_problems(world):
    reg = world.regulator
    assert_problem(reg.call("GET", "/nothing-here"), 404, "route-not-found")
    assert_problem(reg.call("DELETE", f"/providers/{world.p1['id']}"), 405, "method-not-allowed")
    assert reg.get(f"/providers/{world.p1['id']}")["retired_at"] is None


# --- role scoping ----------------------------------------------------------------------------------


def test_only_the_regulator_creates_and_retires_providers(world):
    body = {"code": "rogue", "name": "Rogue", "kind": "edge_centre", "region": "pinghu"}
    for caller in (world.op1, world.admin_a, world.member_a):
        assert_problem(caller.call("POST", "/providers", json=body), 403, "access.role-required")
        assert_problem(
            caller.call("POST", f"/providers/{world.p1['id']}/retire"), 403, "access.role-required"
        )
    assert world.regulator.get("/providers")["total"] == 2
    assert world.regulator.get(f"/providers/{world.p1['id']}")["retired_at"] is None


def test_operator_renames_own_provider_but_not_its_verified_facts(world):
    p1 = world.p1
    renamed = world.op1.patch(f"/providers/{p1['id']}", {"name": "Runze Pinghu Port", "name_en": "Runze"})
    assert renamed["name"] == "Runze Pinghu Port"
    for change in (
        {"kind": "edge_centre"},
        {"certifications": []},
        {"affiliation_group": "other"},
        {"region": "elsewhere"},
        {"name": "Sneaky", "certifications": ["MLPS-3", "ISO27001"]},
    ):
        response = world.op1.call("PATCH", f"/providers/{p1['id']}", json=change)
        problem = assert_problem(response, 403, "supply.fields-regulator-only")
        assert sorted(change.keys() - {"name"})[0] in problem["detail"]
    after = world.regulator.get(f"/providers/{p1['id']}")
    assert after["name"] == "Runze Pinghu Port"
    assert after["kind"] == p1["kind"]
    assert after["certifications"] == ["MLPS-3"]
    assert after["affiliation_group"] == "runze"
    assert after["region"] == p1["region"]


def test_regulator_updates_verified_facts(world):
    changed = world.regulator.patch(
        f"/providers/{world.p1['id']}", {"certifications": ["MLPS-3", "ISO27001"], "affiliation_group": None}
    )
    assert changed["certifications"] == ["MLPS-3", "ISO27001"]
    assert changed["affiliation_group"] is None
    assert world.regulator.get(f"/providers/{world.p1['id']}")["certifications"] == ["MLPS-3", "ISO27001"]


def test_operator_cannot_touch_another_providers_objects(world):
    op1, p2, site2, pool2 = world.op1, world.p2, world.site2, world.pool2
    checks = [
        op1.call("PATCH", f"/providers/{p2['id']}", json={"name": "Mine now"}),
        op1.call(
            "POST", "/sites", json={"provider_id": p2["id"], "code": "x", "name": "x", "phase": "planned"}
        ),
        op1.call("PATCH", f"/sites/{site2['id']}", json={"name": "Mine now"}),
        op1.call("POST", f"/sites/{site2['id']}/retire"),
        op1.call(
            "POST",
            "/pools",
            json={
                "site_id": site2["id"],
                "code": "x",
                "name": "x",
                "accelerator": "H800",
                "nodes": 1,
                "cards_per_node": 8,
            },
        ),
        op1.call("PATCH", f"/pools/{pool2['id']}", json={"nodes": 99}),
        op1.call("POST", f"/pools/{pool2['id']}/retire"),
        op1.call(
            "POST",
            f"/pools/{pool2['id']}/prices",
            json={"price_fen_per_card_hour": 1, "effective_from": "2025-07-01T00:00:00Z"},
        ),
    ]
    for response in checks:
        assert_problem(response, 403, "access.not-your-provider")
    reg = world.regulator
    assert reg.get(f"/providers/{p2['id']}")["name"] == p2["name"]
    assert reg.get(f"/sites/{site2['id']}") | {"updated_at": None} == site2 | {"updated_at": None}
    assert reg.get(f"/pools/{pool2['id']}")["nodes"] == pool2["nodes"]
    assert reg.get(f"/pools/{pool2['id']}")["retired_at"] is None
    assert reg.get(f"/pools/{pool2['id']}/prices")["total"] == 0
    assert reg.get("/sites")["total"] == 2
    assert reg.get("/pools")["total"] == 2


def test_operator_manages_its_own_sites_pools_and_prices(world):
    op1 = world.op1
    site = factories.site(op1, world.p1["id"], phase="planned", connection={"agent": "tcp://x"})
    assert site["connection"] == {"agent": "tcp://x"}
    assert site["region"] == world.p1["region"]  # defaults to the provider's
    pool = factories.pool(op1, site["id"], accelerator="A800", nodes=3)
    assert pool["cards"] == 24
    assert op1.patch(f"/pools/{pool['id']}", {"nodes": 5, "name": "Bigger"})["cards"] == 40
    card = op1.post(
        f"/pools/{pool['id']}/prices",
        {"price_fen_per_card_hour": 1200, "effective_from": "2025-07-01T00:00:00Z"},
    )
    assert card["price_fen_per_card_hour"] == 1200
    assert op1.patch(f"/sites/{site['id']}", {"phase": "built"})["phase"] == "built"
    assert op1.post(f"/pools/{pool['id']}/retire", expect=200)["retired_at"] is not None
    assert op1.post(f"/sites/{site['id']}/retire", expect=200)["retired_at"] is not None


def test_security_zone_is_the_regulators_designation(world):
    op1, reg = world.op1, world.regulator
    body = {
        "site_id": world.site1["id"],
        "code": "gov",
        "name": "Gov",
        "accelerator": "H800",
        "nodes": 1,
        "cards_per_node": 8,
        "security_zone": "government",
    }
    assert_problem(op1.call("POST", "/pools", json=body), 403, "supply.fields-regulator-only")
    assert_problem(
        op1.call("PATCH", f"/pools/{world.pool1['id']}", json={"security_zone": "government"}),
        403,
        "supply.fields-regulator-only",
    )
    assert reg.get(f"/pools/{world.pool1['id']}")["security_zone"] == "public"
    assert reg.get("/pools", params={"zone": "government"})["total"] == 0
    assert reg.post("/pools", body)["security_zone"] == "government"
    moved = reg.patch(f"/pools/{world.pool1['id']}", {"security_zone": "government"})
    assert moved["security_zone"] == "government"
    assert reg.get("/pools", params={"zone": "government"})["total"] == 2


def test_tenants_read_the_market_but_change_nothing(world):
    member = world.member_a
    assert member.get("/providers")["total"] == 2
    assert member.get(f"/pools/{world.pool1['id']}")["cards"] == 16
    assert member.get("/capacity")["total"]["cards"] == 16 + 32
    for response in (
        member.call("PATCH", f"/providers/{world.p1['id']}", json={"name": "x"}),
        member.call(
            "POST",
            "/sites",
            json={"provider_id": world.p1["id"], "code": "x", "name": "x", "phase": "planned"},
        ),
        member.call("PATCH", f"/pools/{world.pool1['id']}", json={"nodes": 1}),
        world.admin_a.call(
            "POST",
            f"/pools/{world.pool1['id']}/prices",
            json={"price_fen_per_card_hour": 1, "effective_from": "2025-07-01T00:00:00Z"},
        ),
    ):
        assert_problem(response, 403, "access.not-your-provider")
    assert world.regulator.get(f"/pools/{world.pool1['id']}")["nodes"] == 2


def test_site_connection_is_hidden_from_everyone_but_its_operator_and_the_regulator(world):
    site_id = world.site1["id"]
    secret = {"slurmrestd": "http://10.0.0.1:6820", "key": "s1"}
    assert world.regulator.get(f"/sites/{site_id}")["connection"] == secret
    assert world.op1.get(f"/sites/{site_id}")["connection"] == secret
    for caller in (world.op2, world.admin_a, world.member_b):
        assert caller.get(f"/sites/{site_id}")["connection"] is None
        listed = {s["id"]: s for s in caller.get("/sites")["items"]}
        assert listed[site_id]["connection"] is None
        assert listed[site_id]["name"] == world.site1["name"]
    listed = {s["id"]: s for s in world.op1.get("/sites")["items"]}
    assert listed[site_id]["connection"] == secret
    assert listed[world.site2["id"]]["connection"] is None


# --- retirement ------------------------------------------------------------------------------------


def test_retired_site_is_hidden_and_takes_no_new_pools(world):
    reg, site1 = world.regulator, world.site1
    retired = reg.post(f"/sites/{site1['id']}/retire", expect=200)
    assert retired["retired_at"] is not None
    assert site1["id"] not in ids(reg.get("/sites"))
    assert site1["id"] in ids(reg.get("/sites", params={"include_retired": "true"}))
    assert reg.get(f"/sites/{site1['id']}")["retired_at"] is not None  # still readable: history
    # Retiring a site retires its pools.
    assert world.pool1["id"] not in ids(reg.get("/pools"))
    assert reg.get(f"/pools/{world.pool1['id']}")["retired_at"] is not None
    body = {
        "site_id": site1["id"],
        "code": "late",
        "name": "Late",
        "accelerator": "H800",
        "nodes": 1,
        "cards_per_node": 8,
    }
    problem = assert_problem(reg.call("POST", "/pools", json=body), 409, "retired")
    assert str(site1["id"]) in problem["detail"]
    assert_problem(reg.call("PATCH", f"/sites/{site1['id']}", json={"name": "x"}), 409, "retired")
    assert reg.get("/pools", params={"include_retired": "true", "site_id": site1["id"]})["total"] == 1


def test_retiring_a_provider_retires_its_sites_and_pools(world):
    reg = world.regulator
    extra_site = factories.site(reg, world.p1["id"])
    extra_pool = factories.pool(reg, extra_site["id"])
    reg.post(f"/providers/{world.p1['id']}/retire", expect=200)
    assert ids(reg.get("/providers")) == [world.p2["id"]]
    assert ids(reg.get("/sites")) == [world.site2["id"]]
    assert ids(reg.get("/pools")) == [world.pool2["id"]]
    for path in (
        f"/sites/{world.site1['id']}",
        f"/sites/{extra_site['id']}",
        f"/pools/{world.pool1['id']}",
        f"/pools/{extra_pool['id']}",
        f"/providers/{world.p1['id']}",
    ):
        assert reg.get(path)["retired_at"] is not None
    assert set(ids(reg.get("/providers", params={"include_retired": "true"}))) == {
        world.p1["id"],
        world.p2["id"],
    }
    assert reg.get("/capacity")["total"]["cards"] == 32
    body = {"provider_id": world.p1["id"], "code": "late", "name": "Late", "phase": "planned"}
    assert_problem(reg.call("POST", "/sites", json=body), 409, "retired")
    # Retiring again is harmless and keeps the first retirement time.
    first = reg.get(f"/providers/{world.p1['id']}")["retired_at"]
    assert reg.post(f"/providers/{world.p1['id']}/retire", expect=200)["retired_at"] == first


def test_retired_pool_takes_no_prices_or_updates(world, clock):
    reg, pool_id = world.regulator, world.pool1["id"]
    reg.post(f"/pools/{pool_id}/retire", expect=200)
    body = {"price_fen_per_card_hour": 900, "effective_from": "2025-07-01T00:00:00Z"}
    assert_problem(reg.call("POST", f"/pools/{pool_id}/prices", json=body), 409, "retired")
    assert_problem(reg.call("PATCH", f"/pools/{pool_id}", json={"nodes": 3}), 409, "retired")
    assert reg.get(f"/pools/{pool_id}/prices", params={"include_retired": "true"})["total"] == 0


# --- filters, paging and sorting -------------------------------------------------------------------


def test_paging_and_sorting(regulator):
    names = ["Delta", "alpha-lower", "Bravo", "Echo", "Charlie"]
    created = [factories.provider(regulator, name=name) for name in names]
    page = regulator.get("/providers", params={"limit": 2})
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 0)
    assert ids(page) == [c["id"] for c in created[:2]]
    page = regulator.get("/providers", params={"limit": 2, "offset": 4})
    assert ids(page) == [created[4]["id"]]
    assert page["total"] == 5
    assert regulator.get("/providers", params={"offset": 10})["items"] == []
    by_name = [p["name"] for p in regulator.get("/providers", params={"sort": "name"})["items"]]
    descending = [p["name"] for p in regulator.get("/providers", params={"sort": "-name"})["items"]]
    assert by_name == sorted(by_name)
    assert descending == list(reversed(by_name))
    assert set(by_name) == set(names)
    second_page = regulator.get("/providers", params={"sort": "-name", "limit": 2, "offset": 2})
    assert [p["name"] for p in second_page["items"]] == descending[2:4]


@pytest.mark.parametrize("path", ["/providers", "/sites", "/pools", "/orgs", "/users", "/tokens"])
def test_bad_sort_field_is_refused(regulator, path):
    problem = assert_problem(regulator.call("GET", path, params={"sort": "-password"}), 422, "paging.sort")
    assert "password" in problem["detail"]
    assert "id" in problem["detail"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}])
def test_bad_paging_is_refused(regulator, params):
    assert_problem(regulator.call("GET", "/providers", params=params), 422, "invalid-request")


def test_filters(world):
    reg = world.regulator
    edge = factories.provider(reg, kind="edge_centre", region="western-hub")
    edge_site = factories.site(reg, edge["id"], phase="planned")
    factories.pool(reg, edge_site["id"], accelerator="ASCEND-910B", nodes=1)
    assert ids(reg.get("/providers", params={"kind": "edge_centre"})) == [edge["id"]]
    assert ids(reg.get("/providers", params={"region": "western-hub"})) == [edge["id"]]
    assert ids(reg.get("/sites", params={"phase": "planned"})) == [edge_site["id"]]
    assert ids(reg.get("/sites", params={"provider_id": world.p2["id"]})) == [world.site2["id"]]
    assert reg.get("/pools", params={"accelerator": "ascend-910b"})["total"] == 1
    assert ids(reg.get("/pools", params={"provider_id": world.p2["id"]})) == [world.pool2["id"]]
    assert reg.get("/pools", params={"region": "western-hub"})["total"] == 1
    assert reg.get("/pools", params={"phase": "operational"})["total"] == 2
    assert_problem(reg.call("GET", "/providers", params={"kind": "bakery"}), 422, "invalid-request")


def test_pools_sort_by_nodes_and_region(world):
    reg = world.regulator
    by_nodes = reg.get("/pools", params={"sort": "-nodes"})["items"]
    assert [p["nodes"] for p in by_nodes] == [4, 2]


def test_accelerator_catalogue_endpoints(world):
    member = world.member_a
    listed = member.get("/accelerators")
    assert {a["model"] for a in listed} >= {"H800", "A800", "H100-SXM", "ASCEND-910B"}
    h800 = member.get("/accelerators/h800")
    assert h800["dense_fp16_tflops"] == pytest.approx(989.4)
    assert h800["domestic"] is False
    assert_problem(member.call("GET", "/accelerators/H801"), 404, "not-found")
