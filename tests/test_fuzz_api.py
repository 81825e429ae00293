"""Schemathesis against the OpenAPI document (a bounded, derandomized run, in CI): for every route,
requests generated from its declared parameters and bodies, valid and invalid, sent as the regulator
(who may call every route). No answer may be a server error, and every answer the document describes
must match it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import Engine

from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.registry import taxonomy
from suanwang.tenants import service as tenants
from suanwang.timeutil import utcnow
from tests.conftest import ADMIN_TOKEN, _truncate

pytestmark = pytest.mark.db
EXAMPLES = 8  # per route and mode: about 1,900 requests in all, a minute or so per database


def _routes() -> list[tuple[str, str]]:
    document = create_app(Settings(data_dir=tempfile.mkdtemp())).openapi()
    return [(method.upper(), path) for path, ops in document["paths"].items() for method in ops]


ROUTES = _routes()


@pytest.fixture(scope="module")
def api_schema(app: Any, engine: Engine) -> Iterator[Any]:
    _truncate(engine)  # one database for the module: generated writes pile up, as on a live server
    with session_scope(engine) as session:
        taxonomy.seed_shipped(session)
        tenants.ensure_regulator_token(session=session, secret=ADMIN_TOKEN, user_name="admin", now=utcnow())
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_server_error_and_answers_match_the_document(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @settings(
        max_examples=2 * EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases)
    def call(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    call()
