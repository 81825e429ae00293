"""The access-control matrix: every route of the API (taken from the app's OpenAPI document, so a new route
fails here until it is classified), called by every role of one side (provider p1, organisation org_a)
against the objects of the other side (provider p2, organisation org_b), and against ids that do not
exist. Zero leaks: a foreign object is never read or changed by the other side, a denial never tells a
foreign object from a missing one, and nothing of the foreign side shows in any answer.

The foreign side's private objects carry MARKER in every name and free-text field, so a leak of any of
them shows as the marker in an answer; ids are checked too (org_id of org_b, its users, accounts, jobs).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from suanwang.api.deps import get_now
from suanwang.config import Settings
from suanwang.controller import Controller
from suanwang.db.session import session_scope
from suanwang.registry import taxonomy
from suanwang.tenants import service as tenants
from suanwang.timeutil import shanghai_date, utcnow
from tests import factories
from tests.conftest import ADMIN_TOKEN, Api, _truncate
from tests.helpers import build_world
from tests.jobs_world import PRICE_FROM
from tests.voucher_world import end_job

pytestmark = pytest.mark.db

MARKER = "B-SECRET"
OWN_ROLES = ("op1", "admin_a", "member_a")
PROBLEM_JSON = "application/problem+json"

# --- what a role may do on a route, called with the foreign side's ids ---------------------------------

PUBLIC = "public"  # 2xx: the market's public offering, foreign objects included; a missing id: 404
SCOPED = "scoped"  # 2xx, holding only what the caller may see: filtered by foreign ids, the answer is the
# same as filtered by missing ids (empty)
DENY = "deny"  # 403 or 404, the same answer (status, code, title, detail) as for ids that do not exist
DENY_PUBLIC = "deny-public"  # 403 or 404: a write on, or naming, an object of the public offering, whose
# existence is public (GET answers it to everyone), so the answer may differ from the one for a missing id
REGULATOR = "regulator"  # 403, the same answer as for ids that do not exist
UNKNOWN_LAUNCH = "unknown-launch"  # metering: 422 with every event refused as metering.launch-unknown and
# the same answer as for a launch that does not exist (docs/api.md: "no such launch, or not on your
# provider's pools: the same answer")
OPEN = "open"  # served without a token


def every(rule: str) -> dict[str, str]:
    return dict.fromkeys(OWN_ROLES, rule)


Ids = dict[str, Any]


@dataclass(frozen=True)
class Route:
    """How one route is called and what each own-side role may do with it."""

    roles: dict[str, str]
    body: Callable[[Ids], Any] | None = None  # built from the ids (foreign, or missing)
    kind: str = "json"  # json, cloudevents (a batch), bytes (raw), csv
    query: Callable[[Ids], dict[str, Any]] | None = None
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> key of the ids (default: itself)
    hidden: Callable[[Ids], list[str]] | None = None  # text that must not show to the own side either


def public(**kw: Any) -> Route:
    return Route(every(PUBLIC), **kw)


def scoped(**kw: Any) -> Route:
    return Route(every(SCOPED), **kw)


def private(**kw: Any) -> Route:
    """An object of the foreign organisation or provider (or a body naming one)."""
    return Route(every(DENY), **kw)


def public_object(**kw: Any) -> Route:
    return Route(every(DENY_PUBLIC), **kw)


def regulator_only(**kw: Any) -> Route:
    return Route(every(REGULATOR), **kw)


def per_role(op1: str, admin_a: str, member_a: str, **kw: Any) -> Route:
    return Route({"op1": op1, "admin_a": admin_a, "member_a": member_a}, **kw)


def later(i: Ids, days: float) -> str:
    return (i["now"] + timedelta(days=days)).isoformat()


def window(i: Ids) -> dict[str, str]:
    """Report windows around now: the foreign side's usage and pools fall in them."""
    return {"from": later(i, -2), "to": later(i, 1)}


CARD = {"index": 0, "uuid": "GPU-0000", "model": "L40S", "memory_mib": 46_068, "driver_version": "580.65"}

