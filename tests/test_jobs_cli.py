"""`suanwang jobs` and `suanwang reservations` through the in-process CLI (local mode on the test
database): round trips in --json and as tables, one-line errors with exit code 2, Chinese help."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from suanwang.cli import main as cli
from suanwang.cli.client import Client
from suanwang.cli.jobs import duration_text, parse_duration, parse_time
from suanwang.config import Settings, get_settings
from suanwang.timeutil import SHANGHAI, utcnow
from tests import jobs_world
from tests.helpers import has_cjk
from tests.jobs_world import ExecWorld, state_is

pytestmark = pytest.mark.db


@dataclass
class CliWorld:
    ew: ExecWorld
    run: Any  # (*args) -> (exit code, stdout, stderr), signed in as the local regulator

    def as_(self, api: Any, *args: str) -> tuple[int, str, str]:
        """Run with the token of one of the world's callers."""
        return self.run("--token", api.token, *args)

    def json(self, api: Any | None, *args: str) -> Any:
        prefix = ("--token", api.token) if api is not None else ()
        code, out, err = self.run(*prefix, "--json", *args)
        assert code == 0, err
        return json.loads(out)

    def total_jobs(self) -> int:
        return int(self.json(self.ew.regulator, "jobs", "list")["total"])


@pytest.fixture
def cw(
    regulator: Any,
    clock: Any,
    settings: Settings,
    clean_engine: Engine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_run: Any,
) -> CliWorld:
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    get_settings.cache_clear()
    # The controller and the CLI share the data dir, so `jobs logs` finds what the local backend wrote.
    ew = jobs_world.build(regulator, clock, settings.model_copy(update={"data_dir": tmp_path}), clean_engine)
    return CliWorld(ew, cli_run)


def assert_one_line_error(code: int, err: str, needle: str | None = None) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    if needle is not None:
        assert needle in err, err


# --- pure helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("45s", 45),
        ("90m", 5400),
        ("2h", 7200),
        ("1d", 86_400),
        ("1h30m", 5400),
        ("2d12h", 216_000),
        (" 1H 30M ", 5400),
        ("3x", None),
        ("", None),
        ("h", None),
        ("1.5h", None),
        ("-5", None),
        ("30m1h", None),
    ],
)
def test_parse_duration(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


def test_parse_time_reads_zoneless_times_in_shanghai() -> None:
    assert parse_time("2025-06-01") == datetime(2025, 6, 1, tzinfo=SHANGHAI)
    assert parse_time("2025-06-01T18:00") == datetime(2025, 6, 1, 18, tzinfo=SHANGHAI)
    assert parse_time("2025-06-01T10:00:00Z") == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert parse_time("2025-06-01T18:00+08:00") == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert parse_time("tomorrow") is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, ""), (42, "42s"), (3600, "1h"), (5400, "1h 30m"), (90_061, "1d 1h 1m")]
)
def test_duration_text(seconds: int | None, text: str) -> None:
    assert duration_text(seconds) == text


