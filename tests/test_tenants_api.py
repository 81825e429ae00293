"""The tenants slice over HTTP: organisations, credit codes, users, roles, tokens and authentication."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from suanwang.db.session import session_scope
from suanwang.tenants.credit_code import complete
from suanwang.tenants.models import ApiToken
from tests import factories
from tests.helpers import assert_problem, ids

VALID = complete("91330482MA2B3C4D5")
assert VALID[9] == "A"  # a letter, lowered in one of the bad inputs


def org_body(**fields):
    return {"credit_code": VALID, "name": "Pinghu Lab", "kind": "university"} | fields


# --- organisations and credit codes --------------------------------------------------------------


def test_create_org_takes_locality_from_the_credit_code(regulator):
    org = regulator.post("/orgs", org_body())
    assert org["credit_code"] == VALID
    assert org["locality_code"] == "330482"
    assert org["is_local"] is True  # Pinghu is the region served
    remote = regulator.post("/orgs", org_body(credit_code=complete("91110108551385082"), name="Beijing Co"))
    assert remote["locality_code"] == "110108"
    assert remote["is_local"] is False
    explicit = regulator.post(
        "/orgs",
        org_body(credit_code=complete("12330400ABCDEFGHJ"), name="Jiaxing Unit", locality_code="330482"),
    )
    assert explicit["locality_code"] == "330482" and explicit["is_local"] is True


def test_surrounding_whitespace_of_a_credit_code_is_forgiven(regulator):
    assert regulator.post("/orgs", org_body(credit_code=f"  {VALID} "))["credit_code"] == VALID


@pytest.mark.parametrize(
    ("code", "problem_code", "hint"),
    [
        (VALID[:-1], "credit-code.length", "17"),
        (VALID + "0", "credit-code.length", "19"),
        ("", "credit-code.length", "18"),
        (VALID[:17] + ("0" if VALID[17] != "0" else "1"), "credit-code.check", "check"),
        (VALID[:9] + VALID[9].lower() + VALID[10:], "credit-code.lowercase", "position 10"),
        (VALID[:9] + "O" + VALID[10:], "credit-code.character", "position 10"),
        (VALID[:9] + "I" + VALID[10:], "credit-code.character", "I, O, S, V"),
        (VALID[:9] + "S" + VALID[10:], "credit-code.character", "position 10"),
        (VALID[:9] + "V" + VALID[10:], "credit-code.character", "position 10"),
        (VALID[:9] + "Z" + VALID[10:], "credit-code.character", "position 10"),
        (VALID[:9] + "-" + VALID[10:], "credit-code.character", "position 10"),
        (VALID[:3] + "A" + VALID[4:], "credit-code.division", "3-8"),
        (VALID.lower(), "credit-code.lowercase", "upper case"),
    ],
)
def test_invalid_credit_codes_are_refused_and_create_nothing(regulator, code, problem_code, hint):
    problem = assert_problem(
        regulator.call("POST", "/orgs", json=org_body(credit_code=code)), 422, problem_code
    )
    assert hint in problem["detail"]
    assert regulator.get("/orgs", params={"include_retired": "true"})["total"] == 0


def test_every_single_character_corruption_is_refused_over_http(regulator):
    """All 18 positions, each with one wrong character: none registers."""
    for position in range(18):
        original = VALID[position]
        wrong = "7" if original != "7" else "8"
        corrupted = VALID[:position] + wrong + VALID[position + 1 :]
        response = regulator.call("POST", "/orgs", json=org_body(credit_code=corrupted))
        assert response.status_code == 422, (position, corrupted, response.text)
    assert regulator.get("/orgs")["total"] == 0


def test_duplicate_credit_code_conflicts(regulator):
    regulator.post("/orgs", org_body())
    assert_problem(
        regulator.call("POST", "/orgs", json=org_body(name="Again")), 409, "org.duplicate-credit-code"
    )
    assert regulator.get("/orgs")["total"] == 1


def test_bad_org_fields(regulator):
    for body in (
        org_body(kind="company"),
        org_body(locality_code="33048"),
        org_body(contact_email="not-an-email"),
        org_body(name=" "),
        org_body(is_sme="maybe"),
    ):
        assert_problem(regulator.call("POST", "/orgs", json=body), 422, "invalid-request")
    assert regulator.get("/orgs")["total"] == 0


def test_only_the_regulator_registers_and_retires_organisations(world):
    body = org_body()
    for caller in (world.admin_a, world.member_a, world.op1):
        assert_problem(caller.call("POST", "/orgs", json=body), 403, "access.role-required")
    assert_problem(
        world.admin_a.call("POST", f"/orgs/{world.org_a['id']}/retire"), 403, "access.role-required"
    )
    assert world.regulator.get("/orgs")["total"] == 2


# --- a tenant sees only its own organisation -----------------------------------------------------


def test_tenant_sees_only_its_own_org(world):
    a, b = world.org_a["id"], world.org_b["id"]
    for caller in (world.admin_a, world.member_a):
        assert ids(caller.get("/orgs")) == [a]
        assert caller.get(f"/orgs/{a}")["name"] == world.org_a["name"]
        problem = assert_problem(caller.call("GET", f"/orgs/{b}"), 404, "not-found")
        assert str(b) in problem["detail"]
        # Indistinguishable from an organisation that does not exist.
        missing = assert_problem(caller.call("GET", "/orgs/9999"), 404, "not-found")
        assert missing["title"] == problem["title"]
    assert ids(world.admin_b.get("/orgs")) == [b]
    assert world.admin_b.get("/orgs", params={"q": world.org_a["name"]})["total"] == 0


def test_operator_sees_no_tenant_records(world):
    assert world.op1.get("/orgs")["total"] == 0
    assert_problem(world.op1.call("GET", f"/orgs/{world.org_a['id']}"), 404, "not-found")


def test_regulator_sees_and_filters_all_orgs(world):
    reg = world.regulator
    assert set(ids(reg.get("/orgs"))) == {world.org_a["id"], world.org_b["id"]}
    assert ids(reg.get("/orgs", params={"q": "Trade"})) == [world.org_a["id"]]
    assert ids(reg.get("/orgs", params={"q": world.org_b["credit_code"]})) == [world.org_b["id"]]
    uni = reg.post("/orgs", org_body(is_sme=False))
    assert ids(reg.get("/orgs", params={"kind": "university"})) == [uni["id"]]
    assert ids(reg.get("/orgs", params={"is_sme": "false"})) == [uni["id"]]
    names = [o["name"] for o in reg.get("/orgs", params={"sort": "-name"})["items"]]
    assert names == sorted(names, reverse=True)


def test_tenant_cannot_change_another_org(world):
    response = world.admin_a.call("PATCH", f"/orgs/{world.org_b['id']}", json={"name": "Hijacked"})
    assert_problem(response, 404, "not-found")
    assert world.regulator.get(f"/orgs/{world.org_b['id']}")["name"] == world.org_b["name"]


def test_tenant_admin_edits_contact_details_only(world):
    a = world.org_a["id"]
    changed = world.admin_a.patch(f"/orgs/{a}", {"name": "Pinghu AI", "contact_email": "ops@example.cn"})
    assert changed["name"] == "Pinghu AI"
    for change in ({"is_sme": False}, {"kind": "university"}, {"locality_code": "110108"}):
        problem = assert_problem(
            world.admin_a.call("PATCH", f"/orgs/{a}", json=change), 403, "org.fields-regulator-only"
        )
        assert next(iter(change)) in problem["detail"]
    assert_problem(
        world.member_a.call("PATCH", f"/orgs/{a}", json={"name": "x"}), 403, "access.role-required"
    )
    after = world.regulator.get(f"/orgs/{a}")
    assert (after["name"], after["is_sme"], after["kind"], after["locality_code"]) == (
        "Pinghu AI",
        True,
        "enterprise",
        "330482",
    )
    assert world.regulator.patch(f"/orgs/{a}", {"is_sme": False})["is_sme"] is False


def test_retired_org_is_hidden_and_takes_no_new_users(world):
    reg, b = world.regulator, world.org_b["id"]
    assert reg.post(f"/orgs/{b}/retire", expect=200)["retired_at"] is not None
    assert ids(reg.get("/orgs")) == [world.org_a["id"]]
    assert b in ids(reg.get("/orgs", params={"include_retired": "true"}))
    response = reg.call("POST", "/users", json={"name": "late", "role": "tenant_member", "org_id": b})
    assert_problem(response, 409, "retired")


# --- users and roles -----------------------------------------------------------------------------


def test_tenant_reads_only_its_own_users(world):
    a_users = {world.users["admin_a"]["id"], world.users["member_a"]["id"]}
    for caller in (world.admin_a, world.member_a):
        assert set(ids(caller.get("/users"))) == a_users
        assert caller.get("/users", params={"org_id": world.org_b["id"]})["total"] == 0
        for other in ("admin_b", "member_b", "op1"):
            assert_problem(caller.call("GET", f"/users/{world.users[other]['id']}"), 404, "not-found")
    assert world.member_a.get(f"/users/{world.users['admin_a']['id']}")["name"] == "admin-a"


def test_operator_reads_only_its_providers_users(world):
    assert ids(world.op1.get("/users")) == [world.users["op1"]["id"]]
    assert_problem(world.op1.call("GET", f"/users/{world.users['op2']['id']}"), 404, "not-found")
    assert_problem(world.op1.call("GET", f"/users/{world.users['member_a']['id']}"), 404, "not-found")


def test_tenant_admin_creates_users_of_its_own_org_only(world):
    member = world.admin_a.post("/users", {"name": "new-member", "role": "tenant_member"})
    assert member["org_id"] == world.org_a["id"]
    for body in (
        {"name": "x1", "role": "tenant_member", "org_id": world.org_b["id"]},
        {"name": "x2", "role": "regulator"},
        {"name": "x3", "role": "provider_operator", "provider_id": world.p1["id"]},
    ):
        assert_problem(world.admin_a.call("POST", "/users", json=body), 403, "user.create-outside-scope")
    assert_problem(
        world.member_a.call("POST", "/users", json={"name": "x4", "role": "tenant_member"}),
        403,
        "access.role-required",
    )
    names = {u["name"] for u in world.regulator.get("/users")["items"]}
    assert "new-member" in names and not names & {"x1", "x2", "x3", "x4"}


def test_operator_creates_operators_of_its_own_provider_only(world):
    colleague = world.op1.post("/users", {"name": "op1-night", "role": "provider_operator"})
    assert colleague["provider_id"] == world.p1["id"]
    for body in (
        {"name": "y1", "role": "provider_operator", "provider_id": world.p2["id"]},
        {"name": "y2", "role": "tenant_admin", "org_id": world.org_a["id"]},
    ):
        assert_problem(world.op1.call("POST", "/users", json=body), 403, "user.create-outside-scope")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "t", "role": "tenant_member"}, "user.tenant-needs-org"),
        ({"name": "t", "role": "provider_operator"}, "user.operator-needs-provider"),
        ({"name": "t", "role": "regulator", "org_id": 1}, "user.regulator-no-scope"),
        ({"name": "t", "role": "tenant_admin", "org_id": 1, "provider_id": 1}, "user.tenant-needs-org"),
    ],
)
def test_role_scope_must_be_consistent(regulator, body, code):
    assert_problem(regulator.call("POST", "/users", json=body), 422, code)
    assert regulator.get("/users")["total"] == 1  # the regulator only


def test_bad_user_names_and_duplicates(world):
    reg = world.regulator
    for name in ("Upper", "with space", "", "-lead"):
        assert_problem(
            reg.call("POST", "/users", json={"name": name, "role": "regulator"}), 422, "invalid-request"
        )
    assert_problem(
        reg.call("POST", "/users", json={"name": "admin-a", "role": "regulator"}), 409, "user.duplicate-name"
    )
    response = reg.call("POST", "/users", json={"name": "ghost", "role": "tenant_member", "org_id": 9999})
    assert_problem(response, 404, "not-found")


def test_role_changes(world):
    admin_a, member_a = world.admin_a, world.member_a
    member_id, admin_id = world.users["member_a"]["id"], world.users["admin_a"]["id"]
    assert_problem(
        member_a.call("PATCH", f"/users/{member_id}", json={"role": "tenant_admin"}), 403, "user.own-role"
    )
    assert_problem(
        admin_a.call("PATCH", f"/users/{admin_id}", json={"role": "tenant_member"}), 403, "user.own-role"
    )
    assert_problem(
        member_a.call("PATCH", f"/users/{admin_id}", json={"display_name": "x"}),
        403,
        "user.manage-outside-scope",
    )
    assert_problem(
        admin_a.call("PATCH", f"/users/{member_id}", json={"role": "regulator"}),
        403,
        "user.manage-outside-scope",
    )
    assert_problem(
        admin_a.call("PATCH", f"/users/{world.users['member_b']['id']}", json={"display_name": "x"}),
        404,
        "not-found",
    )
    assert admin_a.patch(f"/users/{member_id}", {"role": "tenant_admin"})["role"] == "tenant_admin"
    assert member_a.patch(f"/users/{member_id}", {"display_name": "Me"})["display_name"] == "Me"
    assert world.regulator.get(f"/users/{world.users['member_b']['id']}")["display_name"] is None


def test_retiring_a_user_revokes_their_tokens(world):
    member_id = world.users["member_a"]["id"]
    assert world.member_a.get("/me")["user_id"] == member_id
    assert_problem(
        world.member_a.call("POST", f"/users/{member_id}/retire"), 403, "user.manage-outside-scope"
    )
    assert_problem(world.admin_b.call("POST", f"/users/{member_id}/retire"), 404, "not-found")
    world.admin_a.post(f"/users/{member_id}/retire", expect=200)
    assert_problem(world.member_a.call("GET", "/me"), 401, "auth.invalid")
    assert member_id not in ids(world.regulator.get("/users"))
    assert member_id in ids(world.regulator.get("/users", params={"include_retired": "true"}))
    assert all(
        t["revoked_at"] for t in world.regulator.get("/tokens", params={"user_id": member_id})["items"]
    )
    assert_problem(
        world.admin_a.call("POST", "/tokens", json={"name": "again", "user_id": member_id}), 409, "retired"
    )


# --- authentication and tokens -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/me", "/providers", "/orgs", "/capacity", "/accelerators"])
def test_missing_token_is_401_with_a_challenge(client, path):
    response = client.get("/api/v1" + path)
    problem = assert_problem(response, 401, "auth.missing")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in problem["detail"]


@pytest.mark.parametrize(
    "header", ["Bearer sw_not_a_real_token", "Basic dXNlcjpwYXNz", "Bearer", "Token sw_test_regulator_token"]
)
def test_wrong_token_is_401(regulator, header):
    response = regulator.client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] in {"auth.invalid", "auth.missing"}


def test_a_write_with_a_wrong_token_changes_nothing(regulator):
    response = regulator.client.post(
        "/api/v1/providers",
        json={"code": "x", "name": "x", "kind": "edge_centre", "region": "pinghu"},
        headers={"Authorization": "Bearer sw_wrong"},
    )
    assert_problem(response, 401, "auth.invalid")
    assert regulator.get("/providers")["total"] == 0


def test_revoked_token_is_401(world):
    member_id = world.users["member_a"]["id"]
    token = world.member_a.post("/tokens", {"name": "laptop"})
    laptop = world.member_a.as_(token["token"])
    assert laptop.get("/me")["user_id"] == member_id
    assert_problem(world.member_b.call("POST", f"/tokens/{token['id']}/revoke"), 404, "not-found")
    revoked = world.admin_a.post(f"/tokens/{token['id']}/revoke", expect=200)
    assert revoked["revoked_at"] is not None
    response = laptop.call("GET", "/me")
    assert_problem(response, 401, "auth.invalid")
    assert response.headers["www-authenticate"] == "Bearer"
    assert world.member_a.get("/me")["user_id"] == member_id  # the other token still works


def test_expired_token_is_401(world, clock):
    expires = (clock.now + timedelta(hours=1)).isoformat()
    token = world.member_a.post("/tokens", {"name": "short", "expires_at": expires})
    short = world.member_a.as_(token["token"])
    assert short.get("/me")["role"] == "tenant_member"
    clock.now = clock.now + timedelta(hours=1)
    assert_problem(short.call("GET", "/me"), 401, "auth.invalid")


def test_token_expiry_must_be_future_and_aware(world, clock):
    past = (clock.now - timedelta(seconds=1)).isoformat()
    assert_problem(
        world.member_a.call("POST", "/tokens", json={"name": "x", "expires_at": past}),
        422,
        "token.expiry-past",
    )
    naive = world.member_a.call("POST", "/tokens", json={"name": "x", "expires_at": "2030-01-01T00:00:00"})
    problem = assert_problem(naive, 422, "invalid-request")
    assert [e["field"] for e in problem["errors"]] == ["expires_at"]
    assert "time zone" in problem["detail"]
    assert world.member_a.get("/tokens")["total"] == 1


def test_token_secret_is_shown_once_and_stored_hashed(world, clean_engine):
    created = world.member_a.post("/tokens", {"name": "ci"})
    secret = created["token"]
    assert secret.startswith("sw_") and len(secret) > 40
    assert secret.startswith(created["prefix"])
    listed = world.member_a.get("/tokens")["items"]
    assert created["id"] in ids({"items": listed})
    assert all("token" not in item for item in listed)
    with session_scope(clean_engine) as session:
        row = session.scalar(select(ApiToken).where(ApiToken.id == created["id"]))
        assert row is not None
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        dump = session.execute(text("SELECT * FROM api_tokens")).all()
    assert not any(secret in str(value) for record in dump for value in record)


def test_tokens_are_scoped(world):
    member_b_id = world.users["member_b"]["id"]
    assert_problem(
        world.admin_a.call("POST", "/tokens", json={"name": "x", "user_id": member_b_id}), 404, "not-found"
    )
    assert_problem(
        world.member_a.call("POST", "/tokens", json={"name": "x", "user_id": world.users["admin_a"]["id"]}),
        403,
        "user.manage-outside-scope",
    )
    own_users = {world.users["admin_a"]["id"], world.users["member_a"]["id"]}
    assert {t["user_id"] for t in world.admin_a.get("/tokens")["items"]} == own_users
    assert {t["user_id"] for t in world.member_a.get("/tokens")["items"]} == {world.users["member_a"]["id"]}
    assert world.member_a.get("/tokens", params={"user_id": member_b_id})["total"] == 0


def test_whoami_for_each_role(world):
    assert world.op1.get("/me") | {"user_id": 0} == {
        "user_id": 0,
        "name": "op1",
        "role": "provider_operator",
        "org_id": None,
        "provider_id": world.p1["id"],
    }
    assert world.admin_b.get("/me")["org_id"] == world.org_b["id"]
    assert world.regulator.get("/me")["role"] == "regulator"


def test_factories_credit_codes_are_valid_and_distinct():
    codes = {factories.credit_code() for _ in range(50)}
    assert len(codes) == 50


def test_operator_finds_the_tokens_it_can_revoke(world):
    """An operator manages its provider's accounts: it lists the tokens it may create and revoke."""
    colleague = world.op1.post("/users", {"name": "op1-night", "role": "provider_operator"})
    token = world.op1.post("/tokens", {"name": "night shift", "user_id": colleague["id"]})
    listed = world.op1.get("/tokens")["items"]
    assert token["id"] in [t["id"] for t in listed]
    assert {t["user_id"] for t in listed} == {world.users["op1"]["id"], colleague["id"]}
    assert world.op2.get("/tokens", params={"user_id": colleague["id"]})["total"] == 0
    assert_problem(world.op2.call("POST", f"/tokens/{token['id']}/revoke"), 404, "not-found")
    world.op1.post(f"/tokens/{token['id']}/revoke", expect=200)


def test_last_used_is_recorded_at_most_once_a_minute(world, clock):
    created = world.member_a.post("/tokens", {"name": "audit"})
    laptop = world.member_a.as_(created["token"])

    def last_used():
        items = world.regulator.get("/tokens", params={"user_id": created["user_id"]})["items"]
        return next(t["last_used_at"] for t in items if t["id"] == created["id"])

    assert last_used() is None
    start = clock.now
    laptop.get("/me")
    assert last_used() is not None
    first = last_used()
    clock.now = start + timedelta(seconds=30)
    laptop.get("/me")
    assert last_used() == first
    clock.now = start + timedelta(minutes=2)
    laptop.get("/me")
    assert last_used() != first
