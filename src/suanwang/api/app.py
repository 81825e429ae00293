"""The FastAPI application: routers of every slice under /api/v1, problem+json errors, the home page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from suanwang import __version__
from suanwang.api import limits, problems
from suanwang.api.security import SecurityHeaders
from suanwang.config import Settings, get_settings
from suanwang.db.session import engine_for, session_factory, session_scope, upgrade
from suanwang.timeutil import utcnow

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def bootstrap(settings: Settings, engine: Engine) -> None:
    """Start-up work: migrate the embedded database; honour SUANWANG_ADMIN_TOKEN."""
    if settings.is_embedded:
        upgrade(settings.effective_database_url)
    if settings.admin_token:
        from suanwang.tenants import service as tenants

        with session_scope(engine) as session:
            tenants.ensure_regulator_token(
                session=session, secret=settings.admin_token, user_name="admin", now=utcnow()
            )


def start_controller(settings: Settings, engine: Engine) -> Callable[[], None]:
    """Run the controller loop in a thread of this server; returns what stops it."""
    import threading

    from suanwang.controller import Controller

    stop = threading.Event()
    thread = threading.Thread(
        target=Controller(settings, engine).run, args=(stop,), name="suanwang-controller", daemon=True
    )
    thread.start()

    def shutdown() -> None:
        stop.set()
        thread.join(timeout=30)

    return shutdown


class ServedUnder:
    """The path prefix a reverse proxy publishes the app under (SUANWANG_ROOT_PATH), for a server that
    was not told it (`uvicorn --root-path` tells it too): links, redirects and cookies then carry it."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            # As uvicorn --root-path does: the path carries the prefix too, so routing (which takes
            # root_path off the path) and mounts like the static files see the same thing either way.
            scope = dict(scope, root_path=self.prefix, path=self.prefix + scope["path"])
            if scope.get("raw_path") is not None:
                scope["raw_path"] = self.prefix.encode() + scope["raw_path"]
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or engine_for(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bootstrap(settings, engine)
        stop = start_controller(settings, engine) if settings.serve_controller else None
        try:
            yield
        finally:
            if stop is not None:
                stop()
            app.state.intake.close()

    app = FastAPI(
        title="suanwang 算网",
        version=__version__,
        description="A regional compute-power network: supply, scheduling, use and settlement.",
        lifespan=lifespan,
    )
    from suanwang.metering.service import MAX_BATCH_BYTES
    from suanwang.nodes.api import MAX_LOG_CHUNK
    from suanwang.registry.tabular import MAX_BYTES as MAX_IMPORT_BYTES

    # Innermost first: the limits' own answers also get the security headers.
    larger = [  # routes that read more on purpose check their own limit first; this one backs it up
        (API_PREFIX + "/metering/events", MAX_BATCH_BYTES + 64 * 1024),
        (API_PREFIX + "/agent/launches/", MAX_LOG_CHUNK + 64 * 1024),
        (API_PREFIX + "/registry/import/", MAX_IMPORT_BYTES + limits.MIB),
    ]
    from suanwang.jobs.submit_path import SubmitFastPath

    app.add_middleware(SubmitFastPath, path=API_PREFIX + "/jobs")  # the hot route, inside the limits
    app.add_middleware(
        limits.BodyLimit, default=settings.max_body_bytes, larger=larger, answer=limits.problem_answer
    )
    if settings.rate_limit_per_s > 0:
        buckets = limits.TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
        app.add_middleware(limits.RateLimit, buckets=buckets, answer=limits.problem_answer)
    app.add_middleware(SecurityHeaders, api_prefix=API_PREFIX)
    if settings.root_path:  # outside SecurityHeaders: it sets the root_path that one reads
        app.add_middleware(ServedUnder, prefix=settings.root_path.rstrip("/"))
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    from suanwang.jobs.intake import SubmitIntake

    app.state.intake = SubmitIntake(
        app.state.session_factory, settings, settings.submit_batch, settings.submit_gather_ms / 1000
    )
    problems.install(app)

    from suanwang.audit.api import router as audit_router
    from suanwang.catalog.api import router as catalog_router
    from suanwang.jobs.api import router as jobs_router
    from suanwang.metering.api import router as metering_router
    from suanwang.nodes.api import router as nodes_router
    from suanwang.registry.api import router as registry_router
    from suanwang.registry.reports_api import router as registry_reports_router
    from suanwang.reports.api import router as region_reports_router
    from suanwang.settlement.api import router as money_router
    from suanwang.supply.api import router as supply_router
    from suanwang.tenants.api import router as tenants_router
    from suanwang.vouchers.api import router as vouchers_router
    from suanwang.vouchers.reports_api import router as voucher_reports_router
    from suanwang.web import errors as web_errors
    from suanwang.web.routes import ROUTERS as web_routers

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # A request is matched against the routes in this order: the busiest first (submissions, then the
    # node agents' calls). No two routers share a path, so the order changes nothing else.
    routers = (
        jobs_router,
        nodes_router,
        catalog_router,
        supply_router,
        tenants_router,
        metering_router,
        money_router,
        vouchers_router,
        voucher_reports_router,
        registry_router,
        registry_reports_router,
        region_reports_router,
        audit_router,
    )
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    for router in web_routers:
        app.include_router(router)
    web_errors.install(app)
    return app