class FlakyHttp:
    """An HTTP client whose first request is lost after the server got it; records the keys sent."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.keys.append(kwargs["headers"].get("Idempotency-Key"))
        if len(self.keys) == 1:
            raise httpx.ReadError("connection lost")
        return httpx.Response(201, json={"id": 1, "state": "queued"})


@pytest.mark.parametrize("given", [None, "my-key"])
def test_a_retry_inside_the_client_resends_the_same_idempotency_key(given: str | None) -> None:
    keys = []
    for _ in range(2):  # two runs of the command
        http = FlakyHttp()
        client = Client(settings=Settings(), url="http://suanwang.invalid", token="t", lang="en")
        client._http = http
        headers = {"Idempotency-Key": given} if given else None
        assert client.request("POST", "/jobs", json={"command": ["x"]}, headers=headers)["id"] == 1
        assert len(http.keys) == 2 and http.keys[0] == http.keys[1] and http.keys[0]
        keys.append(http.keys[0])
    if given:
        assert keys == [given, given]
    else:
        assert keys[0] != keys[1]  # a fresh key per run


# --- jobs ------------------------------------------------------------------------------------------


def test_submit_list_show_events_cancel_as_json(cw: CliWorld) -> None:
    tenant = cw.ew.tenant
    deadline = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    job = cw.json(
        tenant,
        "jobs",
        "submit",
        "--name",
        "resnet",
        "--cards",
        "2",
        "--accelerator",
        "a800",
        "--accelerator",
        "L40S",
        "--min-memory-gib",
        "40",
        "--duration",
        "90m",
        "--deadline",
        deadline.isoformat(),
        "--max-price",
        "1000",
        "--classification",
        "internal",
        "--region",
        "zj-jiaxing-pinghu",
        "--region",
        "gs-qingyang",
        "--priority",
        "high",
        "--preemptible",
        "--job-type",
        "llm-training",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--workdir",
        "/data/run",
        "--",
        "python3",
        "train.py",
        "--lr",
        "3e-4",
    )
    assert job["state"] == "queued"
    assert job["command"] == ["python3", "train.py", "--lr", "3e-4"]
    assert (job["name"], job["cards"], job["accelerators"]) == ("resnet", 2, ["A800", "L40S"])
    assert (job["min_memory_gib"], job["duration_estimate_s"]) == (40, 5400)
    assert datetime.fromisoformat(job["deadline"]) == deadline
    assert (job["max_price_fen_per_card_hour"], job["classification"]) == (1000, "internal")
    assert job["regions"] == ["zj-jiaxing-pinghu", "gs-qingyang"]
    assert (job["priority"], job["preemptible"], job["job_type"]) == ("high", True, "llm-training")
    assert (job["env"], job["workdir"]) == ({"A": "1", "B": "x=y"}, "/data/run")
    assert job["org_id"] == cw.ew.org["id"]

    listed = cw.json(tenant, "jobs", "list", "--state", "queued")
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert cw.json(tenant, "jobs", "list", "--state", "running")["total"] == 0
    assert cw.json(cw.ew.other, "jobs", "list")["total"] == 0
    assert cw.json(tenant, "jobs", "show", str(job["id"])) == job
    events = cw.json(tenant, "jobs", "events", str(job["id"]))
    assert [e["to_state"] for e in events] == ["submitted", "queued"]
    cancelled = cw.json(tenant, "jobs", "cancel", str(job["id"]))
    assert cancelled["state"] == "cancelled"
    assert [j["id"] for j in cw.json(tenant, "jobs", "list", "--state", "cancelled")["items"]] == [job["id"]]
    # Cancelling again (a retry) is answered the same; nothing more is recorded.
    assert cw.json(tenant, "jobs", "cancel", str(job["id"]))["state"] == "cancelled"
    assert len(cw.json(tenant, "jobs", "events", str(job["id"]))) == 3


def test_submit_list_show_events_cancel_as_tables(cw: CliWorld) -> None:
    tenant = cw.ew.tenant
    code, out, err = cw.as_(tenant, "jobs", "submit", "--name", "table-job", "--", "sh", "-c", "echo hi")
    assert code == 0, err
    job_id = cw.json(tenant, "jobs", "list")["items"][0]["id"]
    assert out.strip() == f"Job {job_id} submitted: queued. Follow it with `suanwang jobs show {job_id}`."

    code, out, _ = cw.as_(tenant, "jobs", "list")
    assert code == 0 and "table-job" in out and "queued" in out and "state" in out
    code, out, _ = cw.as_(tenant, "jobs", "show", str(job_id))
    assert code == 0 and "sh -c 'echo hi'" in out and "reason" in out and "1h" in out
    code, out, _ = cw.as_(tenant, "jobs", "events", str(job_id))
    assert code == 0
    assert "time (Asia/Shanghai)" in out and "· → submitted" in out and "submitted → queued" in out
    assert "Admitted" in out
    code, out, _ = cw.as_(tenant, "jobs", "cancel", str(job_id))
    assert (code, out.strip()) == (0, f"Job {job_id}: cancelled.")


def test_options_end_where_the_command_begins(cw: CliWorld) -> None:
    job = cw.json(cw.ew.tenant, "jobs", "submit", "--cards", "0", "sh", "-c", "echo --cards 5", "--name", "x")
    assert job["command"] == ["sh", "-c", "echo --cards 5", "--name", "x"]
    assert (job["cards"], job["name"]) == (0, None)


def test_the_regulator_submits_for_an_organisation(cw: CliWorld) -> None:
    code, _, err = cw.run("jobs", "submit", "--", "true")  # the local regulator
    assert_one_line_error(code, err, "org_id")
    job = cw.json(None, "jobs", "submit", "--org", str(cw.ew.org["id"]), "--priority", "urgent", "--", "true")
    assert (job["org_id"], job["priority"], job["env"]) == (cw.ew.org["id"], "urgent", {})
    assert cw.json(None, "jobs", "list", "--org", str(cw.ew.other_org["id"]))["total"] == 0


def test_an_idempotency_key_submits_once(cw: CliWorld) -> None:
    args = ("jobs", "submit", "--idempotency-key", "nightly-2025-06-01", "--", "python3", "etl.py")
    first = cw.json(cw.ew.tenant, *args)
    again = cw.json(cw.ew.tenant, *args)
    assert again["id"] == first["id"] and cw.total_jobs() == 1
    code, _, err = cw.as_(cw.ew.tenant, *args[:-1], "other.py")
    assert_one_line_error(code, err, "nightly-2025-06-01")
    # Without a key every run is a new submission.
    cw.json(cw.ew.tenant, "jobs", "submit", "--", "python3", "etl.py")
    cw.json(cw.ew.tenant, "jobs", "submit", "--", "python3", "etl.py")
    assert cw.total_jobs() == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--accelerator", "H900"], "H800"),
        (["--accelerator", "H800"], "A800"),
        (["--cards", "17"], "16"),
        (["--cards", "-1"], "cards"),
        (["--deadline", "2020-01-01"], "past"),
        (["--deadline", "next week"], "--deadline"),
        (["--duration", "3x"], "--duration"),
        (["--env", "NOVALUE"], "KEY=VALUE"),
        (["--priority", "asap"], "--priority"),
        (["--priority", "urgent"], "urgent"),
        (["--classification", "government", "--region", "gs-qingyang"], "zj-jiaxing-pinghu"),
        (["--cards", "two"], "--cards"),
    ],
)
def test_a_bad_submit_is_one_line_exit_2_and_stores_nothing(
    cw: CliWorld, args: list[str], needle: str
) -> None:
    code, out, err = cw.as_(cw.ew.tenant, "jobs", "submit", *args, "--", "python3", "train.py")
    assert_one_line_error(code, err, needle)
    assert out == ""
    assert cw.total_jobs() == 0


@pytest.mark.parametrize("command", [[], ["--"], ["--", ""]])
def test_a_submit_without_a_program_is_refused(cw: CliWorld, command: list[str]) -> None:
    code, _, err = cw.as_(cw.ew.tenant, "jobs", "submit", "--cards", "1", *command)
    assert_one_line_error(code, err)
    assert cw.total_jobs() == 0


def test_quote_shows_the_ranked_table_and_stores_nothing(cw: CliWorld) -> None:
    ew = cw.ew
    code, out, err = cw.as_(
        ew.tenant, "jobs", "quote", "--cards", "1", "--duration", "2h", "--", "python3", "x.py"
    )
    assert code == 0, err
    assert "Where this job would run" in out
    for header in ("pool", "provider", "region", "accelerator", "¥/card-h", "start", "runtime", "end"):
        assert header in out
    assert "est. cost ¥" in out and "meets deadline" in out
    lines = [line for line in out.splitlines() if "pool-" in line]
    assert len(lines) == 3 and "→" in lines[0] and not any("→" in line for line in lines[1:])
    assert "¥4.50" in out and "¥5.00" in out and "now" in out
    rows = cw.json(ew.tenant, "jobs", "quote", "--", "python3", "x.py")["rows"]
    assert lines[0].split("│")[2].strip() == rows[0]["pool_code"]  # the table's choice is the API's first
    assert [r["cost_fen"] for r in rows] == sorted(r["cost_fen"] for r in rows)
    gov = cw.json(ew.tenant, "jobs", "quote", "--classification", "government", "--", "python3", "x.py")
    assert [r["pool_id"] for r in gov["rows"]] == [ew.gov_pool["id"]]
    deadline = (utcnow() + timedelta(days=1)).isoformat()
    code, out, _ = cw.as_(ew.tenant, "jobs", "quote", "--deadline", deadline, "--", "python3", "x.py")
    assert code == 0 and "✓" in out
    code, out, _ = cw.as_(ew.tenant, "jobs", "quote", "--max-price", "1", "--", "python3", "x.py")
    assert code == 0 and "No pool can run this job" in out
    code, _, err = cw.as_(ew.tenant, "jobs", "quote", "--accelerator", "H900", "--", "python3", "x.py")
    assert_one_line_error(code, err, "H800")
    assert cw.total_jobs() == 0


def test_logs_and_history_of_a_job_that_ran(cw: CliWorld, tmp_path: Path) -> None:
    ew = cw.ew
    job = cw.json(
        ew.tenant,
        "jobs",
        "submit",
        "--cards",
        "0",
        "--region",
        "zj-jiaxing-pinghu",
        "--",
        "sh",
        "-c",
        "echo first-line; echo hello-from-the-cli",
    )
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    job_id = str(job["id"])
    code, out, err = cw.as_(ew.tenant, "jobs", "logs", job_id)
    assert code == 0, err
    assert out == "first-line\nhello-from-the-cli\n"
    code, out, _ = cw.as_(ew.tenant, "jobs", "logs", job_id, "--tail", "19")
    assert (code, out) == (0, "hello-from-the-cli\n")
    assert cw.json(ew.tenant, "jobs", "logs", job_id, "--attempt", "1")["log"].endswith(
        "hello-from-the-cli\n"
    )
    target = tmp_path / "job.log"
    code, out, err = cw.as_(ew.tenant, "jobs", "logs", job_id, "--download", str(target), "--tail", "3")
    assert code == 0 and out == ""
    assert target.read_text() == "first-line\nhello-from-the-cli\n"  # all of it, whatever --tail says
    assert str(target) in err
    code, _, err = cw.as_(ew.tenant, "jobs", "logs", job_id, "--attempt", "9")
    assert_one_line_error(code, err, "9")
    code, _, err = cw.as_(ew.other, "jobs", "logs", job_id)
    assert_one_line_error(code, err, job_id)
    code, out, _ = cw.as_(ew.tenant, "jobs", "events", job_id)
    assert "queued → placed" in out and "placed → running" in out and "running → succeeded" in out
    code, out, _ = cw.as_(ew.tenant, "jobs", "show", job_id)
    assert "succeeded" in out and "exit code" in out


# --- reservations ----------------------------------------------------------------------------------


def test_reservations_round_trip(cw: CliWorld) -> None:
    ew = cw.ew
    start = (utcnow() + timedelta(hours=1)).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    end = start + timedelta(hours=2)
    window = ("--start", start.strftime("%Y-%m-%dT%H:%M"), "--end", end.strftime("%Y-%m-%dT%H:%M"))
    pool = str(ew.sim_pool["id"])
    made = cw.json(ew.tenant, "reservations", "create", "--pool", pool, "--cards", "8", *window)
    assert (made["org_id"], made["cards"]) == (ew.org["id"], 8)
    assert datetime.fromisoformat(made["starts_at"]) == start  # zone-less input read in Shanghai
    assert datetime.fromisoformat(made["ends_at"]) == end
    rid = str(made["id"])

    code, _, err = cw.as_(ew.member, "reservations", "create", "--pool", pool, "--cards", "1", *window)
    assert_one_line_error(code, err, "tenant_admin")
    code, _, err = cw.as_(ew.other, "reservations", "create", "--pool", pool, "--cards", "9", *window)
    assert_one_line_error(code, err, "8")
    code, _, err = cw.as_(
        ew.tenant,
        "reservations",
        "create",
        "--pool",
        pool,
        "--cards",
        "1",
        "--start",
        "soon",
        "--end",
        "later",
    )
    assert_one_line_error(code, err, "--start")
    on_behalf = cw.json(
        None,
        "reservations",
        "create",
        "--pool",
        pool,
        "--cards",
        "8",
        "--org",
        str(ew.other_org["id"]),
        *window,
    )
    assert on_behalf["org_id"] == ew.other_org["id"]

    assert [r["id"] for r in cw.json(ew.tenant, "reservations", "list")["items"]] == [made["id"]]
    assert cw.json(None, "reservations", "list", "--pool", pool)["total"] == 2
    assert cw.json(None, "reservations", "list", "--pool", str(ew.local_pool["id"]))["total"] == 0
    code, out, _ = cw.as_(ew.tenant, "reservations", "list")
    assert code == 0 and start.strftime("%Y-%m-%d %H:%M") in out and end.strftime("%H:%M") in out
    assert cw.json(ew.tenant, "reservations", "show", rid) == made
    code, _, err = cw.as_(ew.other, "reservations", "show", rid)
    assert_one_line_error(code, err, rid)
    cancelled = cw.json(ew.tenant, "reservations", "cancel", rid)
    assert cancelled["cancelled_at"]
    code, out, _ = cw.as_(ew.tenant, "reservations", "show", rid)
    assert code == 0 and "cancelled" in out


# --- Chinese -------------------------------------------------------------------------------------


def test_chinese_help_for_jobs_and_reservations(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--lang", "zh", "jobs", "--help"]) == 0
    out = capsys.readouterr().out
    assert "作业" in out and "命令" in out and "提交作业" in out
    assert cli.main(["--lang", "zh", "jobs", "submit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "预计运行时长" in out and "环境变量" in out
    assert cli.main(["--lang", "zh", "reservations", "create", "--help"]) == 0
    assert "预留" in capsys.readouterr().out
    assert cli.main(["jobs", "--help"]) == 0
    assert "submit work" in capsys.readouterr().out


def test_errors_in_chinese(cw: CliWorld) -> None:
    code, _, err = cw.as_(cw.ew.tenant, "--lang", "zh", "jobs", "submit", "--accelerator", "H900", "--", "x")
    assert_one_line_error(code, err, "H800")
    assert has_cjk(err)
    code, _, err = cw.as_(cw.ew.tenant, "--lang", "zh", "jobs", "submit", "--duration", "3x", "--", "x")
    assert_one_line_error(code, err, "不是有效的时长")
    code, out, _ = cw.as_(cw.ew.tenant, "--lang", "zh", "jobs", "submit", "--", "x")
    assert code == 0 and "已提交" in out
