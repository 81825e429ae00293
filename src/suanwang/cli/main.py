"""The `suanwang` command: the REST API for people and scripts, plus serve, demo and db."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from suanwang.cli import output
from suanwang.cli.agent import agent_app
from suanwang.cli.audit import audit_app
from suanwang.cli.client import ApiError, Client, ConnectionFailed
from suanwang.cli.jobs import jobs_app, reservations_app
from suanwang.cli.money import money_app
from suanwang.cli.output import TIME_FORMATS, Column, fen, joined, number, shanghai_time, show, yes_no
from suanwang.cli.registry import registry_app
from suanwang.cli.sim import sim_app
from suanwang.cli.usage import usage_app
from suanwang.cli.vouchers import vouchers_app
from suanwang.config import Settings, get_settings
from suanwang.i18n import normalize_lang
from suanwang.supply.models import BackendKind, Phase, ProviderKind, SecurityZone
from suanwang.tenants.models import OrgKind, Role

app = typer.Typer(
    name="suanwang",
    help="suanwang (算网): a regional compute-power network — supply, scheduling, use and settlement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class State:
    settings: Settings
    url: str | None
    token: str | None
    lang: str
    as_json: bool

    def client(self) -> Client:
        return Client(settings=self.settings, url=self.url, token=self.token, lang=self.lang)


def state(ctx: typer.Context) -> State:
    obj: State = ctx.find_root().obj
    return obj


@app.callback()
def main_options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="SUANWANG_URL", help="Server URL; without it the CLI works on the local database."
        ),
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="SUANWANG_TOKEN", help="API token (Bearer).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")
    ] = False,
    lang: Annotated[str | None, typer.Option(envvar="SUANWANG_LANG", help="Language: en or zh.")] = None,
) -> None:
    settings = get_settings()
    ctx.obj = State(settings, url, token, normalize_lang(lang or settings.lang), as_json)


def call(
    ctx: typer.Context, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
) -> Any:
    with state(ctx).client() as client:
        return client.request(method, path, json=body, params=params)


def present(ctx: typer.Context, data: Any, columns: list[Column], title: str | None = None) -> None:
    show(data, columns, as_json=state(ctx).as_json, title=title)


def body_of(**fields: Any) -> dict[str, Any]:
    """Only the options the user gave (None means not given)."""
    return {k: v for k, v in fields.items() if v is not None}


Limit = Annotated[int, typer.Option(help="Rows per page.")]
Offset = Annotated[int, typer.Option(help="Rows to skip.")]
Sort = Annotated[str | None, typer.Option(help="Sort field; '-' in front for descending.")]
Retired = Annotated[bool, typer.Option("--include-retired", help="Also list retired entries.")]
Name = Annotated[str | None, typer.Option(help="Name (Chinese or the official name).")]
NameEn = Annotated[str | None, typer.Option(help="English name.")]
ProviderFilter = Annotated[int | None, typer.Option(help="Only this provider.")]
RegionFilter = Annotated[str | None, typer.Option(help="Only this region.")]
PhaseFilter = Annotated[Phase | None, typer.Option(help="Only this phase.")]
ZoneFilter = Annotated[SecurityZone | None, typer.Option(help="Only this security zone.")]
IdArg = Annotated[int, typer.Argument(metavar="ID", help="The id.")]
EmailOpt = Annotated[str | None, typer.Option(help="Contact e-mail.")]
CertOpt = Annotated[
    list[str] | None, typer.Option(help="A verified certification, e.g. MLPS-3 (repeatable).")
]
AffiliationOpt = Annotated[str | None, typer.Option(help="Affiliation group (company group).")]


def paging(limit: int, offset: int, sort: str | None, include_retired: bool | None = None) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "sort": sort, "include_retired": include_retired or None}


# --- platform: serve, demo, db -------------------------------------------------------------------

db_app = typer.Typer(help="The database: schema migrations, backups and checks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sim_app, name="sim")
app.add_typer(jobs_app, name="jobs")
app.add_typer(reservations_app, name="reservations")
app.add_typer(money_app, name="money")
app.add_typer(usage_app, name="usage")
app.add_typer(vouchers_app, name="vouchers")
app.add_typer(registry_app, name="registry")
app.add_typer(agent_app, name="agent")
app.add_typer(audit_app, name="audit")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database to the latest schema."""
    from suanwang.db.session import current_revision, upgrade

    url = state(ctx).settings.effective_database_url
    upgrade(url)
    output.console.print(f"database at revision {current_revision(url)}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the database's schema revision."""
    from suanwang.db.session import current_revision

    output.console.print(current_revision(state(ctx).settings.effective_database_url) or "(empty)")


@db_app.command("backup")
def db_backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
) -> None:
    """Back up the database to a file: a consistent copy taken while the server runs."""
    from suanwang.db import backup
    from suanwang.i18n import t

    try:
        backup.backup(state(ctx).settings.effective_database_url, file)
    except backup.BackupError as exc:
        _backup_failed(exc, state(ctx).lang)
    output.console.print(
        t("cli.backup-written", state(ctx).lang, path=str(file), size=f"{file.stat().st_size:,}")
    )


