"""Errors are RFC 9457 problem+json that say how to fix them, and no input makes the server fail (500)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from suanwang.api.app import create_app
from suanwang.config import Settings
from tests.helpers import assert_problem

TOO_BIG = 2**63  # beyond any integer column, on SQLite and PostgreSQL alike
INT4_PLUS_ONE = 2**31  # beyond PostgreSQL's INTEGER


# --- PATCH: null for a field the record must have --------------------------------------------------


def required_fields(world):
    return [
        (f"/providers/{world.p1['id']}", ["name", "kind", "region", "certifications"]),
        (f"/sites/{world.site1['id']}", ["name", "region", "phase", "backend_kind", "connection"]),
        (f"/pools/{world.pool1['id']}", ["name", "nodes", "security_zone"]),
        (f"/orgs/{world.org_a['id']}", ["name", "kind", "locality_code", "is_sme"]),
        (f"/users/{world.users['member_a']['id']}", ["role"]),
    ]


def test_null_for_a_required_field_is_refused_and_changes_nothing(world):
    reg = world.regulator
    for path, fields in required_fields(world):
        before = reg.get(path)
        for field in fields:
            response = reg.call("PATCH", path, json={field: None})
            problem = assert_problem(response, 422, "invalid-request")
            assert field in problem["detail"], (path, field, problem)
            assert reg.get(path) == before, (path, field)


def test_null_clears_an_optional_field(world):
    reg = world.regulator
    assert reg.patch(f"/providers/{world.p1['id']}", {"affiliation_group": None})["affiliation_group"] is None
    assert reg.patch(f"/providers/{world.p1['id']}", {"name_en": None})["name_en"] is None
    assert reg.patch(f"/sites/{world.site1['id']}", {"built_on": None})["built_on"] is None
    org = reg.patch(f"/orgs/{world.org_a['id']}", {"contact_email": "a@b.cn"})
    assert org["contact_email"] == "a@b.cn"
    assert reg.patch(f"/orgs/{world.org_a['id']}", {"contact_email": None})["contact_email"] is None
    user_id = world.users["member_a"]["id"]
    assert reg.patch(f"/users/{user_id}", {"display_name": None, "email": None})["email"] is None
    assert reg.get(f"/providers/{world.p1['id']}")["affiliation_group"] is None


def test_an_empty_patch_changes_nothing(world):
    before = world.regulator.get(f"/pools/{world.pool1['id']}")
    after = world.regulator.patch(f"/pools/{world.pool1['id']}", {})
    assert after["nodes"] == before["nodes"] and after["name"] == before["name"]


# --- numbers and text the database cannot hold ----------------------------------------------------


@pytest.mark.parametrize("big", [INT4_PLUS_ONE, TOO_BIG])
def test_out_of_range_ids_in_paths_are_clear_errors(regulator, big):
    for path in (
        f"/providers/{big}",
        f"/sites/{big}",
        f"/pools/{big}",
        f"/pools/{big}/prices",
        f"/pools/{big}/price",
        f"/orgs/{big}",
        f"/users/{big}",
    ):
        response = regulator.call("GET", path)
        assert response.status_code in (404, 422), (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert regulator.call("POST", f"/tokens/{big}/revoke").status_code in (404, 422)
    assert regulator.call("POST", f"/pools/1/prices/{big}/retire").status_code in (404, 422)


@pytest.mark.parametrize("big", [INT4_PLUS_ONE, TOO_BIG])
def test_out_of_range_ids_in_filters_are_clear_errors(regulator, big):
    for path, param in (
        ("/sites", "provider_id"),
        ("/pools", "site_id"),
        ("/pools", "provider_id"),
        ("/capacity", "provider_id"),
        ("/users", "org_id"),
        ("/tokens", "user_id"),
    ):
        response = regulator.call("GET", path, params={param: big})
        assert_problem(response, 422, "invalid-request")


@pytest.mark.parametrize("big", [INT4_PLUS_ONE, TOO_BIG])
def test_out_of_range_ids_in_bodies_are_clear_errors(world, big):
    reg = world.regulator
    for path, body in (
        ("/sites", {"provider_id": big, "code": "x", "name": "x", "phase": "planned"}),
        (
            "/pools",
            {
                "site_id": big,
                "code": "x",
                "name": "x",
                "accelerator": "H800",
                "nodes": 1,
                "cards_per_node": 8,
            },
        ),
        ("/users", {"name": "x", "role": "tenant_member", "org_id": big}),
        ("/tokens", {"name": "x", "user_id": big}),
    ):
        response = reg.call("POST", path, json=body)
        assert response.status_code in (404, 422), (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert reg.get("/sites")["total"] == 2
    assert reg.get("/pools")["total"] == 2


def test_text_longer_than_the_column_is_refused_on_every_database(world):
    reg = world.regulator
    long = "x" * 150
    for path, body in (
        (f"/providers/{world.p1['id']}", {"affiliation_group": long}),
        (f"/orgs/{world.org_a['id']}", {"locality_name": long}),
    ):
        before = reg.get(path)
        assert_problem(reg.call("PATCH", path, json=body), 422, "invalid-request")
        assert reg.get(path) == before
    create = {
        "code": "long",
        "name": "Long",
        "kind": "edge_centre",
        "region": "pinghu",
        "affiliation_group": long,
    }
    assert_problem(reg.call("POST", "/providers", json=create), 422, "invalid-request")
    assert reg.get("/providers")["total"] == 2


def test_text_at_the_column_limit_is_stored_whole(world):
    reg = world.regulator
    name = "名" * 200
    group = "g" * 100
    changed = reg.patch(f"/providers/{world.p1['id']}", {"name": name, "affiliation_group": group})
    assert reg.get(f"/providers/{world.p1['id']}")["name"] == name
    assert changed["affiliation_group"] == group


def test_control_characters_in_names_are_refused(world):
    reg = world.regulator
    for bad in ("nul\x00name", "bell\x07"):
        body = {"code": "ctl", "name": bad, "kind": "edge_centre", "region": "pinghu"}
        assert_problem(reg.call("POST", "/providers", json=body), 422, "invalid-request")
        assert_problem(
            reg.call("PATCH", f"/orgs/{world.org_a['id']}", json={"name": bad}), 422, "invalid-request"
        )
    assert reg.get("/providers")["total"] == 2
    assert reg.get(f"/orgs/{world.org_a['id']}")["name"] == world.org_a["name"]


def test_nul_in_a_search_is_not_a_server_error(world):
    response = world.regulator.call("GET", "/orgs", params={"q": "a\x00b"})
    assert response.status_code in (200, 422), response.text
    response = world.regulator.call("GET", "/providers", params={"region": "a\x00b"})
    assert response.status_code in (200, 422), response.text


def test_malformed_json_is_a_problem(regulator):
    response = regulator.call(
        "POST", "/providers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "invalid-request")
    response = regulator.call("POST", "/providers", json=["a", "list"])
    assert_problem(response, 422, "invalid-request")
    assert regulator.get("/providers")["total"] == 0


def test_method_not_allowed_says_which_methods_are(world):
    response = world.regulator.call("DELETE", f"/pools/{world.pool1['id']}")
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"].replace(" ", "").split(",")


# --- the last lines of defence --------------------------------------------------------------------


@pytest.fixture
def fragile_client(settings, engine):
    app = create_app(settings, engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/db-down")
    def db_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    @app.get("/race")
    def race() -> None:
        raise IntegrityError("INSERT", {}, ValueError("duplicate key uq_providers_code"))

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_unexpected_errors_are_500_problems_without_internals(fragile_client):
    response = fragile_client.get("/boom", headers={"Accept-Language": "zh-CN"})
    problem = assert_problem(response, 500, "internal")
    assert "secret internals" not in response.text
    assert "服务端出错" in problem["detail"]


def test_database_outage_is_503(fragile_client):
    response = fragile_client.get("/db-down")
    problem = assert_problem(response, 503, "database-unavailable")
    assert "refused" not in response.text
    assert "Retry" in problem["detail"]


def test_a_constraint_lost_to_a_concurrent_write_is_409_retry(fragile_client):
    response = fragile_client.get("/race")
    problem = assert_problem(response, 409, "conflict.concurrent")
    assert "uq_providers_code" not in response.text
    assert "Retry" in problem["detail"]


def test_healthz_needs_no_token(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_openapi_documents_problems(client):
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/api/v1/providers"]["post"]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert "application/problem+json" in create["responses"]["401"]["content"]
    assert "/api/v1/pools/{pool_id}/price" in spec["paths"]
    assert "/api/v1/capacity" in spec["paths"]


def test_admin_token_from_settings_exists_from_start_up(db_url, clean_engine, tmp_path):
    secret = "sw_bootstrap_token_for_automation_0001"
    settings = Settings(database_url=db_url, data_dir=tmp_path, admin_token=secret, serve_controller=False)
    for _ in range(2):  # starting twice is harmless
        with TestClient(create_app(settings, clean_engine)) as client:
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
            assert me.status_code == 200, me.text
            assert me.json()["role"] == "regulator"
            users = client.get("/api/v1/users", headers={"Authorization": f"Bearer {secret}"}).json()
            assert users["total"] == 1
            tokens = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {secret}"}).json()
            assert tokens["total"] == 1
            assert client.get("/api/v1/me").status_code == 401
