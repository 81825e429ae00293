"""REST routes of metering: POST /metering/events (usage CloudEvents from providers), GET /usage."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from suanwang.api.deps import Ctx, CtxDep, PageDep
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from suanwang.fields import Id, UtcDatetime
from suanwang.metering import service
from suanwang.metering.schemas import IngestRead, UsageEvent, UsageRead
from suanwang.tenants.access import require_role
from suanwang.tenants.models import Role

router = APIRouter(tags=["metering"], responses=PROBLEM_RESPONSES)

BATCH_MEDIA_TYPES = ("application/cloudevents-batch+json", "application/json")


async def usage_reporter(ctx: CtxDep) -> Ctx:
    """Providers' operators and the regulator report usage; a tenant is refused before its body is read."""
    require_role(ctx.principal, Role.PROVIDER_OPERATOR, Role.REGULATOR)
    return ctx


async def event_batch(request: Request) -> list[Any]:
    """The body as a JSON array of at most MAX_BATCH_EVENTS events, read with a limit on its size."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in BATCH_MEDIA_TYPES:
        raise UnsupportedMediaType(
            "metering.content-type", got=media_type or "-", accepted=", ".join(BATCH_MEDIA_TYPES)
        )
    limit = service.MAX_BATCH_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("metering.batch-bytes", max=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge("metering.batch-bytes", max=limit)
    try:
        batch = json.loads(body)
    except ValueError as exc:
        raise Invalid("metering.batch-not-json", error=str(exc)) from None
    if not isinstance(batch, list):
        raise Invalid("metering.batch-not-array", got=type(batch).__name__)
    if len(batch) > service.MAX_BATCH_EVENTS:
        raise PayloadTooLarge("metering.batch-too-many", count=len(batch), max=service.MAX_BATCH_EVENTS)
    return batch


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its $defs put in place (the body is documented by hand, not by a model)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return dict(walk(schema))


_BATCH_SCHEMA = {
    "type": "array",
    "maxItems": service.MAX_BATCH_EVENTS,
    "items": _inlined(UsageEvent.model_json_schema()),
}


@router.post(
    "/metering/events",
    response_model=IngestRead,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {media_type: {"schema": _BATCH_SCHEMA} for media_type in BATCH_MEDIA_TYPES},
        }
    },
    responses={413: {"description": "more than 1,000 events or 4 MiB"}},
)
def ingest_events(
    ctx: Annotated[Ctx, Depends(usage_reporter)], batch: Annotated[list[Any], Depends(event_batch)]
) -> dict[str, Any]:
    """Report usage: a CloudEvents 1.0 batch of `cn.suanwang.usage.v1` events, all stored or none.

    An event whose (source, id) was seen before is a `duplicate` and changes nothing; an event for a
    launch that already has its usage record is `already-metered` (one record per launch)."""
    report = service.ingest(session=ctx.session, principal=ctx.principal, events=batch, now=ctx.now)
    ctx.session.commit()
    return report.as_dict()


@router.get("/usage", response_model=PageRead[UsageRead])
def list_usage(
    ctx: CtxDep,
    paging: PageDep,
    org_id: Id | None = None,
    pool_id: Id | None = None,
    job_id: Id | None = None,
    ended_from: Annotated[UtcDatetime | None, Query(alias="from", description="ended at or after")] = None,
    ended_to: Annotated[UtcDatetime | None, Query(alias="to", description="ended before")] = None,
) -> dict[str, Any]:
    """Usage records you can see (newest end first): your organisation's, your provider's pools', or all."""
    result = service.list_usage(
        session=ctx.session,
        principal=ctx.principal,
        request=paging,
        org_id=org_id,
        pool_id=pool_id,
        job_id=job_id,
        ended_from=ended_from,
        ended_to=ended_to,
    )
    return page_read(result, UsageRead.model_validate)