@db_app.command("restore")
def db_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by `suanwang db backup`.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace what the target database holds (otherwise it must be empty)."
        ),
    ] = False,
) -> None:
    """Restore a backup into the database, then check its ledger."""
    from suanwang.db import backup

    try:
        verified = backup.restore(state(ctx).settings.effective_database_url, file, replace=replace)
    except backup.BackupError as exc:
        _backup_failed(exc, state(ctx).lang)
    _report_verified(verified, state(ctx).lang)


@db_app.command("verify")
def db_verify(ctx: typer.Context) -> None:
    """Check the database: its schema revision and the ledger's double entry."""
    from suanwang.db import backup

    _report_verified(backup.verify(state(ctx).settings.effective_database_url), state(ctx).lang)


def _backup_failed(exc: Any, lang: str) -> None:
    output.err_console.print(f"error: {exc.message(lang)}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(2)


def _report_verified(verified: Any, lang: str) -> None:
    from suanwang.cli.audit import report_audit
    from suanwang.i18n import t

    output.console.print(t("cli.db-schema", lang, revision=verified.revision, tables=verified.tables))
    if not verified.ledger_problems:
        output.console.print(t("cli.ledger-sound", lang))
    for problem in verified.ledger_problems:  # the ledger's own wording: for whoever repairs it
        output.console.print(t("cli.ledger-problem", lang, problem=problem), highlight=False, markup=False)
    report_audit(verified.audit, lang)
    if not verified.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the API, the OpenAPI docs (/docs) and the web pages."""
    import uvicorn

    from suanwang.api.app import create_app

    settings = state(ctx).settings
    uvicorn.run(
        create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info"
    )


@app.command()
def controller(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and print what it did.")] = False,
) -> None:
    """Run the controller loop alone (schedule, dispatch, observe); one leader at a time."""
    import signal
    import threading

    from suanwang.controller import Controller, run_once
    from suanwang.db.session import engine_for

    settings = state(ctx).settings
    engine = engine_for(settings.effective_database_url)
    if once:
        report = run_once(settings, engine)
        output.console.print_json(data=report.__dict__)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    output.console.print(f"controller: every {settings.controller_interval_s} s; Ctrl-C stops it")
    try:
        Controller(settings, engine).run(stop)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def demo(
    ctx: typer.Context,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after loading.")] = True,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workload: Annotated[
        bool, typer.Option("--workload/--no-workload", help="Demo tenants submit jobs while it serves.")
    ] = True,
) -> None:
    """Load the Pinghu demo region (idempotent), print a regulator token, and serve."""
    from suanwang.demo.loader import load_demo

    settings = state(ctx).settings
    result = load_demo(settings)
    base = f"http://{host or settings.host}:{port or settings.port}"
    output.console.print(f"Pinghu demo region: {result.summary()}")
    output.console.print(f"URL:             {base}/  (API docs: {base}/docs)")
    output.console.print(f"Regulator token: {result.regulator_token}")
    for name, secret in result.logins.items():
        output.console.print(f"Token of {name}: {secret}")
    output.console.print(f"Dashboard:       {base}/login  (log in with one of the tokens above)")
    output.console.print(
        f"Try:  SUANWANG_URL={base} SUANWANG_TOKEN={result.regulator_token} "
        "suanwang capacity --by provider,phase"
    )
    if serve_after:
        if workload:
            _start_demo_workload(settings)
            output.console.print("Demo tenants submit a job every few seconds (--no-workload turns it off).")
        ctx.invoke(serve, ctx=ctx, host=host, port=port)


def _start_demo_workload(settings: Settings) -> None:
    import threading

    from suanwang.db.session import engine_for
    from suanwang.demo.workload import DemoWorkload

    workload = DemoWorkload(settings, engine_for(settings.effective_database_url))
    threading.Thread(
        target=workload.run, args=(threading.Event(),), name="demo-workload", daemon=True
    ).start()


# --- catalogue and capacity ----------------------------------------------------------------------

catalog_app = typer.Typer(help="Accelerator catalogue.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
ACCELERATOR_COLUMNS: list[Column] = [
    ("model", "model", None),
    ("vendor", "vendor", None),
    ("memory_gib", "GiB", number),
    ("dense_fp16_tflops", "FP16 TFLOPS", number),
    ("domestic", "domestic", yes_no),
]


@catalog_app.command("list")
def catalog_list(ctx: typer.Context) -> None:
    """List accelerators with memory and dense FP16/BF16 TFLOPS."""
    present(ctx, call(ctx, "GET", "/accelerators"), ACCELERATOR_COLUMNS)


@catalog_app.command("show")
def catalog_show(ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model, e.g. H800.")]) -> None:
    """Show one accelerator and the source of its figures."""
    present(
        ctx, call(ctx, "GET", f"/accelerators/{model}"), [*ACCELERATOR_COLUMNS, ("source", "source", None)]
    )


@app.command()
def capacity(
    ctx: typer.Context,
    by: Annotated[
        str | None,
        typer.Option(
            help=(
                "Group by, comma-separated: provider, site, phase, region, "
                "accelerator, zone, vendor, domestic."
            )
        ),
    ] = None,
    phase: PhaseFilter = None,
    provider_id: ProviderFilter = None,
    region: RegionFilter = None,
    zone: ZoneFilter = None,
) -> None:
    """Capacity in cards and PFLOPS (dense FP16), grouped as asked."""
    data = call(
        ctx,
        "GET",
        "/capacity",
        params={"group_by": by, "phase": phase, "provider_id": provider_id, "region": region, "zone": zone},
    )
    if state(ctx).as_json:
        present(ctx, data, [])
        return
    dims = data["group_by"]
    total = data["total"] | ({dims[0]: "Σ"} if dims else {})
    rows = [row["key"] | row for row in data["rows"]] + [total]
    columns: list[Column] = [(d, d, None) for d in dims] + [
        ("pools", "pools", number),
        ("cards", "cards", number),
        ("pflops", "PFLOPS", number),
    ]
    if data["total"].get("verified_cards"):  # node agents calibrated some cards: show what they measured
        columns += [
            ("verified_cards", "verified cards", number),
            ("verified_pflops", "verified PFLOPS", number),
        ]
    present(ctx, rows, columns)


# --- providers, sites, pools ---------------------------------------------------------------------

providers_app = typer.Typer(
    help="Compute providers (data centres, edge centres, clouds).", no_args_is_help=True
)
sites_app = typer.Typer(help="Sites (clusters) of a provider.", no_args_is_help=True)
pools_app = typer.Typer(help="Pools of identical accelerators.", no_args_is_help=True)
prices_app = typer.Typer(
    help="Rate cards: price per card-hour in fen, with effective dates.", no_args_is_help=True
)
app.add_typer(providers_app, name="providers")
app.add_typer(sites_app, name="sites")
app.add_typer(pools_app, name="pools")
app.add_typer(prices_app, name="prices")

PROVIDER_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("code", "code", None),
    ("name", "name", None),
    ("kind", "kind", None),
    ("region", "region", None),
    ("certifications", "certifications", joined),
    ("affiliation_group", "affiliation", None),
]
SITE_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("code", "code", None),
    ("name", "name", None),
    ("provider_id", "provider", None),
    ("region", "region", None),
    ("phase", "phase", None),
    ("backend_kind", "backend", None),
]
POOL_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("code", "code", None),
    ("accelerator", "accelerator", None),
    ("nodes", "nodes", number),
    ("cards_per_node", "cards/node", number),
    ("cards", "cards", number),
    ("pflops", "PFLOPS", number),
    ("security_zone", "zone", None),
    ("region", "region", None),
    ("phase", "phase", None),
]
PRICE_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("price_fen_per_card_hour", "per card-hour", fen),
    ("effective_from", "from", shanghai_time),
    ("effective_until", "until", shanghai_time),
]


def add_show_and_retire(group: typer.Typer, path: str, columns: list[Column], what: str) -> None:
    """The `show ID` and `retire ID` commands, the same for every registry resource."""

    @group.command("show", help=f"Show one {what}.")
    def _show(ctx: typer.Context, object_id: IdArg) -> None:
        present(ctx, call(ctx, "GET", f"{path}/{object_id}"), columns)

    @group.command("retire", help=f"Retire one {what} (kept for history, no longer offered or used).")
    def _retire(ctx: typer.Context, object_id: IdArg) -> None:
        present(ctx, call(ctx, "POST", f"{path}/{object_id}/retire"), columns)


@providers_app.command("list")
def providers_list(
    ctx: typer.Context,
    kind: Annotated[ProviderKind | None, typer.Option(help="Only this kind.")] = None,
    region: RegionFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """List providers."""
    params = {"kind": kind, "region": region} | paging(limit, offset, sort, include_retired)
    present(ctx, call(ctx, "GET", "/providers", params=params), PROVIDER_COLUMNS)


@providers_app.command("create")
def providers_create(
    ctx: typer.Context,
    code: Annotated[str, typer.Option(help="Short unique code, e.g. runze-pinghu.")],
    name: Annotated[str, typer.Option(help="Name (Chinese or the official name).")],
    kind: Annotated[ProviderKind, typer.Option(help="Kind of provider.")],
    region: Annotated[str, typer.Option(help="Region code, e.g. zj-pinghu.")],
    name_en: NameEn = None,
    cert: CertOpt = None,
    affiliation: AffiliationOpt = None,
) -> None:
    """Register a provider (regulator)."""
    body = body_of(
        code=code,
        name=name,
        kind=kind,
        region=region,
        name_en=name_en,
        certifications=cert,
        affiliation_group=affiliation,
    )
    present(ctx, call(ctx, "POST", "/providers", body=body), PROVIDER_COLUMNS)


@providers_app.command("update")
def providers_update(
    ctx: typer.Context,
    provider_id: IdArg,
    name: Name = None,
    name_en: NameEn = None,
    kind: Annotated[ProviderKind | None, typer.Option(help="Kind of provider.")] = None,
    region: Annotated[str | None, typer.Option(help="Region code, e.g. zj-pinghu.")] = None,
    cert: CertOpt = None,
    affiliation: AffiliationOpt = None,
) -> None:
    """Change a provider."""
    body = body_of(
        name=name,
        name_en=name_en,
        kind=kind,
        region=region,
        certifications=cert,
        affiliation_group=affiliation,
    )
    present(ctx, call(ctx, "PATCH", f"/providers/{provider_id}", body=body), PROVIDER_COLUMNS)


add_show_and_retire(providers_app, "/providers", PROVIDER_COLUMNS, "provider")


@sites_app.command("list")
def sites_list(
    ctx: typer.Context,
    provider_id: ProviderFilter = None,
    region: RegionFilter = None,
    phase: PhaseFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """List sites."""
    params = {"provider_id": provider_id, "region": region, "phase": phase} | paging(
        limit, offset, sort, include_retired
    )
    present(ctx, call(ctx, "GET", "/sites", params=params), SITE_COLUMNS)


DateOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Date, YYYY-MM-DD.")]


def _date(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


@sites_app.command("create")
def sites_create(
    ctx: typer.Context,
    provider_id: Annotated[int, typer.Option(help="The provider's id.")],
    code: Annotated[str, typer.Option(help="Short unique code.")],
    name: Annotated[str, typer.Option(help="Name (Chinese or the official name).")],
    phase: Annotated[Phase, typer.Option(help="Phase: planned, built or operational.")],
    region: Annotated[str | None, typer.Option(help="Region code (default: the provider's).")] = None,
    backend: Annotated[BackendKind, typer.Option(help="How work runs there.")] = BackendKind.SIMULATED,
    name_en: NameEn = None,
    built_on: DateOpt = None,
    operational_on: DateOpt = None,
) -> None:
    """Add a site (cluster) to a provider."""
    body = body_of(
        provider_id=provider_id,
        code=code,
        name=name,
        phase=phase,
        region=region,
        backend_kind=backend,
        name_en=name_en,
        built_on=_date(built_on),
        operational_on=_date(operational_on),
    )
    present(ctx, call(ctx, "POST", "/sites", body=body), SITE_COLUMNS)


@sites_app.command("update")
def sites_update(
    ctx: typer.Context,
    site_id: IdArg,
    name: Name = None,
    name_en: NameEn = None,
    phase: Annotated[Phase | None, typer.Option(help="Phase: planned, built or operational.")] = None,
    region: Annotated[str | None, typer.Option(help="Region code.")] = None,
    backend: Annotated[BackendKind | None, typer.Option(help="How work runs there.")] = None,
    built_on: DateOpt = None,
    operational_on: DateOpt = None,
) -> None:
    """Change a site, e.g. move it to the next phase."""
    body = body_of(
        name=name,
        name_en=name_en,
        phase=phase,
        region=region,
        backend_kind=backend,
        built_on=_date(built_on),
        operational_on=_date(operational_on),
    )
    present(ctx, call(ctx, "PATCH", f"/sites/{site_id}", body=body), SITE_COLUMNS)


add_show_and_retire(sites_app, "/sites", SITE_COLUMNS, "site")


@pools_app.command("list")
def pools_list(
    ctx: typer.Context,
    provider_id: ProviderFilter = None,
    site_id: Annotated[int | None, typer.Option(help="Only this site.")] = None,
    accelerator: Annotated[str | None, typer.Option(help="Only this accelerator model.")] = None,
    zone: ZoneFilter = None,
    region: RegionFilter = None,
    phase: PhaseFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """List pools."""
    params = {
        "provider_id": provider_id,
        "site_id": site_id,
        "accelerator": accelerator,
        "zone": zone,
        "region": region,
        "phase": phase,
    } | paging(limit, offset, sort, include_retired)
    present(ctx, call(ctx, "GET", "/pools", params=params), POOL_COLUMNS)


@pools_app.command("create")
def pools_create(
    ctx: typer.Context,
    site_id: Annotated[int, typer.Option(help="The site's id.")],
    code: Annotated[str, typer.Option(help="Short unique code.")],
    name: Annotated[str, typer.Option(help="Name (Chinese or the official name).")],
    accelerator: Annotated[str, typer.Option(help="Accelerator model from the catalogue, e.g. H800.")],
    nodes: Annotated[int, typer.Option(help="Number of nodes.")],
    cards_per_node: Annotated[int, typer.Option(help="Cards per node.")],
    zone: Annotated[SecurityZone, typer.Option(help="Security zone.")] = SecurityZone.PUBLIC,
) -> None:
    """Add a pool of identical accelerators to a site."""
    body = body_of(
        site_id=site_id,
        code=code,
        name=name,
        accelerator=accelerator,
        nodes=nodes,
        cards_per_node=cards_per_node,
        security_zone=zone,
    )
    present(ctx, call(ctx, "POST", "/pools", body=body), POOL_COLUMNS)


@pools_app.command("update")
def pools_update(
    ctx: typer.Context,
    pool_id: IdArg,
    name: Name = None,
    nodes: Annotated[int | None, typer.Option(help="Number of nodes.")] = None,
    zone: Annotated[SecurityZone | None, typer.Option(help="Security zone.")] = None,
) -> None:
    """Change a pool (name, node count; zone by the regulator)."""
    body = body_of(name=name, nodes=nodes, security_zone=zone)
    present(ctx, call(ctx, "PATCH", f"/pools/{pool_id}", body=body), POOL_COLUMNS)


add_show_and_retire(pools_app, "/pools", POOL_COLUMNS, "pool")

PoolArg = Annotated[int, typer.Argument(metavar="POOL_ID", help="The pool's id.")]
TIME_HELP = "Time; a date or time without zone is read in Asia/Shanghai."
TimeOpt = Annotated[datetime | None, typer.Option(formats=TIME_FORMATS, help=TIME_HELP)]


def _aware(value: datetime | None) -> str | None:
    from suanwang.timeutil import SHANGHAI

    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)).isoformat()


@prices_app.command("list")
def prices_list(
    ctx: typer.Context,
    pool_id: PoolArg,
    limit: Limit = 50,
    offset: Offset = 0,
    include_retired: Retired = False,
) -> None:
    """Price history of a pool."""
    params = paging(limit, offset, None, include_retired)
    present(ctx, call(ctx, "GET", f"/pools/{pool_id}/prices", params=params), PRICE_COLUMNS)


@prices_app.command("add")
def prices_add(
    ctx: typer.Context,
    pool_id: PoolArg,
    fen_per_card_hour: Annotated[
        int,
        typer.Option("--fen-per-card-hour", help="Price in integer fen per card-hour (1 yuan = 100 fen)."),
    ],
    effective_from: Annotated[datetime, typer.Option("--from", formats=TIME_FORMATS, help=TIME_HELP)],
    effective_until: Annotated[
        datetime | None, typer.Option("--until", formats=TIME_FORMATS, help=TIME_HELP)
    ] = None,
) -> None:
    """Add a rate card; an open-ended earlier card ends where this one starts."""
    body = body_of(
        price_fen_per_card_hour=fen_per_card_hour,
        effective_from=_aware(effective_from),
        effective_until=_aware(effective_until),
    )
    present(ctx, call(ctx, "POST", f"/pools/{pool_id}/prices", body=body), PRICE_COLUMNS)


@prices_app.command("at")
def prices_at(ctx: typer.Context, pool_id: PoolArg, at: TimeOpt = None) -> None:
    """The price in force at a time (default: now)."""
    columns: list[Column] = [
        ("rate_card_id", "rate card", None),
        ("price_fen_per_card_hour", "per card-hour", fen),
        ("at", "at", shanghai_time),
    ]
    present(ctx, call(ctx, "GET", f"/pools/{pool_id}/price", params={"at": _aware(at)}), columns)


@prices_app.command("retire")
def prices_retire(
    ctx: typer.Context,
    pool_id: PoolArg,
    card_id: Annotated[int, typer.Argument(metavar="CARD_ID", help="The rate card's id.")],
) -> None:
    """Withdraw a rate card that is not yet in force."""
    present(ctx, call(ctx, "POST", f"/pools/{pool_id}/prices/{card_id}/retire"), PRICE_COLUMNS)


# --- organisations, users, tokens ----------------------------------------------------------------

orgs_app = typer.Typer(
    help="Tenant organisations (enterprises, government units, research, universities).", no_args_is_help=True
)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

ORG_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("credit_code", "credit code", None),
    ("name", "name", None),
    ("kind", "kind", None),
    ("locality_code", "locality", None),
    ("is_local", "local", yes_no),
    ("is_sme", "SME", yes_no),
]
USER_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("name", "name", None),
    ("role", "role", None),
    ("org_id", "org", None),
    ("provider_id", "provider", None),
]
TOKEN_COLUMNS: list[Column] = [
    ("id", "id", None),
    ("name", "name", None),
    ("user_id", "user", None),
    ("prefix", "prefix", None),
    ("created_at", "created", shanghai_time),
    ("expires_at", "expires", shanghai_time),
    ("revoked_at", "revoked", shanghai_time),
]


@orgs_app.command("list")
def orgs_list(
    ctx: typer.Context,
    kind: Annotated[OrgKind | None, typer.Option(help="Only this kind.")] = None,
    sme: Annotated[bool | None, typer.Option("--sme/--not-sme", help="Only SMEs / only non-SMEs.")] = None,
    q: Annotated[str | None, typer.Option(help="Search names or an exact credit code.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """List organisations you can see."""
    params = {"kind": kind, "is_sme": sme, "q": q} | paging(limit, offset, sort, include_retired)
    present(ctx, call(ctx, "GET", "/orgs", params=params), ORG_COLUMNS)


@orgs_app.command("create")
def orgs_create(
    ctx: typer.Context,
    credit_code: Annotated[str, typer.Option(help="18-character unified social credit code.")],
    name: Annotated[str, typer.Option(help="Name (Chinese or the official name).")],
    kind: Annotated[OrgKind, typer.Option(help="Kind of organisation.")],
    name_en: NameEn = None,
    sme: Annotated[bool, typer.Option("--sme/--not-sme", help="Small or medium enterprise.")] = False,
    locality_code: Annotated[
        str | None, typer.Option(help="GB/T 2260 division code (default: from the credit code).")
    ] = None,
    locality_name: Annotated[str | None, typer.Option(help="Locality name.")] = None,
    email: EmailOpt = None,
    affiliation_group: Annotated[
        str | None,
        typer.Option(
            "--affiliation-group",
            help="Group of affiliated companies; vouchers never subsidise trades within one group.",
        ),
    ] = None,
) -> None:
    """Register an organisation (regulator)."""
    body = body_of(
        credit_code=credit_code,
        name=name,
        kind=kind,
        name_en=name_en,
        is_sme=sme,
        locality_code=locality_code,
        locality_name=locality_name,
        contact_email=email,
        affiliation_group=affiliation_group,
    )
    present(ctx, call(ctx, "POST", "/orgs", body=body), ORG_COLUMNS)


@orgs_app.command("update")
def orgs_update(
    ctx: typer.Context,
    org_id: IdArg,
    name: Name = None,
    name_en: NameEn = None,
    kind: Annotated[OrgKind | None, typer.Option(help="Kind of organisation.")] = None,
    sme: Annotated[bool | None, typer.Option("--sme/--not-sme", help="Small or medium enterprise.")] = None,
    locality_code: Annotated[str | None, typer.Option(help="GB/T 2260 division code.")] = None,
    locality_name: Annotated[str | None, typer.Option(help="Locality name.")] = None,
    email: EmailOpt = None,
    affiliation_group: Annotated[
        str | None,
        typer.Option(
            "--affiliation-group",
            help="Group of affiliated companies (vouchers never subsidise trades within one group); "
            "'' clears it.",
        ),
    ] = None,
) -> None:
    """Change an organisation."""
    body = body_of(
        name=name,
        name_en=name_en,
        kind=kind,
        is_sme=sme,
        locality_code=locality_code,
        locality_name=locality_name,
        contact_email=email,
    )
    if affiliation_group is not None:
        body["affiliation_group"] = affiliation_group.strip() or None  # '' clears it
    present(ctx, call(ctx, "PATCH", f"/orgs/{org_id}", body=body), ORG_COLUMNS)


add_show_and_retire(orgs_app, "/orgs", ORG_COLUMNS, "organisation")


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    role: Annotated[Role | None, typer.Option(help="Only this role.")] = None,
    org_id: Annotated[int | None, typer.Option(help="Only this organisation.")] = None,
    provider_id: ProviderFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
    sort: Sort = None,
    include_retired: Retired = False,
) -> None:
    """List users you can see."""
    params = {"role": role, "org_id": org_id, "provider_id": provider_id} | paging(
        limit, offset, sort, include_retired
    )
    present(ctx, call(ctx, "GET", "/users", params=params), USER_COLUMNS)


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Login name: lower-case letters, digits, '.', '_' or '-'.")],
    role: Annotated[Role, typer.Option(help="Role.")],
    org_id: Annotated[int | None, typer.Option(help="Organisation (tenant roles).")] = None,
    provider_id: Annotated[int | None, typer.Option(help="Provider (operator role).")] = None,
    display_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    email: EmailOpt = None,
) -> None:
    """Create a user."""
    body = body_of(
        name=name, role=role, org_id=org_id, provider_id=provider_id, display_name=display_name, email=email
    )
    present(ctx, call(ctx, "POST", "/users", body=body), USER_COLUMNS)


@users_app.command("update")
def users_update(
    ctx: typer.Context,
    user_id: IdArg,
    role: Annotated[Role | None, typer.Option(help="Role.")] = None,
    display_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    email: EmailOpt = None,
) -> None:
    """Change a user."""
    body = body_of(role=role, display_name=display_name, email=email)
    present(ctx, call(ctx, "PATCH", f"/users/{user_id}", body=body), USER_COLUMNS)


add_show_and_retire(users_app, "/users", USER_COLUMNS, "user")


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    user_id: Annotated[int | None, typer.Option(help="Only this user's tokens.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> None:
    """List tokens (never their secrets)."""
    params = {"user_id": user_id} | paging(limit, offset, None)
    present(ctx, call(ctx, "GET", "/tokens", params=params), TOKEN_COLUMNS)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for.")],
    user_id: Annotated[int | None, typer.Option(help="Whose token (default: yours).")] = None,
    expires: TimeOpt = None,
) -> None:
    """Create a token; its secret is printed once."""
    data = call(ctx, "POST", "/tokens", body=body_of(name=name, user_id=user_id, expires_at=_aware(expires)))
    present(ctx, data, [*TOKEN_COLUMNS, ("token", "token", None)])


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: IdArg) -> None:
    """Revoke a token."""
    present(ctx, call(ctx, "POST", f"/tokens/{token_id}/revoke"), TOKEN_COLUMNS)


@app.command()
def whoami(ctx: typer.Context) -> None:
    """Who the token belongs to."""
    present(
        ctx,
        call(ctx, "GET", "/me"),
        [
            ("user_id", "id", None),
            ("name", "name", None),
            ("role", "role", None),
            ("org_id", "org", None),
            ("provider_id", "provider", None),
        ],
    )


# --- entry point ---------------------------------------------------------------------------------


def lang_from_argv(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return normalize_lang(argv[i + 1])
        if arg.startswith("--lang="):
            return normalize_lang(arg.split("=", 1)[1])
    return normalize_lang(os.environ.get("SUANWANG_LANG"))


def build_command(lang: str) -> Any:
    """The click command tree, with help in the chosen language."""
    from suanwang.cli.help import translate

    command = typer.main.get_command(app)
    if lang == "zh":
        translate(command)
    return command


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: a user error prints one line and exits 2; an unreachable server exits 1."""
    from suanwang.i18n import t

    args = list(sys.argv[1:] if argv is None else argv)
    lang = lang_from_argv(args)
    command = build_command(lang)
    try:
        result = command.main(args=args, prog_name="suanwang", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return 1
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was asked for by giving nothing
            output.console.print(exc.format_message(), highlight=False, markup=False)
            return 0
        context = getattr(exc, "ctx", None)
        path = context.command_path if context is not None else "suanwang"
        hint = t("cli.see-help", lang, command=f"{path} --help")
        output.err_console.print(
            f"error: {exc.format_message()} ({hint})", highlight=False, markup=False, soft_wrap=True
        )
        return 2
    except ApiError as exc:
        output.err_console.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
        return 2
    except ConnectionFailed as exc:
        output.err_console.print(
            f"error: {t('cli.unreachable', lang, detail=str(exc))}", highlight=False, markup=False
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
