"""Group commit for job submissions: the submits of many concurrent callers land in one transaction.

One writer thread per server process takes every submission that arrived while it wrote the last batch
and handles them together: one query authenticates all callers, one finds their idempotency records,
one loads their organisations, admission runs against one pool list, and the jobs, their histories and
their idempotency records are inserted with one statement each and committed once (TigerBeetle's
batching, applied to intake). Each caller still gets its own answer: its job, its replay, or its error.

If the batch's commit fails (a concurrent duplicate key from another server process), it is rolled back
and every submission is handled again on its own, as `created()` would; nothing is answered before its
commit succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from suanwang.api.idempotency import (
    REPLAYED,
    IdempotencyKey,
    IdempotencyRecord,
    find_records,
    replay,
    run_create,
)
from suanwang.audit.capture import act_as, user_actor
from suanwang.config import Settings
from suanwang.db.bulk import copy_many
from suanwang.db.ids import allocate_ids
from suanwang.db.query import among_bound, dialect_of
from suanwang.errors import Conflict, DomainError
from suanwang.jobs import service, snapshot
from suanwang.jobs.models import Job, JobEvent
from suanwang.jobs.schemas import JobCreate, JobRead
from suanwang.tenants import service as tenants
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Organisation
from suanwang.timeutil import utcnow

log = logging.getLogger(__name__)
MAX_BATCH = 500
RECENT_S = 1.0  # how far back the batch sizes that the gathering window expects are looked for
INTAKE_ACTOR = "intake"
REDACTED = "***"
# A job's columns that are not set at submission, as a just-created row has them.
UNSET = {
    "pool_id": None,
    "reason_code": None,
    "not_before": None,
    "cancel_requested_at": None,
    "started_at": None,
    "ended_at": None,
    "exit_code": None,
    "card_seconds": 0,
    "est_cost_fen": None,
    "charged_fen": None,
}

Outcome = JSONResponse | BaseException


class EncodedJSON(JSONResponse):
    """A JSON response from text already encoded (the same text is stored for idempotent replays)."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


@dataclass(slots=True)
class Submission:
    secret: str | None
    idem: IdempotencyKey
    data: JobCreate
    now: datetime
    resolve: Callable[[Outcome], None]
    principal: Principal | None = field(default=None)


