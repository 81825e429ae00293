"""REST routes of the audit trail (the regulator's): GET /audit, GET /audit/head."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from suanwang.api.deps import CtxDep, PageDep
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.audit import service
from suanwang.audit.chain import GENESIS
from suanwang.audit.models import ACTOR_CHARS, KEY_CHARS
from suanwang.audit.schemas import AuditEntryRead, AuditHeadRead
from suanwang.fields import UtcDatetime
from suanwang.tenants.access import require_regulator

router = APIRouter(tags=["audit"], responses=PROBLEM_RESPONSES)


@router.get("/audit", response_model=PageRead[AuditEntryRead])
def list_audit(
    ctx: CtxDep,
    paging: PageDep,
    table: Annotated[str | None, Query(max_length=64, description="a table, e.g. jobs")] = None,
    key: Annotated[str | None, Query(max_length=KEY_CHARS, description="a row's key in it")] = None,
    actor: Annotated[
        str | None, Query(max_length=ACTOR_CHARS, description="user:ID, controller:HOST:PID, …")
    ] = None,
    at_from: Annotated[UtcDatetime | None, Query(alias="from", description="at or after")] = None,
    at_to: Annotated[UtcDatetime | None, Query(alias="to", description="before")] = None,
) -> dict[str, Any]:
    """Who changed what, and when (regulator only): each write's before and after, newest first."""
    result = service.list_entries(
        session=ctx.session,
        principal=ctx.principal,
        request=paging,
        table_name=table,
        row_key=key,
        actor=actor,
        at_from=at_from,
        at_to=at_to,
    )
    return page_read(result, AuditEntryRead.model_validate)


@router.get("/audit/head", response_model=AuditHeadRead)
def audit_head(ctx: CtxDep) -> dict[str, Any]:
    """The chain's last entry (sequence number and hash), to write down elsewhere as an anchor."""
    require_regulator(ctx.principal)
    head = service.head(ctx.session)
    return {"seq": head.seq, "hash": head.hash} if head else {"seq": 0, "hash": GENESIS}