# One entry per (METHOD, path) of the OpenAPI document. Bodies are valid (they would succeed for the
# foreign side's entitled caller) and name the foreign side's objects wherever they name anything.
TABLE: dict[tuple[str, str], Route] = {
    # Liveness for load balancers: no token by design (docs/api.md), says nothing but "ok" and the version.
    ("GET", "/healthz"): Route(every(OPEN)),
    # --- catalogue and the market's public offering (tenants/access.py: "the market's public offering
    # (providers, sites, pools, prices, capacity) is readable by every signed-in user") ---
    ("GET", "/api/v1/accelerators"): public(),
    ("GET", "/api/v1/accelerators/{model}"): public(),
    ("GET", "/api/v1/providers"): public(),
    ("POST", "/api/v1/providers"): regulator_only(
        body=lambda i: {"code": "matrix-prov", "name": "Matrix", "kind": "general_cloud", "region": "pinghu"}
    ),
    ("GET", "/api/v1/providers/{provider_id}"): public(),
    ("PATCH", "/api/v1/providers/{provider_id}"): public_object(body=lambda i: {"name": "Renamed"}),
    ("POST", "/api/v1/providers/{provider_id}/retire"): regulator_only(),
    # A site is public, its `connection` (private settings, carrying the marker) only its operators'.
    ("GET", "/api/v1/sites"): public(query=lambda i: {"provider_id": i["provider_id"]}),
    ("POST", "/api/v1/sites"): public_object(
        body=lambda i: {
            "provider_id": i["provider_id"],
            "code": "matrix-site",
            "name": "Matrix site",
            "phase": "operational",
        }
    ),
    ("GET", "/api/v1/sites/{site_id}"): public(),
    ("PATCH", "/api/v1/sites/{site_id}"): public_object(body=lambda i: {"name": "Renamed"}),
    ("POST", "/api/v1/sites/{site_id}/retire"): public_object(),
    ("GET", "/api/v1/pools"): public(query=lambda i: {"provider_id": i["provider_id"]}),
    ("POST", "/api/v1/pools"): public_object(
        body=lambda i: {
            "site_id": i["site_id"],
            "code": "matrix-pool",
            "name": "Matrix pool",
            "accelerator": "L40S",
            "nodes": 1,
            "cards_per_node": 2,
        }
    ),
    ("GET", "/api/v1/pools/{pool_id}"): public(),
    ("PATCH", "/api/v1/pools/{pool_id}"): public_object(body=lambda i: {"name": "Renamed"}),
    ("POST", "/api/v1/pools/{pool_id}/retire"): public_object(),
    ("GET", "/api/v1/pools/{pool_id}/prices"): public(),
    ("POST", "/api/v1/pools/{pool_id}/prices"): public_object(
        body=lambda i: {"price_fen_per_card_hour": 999, "effective_from": later(i, 60)}
    ),
    ("GET", "/api/v1/pools/{pool_id}/price"): public(),
    ("POST", "/api/v1/pools/{pool_id}/prices/{card_id}/retire"): public_object(),  # a scheduled card
    ("GET", "/api/v1/capacity"): public(query=lambda i: {"provider_id": i["provider_id"]}),
    # --- tenants: other organisations do not exist for a tenant; operators see no tenants' records ---
    ("GET", "/api/v1/me"): scoped(),
    ("GET", "/api/v1/orgs"): scoped(query=lambda i: {"q": i["credit_code"]}),
    ("POST", "/api/v1/orgs"): regulator_only(
        body=lambda i: {"credit_code": i["new_credit_code"], "name": "Matrix Org", "kind": "enterprise"}
    ),
    ("GET", "/api/v1/orgs/{org_id}"): private(),
    ("PATCH", "/api/v1/orgs/{org_id}"): private(body=lambda i: {"name": "Renamed"}),
    ("POST", "/api/v1/orgs/{org_id}/retire"): regulator_only(),
    ("GET", "/api/v1/users"): scoped(query=lambda i: {"org_id": i["org_id"]}),
    ("POST", "/api/v1/users"): private(
        body=lambda i: {"name": "matrix-user", "role": "tenant_member", "org_id": i["org_id"]}
    ),
    ("GET", "/api/v1/users/{user_id}"): private(),
    ("PATCH", "/api/v1/users/{user_id}"): private(body=lambda i: {"display_name": "Renamed"}),
    ("POST", "/api/v1/users/{user_id}/retire"): private(),
    ("GET", "/api/v1/tokens"): scoped(query=lambda i: {"user_id": i["user_id"]}),
    ("POST", "/api/v1/tokens"): private(body=lambda i: {"name": "matrix", "user_id": i["user_id"]}),
    ("POST", "/api/v1/tokens/{token_id}/revoke"): private(),
    # --- jobs and reservations: tenants submit, quote and reserve for their own organisation (admins
    # only for reservations), the regulator names one; naming org_b, every own role is refused. Who sees
    # a job or a reservation: its organisation, the operators of the pools it is on (org_b's are on p2's
    # pools), the regulator ---
    ("POST", "/api/v1/jobs"): private(
        body=lambda i: {"command": ["python3", "train.py"], "accelerators": ["A800"], "org_id": i["org_id"]}
    ),
    ("GET", "/api/v1/jobs"): scoped(query=lambda i: {"org_id": i["org_id"], "pool_id": i["agent_pool_id"]}),
    ("POST", "/api/v1/jobs/quote"): private(
        body=lambda i: {"command": ["python3", "train.py"], "accelerators": ["A800"], "org_id": i["org_id"]}
    ),
    ("GET", "/api/v1/jobs/{job_id}"): private(),
    ("GET", "/api/v1/jobs/{job_id}/events"): private(),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): private(),
    ("GET", "/api/v1/jobs/{job_id}/logs"): private(),
    ("POST", "/api/v1/reservations"): private(
        body=lambda i: {
            "pool_id": i["pool_id"],
            "cards": 8,
            "starts_at": later(i, 3),
            "ends_at": later(i, 3.1),
            "org_id": i["org_id"],
        }
    ),
    ("GET", "/api/v1/reservations"): scoped(query=lambda i: {"pool_id": i["pool_id"]}),
    ("GET", "/api/v1/reservations/{reservation_id}"): private(),
    ("POST", "/api/v1/reservations/{reservation_id}/cancel"): private(),
    # --- metering: tenants do not report usage; an operator's event for another provider's launch is
    # refused exactly as one for a launch that does not exist ---
    ("POST", "/api/v1/metering/events"): per_role(
        UNKNOWN_LAUNCH,
        DENY,
        DENY,
        kind="cloudevents",
        body=lambda i: [
            {
                "specversion": "1.0",
                "id": "matrix-1",
                "source": "/providers/matrix/agents/n1",
                "type": "cn.suanwang.usage.v1",
                "data": {
                    "launch": i["launch"],
                    "started_at": later(i, -0.02),
                    "ended_at": later(i, -0.01),
                    "cards": 1,
                },
            }
        ],
    ),
    ("GET", "/api/v1/usage"): scoped(query=lambda i: {"org_id": i["org_id"], "pool_id": i["agent_pool_id"]}),
    # --- node agents (a provider operator's token) ---
    ("POST", "/api/v1/agent/nodes"): public_object(  # names the foreign (public) agent pool
        body=lambda i: {"pool_id": i["agent_pool_id"], "hostname": "matrix-node", "cards": [CARD]}
    ),
    ("GET", "/api/v1/agent/nodes"): scoped(query=lambda i: {"pool_id": i["agent_pool_id"]}),
    ("POST", "/api/v1/agent/nodes/{node_id}/calibration"): private(
        body=lambda i: {
            "cards": [{"index": 0, "model": "L40S", "dtype": "bf16", "n": 8192, "median_tflops": 100.0}]
        }
    ),
    ("POST", "/api/v1/agent/nodes/{node_id}/heartbeat"): private(
        body=lambda i: {"reports": [{"name": i["launch"], "state": "failed", "exit_code": 1}]}
    ),
    ("PUT", "/api/v1/agent/launches/{name}/logs"): private(
        kind="bytes", body=lambda i: b"injected\n", query=lambda i: {"offset": 0}, params={"name": "launch"}
    ),
    # --- money ---
    ("GET", "/api/v1/accounts"): scoped(
        query=lambda i: {"owner_kind": "organisation", "owner_id": i["org_id"]}
    ),
    ("GET", "/api/v1/accounts/{account_id}"): private(),
    ("GET", "/api/v1/accounts/{account_id}/balance"): private(),
    ("GET", "/api/v1/accounts/{account_id}/transfers"): private(),
    ("GET", "/api/v1/orgs/{org_id}/accounts"): private(),
    ("POST", "/api/v1/orgs/{org_id}/top-ups"): regulator_only(
        body=lambda i: {"amount_fen": 100, "reason": "matrix"}
    ),
    ("POST", "/api/v1/orgs/{org_id}/refunds"): regulator_only(
        body=lambda i: {"amount_fen": 100, "reason": "matrix"}
    ),
    ("POST", "/api/v1/orgs/{org_id}/adjustments"): regulator_only(
        body=lambda i: {"amount_fen": -100, "reason": "matrix"}
    ),
    ("PUT", "/api/v1/orgs/{org_id}/credit-limit"): regulator_only(body=lambda i: {"credit_limit_fen": 1000}),
    ("POST", "/api/v1/providers/{provider_id}/payouts"): regulator_only(
        body=lambda i: {"amount_fen": 1, "reason": "matrix"}
    ),
    # 403 money.not-your-org (not 404) for another organisation's wallet or invoice: the same answer as
    # for an organisation that does not exist, so nothing is learnt from it.
    ("GET", "/api/v1/orgs/{org_id}/invoices/{month}"): private(),
    # A provider is public, its statement is not: its operators and the regulator only.
    ("GET", "/api/v1/providers/{provider_id}/statements/{month}"): private(),
    # --- vouchers: presets and programmes are public ("tenants need to know what they can apply for");
    # applications, grants and redemptions are the organisation's; the rest is the regulator's ---
    ("GET", "/api/v1/vouchers/presets"): public(),
    ("GET", "/api/v1/vouchers/presets/{name}"): public(params={"name": "preset"}),
    ("POST", "/api/v1/vouchers/programmes"): regulator_only(
        body=lambda i: {
            "preset": "pinghu-2026",
            "code": "matrix-programme",
            "starts_on": i["today"],
            "ends_on": later(i, 300)[:10],
        }
    ),
    ("GET", "/api/v1/vouchers/programmes"): public(),
    ("GET", "/api/v1/vouchers/programmes/{programme_id}"): public(),
    ("GET", "/api/v1/vouchers/programmes/{programme_id}/budget"): regulator_only(),
    ("POST", "/api/v1/vouchers/programmes/{programme_id}/claims/{quarter}/settle"): regulator_only(),
    ("POST", "/api/v1/vouchers/applications"): private(
        body=lambda i: {
            "programme_id": i["programme_id"],
            "requested_fen": 1_000_000,
            "purpose": "matrix",
            "org_id": i["org_id"],
        }
    ),
    ("GET", "/api/v1/vouchers/applications"): scoped(query=lambda i: {"programme_id": i["programme_id"]}),
    ("GET", "/api/v1/vouchers/applications/{application_id}"): private(),
    ("POST", "/api/v1/vouchers/applications/{application_id}/review"): regulator_only(
        body=lambda i: {"decision": "reject", "reason": "matrix"}
    ),
    ("GET", "/api/v1/vouchers/grants"): scoped(query=lambda i: {"org_id": i["org_id"]}),
    ("GET", "/api/v1/vouchers/grants/{grant_id}"): private(),
    ("POST", "/api/v1/vouchers/grants/expire"): regulator_only(),
    ("GET", "/api/v1/vouchers/redemptions"): scoped(query=lambda i: {"org_id": i["org_id"]}),
    ("POST", "/api/v1/vouchers/redemptions/{redemption_id}/clawbacks"): regulator_only(
        body=lambda i: {"reason": "matrix"}
    ),
    ("POST", "/api/v1/vouchers/flags"): regulator_only(
        body=lambda i: {
            "org_id": i["org_id"],
            "kind": "credit_default",
            "effective_on": i["today"],
            "reason": "matrix",
        }
    ),
    ("GET", "/api/v1/vouchers/flags"): regulator_only(),
    ("POST", "/api/v1/vouchers/flags/{flag_id}/lift"): regulator_only(body=lambda i: {"reason": "matrix"}),
    ("GET", "/api/v1/vouchers/audit"): regulator_only(),
    ("GET", "/api/v1/audit"): regulator_only(),
    ("GET", "/api/v1/audit/head"): regulator_only(),
    **{
        ("GET", f"/api/v1/vouchers/programmes/{{programme_id}}/reports/{report}"): regulator_only()
        for report in ("burn-down", "by-enterprise", "by-segment", "by-provider", "by-month", "summary")
    },
    # --- registry: the regulator reads and writes; a tenant reads only its own enterprise record; the
    # taxonomy is readable by everyone (registry/api.py) ---
    ("GET", "/api/v1/registry/segments"): public(),
    ("POST", "/api/v1/registry/segments"): regulator_only(
        body=lambda i: {"code": "matrix_seg", "stage": "upstream", "name_zh": "矩阵", "name_en": "Matrix"}
    ),
    ("PATCH", "/api/v1/registry/segments/{code}"): regulator_only(
        body=lambda i: {"name_en": "Servers and boards"}, params={"code": "segment"}
    ),
    # Operators are refused the registry (registry.regulator-or-own); tenants get their own record only.
    ("GET", "/api/v1/registry/enterprises"): per_role(
        REGULATOR, SCOPED, SCOPED, query=lambda i: {"q": i["credit_code"]}
    ),
    ("POST", "/api/v1/registry/enterprises"): regulator_only(
        body=lambda i: {"credit_code": i["new_credit_code"], "name": "Matrix Ltd", "segments": ["gpu"]}
    ),
    ("GET", "/api/v1/registry/enterprises/{enterprise_id}"): private(),
    ("PATCH", "/api/v1/registry/enterprises/{enterprise_id}"): regulator_only(
        body=lambda i: {"name": "Renamed"}
    ),
    ("POST", "/api/v1/registry/enterprises/{enterprise_id}/tiers"): regulator_only(
        body=lambda i: {"tier": "specialised_sme", "granted_on": "2024-06-01"}
    ),
    ("POST", "/api/v1/registry/enterprises/{enterprise_id}/tiers/{tier}/revoke"): regulator_only(
        body=lambda i: {"revoked_on": i["today"]}
    ),
    ("PUT", "/api/v1/registry/enterprises/{enterprise_id}/output/{month}"): regulator_only(
        body=lambda i: {"output_fen": 100}
    ),
    ("GET", "/api/v1/registry/projects"): regulator_only(),
    ("POST", "/api/v1/registry/projects"): regulator_only(
        body=lambda i: {
            "name": "Matrix project",
            "enterprise_id": i["enterprise_id"],
            "segment": "data_centres",
            "investment_fen": 100,
            "signed_on": "2024-03-01",
        }
    ),
    ("GET", "/api/v1/registry/projects/summary"): regulator_only(),
    ("GET", "/api/v1/registry/projects/{project_id}"): regulator_only(),
    ("PATCH", "/api/v1/registry/projects/{project_id}"): regulator_only(body=lambda i: {"name": "Renamed"}),
    ("GET", "/api/v1/registry/statistics/output"): regulator_only(query=lambda i: {"year": 2025}),
    ("GET", "/api/v1/registry/statistics/output/monthly"): regulator_only(query=lambda i: {"year": 2025}),
    ("GET", "/api/v1/registry/statistics/chain-map"): regulator_only(),
    ("GET", "/api/v1/registry/cultivation/criteria"): regulator_only(),
    ("PUT", "/api/v1/registry/cultivation/criteria/{tier}"): regulator_only(
        body=lambda i: [{"metric": "rd_intensity_bp", "minimum": 300}], params={"tier": "target_tier"}
    ),
    ("DELETE", "/api/v1/registry/cultivation/criteria/{tier}"): regulator_only(
        params={"tier": "target_tier"}
    ),
    ("GET", "/api/v1/registry/cultivation/candidates"): regulator_only(
        query=lambda i: {"tier": "specialised_sme"}
    ),
    ("POST", "/api/v1/registry/import/{dataset}"): regulator_only(
        kind="csv",
        query=lambda i: {"dry_run": "false"},
        body=lambda i: (
            f"统一社会信用代码,企业名称,产业链环节\n{i['new_credit_code']},矩阵企业,gpu\n".encode()
        ),
    ),
    ("GET", "/api/v1/registry/export/{dataset}"): regulator_only(),
    # --- region reports: the regulator's; an operator reads utilization of its own provider's pools ---
    ("GET", "/api/v1/reports/local-share"): regulator_only(query=window),
    ("GET", "/api/v1/reports/utilization"): per_role(
        SCOPED, REGULATOR, REGULATOR, query=window, hidden=lambda i: [f'"{i["provider_code"]}"']
    ),
    ("GET", "/api/v1/reports/queue"): regulator_only(query=window),
}


