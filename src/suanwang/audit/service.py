"""Reading the audit trail: the regulator's list, the chain's head, and the check of the whole chain."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from suanwang.audit.chain import Entry, Head, Verdict, verify
from suanwang.audit.models import AuditEntry, AuditHead
from suanwang.db.query import Page, PageRequest, page
from suanwang.tenants.access import Principal, require_regulator

READ_BATCH = 5000  # entries per query while verifying: memory stays flat however long the chain

SORTABLE = {"id": AuditEntry.seq, "seq": AuditEntry.seq, "at": AuditEntry.at}


def list_entries(
    *,
    session: Session,
    principal: Principal,
    request: PageRequest,
    table_name: str | None = None,
    row_key: str | None = None,
    actor: str | None = None,
    at_from: datetime | None = None,
    at_to: datetime | None = None,
) -> Page[AuditEntry]:
    """Entries, newest first unless sorted otherwise: the regulator's view of who changed what."""
    require_regulator(principal)
    stmt = select(AuditEntry)
    if table_name is not None:
        stmt = stmt.where(AuditEntry.table_name == table_name)
    if row_key is not None:
        stmt = stmt.where(AuditEntry.row_key == row_key)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if at_from is not None:
        stmt = stmt.where(AuditEntry.at >= at_from)
    if at_to is not None:
        stmt = stmt.where(AuditEntry.at < at_to)
    return page(session, stmt, request, sortable=SORTABLE, default_sort="-seq")


def head(session: Session) -> Head | None:
    """The stored head (None before the first entry of a database made before the trail, or emptied)."""
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    return None if row is None else Head(int(row[0]), str(row[1]))


def stored_entries(session: Session, batch: int = READ_BATCH) -> Iterator[Entry]:
    """Every entry in sequence order, read in batches by key (no offset to grow, no table in memory:
    plain rows, not objects the session would keep)."""
    columns = [AuditEntry.__table__.c[name] for name in Entry.__slots__]  # type: ignore[attr-defined]
    after = -1
    while True:
        rows = session.execute(
            select(*columns).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)
        ).all()
        for row in rows:
            yield Entry(*row)
        if len(rows) < batch:
            return
        after = rows[-1].seq


def verify_database(engine: Engine, anchors: Iterable[Head] = ()) -> Verdict:
    """Check the whole chain as one consistent snapshot (one read-only transaction)."""
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        stored = head(session)
        return verify(stored_entries(session), stored, anchors)
