"""Secrets and browser defences: security headers on pages and API answers, tokens stored only as
hashes and never written to the log, session cookies HTTP-only (and Secure over HTTPS)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from suanwang.api.security import PAGE_POLICY
from tests import factories
from tests.conftest import ADMIN_TOKEN
from tests.web_support import Visitor

pytestmark = pytest.mark.db


def directives(policy: str) -> dict[str, set[str]]:
    found = {}
    for part in policy.split(";"):
        name, *values = part.split()
        found[name] = set(values)
    return found


def test_api_answers_are_data_no_browser_renders_frames_or_caches(regulator: Any) -> None:
    for response in (regulator.call("GET", "/me"), regulator.call("GET", "/jobs/987654")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cache-control"] == "no-store"
        policy = directives(response.headers["content-security-policy"])
        assert policy["default-src"] == {"'none'"} and policy["frame-ancestors"] == {"'none'"}
    assert "strict-transport-security" not in response.headers  # plain HTTP: HSTS would mean nothing


def test_pages_run_only_the_sites_own_scripts(app: Any, regulator: Any) -> None:
    visitor = Visitor(app, ADMIN_TOKEN)
    for path in ("/", "/login", "/region", "/jobs", "/pools"):
        response = visitor.client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        policy = directives(response.headers["content-security-policy"])
        assert policy["script-src"] == {"'self'"}, path  # no inline script, no eval, nothing from elsewhere
        assert policy["frame-ancestors"] == {"'none'"} and policy["object-src"] == {"'none'"}
        assert response.headers["x-frame-options"] == "DENY"
        # So every script of the page must be a file of the site; a JSON data block is not run.
        for tag in re.findall(r"<script\b[^>]*>", response.text):
            assert 'src="/static/' in tag or 'type="application/json"' in tag, (path, tag)
        assert "<style" not in response.text and " on" + "click=" not in response.text
    static = visitor.client.get("/static/dashboard.js")
    assert static.status_code == 200 and static.headers["x-content-type-options"] == "nosniff"


def test_the_api_documentation_pages_keep_working(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers


def test_over_https_the_browser_is_told_to_stay_there_and_cookies_are_secure(
    app: Any, regulator: Any
) -> None:
    secure = TestClient(app, base_url="https://testserver", follow_redirects=False)
    answer = secure.get("/api/v1/me", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    form = secure.get("/login")
    login = secure.post(
        "/login", data={"token": ADMIN_TOKEN, "csrf": secure.cookies["sw_login_csrf"], "next": "/"}
    )
    cookie = next(c for c in login.headers.get_list("set-cookie") if c.startswith("sw_session="))
    assert all(flag in cookie.lower() for flag in ("httponly", "secure", "samesite=lax"))
    assert "secure" in form.headers["set-cookie"].lower()
    plain = Visitor(app).login(ADMIN_TOKEN)
    cookie = next(c for c in plain.headers.get_list("set-cookie") if c.startswith("sw_session="))
    assert "httponly" in cookie.lower() and "secure" not in cookie.lower()  # http://localhost demo


def test_tokens_are_stored_hashed_and_never_logged(
    regulator: Any, app: Any, clean_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    org = factories.org(regulator)
    user = factories.user(regulator, role="tenant_admin", org_id=org["id"])
    secret = factories.token_for(regulator, user["id"])
    tenant = regulator.as_(secret)
    tenant.get("/me")
    tenant.call("GET", "/orgs/987654")  # a 404 is logged at INFO or below, with its request
    regulator.as_(secret + "x").call("GET", "/me", expect=401)  # a wrong token is not echoed either
    Visitor(app).login(secret)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records and secret not in logged and secret[:16] not in logged
    with clean_engine.connect() as connection:
        for row in connection.execute(text("SELECT * FROM api_tokens")):
            assert not any(secret in str(value) for value in row)


def test_the_page_policy_has_no_escape_hatch_for_scripts() -> None:
    policy = directives(PAGE_POLICY)
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & policy["script-src"]
    assert policy["base-uri"] == {"'none'"} and policy["form-action"] == {"'self'"}