# --- the world: both sides, the foreign side's objects carrying the marker ---------------------------------

MISSING_ID = 987_654


@dataclass
class Matrix:
    callers: dict[str, Api]  # anonymous, op1, admin_a, member_a, regulator, and the foreign op2, admin_b
    foreign: Ids  # the foreign side's objects, by the name of the path parameter (or body field) they fill
    missing: Ids  # the same names, ids that do not exist
    secret_ids: dict[str, frozenset[int]]  # JSON key -> ids of the foreign side that must never show
    reads: list[tuple[str, str, dict[str, Any]]]  # (caller, path, params): the foreign side as it stands
    baseline: dict[str, Any] = field(default_factory=dict)


def cycle(settings: Settings, engine: Engine) -> None:
    controller = Controller(settings, engine)
    try:
        assert controller.lock.acquire()
        controller.cycle()
    finally:
        controller.lock.release()
        controller.backends.close()


def previous_quarter(month: int, year: int) -> str:
    quarter = (month - 1) // 3  # the quarter before this one, 0 meaning the last of the year before
    return f"{year}Q{quarter}" if quarter else f"{year - 1}Q4"


def build(regulator: Api, settings: Settings, engine: Engine) -> Matrix:
    w = build_world(regulator)
    reg, op2, admin_b = regulator, w.op2, w.admin_b
    now = utcnow()
    today = shanghai_date(now).isoformat()
    org_b = w.org_b["id"]
    user = {name: u["id"] for name, u in w.users.items()}

    # Names and free text of the foreign side's private records carry the marker.
    reg.patch(f"/orgs/{org_b}", {"name": f"Jiaxing Software {MARKER}", "contact_email": "cfo@b.example"})
    for name in ("admin_b", "member_b", "op2"):
        reg.patch(f"/users/{user[name]}", {"display_name": f"{MARKER} {name}", "email": f"{name}@b.example"})

    # Prices on both providers' pools; a scheduled change on pool2 (what its operator could withdraw).
    price = {"price_fen_per_card_hour": 450, "effective_from": PRICE_FROM.isoformat()}
    reg.post(f"/pools/{w.pool1['id']}/prices", price)
    op2.post(f"/pools/{w.pool2['id']}/prices", price)
    scheduled = op2.post(
        f"/pools/{w.pool2['id']}/prices",
        {"price_fen_per_card_hour": 520, "effective_from": (now + timedelta(days=30)).isoformat()},
    )

    # An agent site of p2 (its private connection settings carry the marker), a pool, a calibrated node.
    site_b = op2.post(
        "/sites",
        {
            "provider_id": w.p2["id"],
            "code": "changxing-agents",
            "name": "Changxing agents",
            "backend_kind": "agent",
            "region": "zj-jiaxing-pinghu",
            "connection": {"note": f"{MARKER} rack 7", "bmc_password": f"{MARKER}-hunter2"},
            "phase": "operational",
        },
    )
    agent_pool = op2.post(
        "/pools",
        {
            "site_id": site_b["id"],
            "code": "changxing-l40s",
            "name": "Changxing L40S",
            "accelerator": "L40S",
            "nodes": 1,
            "cards_per_node": 2,
        },
    )
    op2.post(f"/pools/{agent_pool['id']}/prices", price | {"price_fen_per_card_hour": 100})
    cards = [CARD | {"index": i, "uuid": f"GPU-{i:04d}"} for i in range(2)]
    node = op2.post(
        "/agent/nodes",
        {"pool_id": agent_pool["id"], "hostname": f"{MARKER}-gpu-1", "cards": cards, "cpu_count": 64},
        expect=200,
    )
    measured = [{"index": 0, "model": "L40S", "dtype": "bf16", "n": 16384, "median_tflops": 330.5}]
    op2.post(f"/agent/nodes/{node['id']}/calibration", {"cards": measured}, expect=200)

    # A job of org_b, placed on the node by the controller and really launched there, with output.
    job = admin_b.post(
        "/jobs",
        {
            "name": f"{MARKER} training",
            "command": ["python3", "train.py", f"--run={MARKER}"],
            "env": {"HF_TOKEN": f"{MARKER}-hf"},
            "cards": 1,
            "accelerators": ["L40S"],
        },
    )
    cycle(settings, engine)
    beat = f"/agent/nodes/{node['id']}/heartbeat"
    [start] = op2.post(beat, {"reports": []}, expect=200)["start"]
    launch = start["name"]
    running = {"name": launch, "state": "running", "started_at": now.isoformat()}
    op2.post(beat, {"reports": [running]}, expect=200)
    op2.call(
        "PUT",
        f"/agent/launches/{launch}/logs",
        params={"offset": 0},
        content=f"{MARKER} epoch 1\n".encode(),
        expect=200,
    )

    # A reservation and a top-up of org_b (its wallet and arrears exist from then on); its admin's token.
    reservation = admin_b.post(
        "/reservations",
        {
            "pool_id": w.pool2["id"],
            "cards": 8,
            "starts_at": (now + timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=1, hours=2)).isoformat(),
        },
    )
    reg.post(f"/orgs/{org_b}/top-ups", {"amount_fen": 12_345, "reason": f"{MARKER} wire"})
    wallet, arrears = reg.get(f"/orgs/{org_b}/accounts")
    [token] = reg.get("/tokens", params={"user_id": user["admin_b"]})["items"]

    # Vouchers: a programme (public), org_b's application approved into a grant, a job charged with a
    # subsidy from it (a redemption), and a flag on org_b.
    programme = reg.post(
        "/vouchers/programmes",
        {
            "preset": "pinghu-2026",
            "code": "pinghu-matrix",
            "starts_on": (now - timedelta(days=30)).date().isoformat(),
            "ends_on": (now + timedelta(days=365)).date().isoformat(),
        },
    )
    application = admin_b.post(
        "/vouchers/applications",
        {"programme_id": programme["id"], "requested_fen": 1_000_000, "purpose": f"{MARKER} fine-tuning"},
    )
    reviewed = reg.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "approve", "reason": f"{MARKER} complete file"},
        expect=200,
    )
    grant = reg.get(f"/vouchers/grants/{reviewed['grant_id']}")
    charged = admin_b.post(
        "/jobs", {"name": f"{MARKER} inference", "command": ["python3", "serve.py"], "accelerators": ["L40S"]}
    )
    end_job(engine, charged["id"], agent_pool["id"], cards=1, seconds=3600)
    [redemption] = reg.get("/vouchers/redemptions", params={"org_id": org_b})["items"]
    assert redemption["subsidy_fen"] > 0, redemption  # a clawback of it would be valid
    flag = reg.post(
        "/vouchers/flags",
        {"org_id": org_b, "kind": "suspended", "effective_on": today, "reason": f"{MARKER} audit"},
    )

    # The registry: org_b's enterprise record (linked by its credit code), a tier, a project, output.
    month = now.strftime("%Y-%m")
    enterprise = reg.post(
        "/registry/enterprises",
        {
            "credit_code": w.org_b["credit_code"],
            "name": f"{MARKER} Jiaxing Software Ltd",
            "segments": ["servers_boards"],
            "tier": "innovative_sme",
            "tier_granted_on": "2024-01-01",
            "contact_name": f"{MARKER} CFO",
        },
    )
    assert enterprise["org_id"] == org_b
    project = reg.post(
        "/registry/projects",
        {
            "name": f"{MARKER} plant",
            "enterprise_id": enterprise["id"],
            "segment": "data_centres",
            "investment_fen": 10_000_000_00,
            "signed_on": "2024-03-01",
        },
    )
    reg.call(
        "PUT", f"/registry/enterprises/{enterprise['id']}/output/{month}", json={"output_fen": 1}, expect=200
    )

    foreign: Ids = {
        # values that are not ids: the same on both sides
        "now": now,
        "today": today,
        "new_credit_code": factories.credit_code(),
        "provider_code": w.p2["code"],
        "month": month,
        "quarter": previous_quarter(now.month, now.year),
        "dataset": "enterprises",
        "tier": "innovative_sme",  # held by org_b's enterprise
        "target_tier": "specialised_sme",  # a tier with cultivation criteria
        # the public offering and shipped data
        "model": "L40S",
        "preset": "pinghu-2026",
        "segment": "servers_boards",
        "provider_id": w.p2["id"],
        "site_id": site_b["id"],
        "pool_id": w.pool2["id"],
        "agent_pool_id": agent_pool["id"],
        "card_id": scheduled["id"],
        "programme_id": programme["id"],
        # the foreign side's private objects
        "org_id": org_b,
        "credit_code": w.org_b["credit_code"],
        "user_id": user["admin_b"],
        "token_id": token["id"],
        "job_id": job["id"],
        "reservation_id": reservation["id"],
        "node_id": node["id"],
        "launch": launch,
        "account_id": wallet["id"],
        "application_id": application["id"],
        "grant_id": grant["id"],
        "redemption_id": redemption["id"],
        "flag_id": flag["id"],
        "enterprise_id": enterprise["id"],
        "project_id": project["id"],
    }
    missing: Ids = foreign | {key: MISSING_ID for key, value in foreign.items() if key.endswith("_id")}
    missing |= {"launch": f"sw-{MISSING_ID}-1", "model": "NOPE-9000", "preset": "nope", "segment": "nope"}
    missing["credit_code"] = factories.credit_code()  # valid, and nobody's

    users = frozenset({user["admin_b"], user["member_b"], user["op2"]})
    account_ids = frozenset({wallet["id"], arrears["id"], grant["account_id"]})
    secret_ids = {
        "org_id": frozenset({org_b}),
        "user_id": users,
        "submitted_by": users,
        "created_by": users,
        "reviewed_by": users,
        "account_id": account_ids,
        "debit_account_id": account_ids,
        "credit_account_id": account_ids,
        "job_id": frozenset({job["id"], charged["id"]}),
        "grant_id": frozenset({grant["id"]}),
        "application_id": frozenset({application["id"]}),
        "enterprise_id": frozenset({enterprise["id"]}),
    }
    everything = {"include_retired": "true", "limit": 500}
    reads: list[tuple[str, str, dict[str, Any]]] = [
        ("admin_b", "/me", {}),  # their tokens still sign in
        ("op2", "/me", {}),
        *[
            ("regulator", path, everything)
            for path in ("/providers", "/sites", "/pools", "/orgs", "/users", "/registry/enterprises")
        ],
        *[
            ("regulator", path, {"limit": 500})
            for path in (
                "/tokens",
                "/jobs",
                "/reservations",
                "/accounts",  # every balance: money moved anywhere shows
                "/vouchers/programmes",
                "/vouchers/applications",
                "/vouchers/grants",
                "/vouchers/redemptions",
                "/registry/projects",
            )
        ],
        ("regulator", f"/jobs/{job['id']}/logs", {}),
        ("regulator", f"/pools/{w.pool2['id']}/prices", {"include_retired": "true"}),
        ("regulator", "/agent/nodes", {}),
        ("regulator", "/vouchers/flags", {"include_lifted": "true"}),
        ("regulator", f"/registry/enterprises/{enterprise['id']}", {}),  # tiers, projects, output
        ("regulator", "/registry/segments", {"include_retired": "true"}),
        ("regulator", "/registry/cultivation/criteria", {}),
    ]
    callers = {
        "anonymous": reg.as_(None),
        "regulator": reg,
        **{role: getattr(w, role) for role in (*OWN_ROLES, "op2", "admin_b")},
    }
    return Matrix(callers=callers, foreign=foreign, missing=missing, secret_ids=secret_ids, reads=reads)


