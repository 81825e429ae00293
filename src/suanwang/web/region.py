"""The regulator's region overview: what the report's readers want to see at a glance, each chart
drilling down to the list behind it. Figures come from the same reports the API serves."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanwang.db.query import MAX_PAGE_SIZE, PageRequest
from suanwang.i18n import t
from suanwang.registry import api as registry_api
from suanwang.registry import reports_api as registry_reports
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import OutputRecord, ProjectStatus
from suanwang.reports import service as reports
from suanwang.supply import service as supply
from suanwang.supply.models import Phase
from suanwang.timeutil import shanghai_date
from suanwang.vouchers import reports as voucher_reports
from suanwang.vouchers.models import VoucherProgramme
from suanwang.web import charts
from suanwang.web.auth import PageCtx, prefix_of
from suanwang.web.tables import api_ctx

PHASES = [p.value for p in Phase]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _yuan(fen: int) -> float:
    return round(fen / 100, 2)


def _wan_yuan(fen: int) -> float:
    """万元, the unit the region's statistics are published in."""
    return round(fen / 1_000_000, 1)


def provider_names(session: Session, lang: str) -> dict[str, tuple[int, str]]:
    """Provider code → (id, name in the reader's language)."""
    providers = supply.list_providers(session=session, request=PageRequest(limit=MAX_PAGE_SIZE)).items
    return {p.code: (p.id, p.name if lang == "zh" else p.name_en or p.name) for p in providers}


def capacity_section(ctx: PageCtx, names: dict[str, tuple[int, str]]) -> dict[str, Any]:
    url = prefix_of(ctx.request)
    operational = Phase.OPERATIONAL
    by_provider, by_origin, by_accelerator, by_region, by_phase = supply.capacity_reports(
        session=ctx.session,
        groupings=[
            (["provider", "phase"], None),
            (["domestic"], operational),
            (["accelerator"], operational),
            (["region", "phase"], None),
            (["phase"], None),
        ],
    )
    codes = sorted({r.key["provider"] for r in by_provider.rows})
    cells = {(r.key["provider"], r.key["phase"]): r.pflops for r in by_provider.rows}
    provider_chart = charts.bar(
        [names.get(c, (0, c))[1] for c in codes],
        [
            charts.series(t("phase." + p, ctx.lang), [round(cells.get((c, p), 0), 1) for c in codes])
            for p in PHASES
        ],
        stack=True,
        unit="PFLOPS",
        drill=charts.drill(url + "/pools", "provider_id", [names.get(c, (None, c))[0] for c in codes]),
    )
    origin_chart = charts.pie(
        "PFLOPS",
        [
            (
                t("web.region.domestic" if r.key["domestic"] == "true" else "web.region.imported", ctx.lang),
                round(r.pflops, 1),
            )
            for r in by_origin.rows
        ],
        drill=charts.drill(url + "/pools", "domestic", [r.key["domestic"] for r in by_origin.rows]),
    )
    accelerators = [r.key["accelerator"] for r in by_accelerator.rows]
    accelerator_chart = charts.bar(
        accelerators,
        [charts.series(t("web.col.cards", ctx.lang), [r.cards for r in by_accelerator.rows])],
        drill=charts.drill(url + "/pools", "accelerator", accelerators),
    )
    regions = sorted({r.key["region"] for r in by_region.rows})
    region_cells = {(r.key["region"], r.key["phase"]): r.pflops for r in by_region.rows}
    region_chart = charts.bar(
        regions,
        [
            charts.series(t("phase." + p, ctx.lang), [round(region_cells.get((g, p), 0), 1) for g in regions])
            for p in PHASES
        ],
        stack=True,
        unit="PFLOPS",
        drill=charts.drill(url + "/pools", "region", regions),
    )
    domestic = sum(r.pflops for r in by_origin.rows if r.key["domestic"] == "true")
    return {
        "by_phase": {r.key["phase"]: r for r in by_phase.rows},
        "operational_total": by_origin.total,
        "domestic_share": round(100 * domestic / by_origin.total.pflops, 1)
        if by_origin.total.pflops
        else None,
        "charts": {
            "capacity-provider": provider_chart,
            "capacity-origin": origin_chart,
            "capacity-accelerator": accelerator_chart,
            "capacity-region": region_chart,
        },
    }


