"""Primary keys taken before the rows are written, so other records can name them in the same
transaction (the ledger's transfer ids for a job's hold are `job/<id>/hold`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session

from suanwang.db.query import dialect_of

_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")


def allocate_ids(session: Session, model: Any, count: int) -> list[int]:
    """`count` new ids of `model`'s integer primary key `id`; the caller inserts rows with them."""
    if count <= 0:
        return []
    table: Table = model.__table__
    if dialect_of(session) == "postgresql":
        rows = session.execute(_NEXT_IDS, {"table": table.name, "n": count})
        return [int(row[0]) for row in rows]
    # SQLite: become the writer first (a write statement takes the database lock even on no rows), so
    # no other connection takes the same ids before we insert them.
    session.execute(table.update().where(table.c.id.is_(None)).values(id=table.c.id))
    top = session.scalar(select(func.max(table.c.id))) or 0
    return list(range(top + 1, top + 1 + count))
