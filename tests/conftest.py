"""Fixtures: every DB-touching test runs on SQLite and, when SUANWANG_TEST_DATABASE_URL is set, PostgreSQL.

In CI the PostgreSQL URL is always set, and an unreachable server fails the run: never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, text

from suanwang.api.app import create_app
from suanwang.api.deps import get_now
from suanwang.audit.guard import add_guard, drop_guard
from suanwang.config import Settings
from suanwang.db.base import Base
from suanwang.db.session import engine_for, session_scope, upgrade
from suanwang.registry import taxonomy
from suanwang.tenants import service as tenants

# No per-example deadline: a timing threshold would fail on a loaded 2-core CI machine, not on a bug.
hypothesis_settings.register_profile("suanwang", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("suanwang")

# Fixtures of the real local Ray cluster (`ray_cluster`) and Slurm cluster (`slurm_cluster`), set up once
# per session by the tests that use them.
pytest_plugins = ["tests.ray_support", "tests.slurm_support"]

PG_URL = os.environ.get("SUANWANG_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
ADMIN_TOKEN = "sw_test_regulator_token_0123456789abcdef"
NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def _fresh_postgres(url: str) -> None:
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgresql":
        _fresh_postgres(PG_URL)  # fails loudly when PostgreSQL is configured but unreachable
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Engine:
    return engine_for(db_url)


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            drop_guard(conn)  # the audit trail refuses DELETE; TRUNCATE fires no row triggers
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
            add_guard(conn)


@pytest.fixture
def clean_engine(engine: Engine) -> Engine:
    """Empty tables, with the data a fresh migration ships (the industry chain's taxonomy)."""
    _truncate(engine)
    with session_scope(engine) as session:
        taxonomy.seed_shipped(session)
    return engine


@pytest.fixture(scope="session")
def settings(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The tests drive the controller themselves (one cycle at a time), so the app does not run one.
    return Settings(
        database_url=db_url,
        data_dir=tmp_path_factory.mktemp("data"),
        admin_token=None,
        serve_controller=False,
    )


@pytest.fixture(scope="session")
def app(settings: Settings, engine: Engine) -> Any:
    return create_app(settings, engine)


class Clock:
    """A pinned, movable clock for the API (overrides get_now)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app: Any) -> Iterator[Clock]:
    clock = Clock(NOW)
    app.dependency_overrides[get_now] = clock
    yield clock
    app.dependency_overrides.pop(get_now, None)


@dataclass
class Api:
    """A test client bound to one caller's token, returning parsed JSON and asserting status codes."""

    client: TestClient
    token: str | None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    def call(self, method: str, path: str, *, expect: int | None = None, **kwargs: Any) -> Any:
        headers = self.headers(kwargs.pop("headers", None))
        response = self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def get(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return self.call("GET", path, expect=expect, **kwargs).json()

    def post(self, path: str, json: Any = None, expect: int = 201, **kwargs: Any) -> Any:
        return self.call("POST", path, json=json, expect=expect, **kwargs).json()

    def patch(self, path: str, json: Any, expect: int = 200, **kwargs: Any) -> Any:
        return self.call("PATCH", path, json=json, expect=expect, **kwargs).json()

    def as_(self, token: str | None) -> Api:
        return Api(self.client, token)


@pytest.fixture
def client(app: Any, clean_engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def regulator(client: TestClient, clean_engine: Engine) -> Api:
    with session_scope(clean_engine) as session:
        tenants.ensure_regulator_token(session=session, secret=ADMIN_TOKEN, user_name="admin", now=NOW)
    return Api(client, ADMIN_TOKEN)


def pytest_report_header() -> str:
    return f"suanwang database backends: {', '.join(BACKENDS)}"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def world(regulator: Api) -> Any:
    """Two providers with a site and pool each, two tenant organisations, and a caller for every role."""
    from tests.helpers import build_world

    return build_world(regulator)


@pytest.fixture
def cli_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    """Run the `suanwang` CLI in-process with a fresh data dir; returns (exit code, stdout, stderr)."""
    from suanwang.cli import main as cli
    from suanwang.config import get_settings

    monkeypatch.setenv("SUANWANG_DATA_DIR", str(tmp_path))
    for name in ("SUANWANG_URL", "SUANWANG_TOKEN", "SUANWANG_LANG", "SUANWANG_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()

    def _run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield _run
    get_settings.cache_clear()
