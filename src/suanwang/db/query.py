"""Paging, sorting and filtering for list endpoints: one helper, so every list behaves the same."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ARRAY, ColumnElement, Select, any_, bindparam, func, select
from sqlalchemy.orm import Session

from suanwang.errors import Invalid

T = TypeVar("T")

MAX_PAGE_SIZE = 500
MAX_OFFSET = 2**31 - 1  # past this, page by a filter: a larger offset only overflows the database
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    sort: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def page(
    session: Session,
    stmt: Select[Any],
    request: PageRequest,
    *,
    sortable: dict[str, Any],
    default_sort: str = "id",
) -> Page[Any]:
    """Run `stmt` for one page. `sort` is a field name, '-' in front for descending; ties break by id."""
    if not 1 <= request.limit <= MAX_PAGE_SIZE:
        raise Invalid("paging.limit", max=MAX_PAGE_SIZE, got=request.limit)
    if not 0 <= request.offset <= MAX_OFFSET:
        raise Invalid("paging.offset", max=MAX_OFFSET, got=request.offset)
    sort = request.sort or default_sort
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    if field not in sortable:
        raise Invalid("paging.sort", field=field, allowed=", ".join(sorted(sortable)))
    column = sortable[field]
    tiebreak = sortable["id"]
    ordered = stmt.order_by(column.desc() if descending else column.asc(), tiebreak.asc())
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(session.scalars(ordered.limit(request.limit).offset(request.offset)))
    return Page(items=items, total=total, limit=request.limit, offset=request.offset)


def get_or_404(session: Session, model: type[T], object_id: int, *, what: str) -> T:
    """Load by primary key or raise NotFound with the kind of object in the message."""
    from suanwang.errors import NotFound

    obj = session.get(model, object_id)
    if obj is None:
        raise NotFound("not-found", what=what, id=object_id)
    return obj


def among(session: Session, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN values` whose SQL text does not change with the number of values on PostgreSQL
    (`= ANY(array)`), so the statement is parsed once, not once per list length (and planned for
    each execution: see db/session.py)."""
    items = list(values)
    if dialect_of(session) == "postgresql":
        return column == any_(bindparam(None, items, type_=ARRAY(column.type)))
    return column.in_(items)


def among_bound(dialect: str, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`among` for a statement built once per dialect and run many times, the list bound at execution
    under `name`. Building a statement costs more Python than running it (~3x for a locking select
    with a join), so the hot paths (the intake's batch, the ledger) keep theirs in `functools.cache`d
    builders that take the dialect."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name