def read_of(row: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The response body for a job row, with the environment hidden from all but its tenant."""
    read = JobRead.model_validate(row)
    if not service.can_see_env(principal, row["org_id"]):
        read.env = dict.fromkeys(read.env, REDACTED)
    return read.model_dump(mode="json")


class SubmitIntake:
    """The writer of one server process: `await submit(...)` from any request; batches form by themselves."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        settings: Settings,
        max_batch: int = MAX_BATCH,
        gather_s: float = 0.0,
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._max_batch = max_batch
        self._gather_s = gather_s
        self._queue: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # how many transactions so far (tests and benchmarks read it)
        self._recent: deque[tuple[float, int]] = deque()  # (when, size) of the last second's batches

    async def submit(
        self, *, secret: str | None, idem: IdempotencyKey, data: JobCreate, now: datetime
    ) -> JSONResponse:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()

        def resolve(outcome: Outcome) -> None:
            # RuntimeError: the caller's event loop has closed and nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)

        self._start()
        self._queue.put(Submission(secret=secret, idem=idem, data=data, now=now, resolve=resolve))
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="suanwang-intake", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            self._recent.append((time.monotonic(), len(batch)))
            for item, outcome in zip(batch, self._handle(batch), strict=True):
                item.resolve(outcome)

    def _gather(self, first: Submission) -> list[Submission]:
        """The batch that starts with `first`. Group commit's window: wait a moment for the callers
        just answered to send their next submission, so a batch holds most of the concurrent callers,
        not half of them; but once it holds as many as any batch of the last second did (those callers
        are all back), take only what is already queued and go: the rest of the window would be time
        nobody uses. (The most of the last second, not the last batch's size: callers split in two
        halves would otherwise stay split, each batch waiting only for its own half.)"""
        batch = [first]
        now = time.monotonic()
        deadline = now + self._gather_s
        while self._recent and self._recent[0][0] < now - RECENT_S:
            self._recent.popleft()
        expected = max((size for _, size in self._recent), default=self._max_batch)
        while len(batch) < self._max_batch:
            wait = 0.0 if len(batch) >= expected else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _handle(self, batch: list[Submission]) -> list[Outcome]:
        self.batches += 1
        try:
            with self._session_factory() as session:
                outcomes = write_batch(session, self._settings, batch)
                session.commit()
                return outcomes
        except IntegrityError:
            log.info("intake batch of %d hit a concurrent duplicate; handling one by one", len(batch))
        except OperationalError as exc:  # the database is unreachable: each caller gets its 503
            log.warning("intake batch of %d failed: database unavailable (%s)", len(batch), exc.orig)
            return [exc] * len(batch)
        except Exception as exc:  # a bug: every caller gets the error, none hangs
            log.exception("intake batch failed")
            return [exc] * len(batch)
        return [self._one(item) for item in batch]

    def _one(self, item: Submission) -> Outcome:
        """One submission in its own transaction, exactly as the plain create path handles it."""
        try:
            with self._session_factory() as session:
                principal = tenants.authenticate(session=session, secret=item.secret, now=item.now)
                session.commit()
                return run_create(
                    session=session,
                    user_id=principal.user_id,
                    idem=item.idem,
                    now=item.now,
                    create=lambda: JobRead.model_validate(
                        read_of(_row_of(self._create_one(session, principal, item)), principal)
                    ),
                )
        except Exception as exc:
            return exc

    def _create_one(self, session: Session, principal: Principal, item: Submission) -> Job:
        return service.submit(
            session=session, settings=self._settings, principal=principal, data=item.data, now=item.now
        )


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():  # the caller may have gone away
        future.set_result(outcome)


def _row_of(job: Job) -> dict[str, Any]:
    return {column.key: getattr(job, column.key) for column in Job.__table__.columns}


@cache
def _orgs_by_id(dialect: str) -> Select[tuple[Organisation]]:
    return select(Organisation).where(among_bound(dialect, Organisation.id, "ids"))


def write_batch(session: Session, settings: Settings, batch: list[Submission]) -> list[Outcome]:
    """Admit and insert a batch of submissions in `session` (the caller commits); one outcome each."""
    outcomes: list[Outcome | None] = [None] * len(batch)
    latest = max(item.now for item in batch)
    act_as(session, INTAKE_ACTOR)  # the batch's holds; its jobs and their histories name each submitter
    principals = tenants.authenticate_many(
        session=session, presented=[item.secret for item in batch], now=latest
    )
    owners: dict[int, int] = {}
    for index, (item, principal) in enumerate(zip(batch, principals, strict=True)):
        if isinstance(principal, DomainError):
            outcomes[index] = principal
            continue
        item.principal = principal
        try:
            owners[index] = service.owner_org_id(principal, item.data.org_id)
        except DomainError as exc:
            outcomes[index] = exc

    records = find_records(
        session,
        ((item.principal.user_id, item.idem.key) for item in batch if item.principal and item.idem.key),
    )
    found = session.scalars(_orgs_by_id(dialect_of(session)), {"ids": list(set(owners.values()))})
    orgs = {org.id: org for org in found}
    pools = snapshot.admission_pools(session, now=latest, local_regions=settings.local_region_set)
    policy = service.policy_for(settings)

    admitted: list[tuple[int, dict[str, Any]]] = []
    first_of_key: dict[tuple[int, str], int] = {}
    for index, item in enumerate(batch):
        if outcomes[index] is not None or item.principal is None:
            continue
        principal = item.principal
        try:
            if item.idem.key is not None:
                pair = (principal.user_id, item.idem.key)
                if pair in records:
                    outcomes[index] = replay(records[pair], item.idem)
                    continue
                if pair in first_of_key:  # the same key twice in one batch: answered after the first
                    continue
                first_of_key[pair] = index
            org = service.check_org_open(orgs.get(owners[index]), owners[index])
            values = service.prepare_job(
                principal=principal, org=org, data=item.data, pools=pools, policy=policy, now=item.now
            )
        except DomainError as exc:
            outcomes[index] = exc
            continue
        stamp = utcnow()
        admitted.append((index, values | {"created_at": stamp, "updated_at": stamp}))

    if admitted:
        _insert(session, batch, _funded(session, settings, batch, admitted, outcomes), outcomes)
    for index, item in enumerate(batch):
        if outcomes[index] is None:
            outcomes[index] = _repeat_in_batch(item, batch, outcomes, first_of_key)
    return [outcome if outcome is not None else RuntimeError("no outcome") for outcome in outcomes]


def _funded(
    session: Session,
    settings: Settings,
    batch: list[Submission],
    admitted: list[tuple[int, dict[str, Any]]],
    outcomes: list[Outcome | None],
) -> list[tuple[int, dict[str, Any]]]:
    """Ids for the admitted jobs and their holds on the wallets (one ledger batch); a job the wallet
    cannot cover gets its 402 here and is not stored (unless unfunded jobs are kept to wait)."""
    ids = allocate_ids(session, Job, len(admitted))
    funded = service.fund(
        session, settings, [(i, v) for i, (_, v) in zip(ids, admitted, strict=True)], batch[0].now
    )
    kept: list[tuple[int, dict[str, Any]]] = []
    for job_id, (index, _), answer in zip(ids, admitted, funded, strict=True):
        if isinstance(answer, DomainError):
            outcomes[index] = answer
        else:
            kept.append((index, answer | {"id": job_id}))
    return kept


def _insert(
    session: Session,
    batch: list[Submission],
    admitted: list[tuple[int, dict[str, Any]]],
    outcomes: list[Outcome | None],
) -> None:
    """One INSERT each for the jobs, their histories and the idempotency records of the batch."""
    if not admitted:
        return
    # The ids were allocated before (the holds name them): a plain executemany, one prepared statement
    # (a multi-row INSERT … RETURNING has a new SQL text for every batch size, costly to parse).
    # The audit trail names each job's submitter (the batch holds several callers' submissions).
    copy_many(
        session,
        Job.__table__,
        _same_keys([values for _, values in admitted]),
        actor=lambda row: user_actor(row["submitted_by"]),
    )
    ids = [values["id"] for _, values in admitted]
    events: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for job_id, (index, values) in zip(ids, admitted, strict=True):
        item = batch[index]
        assert item.principal is not None
        events += [event | {"job_id": job_id, "detail": {}} for event in service.born_events(item.now)]
        text = json.dumps(read_of(UNSET | values | {"id": job_id}, item.principal), ensure_ascii=False)
        outcomes[index] = EncodedJSON(text.encode(), status_code=201)
        if item.idem.key is not None:
            keys.append(
                {
                    "user_id": item.principal.user_id,
                    "key": item.idem.key,
                    "fingerprint": item.idem.fingerprint,
                    "status_code": 201,
                    "response_body": text,
                    "redacted": False,
                    "created_at": item.now,
                }
            )
    # Core inserts: the ORM's bulk path would send one statement per row here.
    copy_many(session, JobEvent.__table__, events)
    if keys:
        copy_many(session, IdempotencyRecord.__table__, keys)


def _repeat_in_batch(
    item: Submission,
    batch: list[Submission],
    outcomes: list[Outcome | None],
    first_of_key: dict[tuple[int, str], int],
) -> Outcome:
    """A retry that arrived in the same batch as its first try gets the first try's answer."""
    assert item.principal is not None and item.idem.key is not None
    first = first_of_key[(item.principal.user_id, item.idem.key)]
    if batch[first].idem.fingerprint != item.idem.fingerprint:
        return Conflict("idempotency.key-reused", key=item.idem.key)
    answer = outcomes[first]
    if isinstance(answer, JSONResponse):
        return JSONResponse(json.loads(answer.body), status_code=answer.status_code, headers=REPLAYED)
    return answer if answer is not None else RuntimeError("no outcome")


def _same_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with one set of columns (a job kept waiting for funds has reason columns the others lack)."""
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):  # the usual batch: nothing to fill in
        return rows
    names = {name for row in rows for name in row}
    defaults = {"reason_code": None}
    return [{name: row.get(name, defaults.get(name)) for name in names} for row in rows]
