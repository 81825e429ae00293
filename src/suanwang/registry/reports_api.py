"""REST routes of the registry's statistics (regulator): output value and growth computed the way the
city's report does, and the chain map (segment × tier). Spreadsheet import/export and cultivation are in
their own routers below."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from suanwang.api.deps import CtxDep, request_lang
from suanwang.api.schemas import PROBLEM_RESPONSES
from suanwang.errors import Invalid, PayloadTooLarge
from suanwang.i18n import t
from suanwang.registry import cultivation, output, promotions, statistics, tabular, transfer
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, Tier
from suanwang.registry.schemas import CriteriaRead, CriterionSpec, ImportReport
from suanwang.tenants.access import require_regulator
from suanwang.timeutil import shanghai_date

router = APIRouter(prefix="/registry", tags=["registry"], responses=PROBLEM_RESPONSES)

LangDep = Annotated[str, Depends(request_lang)]
Year = Annotated[int, Query(ge=output.FIRST_YEAR, le=2100)]
ScopeQuery = Annotated[str, Query(description="above_size (规上 only, the report's figures; default) or all")]


def _with_text(row: dict[str, Any]) -> dict[str, Any]:
    """A period's row with its growth as the report writes it (one decimal, e.g. '150.9%')."""
    return row | {"growth_text": statistics.percent_text(row["output_fen"], row["previous_fen"])}


def _month_with_text(row: dict[str, Any]) -> dict[str, Any]:
    """A month's row with the growth of the month and of January-to-month, as text."""
    return row | {
        "growth_text": statistics.percent_text(row["output_fen"], row["previous_month_fen"]),
        "cumulative_growth_text": statistics.percent_text(
            row["cumulative_fen"], row["previous_cumulative_fen"]
        ),
    }


def _scope(value: str) -> str:
    if value not in {s.value for s in statistics.Scope}:
        raise Invalid("registry.bad-scope", value=value, scopes=", ".join(s.value for s in statistics.Scope))
    return value


@router.get("/statistics/output")
def output_cumulative(
    ctx: CtxDep,
    year: Year,
    month: Annotated[int, Query(ge=1, le=12, description="January to this month")] = 12,
    scope: ScopeQuery = "above_size",
) -> dict[str, Any]:
    """Output value and revenue from January to `month` of `year`, the same months a year earlier on a
    comparable basis (the same enterprises), year-on-year growth, and totals by stage, segment and tier
    (each adds up to the total). Amounts in fen; growth in percent with two decimals."""
    require_regulator(ctx.principal)
    facts, described = output.facts(ctx.session, {year - 1, year}, taxonomy=chain.load(ctx.session))
    body: dict[str, Any] = statistics.cumulative(facts, described, year, month, scope=_scope(scope)).as_json()
    for key in ("by_stage", "by_segment", "by_tier"):
        body[key] = [_with_text(row) for row in body[key]]
    body["total"] = _with_text(body["total"])
    return body


@router.get("/statistics/output/monthly")
def output_monthly(
    ctx: CtxDep,
    year: Year,
    scope: ScopeQuery = "above_size",
    through: Annotated[int | None, Query(ge=1, le=12, description="the last month (default: latest)")] = None,
) -> dict[str, Any]:
    """Month by month: output, January-to-month cumulative, the comparable figures a year earlier and
    the growth of each."""
    require_regulator(ctx.principal)
    facts, described = output.facts(ctx.session, {year - 1, year}, taxonomy=chain.load(ctx.session))
    body: dict[str, Any] = statistics.monthly(
        facts, described, year, scope=_scope(scope), through=through
    ).as_json()
    body["months"] = [_month_with_text(row) for row in body["months"]]
    return body


@router.get("/statistics/chain-map")
def chain_map(ctx: CtxDep) -> dict[str, Any]:
    """How many registered enterprises each top-level segment has, by tier (the industry chain map):
    an enterprise counts under its primary segment."""
    require_regulator(ctx.principal)
    taxonomy = chain.load(ctx.session)
    counts: Counter[tuple[str, str]] = Counter()
    above: Counter[str] = Counter()
    rows = ctx.session.execute(
        select(Enterprise.segments, Enterprise.tier, Enterprise.above_size).where(
            Enterprise.retired_at.is_(None)
        )
    )
    for segments, tier, above_size in rows:
        top = taxonomy.top_of(segments[0] if segments else None) or chain.UNCLASSIFIED
        counts[(top, tier.value if tier else "none")] += 1
        above[top] += int(above_size)
    tops = [n for n in taxonomy.nodes.values() if n.parent_code is None and not n.retired]
    keys = [n.code for n in tops] + (
        [chain.UNCLASSIFIED] if any(k[0] == chain.UNCLASSIFIED for k in counts) else []
    )
    tiers = [t.value for t in Tier] + ["none"]
    return {
        "tiers": tiers,
        "segments": [
            {
                "segment": key,
                "stage": taxonomy.stage_of(key),
                "name_zh": taxonomy.name(key, "zh"),
                "name_en": taxonomy.name(key, "en"),
                "counts": {tier: counts[(key, tier)] for tier in tiers},
                "enterprises": sum(counts[(key, tier)] for tier in tiers),
                "above_size": above[key],
            }
            for key in keys
        ],
    }


