"""Group commit of submissions (jobs/intake.py): one transaction for many callers, each answered on its own.

`write_batch` is driven directly with a hand-made batch (deterministic), the race with another server
process is provoked, and concurrent requests go through the real ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, func, select

from suanwang.api.idempotency import IdempotencyKey
from suanwang.config import Settings
from suanwang.db.session import session_factory, session_scope
from suanwang.errors import Conflict, DomainError, Invalid, Unauthorized
from suanwang.jobs import intake
from suanwang.jobs.intake import Submission, SubmitIntake, write_batch
from suanwang.jobs.models import Job, JobEvent
from suanwang.jobs.schemas import JobCreate
from suanwang.timeutil import utcnow
from tests import jobs_world
from tests.jobs_world import ExecWorld

pytestmark = pytest.mark.db

SPEC = {"command": ["python3", "train.py"], "cards": 1, "duration_estimate_s": 600}


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def item(token: str | None, key: str | None = None, fingerprint: str = "a" * 64, **spec: Any) -> Submission:
    return Submission(
        secret=token,
        idem=IdempotencyKey(key=key, fingerprint=fingerprint),
        data=JobCreate.model_validate(SPEC | spec),
        now=utcnow(),
        resolve=lambda outcome: None,
    )


def body(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, JSONResponse), outcome
    return dict(json.loads(outcome.body))


def counts(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        jobs = session.scalar(select(func.count()).select_from(Job))
        events = session.scalar(select(func.count()).select_from(JobEvent))
    return int(jobs or 0), int(events or 0)


def test_one_batch_answers_every_caller_on_its_own(ew: ExecWorld, clean_engine: Engine) -> None:
    tenant, other, regulator = ew.tenant.token, ew.other.token, ew.regulator.token
    batch = [
        item(tenant, "k1", env={"SECRET": "x"}),
        item(tenant, "k1"),  # the same request again in the same batch: the first one's answer
        item(tenant, "k1", fingerprint="b" * 64),  # the same key, another request: conflict
        item(other, "k1"),  # keys are per caller: a new job
        item("sw_not_a_token", "k2"),
        item(tenant, "k3", accelerators=["Z9000"]),  # admission refuses it
        item(regulator, "k4"),  # the regulator must name the organisation
        item(regulator, "k5", org_id=ew.org["id"], env={"SECRET": "x"}),
        item(tenant, None),  # no key: stored, not replayable
    ]
    with session_scope(clean_engine) as session:
        outcomes = write_batch(session, ew.settings, batch)

    first, again = body(outcomes[0]), body(outcomes[1])
    assert first == again and outcomes[1].headers["Idempotent-Replayed"] == "true"
    assert first["state"] == "queued" and first["env"] == {"SECRET": "x"}  # the tenant reads its own env
    assert isinstance(outcomes[2], Conflict) and outcomes[2].code == "idempotency.key-reused"
    assert body(outcomes[3])["org_id"] == ew.other_org["id"]
    assert isinstance(outcomes[4], Unauthorized)
    assert isinstance(outcomes[5], Invalid) and outcomes[5].code == "job.unknown-accelerator"
    assert isinstance(outcomes[6], Invalid) and outcomes[6].code == "job.org-required"
    on_behalf = body(outcomes[7])
    assert on_behalf["org_id"] == ew.org["id"] and on_behalf["env"] == {"SECRET": "***"}
    assert body(outcomes[8])["state"] == "queued"
    created = {body(outcomes[i])["id"] for i in (0, 3, 7, 8)}
    assert len(created) == 4
    assert counts(clean_engine)[1] - counts(clean_engine)[0] == counts(clean_engine)[0]  # two events each

    # What the batch stored is what the API reads back, and the key replays after the commit.
    job = ew.tenant.get(f"/jobs/{first['id']}")
    assert {k: job[k] for k in ("id", "state", "env", "cards")} == {
        k: first[k] for k in ("id", "state", "env", "cards")
    }
    history = ew.tenant.get(f"/jobs/{first['id']}/events")
    assert [e["to_state"] for e in history] == ["submitted", "queued"]
    with session_scope(clean_engine) as session:
        replayed = write_batch(session, ew.settings, [item(tenant, "k1")])
    assert body(replayed[0]) == first


def test_a_failed_batch_stores_nothing_and_each_is_retried_alone(
    ew: ExecWorld, clean_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server process stored key k1 between our lookup and our commit: the batch's commit fails
    on the unique key, nothing of it stays, and every submission is handled again on its own."""
    stored = ew.tenant.post("/jobs", SPEC, headers={"Idempotency-Key": "k1"})
    before = counts(clean_engine)
    monkeypatch.setattr(intake, "find_records", lambda session, wanted: {})  # blind to k1, as in a race
    writer = SubmitIntake(session_factory(clean_engine), ew.settings)
    fingerprint = _fingerprint(SPEC)
    outcomes = writer._handle([item(ew.tenant.token, "k2"), item(ew.tenant.token, "k1", fingerprint)])
    monkeypatch.undo()
    assert body(outcomes[0])["state"] == "queued"
    assert body(outcomes[1]) == stored and outcomes[1].headers["Idempotent-Replayed"] == "true"
    assert counts(clean_engine) == (before[0] + 1, before[1] + 2)  # k2 once, k1 not again


