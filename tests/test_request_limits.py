"""Limits on one request and one token: body size (declared or streamed), requests per token; each
limit hit is a clear problem+json in the caller's language and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from suanwang.api.app import create_app
from suanwang.api.limits import MIB, TokenBuckets
from suanwang.config import Settings
from tests import factories
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.db
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


def org_body(padding: int) -> bytes:
    """A valid organisation whose name is followed by `padding` spaces of JSON whitespace."""
    return (
        b'{"credit_code": "%s", "name": "Padded", "kind": "enterprise"}' % (factories.credit_code().encode())
        + b" " * padding
    )


def test_a_body_declared_too_large_is_refused_before_it_is_read(client: TestClient, regulator: Any) -> None:
    before = regulator.get("/orgs")["total"]
    answer = client.post("/api/v1/orgs", content=org_body(MIB + 1), headers=AUTH | {"Accept-Language": "zh"})
    assert answer.status_code == 413
    problem = answer.json()
    assert (
        problem["code"] == "request.too-large"
        and "1 MiB" in problem["detail"]
        and "请求体" in problem["detail"]
    )
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["x-content-type-options"] == "nosniff"  # the limits' answers are dressed too
    assert regulator.get("/orgs")["total"] == before


def test_a_streamed_body_is_refused_the_moment_it_passes_the_limit(
    client: TestClient, regulator: Any
) -> None:
    sent = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, counted as it arrives
        body = org_body(3 * MIB)
        for start in range(0, len(body), 64 * 1024):
            sent.append(start)
            yield body[start : start + 64 * 1024]

    before = regulator.get("/orgs")["total"]
    answer = client.post("/api/v1/orgs", content=chunks(), headers=AUTH)
    assert answer.status_code == 413 and answer.json()["code"] == "request.too-large"
    assert regulator.get("/orgs")["total"] == before


def test_a_body_within_the_limit_goes_through(client: TestClient, regulator: Any) -> None:
    answer = client.post("/api/v1/orgs", content=org_body(MIB - 1024), headers=AUTH)
    assert answer.status_code == 201, answer.text


def test_routes_that_read_more_on_purpose_keep_their_own_larger_limit(
    client: TestClient, regulator: Any
) -> None:
    # A 2 MiB metering batch is past the general limit but within the batch limit (4 MiB): the route
    # reads it and judges it (here: not a valid batch), rather than the general limit refusing it.
    body = b"[" + b" " * (2 * MIB) + b"]"
    headers = AUTH | {"Content-Type": "application/cloudevents-batch+json"}
    answer = client.post("/api/v1/metering/events", content=body, headers=headers)
    assert answer.status_code != 413 or answer.json()["code"] != "request.too-large", answer.text


@pytest.fixture
def limited(settings: Settings, clean_engine: Engine, regulator: Any) -> Iterator[TestClient]:
    """The app with a tight rate limit: 3 requests at once, then one a second."""
    tight = settings.model_copy(update={"rate_limit_per_s": 1.0, "rate_limit_burst": 3})
    with TestClient(create_app(tight, clean_engine)) as client:
        yield client


def test_a_token_past_its_rate_gets_429_and_others_do_not(limited: TestClient, regulator: Any) -> None:
    org = factories.org(regulator)
    user = factories.user(regulator, role="tenant_admin", org_id=org["id"])
    other = {"Authorization": f"Bearer {factories.token_for(regulator, user['id'])}"}
    answers = [limited.get("/api/v1/me", headers=AUTH) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3]
    assert refused.status_code == 429 and refused.json()["code"] == "request.rate-limited"
    assert int(refused.headers["retry-after"]) >= 1 and "Retry-After" in refused.json()["detail"]
    assert limited.get("/api/v1/me", headers=other).status_code == 200  # another token: its own bucket
    # A page's session cookie counts as its token too.
    limited.cookies.set("sw_session", ADMIN_TOKEN)
    assert limited.get("/healthz").status_code == 429  # the admin's bucket is still empty
    limited.cookies.clear()


def test_the_rate_limit_can_be_switched_off(settings: Settings, clean_engine: Engine, regulator: Any) -> None:
    off = settings.model_copy(update={"rate_limit_per_s": 0.0, "rate_limit_burst": 1})
    with TestClient(create_app(off, clean_engine)) as client:
        assert {client.get("/api/v1/me", headers=AUTH).status_code for _ in range(5)} == {200}


def test_a_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert [buckets.take(b"t") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take(b"t") == pytest.approx(0.5)  # empty: the next token comes in half a second
    now[0] = 0.5
    assert buckets.take(b"t") == 0.0
    now[0] = 100.0  # a long pause refills to the burst, not beyond
    assert [buckets.take(b"t") == 0.0 for _ in range(3)] == [True, True, False]


@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_no_window_lets_through_more_than_the_burst_and_the_rate(
    rate: float, burst: int, gaps: list[float]
) -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=rate, burst=burst, clock=lambda: now[0])
    allowed = []
    for gap in gaps:
        now[0] += gap
        if buckets.take(b"k") == 0.0:
            allowed.append(now[0])
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            window = allowed[j] - start
            assert j - i + 1 <= burst + rate * window + 1e-6
