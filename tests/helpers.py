"""Assertions and a small populated world shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event

from tests import factories

PROBLEM_JSON = "application/problem+json"


@contextmanager
def statements_sent(engine: Engine, *, signing_in: bool = True) -> Iterator[list[str]]:
    """The SQL statements `engine` sends inside the block, for tests that count a call's queries.
    `signing_in=False` leaves out authentication's token and user statements (their last-used update
    is throttled, so their number differs from call to call)."""
    sent: list[str] = []

    def tally(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if signing_in or ("api_tokens" not in statement and "FROM users" not in statement):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", tally)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", tally)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with the given status and stable code, and a non-empty explanation."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"urn:suanwang:problem:{code}"
    assert body["title"].strip()
    assert body["detail"].strip()
    assert body["instance"] == response.request.url.path
    return body


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


@dataclass
class World:
    """Two providers (each with a site and a pool) and two tenant organisations, with a caller per role."""

    regulator: Any
    p1: dict[str, Any]
    p2: dict[str, Any]
    site1: dict[str, Any]
    site2: dict[str, Any]
    pool1: dict[str, Any]
    pool2: dict[str, Any]
    op1: Any
    op2: Any
    org_a: dict[str, Any]
    org_b: dict[str, Any]
    admin_a: Any
    member_a: Any
    admin_b: Any
    member_b: Any
    users: dict[str, dict[str, Any]]


def build_world(regulator: Any) -> World:
    p1 = factories.provider(
        regulator, name="Runze Pinghu", certifications=["MLPS-3"], affiliation_group="runze"
    )
    p2 = factories.provider(regulator, name="Geely Changxing", kind="supercomputing_centre")
    site1 = factories.site(
        regulator, p1["id"], connection={"slurmrestd": "http://10.0.0.1:6820", "key": "s1"}
    )
    site2 = factories.site(regulator, p2["id"], connection={"ray": "ray://10.0.0.2:10001"})
    pool1 = factories.pool(regulator, site1["id"])
    pool2 = factories.pool(regulator, site2["id"], accelerator="A800", nodes=4)
    org_a = factories.org(regulator, name="Pinghu AI Trade Models")
    org_b = factories.org(regulator, name="Jiaxing Software", kind="enterprise")
    users: dict[str, dict[str, Any]] = {}
    callers: dict[str, Any] = {}
    specs = {
        "op1": {"role": "provider_operator", "provider_id": p1["id"]},
        "op2": {"role": "provider_operator", "provider_id": p2["id"]},
        "admin_a": {"role": "tenant_admin", "org_id": org_a["id"]},
        "member_a": {"role": "tenant_member", "org_id": org_a["id"]},
        "admin_b": {"role": "tenant_admin", "org_id": org_b["id"]},
        "member_b": {"role": "tenant_member", "org_id": org_b["id"]},
    }
    for name, spec in specs.items():
        user = factories.user(regulator, name=name.replace("_", "-"), **spec)
        users[name] = user
        callers[name] = regulator.as_(factories.token_for(regulator, user["id"]))
    return World(
        regulator=regulator,
        p1=p1,
        p2=p2,
        site1=site1,
        site2=site2,
        pool1=pool1,
        pool2=pool2,
        org_a=org_a,
        org_b=org_b,
        users=users,
        **callers,
    )
