"""Idempotency-Key for every create: a retry with the same key and body returns the first result.

The key is recorded in the same transaction as the object it created, so a crash can never leave an
object without its key (or a key without its object); a concurrent duplicate hits the unique
constraint and is told to retry. The same key with a different body is a 409.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import ForeignKey, Integer, Select, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from suanwang.api.deps import Ctx
from suanwang.db.base import Base, IdMixin
from suanwang.db.query import among_bound, dialect_of
from suanwang.errors import Conflict, Invalid

MAX_KEY_LENGTH = 200
REPLAYED = {"Idempotent-Replayed": "true"}


class IdempotencyRecord(IdMixin, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    # Fields removed before storing (secrets shown once): a replay cannot show them again.
    redacted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column()


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    key: str | None
    fingerprint: str


def _canonical(body: bytes) -> bytes:
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return body


async def idempotency_key(request: Request) -> IdempotencyKey:
    """FastAPI dependency: the request's Idempotency-Key and a fingerprint of what it asks."""
    return idempotency_of(request, await request.body())


def idempotency_of(request: Request, body: bytes) -> IdempotencyKey:
    """The request's Idempotency-Key (checked) and a fingerprint of its method, path and JSON body."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise Invalid("idempotency.key-length", max=MAX_KEY_LENGTH)
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(_canonical(body))
    return IdempotencyKey(key=key, fingerprint=digest.hexdigest())


IdemDep = Annotated[IdempotencyKey, Depends(idempotency_key)]


def created(
    ctx: Ctx,
    idem: IdempotencyKey,
    create: Callable[[], BaseModel],
    *,
    secret_fields: frozenset[str] = frozenset(),
) -> JSONResponse:
    """What every create endpoint returns: `create` run once per Idempotency-Key, committed, 201."""
    return run_create(
        session=ctx.session,
        user_id=ctx.principal.user_id,
        idem=idem,
        now=ctx.now,
        create=create,
        secret_fields=secret_fields,
    )


def run_create(
    *,
    session: Session,
    user_id: int,
    idem: IdempotencyKey,
    now: datetime,
    create: Callable[[], BaseModel],
    status_code: int = 201,
    secret_fields: frozenset[str] = frozenset(),
) -> JSONResponse:
    """Run `create` once per (caller, key) and commit; replay the stored response on a retry."""
    if idem.key is not None:
        replay = _replay(session, user_id, idem)
        if replay is not None:
            return replay
    body = create().model_dump(mode="json")
    if idem.key is not None:
        stored = {k: v for k, v in body.items() if k not in secret_fields}
        session.add(
            IdempotencyRecord(
                user_id=user_id,
                key=idem.key,
                fingerprint=idem.fingerprint,
                status_code=status_code,
                response_body=json.dumps(stored, ensure_ascii=False),
                redacted=len(stored) != len(body),
                created_at=now,
            )
        )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if idem.key is not None:
            replay = _replay(session, user_id, idem)
            if replay is not None:
                return replay
        raise Conflict("conflict.concurrent") from None
    return JSONResponse(body, status_code=status_code)


def _replay(session: Session, user_id: int, idem: IdempotencyKey) -> JSONResponse | None:
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == idem.key
        )
    )
    return None if record is None else replay(record, idem)


def replay(record: IdempotencyRecord, idem: IdempotencyKey) -> JSONResponse:
    """The stored answer to a retry; a different request under the same key is a conflict."""
    if record.fingerprint != idem.fingerprint:
        raise Conflict("idempotency.key-reused", key=idem.key)
    body = json.loads(record.response_body)
    if record.redacted:
        raise Conflict("idempotency.secret-shown-once", id=body.get("id"))
    return JSONResponse(body, status_code=record.status_code, headers=REPLAYED)


@cache
def _records_of(dialect: str) -> Select[tuple[IdempotencyRecord]]:
    return select(IdempotencyRecord).where(
        among_bound(dialect, IdempotencyRecord.key, "keys"),
        among_bound(dialect, IdempotencyRecord.user_id, "users"),
    )


def find_records(
    session: Session, wanted: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], IdempotencyRecord]:
    """The stored records of many (caller, key) pairs in one query."""
    pairs = set(wanted)
    if not pairs:
        return {}
    keys = list({key for _, key in pairs})
    users = list({user_id for user_id, _ in pairs})
    found = session.scalars(_records_of(dialect_of(session)), {"keys": keys, "users": users})
    return {(r.user_id, r.key): r for r in found if (r.user_id, r.key) in pairs}