def voucher_section(ctx: PageCtx) -> dict[str, Any]:
    url = prefix_of(ctx.request)
    programmes = list(
        ctx.session.scalars(select(VoucherProgramme).order_by(VoucherProgramme.starts_on.desc()))
    )
    if not programmes:
        return {"programme": None, "charts": {}}
    programme = programmes[0]
    burn = voucher_reports.burn_down(ctx.session, programme).as_json()
    months = [row["month"] for row in burn["rows"]]
    burn_chart = charts.line(
        months,
        [
            charts.series(
                t("web.region.remaining", ctx.lang), [_yuan(r["remaining_fen"]) for r in burn["rows"]]
            ),
            charts.series(
                t("web.region.granted", ctx.lang), [_yuan(r["cumulative_granted_fen"]) for r in burn["rows"]]
            ),
            charts.series(
                t("web.region.redeemed", ctx.lang),
                [_yuan(r["cumulative_redeemed_fen"]) for r in burn["rows"]],
            ),
        ],
        unit="¥",
        drill=charts.drill(url + "/vouchers/grants", "programme_id", [programme.id] * 3, by="series"),
    )
    segments = voucher_reports.by_segment(ctx.session, programme).as_json()
    taxonomy = chain.load(ctx.session)
    seg_rows = segments["rows"]
    segment_chart = charts.bar(
        [taxonomy.name(r["segment"], ctx.lang) or r["segment"] for r in seg_rows],
        [charts.series(t("web.region.subsidy", ctx.lang), [_yuan(r["subsidy_fen"]) for r in seg_rows])],
        unit="¥",
        drill=charts.drill(url + "/registry/enterprises", "segment", [r["segment"] for r in seg_rows]),
    )
    summary = voucher_reports.summary(ctx.session, programme).as_json()
    return {
        "programme": programme,
        "summary": summary,
        "charts": {"voucher-burn": burn_chart, "voucher-segment": segment_chart},
    }


def registry_section(ctx: PageCtx) -> dict[str, Any]:
    url = prefix_of(ctx.request)
    api = api_ctx(ctx)
    chain = registry_reports.chain_map(api)
    tiers = chain["tiers"]
    segments = chain["segments"]
    name_key = "name_zh" if ctx.lang == "zh" else "name_en"
    cells = [(x, y, s["counts"][tier]) for y, s in enumerate(segments) for x, tier in enumerate(tiers)]
    keys = [
        [
            {"segment": s["segment"], "tier": tier} if tier != "none" else {"segment": s["segment"]}
            for tier in tiers
        ]
        for s in segments
    ]
    chain_chart = charts.heatmap(
        t("web.region.enterprises", ctx.lang),
        [t("web.tier." + tier, ctx.lang) for tier in tiers],
        [s[name_key] for s in segments],
        cells,
        {"url": url + "/registry/enterprises", "by": "cell", "param": "segment", "keys": keys},
    )
    year = ctx.session.scalar(select(func.max(OutputRecord.year)))
    output_chart = None
    monthly: dict[str, Any] = {"months": []}
    if year is not None:
        monthly = registry_reports.output_monthly(api, year, "above_size", None)
        months = monthly["months"]
        output_chart = charts.bar(
            [f"{year}-{m['month']:02d}" for m in months],
            [
                charts.series(t("web.region.output", ctx.lang), [_wan_yuan(m["output_fen"]) for m in months]),
                charts.series(
                    t("web.region.output-previous", ctx.lang),
                    [_wan_yuan(m["previous_month_fen"]) for m in months],
                ),
            ],
            unit=t("web.unit.wan-yuan", ctx.lang),
            drill=charts.drill(url + "/registry/enterprises", "above_size", ["yes"] * len(months)),
        )
    summary = registry_api.project_summary(api, registry_api.ProjectFilters())
    statuses = [s.value for s in ProjectStatus]
    by_status = {row["key"]: row for row in summary["by_status"]}
    project_chart = charts.bar(
        [t("cli.registry-status." + s, ctx.lang) for s in statuses],
        [
            charts.series(
                t("web.region.projects", ctx.lang),
                [by_status.get(s, {}).get("projects", 0) for s in statuses],
            ),
        ],
        drill=charts.drill(url + "/registry/projects", "status", statuses),
    )
    investment = [_wan_yuan(by_status.get(s, {}).get("investment_fen", 0)) for s in statuses]
    return {
        "year": year,
        "monthly": monthly,
        "projects": summary,
        "investment": list(zip(statuses, investment, strict=True)),
        "charts": {
            "chain-map": chain_chart,
            **({"output-trend": output_chart} if output_chart else {}),
            "project-pipeline": project_chart,
        },
    }


USAGE_DAYS = 30
CLASSES = ("local_sme", "local_other", "outside")