@pytest.fixture(scope="module")
def matrix(app: Any, engine: Engine, settings: Settings) -> Iterator[Matrix]:
    """One world for the whole module (the checks only read it, and every write is refused)."""
    _truncate(engine)  # what `clean_engine` does, once for the module
    with session_scope(engine) as session:
        taxonomy.seed_shipped(session)
        tenants.ensure_regulator_token(session=session, secret=ADMIN_TOKEN, user_name="admin", now=utcnow())
    app.dependency_overrides.pop(get_now, None)  # the API's clock is real time, as the controller's
    with TestClient(app, raise_server_exceptions=False) as client:
        built = build(Api(client, ADMIN_TOKEN), settings, engine)
        built.baseline = snapshot(built)
        yield built


# --- calling a route ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    params: dict[str, Any] | None
    content: bytes | None
    headers: dict[str, str]
    values: tuple[str, ...]  # the ids it names (to compare answers that quote them)


class Recorded(dict[str, Any]):
    """The ids, remembering which of them a body or query used."""

    def __init__(self, ids: Ids) -> None:
        super().__init__(ids)
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.used.add(key)
        return super().__getitem__(key)


def request_of(method: str, path: str, ids: Ids) -> Request:
    route = TABLE[(method, path)]
    recorded = Recorded(ids)
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace(f"{{{name}}}", str(recorded[route.params.get(name, name)]))
    content, headers = None, {}
    if route.body is not None:
        body = route.body(recorded)
        if route.kind in ("json", "cloudevents"):
            content = json.dumps(body).encode()
            json_type = (
                "application/cloudevents-batch+json" if route.kind == "cloudevents" else "application/json"
            )
            headers["Content-Type"] = json_type
        else:
            content = body
            headers["Content-Type"] = "text/csv" if route.kind == "csv" else "application/octet-stream"
    params = route.query(recorded) if route.query else None
    values = {str(ids[key]) for key in recorded.used if isinstance(ids[key], int | str)}
    return Request(method, url, params, content, headers, tuple(sorted(values, key=len, reverse=True)))


