"""Every list page behaves the same: pages, sorts, filters and exports CSV, from one description.

A `ListSpec` names its columns and filters and how to fetch one page through the slice's service (so
the API's scoping applies unchanged); `list_response` turns the query string into that page, or into
the whole list as CSV, and says what to do when it is empty or the filter is wrong.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.responses import HTMLResponse, Response

from suanwang.db.query import MAX_PAGE_SIZE, Page, PageRequest
from suanwang.errors import Invalid
from suanwang.i18n import t
from suanwang.units import FEN_PER_YUAN, format_fen
from suanwang.web.auth import PageCtx
from suanwang.web.render import local_time, page

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_SIZE = 25

Row = dict[str, Any]
Fetch = Callable[[PageCtx, dict[str, str], PageRequest], Page[Row]]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str  # message key
    kind: str = "text"  # text | num | money (fen) | when (UTC datetime) | state (message key prefix)
    sort: str | None = None  # the service's sort field, when the column sorts
    href: Callable[[Row], str | None] | None = None  # a path on this site, without the prefix
    states: str = ""  # for kind "state": the message key prefix of its values


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    label: str  # message key
    options: tuple[tuple[str, str], ...] | None = None  # (value, message key); None: free text


@dataclass(frozen=True, slots=True)
class ListSpec:
    path: str
    title: str  # message key
    columns: tuple[Column, ...]
    fetch: Fetch
    filters: tuple[Filter, ...] = ()
    empty: str = "web.empty.list"  # message key saying what to do when nothing matches


def _yuan(amount_fen: int) -> str:
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{fen:02d}"


def cell_text(column: Column, value: Any, lang: str) -> str:
    """A value as the page shows it (the CSV keeps machine-readable values: see csv_value)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return t("web.yes" if value else "web.no", lang)
    if column.kind == "money":
        return format_fen(int(value))
    if column.kind == "num":
        return f"{value:,}" if isinstance(value, int) else str(value)
    if column.kind == "when":
        return local_time(value, lang) if isinstance(value, datetime) else str(value)
    if column.kind == "state":
        return t(column.states + str(value), lang)
    return str(value)


def csv_value(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if column.kind == "money":
        return _yuan(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _filters(spec: ListSpec, query: dict[str, str]) -> dict[str, str]:
    return {f.name: query[f.name].strip() for f in spec.filters if query.get(f.name, "").strip()}


def _int(value: str | None, default: int, allowed: tuple[int, ...] | None = None) -> int:
    try:
        number = int(value) if value else default
    except ValueError:
        return default
    if allowed is not None and number not in allowed:
        return default
    return max(number, 1)


def _sort(spec: ListSpec, value: str | None) -> str | None:
    sortable = {c.sort for c in spec.columns if c.sort}
    return value if value and value.lstrip("-") in sortable else None


def list_response(ctx: PageCtx, spec: ListSpec, **context: Any) -> Response:
    query = dict(ctx.request.query_params)
    filters = _filters(spec, query)
    sort = _sort(spec, query.get("sort"))
    size = _int(query.get("size"), DEFAULT_SIZE, PAGE_SIZES)
    number = _int(query.get("page"), 1)
    error = None
    try:
        result = spec.fetch(ctx, filters, PageRequest(limit=size, offset=(number - 1) * size, sort=sort))
    except Invalid as exc:  # a wrong filter or sort: say so on the page; anything else is an error page
        error = exc.message(ctx.lang)
        result = Page(items=[], total=0, limit=size, offset=0)
    if query.get("format") == "csv" and error is None:
        return _csv(ctx, spec, filters, sort)
    pages = max(1, -(-result.total // size))
    return _render(ctx, spec, result, filters, sort, size, number, pages, error, context)


def _render(
    ctx: PageCtx,
    spec: ListSpec,
    result: Page[Row],
    filters: dict[str, str],
    sort: str | None,
    size: int,
    number: int,
    pages: int,
    error: str | None,
    context: dict[str, Any],
) -> HTMLResponse:
    state = {"size": size if size != DEFAULT_SIZE else None, "sort": sort, **filters}

    def link(**changes: Any) -> dict[str, Any]:
        return {k: v for k, v in (state | changes).items() if v not in (None, "")}

    return page(
        ctx,
        "list.html",
        status=422 if error else 200,
        spec=spec,
        rows=result.items,
        total=result.total,
        filters=filters,
        sort=sort,
        size=size,
        sizes=PAGE_SIZES,
        number=number,
        pages=pages,
        error=error,
        link=link,
        cell=lambda column, row: cell_text(column, row.get(column.key), ctx.lang),
        **context,
    )


def _csv(ctx: PageCtx, spec: ListSpec, filters: dict[str, str], sort: str | None) -> Response:
    """The whole filtered list, fetched page by page (the session lives only as long as the request,
    so the file is built before the response leaves)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")  # a byte-order mark, so spreadsheet programs read the Chinese as UTF-8
    writer = csv.writer(buffer)
    writer.writerow([t(c.label, ctx.lang) for c in spec.columns])
    offset = 0
    while True:
        batch = spec.fetch(ctx, filters, PageRequest(limit=MAX_PAGE_SIZE, offset=offset, sort=sort))
        for row in batch.items:
            writer.writerow([csv_value(c, row.get(c.key)) for c in spec.columns])
        offset += MAX_PAGE_SIZE
        if offset >= batch.total or not batch.items:
            break
    name = spec.path.strip("/").replace("/", "-") or "list"
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(buffer.getvalue().encode(), media_type="text/csv; charset=utf-8", headers=headers)
