"""Routes of the list pages (see tables.py for what each lists)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from suanwang.web import tables
from suanwang.web.auth import PageDep
from suanwang.web.lists import ListSpec, list_response

router = APIRouter(include_in_schema=False)


def _route(spec: ListSpec) -> None:
    def show(ctx: PageDep) -> Response:
        return list_response(ctx, spec)

    show.__name__ = "list_" + spec.path.strip("/").replace("/", "_")
    router.add_api_route(spec.path, show, methods=["GET"])


for _spec in tables.ALL:
    _route(_spec)
