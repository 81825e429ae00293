"""The web pages without a browser: signing in, CSRF, what each role may see, lists (paging, sorting,
filters, CSV), the job form and its quote, errors that say what to do, the language and a path prefix.
The real-browser tests are in tests/browser/."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import Engine, text

from suanwang.config import Settings
from suanwang.settlement.statements import Month
from suanwang.timeutil import utcnow
from tests import jobs_world
from tests.jobs_world import ExecWorld, state_is
from tests.web_support import Visitor, table_ids

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def jobs_in(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())


# --- signing in -------------------------------------------------------------------------------------


def test_a_page_sends_a_visitor_to_log_in_and_back(app: Any, ew: ExecWorld) -> None:
    visitor = Visitor(app)
    response = visitor.get("/jobs?state=queued", expect=303)
    assert response.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Dqueued"
    signed_in = visitor.login(ew.tenant.token, next_path="/jobs?state=queued")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/jobs?state=queued"
    cookie = signed_in.headers["set-cookie"]
    assert "sw_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert visitor.get("/jobs?state=queued").status_code == 200


def test_each_role_lands_on_its_home(app: Any, ew: ExecWorld) -> None:
    for caller, home in ((ew.regulator, "/region"), (ew.tenant, "/tenant"), (ew.operator, "/provider")):
        response = Visitor(app).login(caller.token)
        assert response.headers["location"] == home
        assert Visitor(app, caller.token).get("/", expect=303).headers["location"] == "/home"


def test_a_bad_token_is_refused_in_words_and_sets_no_session(app: Any, ew: ExecWorld) -> None:
    visitor = Visitor(app)
    response = visitor.login("sw_not_a_real_token")
    assert response.status_code == 401 and "That token is not valid" in response.text
    assert "sw_session" not in visitor.client.cookies
    chinese = Visitor(app, lang="zh-CN").login("sw_not_a_real_token")
    assert "令牌无效" in chinese.text


def test_login_without_the_forms_csrf_cookie_is_refused(app: Any, ew: ExecWorld) -> None:
    visitor = Visitor(app)
    visitor.get("/login")
    response = visitor.post("/login", {"token": ew.tenant.token, "csrf": "forged", "next": "/"})
    assert response.status_code == 403 and "sw_session" not in visitor.client.cookies


def test_login_never_redirects_off_the_site(app: Any, ew: ExecWorld) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = Visitor(app).login(ew.tenant.token, next_path=target)
        assert response.headers["location"] == "/tenant", target


def test_a_revoked_token_ends_the_web_session(app: Any, ew: ExecWorld) -> None:
    visitor = Visitor(app, ew.tenant.token)
    visitor.get("/tenant")
    me = ew.tenant.get("/me")
    tokens = ew.regulator.get("/tokens", params={"user_id": me["user_id"]})["items"]
    for token in tokens:
        ew.regulator.post(f"/tokens/{token['id']}/revoke", expect=200)
    response = visitor.get("/tenant", expect=303)
    assert response.headers["location"].startswith("/login?next=")
    assert 'sw_session=""' in response.headers["set-cookie"]  # the stale cookie is cleared


def test_logout_needs_the_pages_csrf_value(app: Any, ew: ExecWorld) -> None:
    visitor = Visitor(app, ew.tenant.token)
    refused = visitor.post("/logout", {"csrf": "forged"})
    assert refused.status_code == 403 and "out of date" in refused.text
    assert visitor.get("/tenant").status_code == 200
    done = visitor.post("/logout", {"csrf": visitor.csrf("/tenant")})
    assert done.status_code == 303
    assert visitor.get("/tenant", expect=303).headers["location"].startswith("/login")


# --- what each role sees --------------------------------------------------------------------------


def test_tenants_see_only_their_own_jobs(app: Any, ew: ExecWorld) -> None:
    mine = [ew.submit()["id"] for _ in range(2)]
    theirs = ew.submit(ew.other)["id"]
    tenant = Visitor(app, ew.tenant.token)
    assert sorted(table_ids(tenant.get("/jobs").text)) == sorted(mine)
    assert tenant.get(f"/jobs/{mine[0]}").status_code == 200
    hidden = tenant.get(f"/jobs/{theirs}", expect=404)
    assert "text/html" in hidden.headers["content-type"]
    regulator = Visitor(app, ew.regulator.token)
    assert sorted(table_ids(regulator.get("/jobs").text)) == sorted([*mine, theirs])


def test_pages_of_other_roles_are_refused(app: Any, ew: ExecWorld) -> None:
    tenant = Visitor(app, ew.tenant.token)
    month = str(Month.of(utcnow()))
    for path in ("/region", "/provider", "/statements", f"/statements/{month}", "/registry/projects"):
        assert tenant.get(path, expect=403).status_code == 403, path
    operator = Visitor(app, ew.operator.token)
    for path in ("/region", "/tenant", "/invoices", f"/invoices/{month}"):
        assert operator.get(path, expect=403).status_code == 403, path
    assert Visitor(app, ew.regulator.token).get("/region").status_code == 200


def test_the_provider_console_shows_its_own_pools_only(app: Any, ew: ExecWorld) -> None:
    page = Visitor(app, ew.operator.token).get("/provider").text
    assert ew.local_pool["code"] in page
    assert ew.sim_pool["code"] not in page and ew.gov_pool["code"] not in page


def test_the_tenant_console_shows_wallet_grants_and_recent_jobs(app: Any, ew: ExecWorld) -> None:
    job = ew.submit(name="nightly-eval")
    page = Visitor(app, ew.tenant.token).get("/tenant").text
    assert "Wallet balance" in page and "nightly-eval" in page and f"/jobs/{job['id']}" in page
    assert Visitor(app, ew.other.token).get("/tenant").text.count("nightly-eval") == 0


# --- lists ----------------------------------------------------------------------------------------


def test_lists_page_sort_and_filter(app: Any, ew: ExecWorld) -> None:
    ids = [ew.submit(cards=i % 3)["id"] for i in range(12)]
    regulator = Visitor(app, ew.regulator.token)
    first = regulator.get("/jobs?size=10").text
    assert table_ids(first) == sorted(ids, reverse=True)[:10]
    assert "1–10 of 12" in first and 'rel="next"' in first
    second = regulator.get("/jobs?size=10&page=2").text
    assert table_ids(second) == sorted(ids, reverse=True)[10:]
    ascending = regulator.get("/jobs?sort=id&size=50").text
    assert table_ids(ascending) == sorted(ids)
    assert 'data-sort="id"' in ascending and "sort=-id" in ascending  # the head's link flips the order
    cancelled = ew.tenant.post(f"/jobs/{ids[0]}/cancel", expect=200)
    assert cancelled["state"] == "cancelled"
    filtered = regulator.get("/jobs?state=cancelled").text
    assert table_ids(filtered) == [ids[0]]


def test_a_bad_filter_says_what_is_allowed(app: Any, ew: ExecWorld) -> None:
    response = Visitor(app, ew.regulator.token).get("/jobs?state=sleeping", expect=422)
    assert (
        "sleeping" in response.text and "is not a valid state" in response.text and "queued" in response.text
    )
    assert "Clear the filters" in response.text


def test_an_empty_list_says_what_to_do(app: Any, ew: ExecWorld) -> None:
    page = Visitor(app, ew.tenant.token).get("/jobs").text
    assert "No jobs yet" in page and "suanwang jobs submit" in page
    filtered = Visitor(app, ew.tenant.token).get("/jobs?state=running").text
    assert "Nothing matches these filters" in filtered


def test_csv_export_has_every_row_the_filter_selects(app: Any, ew: ExecWorld) -> None:
    ids = [ew.submit(name=f"job-{i}")["id"] for i in range(30)]
    response = Visitor(app, ew.tenant.token, lang="zh-CN").get("/jobs?size=10&format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="jobs.csv"' in response.headers["content-disposition"]
    text_body = response.content.decode("utf-8")
    assert text_body.startswith("\ufeff")  # spreadsheet programs then read the Chinese as UTF-8
    rows = list(csv.reader(io.StringIO(text_body.lstrip("\ufeff"))))
    assert rows[0][:3] == ["编号", "名称", "状态"]
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(ids)  # all 30, not the page of 10
    other = Visitor(app, ew.other.token).get("/jobs?format=csv").content.decode("utf-8")
    assert len(list(csv.reader(io.StringIO(other.lstrip("\ufeff"))))) == 1  # only the header


# --- the job form ---------------------------------------------------------------------------------


def form(visitor: Visitor, **fields: str) -> dict[str, str]:
    base = {
        "csrf": visitor.csrf("/jobs/new"),
        "nonce": "n-" + fields.pop("nonce", "1"),
        "command": "sh -c 'echo hi'",
    }
    return base | {"cards": "0", "minutes": "1"} | fields


def test_the_quote_ranks_pools_for_what_the_form_asks(app: Any, ew: ExecWorld) -> None:
    tenant = Visitor(app, ew.tenant.token)
    quote = tenant.post("/jobs/quote", form(tenant, cards="1", accelerator="A800"), expect=200).text
    assert 'id="quote-table"' in quote and ew.sim_pool["code"] in quote
    assert ew.local_pool["code"] not in quote  # an L40S pool does not have A800 cards
    nothing = tenant.post("/jobs/quote", form(tenant, cards="1", accelerator="H800"), expect=200).text
    assert 'id="quote-none"' in nothing
    wrong = tenant.post("/jobs/quote", form(tenant, cards="two"), expect=200).text
    assert "must be a whole number" in wrong


def test_submitting_the_form_makes_one_job_even_if_sent_twice(app: Any, ew: ExecWorld) -> None:
    tenant = Visitor(app, ew.tenant.token)
    fields = form(tenant, name="from-the-form", nonce="same")
    first = tenant.post("/jobs/new", fields, expect=303)
    again = tenant.post("/jobs/new", fields, expect=303)
    assert first.headers["location"] == again.headers["location"]
    job_id = int(first.headers["location"].rsplit("/", 1)[1])
    assert ew.tenant.get(f"/jobs/{job_id}")["name"] == "from-the-form"
    assert jobs_in(ew.engine) == 1


def test_a_wrong_form_changes_nothing_and_says_why(app: Any, ew: ExecWorld) -> None:
    tenant = Visitor(app, ew.tenant.token)
    for fields, words in (
        ({"command": "  "}, "the command is empty"),
        ({"command": "sh -c 'unclosed"}, "cannot be read"),
        ({"max_price": "cheap"}, "is not a price in yuan"),
        ({"cards": "-1"}, "must be a whole number"),
    ):
        response = tenant.post("/jobs/new", form(tenant, **fields), expect=422)
        assert words in response.text, words
    forged = tenant.post("/jobs/new", form(tenant) | {"csrf": "forged"}, expect=403)
    assert "out of date" in forged.text
    assert jobs_in(ew.engine) == 0


def test_only_tenants_get_the_form(app: Any, ew: ExecWorld) -> None:
    response = Visitor(app, ew.regulator.token).get("/jobs/new", expect=403)
    assert "Only a tenant organisation" in response.text


def test_cancel_from_the_job_page(app: Any, ew: ExecWorld) -> None:
    job = ew.submit()
    tenant = Visitor(app, ew.tenant.token)
    page = tenant.get(f"/jobs/{job['id']}").text
    assert 'id="cancel"' in page
    assert tenant.post(f"/jobs/{job['id']}/cancel", {"csrf": "forged"}).status_code == 403
    assert ew.tenant.get(f"/jobs/{job['id']}")["state"] != "cancelled"
    tenant.post(f"/jobs/{job['id']}/cancel", {"csrf": tenant.csrf()}, expect=303)
    assert ew.tenant.get(f"/jobs/{job['id']}")["state"] == "cancelled"


# --- language, prefix, documents -------------------------------------------------------------------


def test_the_language_follows_the_browser_and_the_switch_remembers(app: Any, ew: ExecWorld) -> None:
    visitor = Visitor(app, ew.tenant.token, lang="zh-CN")
    assert '<html lang="zh-CN">' in visitor.get("/jobs").text and "作业" in visitor.get("/jobs").text
    switched = visitor.get("/lang?to=en&next=/jobs", expect=303)
    assert switched.headers["location"] == "/jobs"
    page = visitor.get("/jobs").text
    assert '<html lang="en">' in page and "No jobs yet" in page


def test_pages_work_behind_a_path_prefix(app: Any, ew: ExecWorld) -> None:
    """Links, redirects and cookies carry the prefix (the browser test serves it through uvicorn)."""
    visitor = Visitor(app, root_path="/suanwang")
    response = visitor.get("/jobs", expect=303)
    assert response.headers["location"] == "/suanwang/login?next=%2Fsuanwang%2Fjobs"
    login = visitor.get("/login")
    assert 'action="/suanwang/login"' in login.text
    # The test client's URLs lack the prefix, so its cookie jar would not send /suanwang/ cookies back.
    visitor.client.cookies.set("sw_login_csrf", login.cookies["sw_login_csrf"])
    data = {"token": ew.tenant.token, "csrf": login.cookies["sw_login_csrf"], "next": "/suanwang/"}
    signed_in = visitor.client.post("/login", data=data)
    assert signed_in.headers["location"] == "/suanwang/tenant"
    assert "Path=/suanwang/" in signed_in.headers["set-cookie"]
    visitor.client.cookies.set("sw_session", ew.tenant.token)
    page = visitor.get("/tenant").text
    assert 'href="/suanwang/jobs"' in page and 'href="/suanwang/static/dashboard.css' in page
    assert "/suanwang/lang?to=zh&amp;next=%2Fsuanwang%2Ftenant" in page


def test_invoice_documents_come_in_every_format(app: Any, ew: ExecWorld) -> None:
    tenant = Visitor(app, ew.tenant.token)
    month = str(Month.of(utcnow()))  # jobs_world runs the API on real time
    assert f'href="/invoices/{month}?format=pdf"' in tenant.get("/invoices").text
    assert tenant.get(f"/invoices/{month}?format=pdf").headers["content-type"] == "application/pdf"
    assert "<table" in tenant.get(f"/invoices/{month}?format=html").text
    bad = tenant.get("/invoices/pick?month=June", expect=422)
    assert "June" in bad.text


def test_the_api_still_answers_problem_json_to_programs(app: Any, ew: ExecWorld) -> None:
    response = ew.tenant.call("GET", "/jobs/999999", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


# --- the region overview --------------------------------------------------------------------------


def charts_on(html: str) -> dict[str, dict[str, Any]]:
    """Every chart spec a page carries, by name (what the page script hands to ECharts)."""
    found = re.findall(r'<script type="application/json" id="chart-([\w-]+)">(.*?)</script>', html, re.S)
    return {name: json.loads(body) for name, body in found}


def test_the_region_overview_charts_what_ran_and_drills_down(app: Any, ew: ExecWorld) -> None:
    job = ew.submit(cards=1, command=["sh", "-c", "sleep 1.2"])
    ew.run_until(job["id"], state_is("succeeded"))
    waiting = ew.submit(cards=1)  # no controller cycle follows: it waits
    page = Visitor(app, ew.regulator.token).get("/region").text
    charts = charts_on(page)
    assert set(charts) >= {
        "capacity-provider",
        "capacity-region",
        "capacity-accelerator",
        "capacity-origin",
        "local-share",
        "utilization",
        "queue-wait",
        "queue-now",
        "chain-map",
        "project-pipeline",
    }
    providers = charts["capacity-provider"]
    assert [s["name"] for s in providers["series"]] == [
        "Planned / under construction",
        "Built",
        "Operational",
    ]
    provider_ids = {p["id"] for p in ew.regulator.get("/providers")["items"]}
    assert set(providers["drill"]["keys"]) == provider_ids  # a click opens that provider's pools
    share = charts["local-share"]
    by_class = {s["name"]: sum(v for v in s["data"] if v) for s in share["series"]}
    assert by_class["Local SMEs"] > 0 and by_class["Outside customers"] == 0  # the tenant is a local SME
    queued = charts["queue-now"]
    assert queued["series"][0]["data"] == [1, 0, 0]  # one local SME job waits, nobody else's
    assert ew.regulator.get(f"/jobs/{waiting['id']}")["state"] in ("queued", "submitted")
    assert 'data-chart="chart-chain-map"' in page and "echarts.min.js" in page


def test_the_origin_pie_drills_to_domestic_or_imported_pools(app: Any, ew: ExecWorld) -> None:
    """The gov pool's ASCEND-910B is domestic; the L40S and A800 pools are imported (the catalogue)."""
    charts = charts_on(Visitor(app, ew.regulator.token).get("/region").text)
    origin = charts["capacity-origin"]
    names = [s["name"] for s in origin["series"][0]["data"]]
    assert origin["drill"]["keys"] == ["false", "true"] and names == ["Imported", "Domestic"]
    domestic = Visitor(app, ew.regulator.token).get("/pools?domestic=true").text
    assert table_ids(domestic) == [ew.gov_pool["id"]]
    imported = Visitor(app, ew.regulator.token).get("/pools?domestic=false").text
    assert sorted(table_ids(imported)) == sorted([ew.local_pool["id"], ew.sim_pool["id"]])
    api = ew.regulator.get("/pools", params={"domestic": "true"})
    assert [p["id"] for p in api["items"]] == [ew.gov_pool["id"]]