# --- cultivation ---------------------------------------------------------------------------------


def _labelled(item: dict[str, Any], lang: str) -> dict[str, Any]:
    return item | {"label": t(f"registry.cultivation.metric.{item['metric']}", lang)}


@router.get("/cultivation/criteria", response_model=list[CriteriaRead])
def list_criteria(ctx: CtxDep, lang: LangDep) -> list[CriteriaRead]:
    """The criteria that propose an enterprise for each tier of the ladder (regulator)."""
    require_regulator(ctx.principal)
    result = []
    for tier in cultivation.TARGETS:
        criteria, custom = promotions.criteria_for(ctx.session, tier)
        items = [_labelled(c.as_json(), lang) for c in criteria]
        result.append(CriteriaRead(tier=tier, criteria=items, custom=custom))
    return result


@router.put("/cultivation/criteria/{tier}", response_model=CriteriaRead)
def set_criteria(tier: Tier, body: list[CriterionSpec], ctx: CtxDep, lang: LangDep) -> CriteriaRead:
    """Replace a tier's criteria (regulator). Every criterion must hold, except that criteria sharing a
    `group` are alternatives: one of them suffices."""
    data = [c.model_dump(exclude_none=True) for c in body]
    promotions.set_criteria(ctx.session, principal=ctx.principal, tier=tier, data=data)
    ctx.session.commit()
    criteria, custom = promotions.criteria_for(ctx.session, tier)
    return CriteriaRead(tier=tier, criteria=[_labelled(c.as_json(), lang) for c in criteria], custom=custom)


@router.delete("/cultivation/criteria/{tier}", status_code=204)
def reset_criteria(tier: Tier, ctx: CtxDep) -> None:
    """Back to the shipped defaults for that tier (regulator)."""
    promotions.reset_criteria(ctx.session, principal=ctx.principal, tier=tier)
    ctx.session.commit()


@router.get("/cultivation/candidates")
def candidates(
    ctx: CtxDep,
    lang: LangDep,
    tier: Annotated[Tier, Query(description="the tier to propose enterprises for")],
    as_of: Annotated[date | None, Query(description="the day to assess on (default today)")] = None,
) -> list[dict[str, Any]]:
    """Enterprises on the tier below, eligible first, each with the criteria it meets, misses and lacks
    data for (revenue: the last full calendar year's, from the monthly statistics)."""
    day = as_of or shanghai_date(ctx.now)
    found = promotions.candidates(ctx.session, principal=ctx.principal, target=tier, as_of=day)
    for item in found:
        for key in ("met", "missed", "unknown"):
            item[key] = [_labelled(outcome, lang) for outcome in item[key]]
    return found


# --- import and export ---------------------------------------------------------------------------


async def _file_body(request: Request) -> bytes:
    """The uploaded file (the raw request body), read with a limit on its size."""
    limit = tabular.MAX_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            "registry.import.too-large", size_mb=int(declared) // 2**20, limit_mb=limit // 2**20
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(
                "registry.import.too-large", size_mb=len(body) // 2**20, limit_mb=limit // 2**20
            )
    return bytes(body)


@router.post(
    "/import/{dataset}",
    response_model=ImportReport,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("text/csv", transfer.MEDIA_TYPES["xlsx"])
            },
        }
    },
)
def import_file(
    dataset: str,
    ctx: CtxDep,
    lang: LangDep,
    body: Annotated[bytes, Depends(_file_body)],
    format: Annotated[str, Query(description="csv or xlsx")] = "csv",
    dry_run: Annotated[bool, Query(description="check and count, write nothing")] = True,
    sheet: Annotated[
        str | None, Query(max_length=31, description="the XLSX sheet (default: the first)")
    ] = None,
    mapping: Annotated[
        str | None,
        Query(max_length=4000, description='JSON {"file header": "field"} for headers not recognised'),
    ] = None,
) -> ImportReport:
    """Import a spreadsheet of `enterprises`, `projects` or `output` (regulator); the file is the request
    body. Headers in Chinese or English are recognised (units such as 万元 in a header are applied). A dry
    run (the default) reports every invalid row by number and field and what a real import would create,
    update or leave unchanged; a real import with any invalid row writes nothing (422, rows listed under
    `row_errors`). Re-importing the same file changes nothing."""
    report = transfer.import_file(
        ctx.session,
        principal=ctx.principal,
        dataset=dataset,
        data=body,
        fmt=format,
        dry_run=dry_run,
        now=ctx.now,
        lang=lang,
        sheet=sheet,
        mapping=transfer.parse_mapping(mapping),
    )
    if dry_run:
        ctx.session.rollback()
    else:
        ctx.session.commit()
    return report


@router.get("/export/{dataset}", response_class=Response)
def export_file(
    dataset: str,
    ctx: CtxDep,
    lang: LangDep,
    format: Annotated[str, Query(description="csv or xlsx")] = "csv",
) -> Response:
    """The registry's `enterprises`, `projects` or `output` as a spreadsheet with headers in the caller's
    language (regulator); importing it back changes nothing."""
    data = transfer.export_file(ctx.session, principal=ctx.principal, dataset=dataset, fmt=format, lang=lang)
    return Response(
        data,
        media_type=transfer.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="registry-{dataset}.{format}"'},
    )
