"""Idempotency-Key on every create: a retry returns the first result; another body with the key is a 409."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from suanwang.api.idempotency import IdempotencyRecord
from suanwang.db.session import session_scope
from suanwang.tenants.credit_code import complete
from tests import factories
from tests.helpers import assert_problem


def post(api, path, body, key, **kwargs):
    return api.call("POST", path, json=body, headers={"Idempotency-Key": key}, **kwargs)


def provider_body(code="idem-1", name="Idem"):
    return {"code": code, "name": name, "kind": "edge_centre", "region": "pinghu"}


def creates(world):
    """One create per endpoint that takes an Idempotency-Key, as (path, body, list path)."""
    return [
        ("/providers", provider_body(), "/providers"),
        (
            "/sites",
            {"provider_id": world.p1["id"], "code": "s-idem", "name": "S", "phase": "built"},
            "/sites",
        ),
        (
            "/pools",
            {
                "site_id": world.site1["id"],
                "code": "p-idem",
                "name": "P",
                "accelerator": "A800",
                "nodes": 1,
                "cards_per_node": 8,
            },
            "/pools",
        ),
        (
            f"/pools/{world.pool1['id']}/prices",
            {"price_fen_per_card_hour": 1000, "effective_from": "2025-07-01T00:00:00Z"},
            f"/pools/{world.pool1['id']}/prices",
        ),
        (
            "/orgs",
            {"credit_code": complete("91330482MA1DEMP0T"), "name": "Idem Org", "kind": "enterprise"},
            "/orgs",
        ),
        ("/users", {"name": "idem-user", "role": "tenant_member", "org_id": world.org_a["id"]}, "/users"),
    ]


def test_same_key_and_body_replays_the_first_result_on_every_create(world):
    reg = world.regulator
    for path, body, list_path in creates(world):
        before = reg.get(list_path)["total"]
        first = post(reg, path, body, f"key-{path}")
        assert first.status_code == 201, first.text
        assert "idempotent-replayed" not in first.headers
        again = post(reg, path, body, f"key-{path}")
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert reg.get(list_path)["total"] == before + 1, path


def test_same_key_with_another_body_is_409_and_changes_nothing(regulator):
    first = post(regulator, "/providers", provider_body(), "k1")
    assert first.status_code == 201
    response = post(regulator, "/providers", provider_body(code="idem-2", name="Other"), "k1")
    problem = assert_problem(response, 409, "idempotency.key-reused")
    assert "k1" in problem["detail"]
    assert [p["code"] for p in regulator.get("/providers")["items"]] == ["idem-1"]
    # The original can still be replayed afterwards.
    assert post(regulator, "/providers", provider_body(), "k1").json()["id"] == first.json()["id"]


def test_the_same_key_on_another_endpoint_is_another_request(world):
    reg = world.regulator
    assert post(reg, "/providers", provider_body(), "shared").status_code == 201
    body = {"provider_id": world.p1["id"], "code": "s-shared", "name": "S", "phase": "built"}
    assert_problem(post(reg, "/sites", body, "shared"), 409, "idempotency.key-reused")
    assert reg.get("/sites")["total"] == 2


def test_key_order_and_whitespace_of_the_body_do_not_matter(regulator):
    body = provider_body()
    first = post(regulator, "/providers", body, "k")
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    again = regulator.call(
        "POST",
        "/providers",
        content=reordered,
        headers={"Idempotency-Key": "k", "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_keys_are_per_user(world):
    body = {"name": "shared-key-user", "role": "tenant_member"}
    first = post(world.admin_a, "/users", body, "same-key")
    assert first.status_code == 201
    # Another user with the same key and a different body: no conflict, their own request.
    other = post(world.admin_b, "/users", {"name": "other-user", "role": "tenant_member"}, "same-key")
    assert other.status_code == 201
    assert "idempotent-replayed" not in other.headers
    assert other.json()["org_id"] == world.org_b["id"]
    # ... and with the same body it is still not a replay of someone else's result.
    third = post(world.regulator, "/providers", provider_body(), "same-key")
    assert third.status_code == 201 and "idempotent-replayed" not in third.headers


def test_without_a_key_every_post_creates(regulator):
    factories.provider(regulator, code="a1")
    response = regulator.call("POST", "/providers", json=provider_body(code="a1"))
    assert_problem(response, 409, "duplicate-code")
    assert regulator.get("/providers")["total"] == 1


def test_a_failed_request_does_not_use_up_its_key(regulator):
    bad = post(regulator, "/providers", provider_body() | {"kind": "bakery"}, "retry-me")
    assert_problem(bad, 422, "invalid-request")
    good = post(regulator, "/providers", provider_body(), "retry-me")
    assert good.status_code == 201
    assert "idempotent-replayed" not in good.headers


def test_a_domain_error_does_not_record_the_key(world):
    reg = world.regulator
    bad = {
        "site_id": world.site1["id"],
        "code": "p1x",
        "name": "P",
        "accelerator": "H801",
        "nodes": 1,
        "cards_per_node": 8,
    }
    assert_problem(post(reg, "/pools", bad, "pool-key"), 422, "pool.unknown-accelerator")
    fixed = post(reg, "/pools", bad | {"accelerator": "H800"}, "pool-key")
    assert fixed.status_code == 201
    assert fixed.json()["accelerator"] == "H800"


@pytest.mark.parametrize("key", ["", "x" * 201])
def test_key_length_is_checked(regulator, key):
    assert_problem(post(regulator, "/providers", provider_body(), key), 422, "idempotency.key-length")
    assert regulator.get("/providers")["total"] == 0


def test_token_creation_is_never_replayed_and_its_secret_never_stored(world, clean_engine):
    admin, member_id = world.admin_a, world.users["member_a"]["id"]
    body = {"name": "deploy", "user_id": member_id}
    first = post(admin, "/tokens", body, "tok")
    assert first.status_code == 201
    created = first.json()
    secret = created["token"]
    replay = post(admin, "/tokens", body, "tok")
    problem = assert_problem(replay, 409, "idempotency.secret-shown-once")
    assert secret not in replay.text
    assert str(created["id"]) in problem["detail"]
    tokens = [
        t
        for t in world.regulator.get("/tokens", params={"user_id": member_id})["items"]
        if t["name"] == "deploy"
    ]
    assert [t["id"] for t in tokens] == [created["id"]]
    with session_scope(clean_engine) as session:
        records = session.scalars(select(IdempotencyRecord)).all()
        stored = [r for r in records if r.key == "tok"]
        assert len(stored) == 1
        assert stored[0].redacted is True
        assert secret not in stored[0].response_body
        assert json.loads(stored[0].response_body)["id"] == created["id"]
        assert all(secret not in r.response_body for r in records)
    # Another body with the same key is still the ordinary conflict.
    assert_problem(post(admin, "/tokens", {"name": "other"}, "tok"), 409, "idempotency.key-reused")


def test_replay_is_recorded_once_in_the_database(regulator, clean_engine):
    for _ in range(3):
        assert post(regulator, "/providers", provider_body(), "thrice").status_code == 201
    with session_scope(clean_engine) as session:
        records = session.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == "thrice")).all()
    assert len(records) == 1
    assert records[0].status_code == 201
    assert regulator.get("/providers")["total"] == 1


def test_a_concurrent_duplicate_gets_the_first_result(regulator, clean_engine):
    """Two requests with one key race: the loser's work is rolled back and it replays the winner."""
    from datetime import UTC, datetime

    from suanwang.api.idempotency import IdempotencyKey, run_create
    from suanwang.db.session import session_factory
    from suanwang.supply import service
    from suanwang.supply.schemas import ProviderCreate, ProviderRead
    from suanwang.tenants.access import Principal
    from suanwang.tenants.models import Role

    now = datetime(2025, 6, 1, tzinfo=UTC)
    me = regulator.get("/me")
    principal = Principal(user_id=me["user_id"], name=me["name"], role=Role.REGULATOR)
    idem = IdempotencyKey(key="race", fingerprint="f" * 64)
    make = session_factory(clean_engine)

    def create_in(session, code):
        data = ProviderCreate(code=code, name=code, kind="edge_centre", region="pinghu")
        return ProviderRead.model_validate(
            service.create_provider(session=session, principal=principal, data=data)
        )

    winner = {}
    loser_session = make()

    def loser_create():
        with make() as session:  # the other request completes while this one is working
            response = run_create(
                session=session,
                user_id=principal.user_id,
                idem=idem,
                now=now,
                create=lambda: create_in(session, "winner"),
            )
            winner["body"] = json.loads(response.body)
        return create_in(loser_session, "loser")

    try:
        response = run_create(
            session=loser_session, user_id=principal.user_id, idem=idem, now=now, create=loser_create
        )
    finally:
        loser_session.close()
    assert response.status_code == 201
    assert response.headers["idempotent-replayed"] == "true"
    assert json.loads(response.body) == winner["body"]
    assert [p["code"] for p in regulator.get("/providers")["items"]] == ["winner"]
