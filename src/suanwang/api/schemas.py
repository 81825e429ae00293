"""Shapes shared by every router."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from suanwang.db.query import Page

T = TypeVar("T")


class PageRead(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def page_read(result: Page[Any], convert: Callable[[Any], T]) -> dict[str, Any]:
    """A Page of ORM objects as the JSON shape of PageRead."""
    items: Iterable[Any] = (convert(item) for item in result.items)
    return {"items": list(items), "total": result.total, "limit": result.limit, "offset": result.offset}


class Problem(BaseModel):
    """RFC 9457 problem details, plus `code` (stable, for programs) and `errors` for field errors."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


# Documented on every router, so clients generated from the OpenAPI document know the error shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 409, 422)
}