def _window(ctx: PageCtx, days: int) -> tuple[datetime, datetime]:
    """The last `days` whole days in Asia/Shanghai, up to the end of today."""
    today = shanghai_date(ctx.now)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=SHANGHAI).astimezone(UTC)
    return end - timedelta(days=days), end


def _pct(bp: int | None) -> float | None:
    return None if bp is None else bp / 100


def usage_section(ctx: PageCtx, names: dict[str, tuple[int, str]]) -> dict[str, Any]:
    """Who uses the region's compute, how busy each provider is and how long work waits."""
    url = prefix_of(ctx.request)
    settings = ctx.request.app.state.settings
    start, end = _window(ctx, USAGE_DAYS)
    share = reports.local_share(
        session=ctx.session, principal=ctx.principal, settings=settings, start=start, end=end, period="day"
    )
    days = [p.period[5:] for p in share.periods]
    share_chart = charts.line(
        days,
        [
            charts.series(
                t("web.class." + c, ctx.lang), [float(p.classes[c].card_hours) for p in share.periods]
            )
            for c in CLASSES
        ],
        area=True,
        stack=True,
        unit=t("web.unit.card-hours", ctx.lang),
        drill=charts.drill(url + "/orgs", "is_sme", ["yes", "no", "no"], by="series"),
    )
    used = reports.utilization(
        session=ctx.session, principal=ctx.principal, start=start, end=end, period="day", group="provider"
    )
    codes = [g.group for g in used.groups]
    by_day = {p.period: {g.group: g.utilization_bp for g in p.groups} for p in used.periods}
    utilization_chart = charts.line(
        [p.period[5:] for p in used.periods],
        [
            charts.series(names.get(c, (0, c))[1], [_pct(by_day[p.period].get(c)) for p in used.periods])
            for c in codes
        ],
        percent=True,
        drill=charts.drill(
            url + "/pools", "provider_id", [names.get(c, (None, c))[0] for c in codes], by="series"
        ),
    )
    queue = reports.queue(
        session=ctx.session,
        principal=ctx.principal,
        settings=settings,
        start=start,
        end=end,
        period="month",
        now=ctx.now,
    )
    waits = queue.waits.total
    groups = [("local_sme", waits.classes["local_sme"]), ("everyone_else", waits.everyone_else)]
    labels = [t("web.class." + name, ctx.lang) for name, _ in groups]
    wait_chart = charts.bar(
        labels,
        [
            charts.series("p50", [_minutes(w.p50_wait_s) for _, w in groups]),
            charts.series("p90", [_minutes(w.p90_wait_s) for _, w in groups]),
        ],
        unit=t("web.unit.minutes", ctx.lang),
        drill=charts.drill(url + "/jobs", "state", ["running", "running"]),
    )
    now_groups = [(c, queue.queue.classes[c]) for c in CLASSES]
    queue_chart = charts.bar(
        [t("web.class." + c, ctx.lang) for c, _ in now_groups],
        [
            charts.series(t("web.region.queued-jobs", ctx.lang), [q.jobs for _, q in now_groups]),
            charts.series(t("web.col.cards", ctx.lang), [q.cards for _, q in now_groups]),
        ],
        drill=charts.drill(url + "/jobs", "state", ["queued"] * 3),
    )
    return {
        "days": USAGE_DAYS,
        "local_share_text": share.total.local_share,
        "queue": queue.queue,
        "charts": {
            "local-share": share_chart,
            "utilization": utilization_chart,
            "queue-wait": wait_chart,
            "queue-now": queue_chart,
        },
    }


def _minutes(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def provider_utilization(ctx: PageCtx) -> dict[str, Any]:
    """The provider's pools' daily utilization over the last weeks."""
    start, end = _window(ctx, USAGE_DAYS)
    used = reports.utilization(
        session=ctx.session, principal=ctx.principal, start=start, end=end, period="day", group="pool"
    )
    pools = [g.group for g in used.groups]
    by_day = {p.period: {g.group: g.utilization_bp for g in p.groups} for p in used.periods}
    return charts.line(
        [p.period[5:] for p in used.periods],
        [charts.series(code, [_pct(by_day[p.period].get(code)) for p in used.periods]) for code in pools],
        percent=True,
    )


def programmes(ctx: PageCtx) -> list[dict[str, Any]]:
    """Every programme with its budget figures (the regulator sees all; others see the open ones)."""
    rows = list(ctx.session.scalars(select(VoucherProgramme).order_by(VoucherProgramme.starts_on.desc())))
    result = []
    for programme in rows:
        summary = (
            voucher_reports.summary(ctx.session, programme).as_json() if ctx.principal.is_regulator else None
        )
        result.append({"programme": programme, "summary": summary})
    return result