def send(api: Api, request: Request) -> Any:
    return api.client.request(
        request.method,
        request.url,
        params=request.params,
        content=request.content,
        headers=api.headers(request.headers),
    )


def is_problem(response: Any) -> bool:
    return response.headers.get("content-type", "").startswith(PROBLEM_JSON)


def answer(response: Any, request: Request) -> dict[str, Any]:
    """What a caller learns from a refusal, with the ids it named itself blanked out."""

    def blank(text: str) -> str:
        for value in request.values:
            text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "<id>", text)
        return text

    seen: dict[str, Any] = {"status": response.status_code}
    if is_problem(response):
        body = response.json()
        seen |= {
            key: blank(json.dumps(value, sort_keys=True)) for key, value in body.items() if key != "instance"
        }
    else:
        seen["body"] = blank(response.text)
    return seen


# --- what must never show --------------------------------------------------------------------------------


def leaks(response: Any, m: Matrix) -> list[str]:
    """The marker anywhere in the answer, or an id of the foreign side's private objects in its JSON."""
    found = []
    if MARKER.encode() in response.content:
        found.append(f"the marker {MARKER!r}")
    if "json" not in response.headers.get("content-type", ""):
        return found

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, int) and value in m.secret_ids.get(key, ()):
                    found.append(f"{key}={value}")
                walk(value)
            organisation = node.get("owner_kind") == "organisation"
            if organisation and node.get("owner_id") in m.secret_ids["org_id"]:
                found.append(f"an account of org_b ({node.get('key')})")
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(response.json())
    return found


