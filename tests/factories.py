"""Builders for test data through the API, with valid defaults and overridable fields."""

from __future__ import annotations

import itertools
from typing import Any

from suanwang.tenants.credit_code import complete

_seq = itertools.count(1)


def credit_code(division: str = "330482", serial: int | None = None) -> str:
    """A valid unified social credit code (synthetic) registered in `division`."""
    n = next(_seq) if serial is None else serial
    return complete(f"91{division}{n:08d}X"[:17])


def provider(api: Any, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {
        "code": f"prov-{n}",
        "name": f"Provider {n}",
        "kind": "intelligent_computing_centre",
        "region": "pinghu",
    }
    return api.post("/providers", body | fields)


def site(api: Any, provider_id: int, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {"provider_id": provider_id, "code": f"site-{n}", "name": f"Site {n}", "phase": "operational"}
    return api.post("/sites", body | fields)


def pool(api: Any, site_id: int, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {
        "site_id": site_id,
        "code": f"pool-{n}",
        "name": f"Pool {n}",
        "accelerator": "H800",
        "nodes": 2,
        "cards_per_node": 8,
    }
    return api.post("/pools", body | fields)


FUNDS_FEN = 100_000_000  # ¥1,000,000: every test organisation can pay for what the tests run


def org(api: Any, funds_fen: int = FUNDS_FEN, **fields: Any) -> dict[str, Any]:
    """A tenant organisation, its wallet topped up with `funds_fen` (0: an empty wallet)."""
    n = next(_seq)
    body = {"credit_code": credit_code(), "name": f"Org {n}", "kind": "enterprise", "is_sme": True}
    created = api.post("/orgs", body | fields)
    if funds_fen:
        api.post(f"/orgs/{created['id']}/top-ups", {"amount_fen": funds_fen, "reason": "test funds"})
    return dict(created)


def user(api: Any, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    return api.post("/users", {"name": f"user{n}"} | fields)


def token_for(api: Any, user_id: int) -> str:
    return str(api.post("/tokens", {"name": "test", "user_id": user_id})["token"])
