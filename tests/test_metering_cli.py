"""`suanwang usage ingest FILE` and `suanwang usage list` through the in-process CLI (local mode on the
test database), signed in as the world's callers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.config import get_settings
from suanwang.timeutil import SHANGHAI
from tests.helpers import has_cjk
from tests.metering_support import ENDED, counts, event, insert_launches

pytestmark = pytest.mark.db


@pytest.fixture
def cli(world: Any, clean_engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, cli_run: Any) -> Any:
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return cli_run


@pytest.fixture
def names(world: Any, clean_engine: Engine) -> list[str]:
    return insert_launches(
        clean_engine,
        pool_id=world.pool1["id"],
        org_id=world.org_a["id"],
        user_id=world.users["admin_a"]["id"],
        count=3,
    )


def batch_file(tmp_path: Path, events: Any, name: str = "usage.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(events), encoding="utf-8")
    return str(path)


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err, err


def test_ingest_posts_the_file_and_prints_the_counts(cli, world, names, clean_engine, tmp_path):
    path = batch_file(tmp_path, [event(name) for name in names])
    code, out, err = cli("--token", world.op1.token, "usage", "ingest", path)
    assert code == 0, err
    assert out.strip() == "3 recorded, 0 duplicate, 0 already metered (3 events)."

    code, out, err = cli("--token", world.op1.token, "usage", "ingest", path)
    assert (code, out.strip()) == (0, "0 recorded, 3 duplicate, 0 already metered (3 events).")
    assert counts(clean_engine) == (3, 3)


def test_ingest_prints_the_apis_answer_with_json_and_speaks_chinese(cli, world, names, tmp_path):
    path = batch_file(tmp_path, [event(names[0], event_id="one")])
    code, out, err = cli("--token", world.op1.token, "--json", "usage", "ingest", path)
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["recorded"], answer["results"][0]["id"], answer["results"][0]["status"]) == (
        1,
        "one",
        "recorded",
    )
    code, out, err = cli("--token", world.op1.token, "--lang", "zh", "usage", "ingest", path)
    assert code == 0 and has_cjk(out), err


def test_ingest_of_a_bad_batch_is_one_line_and_stores_nothing(cli, world, names, clean_engine, tmp_path):
    path = batch_file(tmp_path, [event(names[0]), event("sw-nope-9")])
    code, _, err = cli("--token", world.op1.token, "usage", "ingest", path)
    assert_one_line_error(code, err, "1 of 2 events are invalid")
    assert "sw-nope-9" in err
    assert counts(clean_engine) == (0, 0)


def test_ingest_refuses_a_file_that_is_not_json_or_not_there(cli, world, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    code, _, err = cli("--token", world.op1.token, "usage", "ingest", str(broken))
    assert_one_line_error(code, err, "broken.json")
    code, _, err = cli("--token", world.op1.token, "usage", "ingest", str(tmp_path / "missing.json"))
    assert_one_line_error(code, err, "missing.json")


def test_tenants_cannot_ingest_from_the_cli(cli, world, names, tmp_path):
    path = batch_file(tmp_path, [event(names[0])])
    code, _, err = cli("--token", world.admin_a.token, "usage", "ingest", path)
    assert_one_line_error(code, err, "provider_operator")


def test_usage_list_filters_and_shows_a_table(cli, world, names, tmp_path):
    events = [
        event(name, ended_at=ENDED - timedelta(hours=i), started_at=ENDED - timedelta(hours=i + 1))
        for i, name in enumerate(names)
    ]
    assert cli("--token", world.op1.token, "usage", "ingest", batch_file(tmp_path, events))[0] == 0

    every = cli("--token", world.admin_a.token, "--json", "usage", "list")
    assert every[0] == 0, every[2]
    items = json.loads(every[1])["items"]
    assert len(items) == 3 and {item["org_id"] for item in items} == {world.org_a["id"]}

    job_id = items[0]["job_id"]
    one = json.loads(cli("--token", world.op1.token, "--json", "usage", "list", "--job-id", str(job_id))[1])
    assert [item["job_id"] for item in one["items"]] == [job_id]
    by_pool = json.loads(
        cli(
            "--json", "usage", "list", "--org-id", str(world.org_a["id"]), "--pool-id", str(world.pool1["id"])
        )[1]
    )
    assert by_pool["total"] == 3
    assert json.loads(cli("--json", "usage", "list", "--pool-id", str(world.pool2["id"]))[1])["total"] == 0

    # --from/--to without a zone are Asia/Shanghai: [ENDED-1h, ENDED) holds the second record only.
    start = (ENDED - timedelta(hours=1)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")
    end = ENDED.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")
    window = json.loads(cli("--json", "usage", "list", "--from", start, "--to", end)[1])
    assert [item["id"] for item in window["items"]] == [items[1]["id"]]

    code, out, err = cli("--token", world.op1.token, "usage", "list")
    assert code == 0, err
    assert "card-seconds" in out and "28,800" in out and "event" in out


def test_usage_list_refuses_an_empty_range(cli, world):
    code, _, err = cli("usage", "list", "--from", "2025-06-02", "--to", "2025-06-01")
    assert_one_line_error(code, err, "must be before")
