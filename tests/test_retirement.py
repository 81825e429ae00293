"""Retiring an organisation or a provider signs its people out; searches treat % and _ literally."""

from __future__ import annotations

from tests import factories


def test_retiring_an_organisation_retires_its_users_and_revokes_their_tokens(world):
    assert world.admin_a.get("/me")["org_id"] == world.org_a["id"]
    world.regulator.post(f"/orgs/{world.org_a['id']}/retire", expect=200)
    for caller in (world.admin_a, world.member_a):
        assert caller.call("GET", "/me").status_code == 401
    users = world.regulator.get("/users", params={"org_id": world.org_a["id"], "include_retired": True})
    assert users["total"] == 2 and all(u["retired_at"] for u in users["items"])
    assert world.admin_b.get("/me")["org_id"] == world.org_b["id"]  # other organisations are untouched


def test_retiring_a_provider_retires_its_operators(world):
    world.regulator.post(f"/providers/{world.p1['id']}/retire", expect=200)
    assert world.op1.call("GET", "/me").status_code == 401
    assert world.op2.get("/me")["provider_id"] == world.p2["id"]
    tokens = world.regulator.get("/tokens", params={"user_id": world.users["op1"]["id"]})
    assert tokens["items"] and all(t["revoked_at"] for t in tokens["items"])


def test_organisation_search_treats_percent_and_underscore_literally(regulator):
    factories.org(regulator, name="Pinghu 100% AI")
    factories.org(regulator, name="Pinghu 1000 AI")
    factories.org(regulator, name="data_lab")
    factories.org(regulator, name="dataxlab")
    assert [o["name"] for o in regulator.get("/orgs", params={"q": "100%"})["items"]] == ["Pinghu 100% AI"]
    assert [o["name"] for o in regulator.get("/orgs", params={"q": "a_l"})["items"]] == ["data_lab"]