# --- the foreign side as the regulator sees it -----------------------------------------------------------

CHANGING = frozenset({"last_used_at", "alive"})  # moved by any call, or by the clock


def scrub(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: scrub(value) for key, value in node.items() if key not in CHANGING}
    if isinstance(node, list):
        return [scrub(item) for item in node]
    return node


def snapshot(m: Matrix) -> dict[str, Any]:
    taken = {}
    for caller, path, params in m.reads:
        response = m.callers[caller].call("GET", path, params=params)
        body = scrub(response.json()) if "json" in response.headers.get("content-type", "") else response.text
        taken[f"{caller} GET {path} {params}"] = (response.status_code, body)
    return taken


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two snapshots, as the first lines of a diff per read."""
    found = []
    for key in before:
        if before[key] != after[key]:
            old, new = (
                json.dumps(taken[key], indent=1, sort_keys=True).splitlines() for taken in (before, after)
            )
            diff = [line for line in difflib.unified_diff(old, new, lineterm="", n=0) if line[:1] in "+-"]
            found.append(f"{key} changed:\n      " + "\n      ".join(diff[2:14]))
    return found


# --- the checks ------------------------------------------------------------------------------------------


ROUTES = sorted(TABLE, key=lambda r: (r[1], r[0]))
GETS = [route for route in ROUTES if route[0] == "GET"]


def name(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1].removeprefix('/api/v1')}"


MEDIA_TYPES = {
    "json": "application/json",
    "cloudevents": "application/cloudevents-batch+json",
    "csv": "text/csv",
}


def test_the_table_classifies_every_route_of_the_openapi_document(app: Any, matrix: Matrix) -> None:
    """A new route fails here until it has its entry: its rule per role and a valid request."""
    paths = app.openapi()["paths"]
    documented = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert not documented - set(TABLE), f"routes to classify in TABLE: {sorted(documented - set(TABLE))}"
    assert not set(TABLE) - documented, f"classified routes the app does not serve: {set(TABLE) - documented}"
    for method, path in ROUTES:
        route, operation = TABLE[(method, path)], paths[path][method.lower()]
        assert set(route.roles) == set(OWN_ROLES), path
        if "requestBody" in operation:
            assert route.body is not None, f"{method} {path} takes a body: give the table a valid one"
            assert MEDIA_TYPES[route.kind] in operation["requestBody"]["content"], f"{method} {path}"
        parameters = operation.get("parameters", [])
        assert {p["name"] for p in parameters if p["in"] == "path"} == set(re.findall(r"{(\w+)}", path))
        required = {p["name"] for p in parameters if p["in"] == "query" and p.get("required")}
        given = set(route.query(matrix.foreign)) if route.query else set()
        assert required <= given, f"{method} {path}: the table's request lacks {required - given}"


@pytest.mark.parametrize("route", ROUTES, ids=name)
def test_anonymous_callers_are_refused(matrix: Matrix, route: tuple[str, str]) -> None:
    response = send(matrix.callers["anonymous"], request_of(*route, matrix.foreign))
    if set(TABLE[route].roles.values()) == {OPEN}:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "auth.missing" and response.headers["www-authenticate"] == "Bearer"


def check(m: Matrix, role: str, route: tuple[str, str]) -> list[str]:
    """Call the route as `role` with the foreign ids, and with missing ones; what went wrong."""
    spec = TABLE[route]
    rule = spec.roles[role]
    api = m.callers[role]
    asked, absent = request_of(*route, m.foreign), request_of(*route, m.missing)
    got = send(api, asked)
    other = send(api, absent) if absent != asked else None
    status = got.status_code
    said = f"{role}: {asked.method} {asked.url} {asked.params or ''} -> {status} {got.text[:300]}"
    problems = [f"{said}\n    leaks {leak}" for leak in leaks(got, m)]
    if other is not None:
        problems += [f"{role} (missing ids): leaks {leak}" for leak in leaks(other, m)]
    if status == 422 and rule != UNKNOWN_LAUNCH:
        return [*problems, f"{said}\n    422: the table's request is not valid, so the check proves nothing"]
    if rule in (PUBLIC, SCOPED, OPEN):
        if not 200 <= status < 300:
            return [*problems, f"{said}\n    expected 2xx"]
        shown = [text for text in (spec.hidden(m.foreign) if spec.hidden else []) if text in got.text]
        problems += [f"{said}\n    shows {text}" for text in shown]
        if other is None:
            return problems
        if rule == PUBLIC and absent.url != asked.url and other.status_code != 404:
            problems.append(f"{role}: {absent.url} (a missing id) answered {other.status_code}, expected 404")
        if rule == SCOPED and (other.status_code, other.json()) != (status, got.json()):
            problems.append(f"{said}\n    differs from the answer for missing ids: {other.text[:300]}")
        return problems
    if rule == DENY_PUBLIC:
        if status not in (403, 404) or (other is not None and other.status_code not in (403, 404)):
            problems.append(f"{said}\n    expected 403 or 404 (missing ids: {other and other.status_code})")
        return problems
    expected = {DENY: (403, 404), REGULATOR: (403,), UNKNOWN_LAUNCH: (422,)}[rule]
    if status not in expected:
        problems.append(f"{said}\n    expected {' or '.join(map(str, expected))}")
    elif rule == UNKNOWN_LAUNCH:
        body = got.json()
        refusals = {error.get("type") for error in body.get("errors", [])}
        if body.get("code") != "metering.invalid-events" or refusals != {"metering.launch-unknown"}:
            problems.append(f"{said}\n    expected every event refused as metering.launch-unknown")
    if other is not None and answer(got, asked) != answer(other, absent):
        problems.append(
            f"{said}\n    tells the foreign object from a missing one:\n"
            f"      foreign: {answer(got, asked)}\n      missing: {answer(other, absent)}"
        )
    return problems


@pytest.mark.parametrize("route", ROUTES, ids=name)
def test_own_side_roles_against_the_foreign_side(matrix: Matrix, route: tuple[str, str]) -> None:
    problems = [problem for role in OWN_ROLES for problem in check(matrix, role, route)]
    if route[0] != "GET":  # the attempts changed nothing of the foreign side
        problems += changes(matrix.baseline, snapshot(matrix))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("route", GETS, ids=name)
def test_the_regulator_reads_every_foreign_object(matrix: Matrix, route: tuple[str, str]) -> None:
    """The foreign ids name real objects, so the denials above are about them, not about typos; and the
    filters of the scoped lists select them."""
    regulator = matrix.callers["regulator"]
    asked, absent = request_of(*route, matrix.foreign), request_of(*route, matrix.missing)
    response = send(regulator, asked)
    assert 200 <= response.status_code < 300, response.text
    if SCOPED in TABLE[route].roles.values() and absent != asked:
        assert response.json() != send(regulator, absent).json(), f"{asked.url} {asked.params}: nothing found"


def test_the_leak_check_sees_the_foreign_side_in_its_own_answers(matrix: Matrix) -> None:
    """The marker and the ids are where the matrix looks for them: the foreign side sees them."""
    f = matrix.foreign
    for caller, path in (
        ("admin_b", f"/orgs/{f['org_id']}"),
        ("admin_b", "/users"),
        ("admin_b", "/jobs"),
        ("admin_b", f"/jobs/{f['job_id']}/logs"),
        ("admin_b", "/accounts"),
        ("admin_b", f"/accounts/{f['account_id']}/transfers"),
        ("admin_b", "/vouchers/applications"),
        ("admin_b", "/vouchers/grants"),
        ("admin_b", "/vouchers/redemptions"),
        ("admin_b", "/reservations"),
        ("admin_b", "/usage"),
        ("admin_b", f"/registry/enterprises/{f['enterprise_id']}"),
        ("op2", "/agent/nodes"),
        ("op2", f"/sites/{f['site_id']}"),
        ("op2", "/users"),
        ("op2", "/jobs"),
    ):
        response = matrix.callers[caller].call("GET", path, expect=200)
        assert leaks(response, matrix), f"{caller} GET {path}: {response.text[:300]}"
    report = matrix.callers["regulator"].get("/reports/utilization", params=window(f))
    assert f'"{f["provider_code"]}"' in json.dumps(report)  # what op1 must not see of it