def test_an_unexpected_error_reaches_every_caller(
    ew: ExecWorld, clean_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database gone")

    monkeypatch.setattr(intake, "write_batch", broken)
    writer = SubmitIntake(session_factory(clean_engine), ew.settings)
    outcomes = writer._handle([item(ew.tenant.token, "k1"), item(ew.tenant.token, "k2")])
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert counts(clean_engine) == (0, 0)


def test_concurrent_requests_share_transactions(ew: ExecWorld, app: Any, clean_engine: Engine) -> None:
    """Thirty callers at once through the real app: thirty jobs, each answered once, in fewer commits."""
    writer: SubmitIntake = app.state.intake
    batches_before = writer.batches

    async def submit_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/jobs",
                        json=SPEC | {"name": f"job-{i}"},
                        headers={
                            "Authorization": f"Bearer {ew.tenant.token}",
                            "Idempotency-Key": f"c{i}",
                        },
                    )
                    for i in range(30)
                )
            )

    responses = asyncio.run(submit_all())
    assert [r.status_code for r in responses] == [201] * 30, responses[0].text
    names = {r.json()["name"]: r.json()["id"] for r in responses}
    assert sorted(names) == sorted(f"job-{i}" for i in range(30)) and len(set(names.values())) == 30
    assert counts(clean_engine) == (30, 60)
    assert writer.batches - batches_before <= 30


def test_one_submission_per_transaction_when_configured(ew: ExecWorld, clean_engine: Engine) -> None:
    settings = ew.settings.model_copy(update={"submit_batch": 1})
    writer = SubmitIntake(session_factory(clean_engine), settings, settings.submit_batch)

    async def submit_three() -> list[JSONResponse]:
        return await asyncio.gather(
            *(
                writer.submit(
                    secret=ew.tenant.token,
                    idem=IdempotencyKey(key=f"s{i}", fingerprint="c" * 64),
                    data=JobCreate.model_validate(SPEC),
                    now=utcnow(),
                )
                for i in range(3)
            )
        )

    try:
        answers = asyncio.run(submit_three())
    finally:
        writer.close()
    assert [a.status_code for a in answers] == [201] * 3
    assert writer.batches == 3


def test_errors_are_raised_to_the_caller(ew: ExecWorld, clean_engine: Engine) -> None:
    writer = SubmitIntake(session_factory(clean_engine), ew.settings)

    async def bad() -> None:
        await writer.submit(
            secret="sw_wrong",
            idem=IdempotencyKey(key=None, fingerprint="d" * 64),
            data=JobCreate.model_validate(SPEC),
            now=utcnow(),
        )

    try:
        with pytest.raises(DomainError) as raised:
            asyncio.run(bad())
    finally:
        writer.close()
    assert raised.value.code == "auth.invalid"


class Recording(SubmitIntake):
    """An intake that answers every submission at once and records its batches' sizes."""

    def __init__(self, gather_s: float) -> None:
        super().__init__(lambda: None, Settings(), gather_s=gather_s)  # type: ignore[arg-type,return-value]
        self.sizes: list[int] = []

    def _handle(self, batch: list[Submission]) -> list[intake.Outcome]:
        self.sizes.append(len(batch))
        return [JSONResponse({}, status_code=201) for _ in batch]


def test_the_window_is_not_waited_out_once_the_callers_are_back() -> None:
    """The gathering window (1 s here) holds a batch open for callers still to come; once the batch
    holds as many as the last second's batches did, it is written without waiting the rest."""
    writer = Recording(gather_s=1.0)

    async def round_of(callers: int) -> float:
        started = time.monotonic()
        await asyncio.gather(
            *(
                writer.submit(
                    secret="sw_any",
                    idem=IdempotencyKey(key=None, fingerprint="e" * 64),
                    data=JobCreate.model_validate(SPEC),
                    now=utcnow(),
                )
                for _ in range(callers)
            )
        )
        return time.monotonic() - started

    try:
        first = asyncio.run(round_of(4))  # nothing seen before: the window is waited out
        second = asyncio.run(round_of(4))
    finally:
        writer.close()
    assert writer.sizes == [4, 4]
    assert first >= 1.0 and second < 0.5, (first, second)


def _fingerprint(spec: dict[str, Any]) -> str:
    """The fingerprint the API computes for POST /api/v1/jobs with this body."""
    import hashlib

    digest = hashlib.sha256(b"POST /api/v1/jobs\n")
    digest.update(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()
