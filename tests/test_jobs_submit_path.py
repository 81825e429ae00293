"""The submit route's fast path (jobs/submit_path.py): the well-formed submission skips FastAPI's router;
everything else reaches the route, body and all, and gets the answers it always got.

Which of the two answered is seen through the route's own dependency: `idempotency_key` is overridden
with one that counts its calls (only the FastAPI route runs it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy import Engine, func, select

from suanwang.api.idempotency import IdempotencyKey, idempotency_key
from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.jobs.models import Job
from tests import jobs_world
from tests.jobs_world import ExecWorld

pytestmark = pytest.mark.db

SPEC = {"command": ["python3", "train.py"], "cards": 1, "duration_estimate_s": 600}


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


@pytest.fixture
def route_calls(app: Any) -> Iterator[list[str]]:
    """The Idempotency-Keys the FastAPI route read (the fast path reads its own)."""
    calls: list[str] = []

    async def counted(request: Request) -> IdempotencyKey:
        calls.append(request.headers.get("idempotency-key", ""))
        return await idempotency_key(request)

    app.dependency_overrides[idempotency_key] = counted
    yield calls
    app.dependency_overrides.pop(idempotency_key, None)


def post(app: Any, content: bytes | AsyncIterator[bytes], headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/api/v1/jobs", content=content, headers=headers)

    return asyncio.run(send())


def job_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_well_formed_submission_is_answered_without_the_router(
    ew: ExecWorld, app: Any, clock: Any, route_calls: list[str], clean_engine: Engine
) -> None:
    clock.now -= timedelta(minutes=7)  # the API's pinned clock, not the machine's
    headers = {
        "Authorization": f"Bearer {ew.tenant.token}",
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": "fast-1",
    }
    first = post(app, json.dumps(SPEC | {"env": {"SECRET": "x"}}).encode(), headers)
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "queued" and first.json()["env"] == {"SECRET": "x"}
    # The app's headers wrap the fast path as they wrap the router.
    assert (
        first.headers["x-content-type-options"] == "nosniff" and first.headers["cache-control"] == "no-store"
    )
    again = post(app, json.dumps(SPEC | {"env": {"SECRET": "x"}}).encode(), headers)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert route_calls == [] and job_count(clean_engine) == 1
    # The pinned clock of the API dates the submission, as it does on every route.
    history = ew.tenant.get(f"/jobs/{first.json()['id']}/events")
    assert datetime.fromisoformat(history[0]["at"].replace("Z", "+00:00")) == clock.now


@pytest.mark.parametrize(
    ("case", "content", "headers", "status", "code"),
    [
        ("not JSON", b"{not json", {}, 422, "invalid-request"),
        ("text, not JSON", json.dumps(SPEC).encode(), {"Content-Type": "text/plain"}, 422, "invalid-request"),
        ("a field out of range", json.dumps(SPEC | {"cards": -1}).encode(), {}, 422, "invalid-request"),
        ("no token", json.dumps(SPEC).encode(), {"Authorization": ""}, 401, "auth.missing"),
        (
            "a key too long",
            json.dumps(SPEC).encode(),
            {"Idempotency-Key": "k" * 201},
            422,
            "idempotency.key-length",
        ),
    ],
)
def test_anything_else_reaches_the_route_and_gets_its_answer(
    ew: ExecWorld,
    app: Any,
    route_calls: list[str],
    clean_engine: Engine,
    case: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    sent = {"Authorization": f"Bearer {ew.tenant.token}", "Content-Type": "application/json"} | headers
    sent = {name: value for name, value in sent.items() if value}
    answer = post(app, content, sent)
    assert answer.status_code == status, (case, answer.text)
    assert answer.json()["code"] == code and answer.headers["content-type"] == "application/problem+json"
    # The route ran (its dependency read the key) unless FastAPI refused before it: nothing was stored.
    assert len(route_calls) <= 1 and job_count(clean_engine) == 0
    if case == "a field out of range":
        assert route_calls == [""] and answer.json()["errors"][0]["field"] == "cards"


def test_a_refusal_is_the_apps_answer_in_the_callers_language(
    ew: ExecWorld, app: Any, route_calls: list[str], clean_engine: Engine
) -> None:
    headers = {
        "Authorization": f"Bearer {ew.tenant.token}",
        "Content-Type": "application/json",
        "Accept-Language": "zh-CN",
    }
    answer = post(app, json.dumps(SPEC | {"accelerators": ["Z9000"]}).encode(), headers)
    assert answer.status_code == 422 and answer.json()["code"] == "job.unknown-accelerator"
    assert any("\u4e00" <= char <= "\u9fff" for char in answer.json()["detail"]), answer.json()
    assert route_calls == [] and job_count(clean_engine) == 0


def test_a_body_past_the_limit_is_refused_while_it_is_read(
    ew: ExecWorld, app: Any, settings: Settings, clean_engine: Engine
) -> None:
    """Sent in pieces with no declared length, the body passes the limit inside the fast path's read."""

    async def pieces() -> AsyncIterator[bytes]:
        piece = b" " * 65536
        for _ in range(settings.max_body_bytes // len(piece) + 2):
            yield piece

    headers = {"Authorization": f"Bearer {ew.tenant.token}", "Content-Type": "application/json"}
    answer = post(app, pieces(), headers)
    assert answer.status_code == 413 and answer.json()["code"] == "request.too-large"
    assert job_count(clean_engine) == 0


def test_a_caller_gone_before_its_body_arrived_is_not_answered(
    ew: ExecWorld, app: Any, clean_engine: Engine
) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/jobs",
        "raw_path": b"/api/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {ew.tenant.token}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, gone, send))
    assert sent == [] and job_count(clean_engine) == 0
