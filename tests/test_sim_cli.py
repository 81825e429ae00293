"""`suanwang sim compare`: one table, JSON in the issue's shape, CSV, one-line errors with exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from suanwang.cli import main as cli
from suanwang.scheduler.simulate import METRIC_KEYS
from tests.sim_world import GAVEL_CSV
from tests.test_sim_scenario import MINIMAL

ALL = ["fifo", "backfill", "cheapest", "suanwang"]


@pytest.fixture
def run(cli_run):
    """Run the CLI in-process (no database needed); returns (exit code, stdout, stderr)."""
    return cli_run


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(MINIMAL, encoding="utf-8")
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "job_id,submit_time_s,duration_s,cards,tenant,classification\n"
        "a,0,3600,8,sme,\n"
        "b,10,7200,8,bureau,\n"
        "c,20,1800,4,bureau,government\n"
        "d,30,600,0,sme,\n",
        encoding="utf-8",
    )
    return scenario, trace


def test_compare_prints_a_table_and_writes_json_and_csv(run, world, tmp_path: Path) -> None:
    scenario, trace = world
    out, table = tmp_path / "results.json", tmp_path / "results.csv"
    code, stdout, err = run(
        "sim",
        "compare",
        "--scenario",
        str(scenario),
        "--trace",
        str(trace),
        "--out",
        str(out),
        "--csv",
        str(table),
    )
    assert code == 0, err
    assert all(name in stdout for name in ALL) and "jct_mean_s" in stdout and "utilization[p1]" in stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    assert list(document) == ["policies"] and list(document["policies"]) == ALL
    for metrics in document["policies"].values():
        assert set(METRIC_KEYS) <= set(metrics)
        assert metrics["jobs_finished"] == 4 and metrics["constraint_violations"] == 0
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert [r["policy"] for r in rows] == ALL and "utilization[gov]" in rows[0]
    assert int(rows[0]["jobs_finished"]) == 4


def test_mapping_policies_and_json_output(run, world, tmp_path: Path) -> None:
    scenario, _ = world
    trace = tmp_path / "other.csv"
    trace.write_text("id,t,len,gpus,who\nx,0,100,2,sme\n", encoding="utf-8")
    code, stdout, err = run(
        "--json",
        "sim",
        "compare",
        "--scenario",
        str(scenario),
        "--trace",
        str(trace),
        "--policies",
        "cheapest,fifo",
        *("--map", "job_id=id", "--map", "submit_time_s=t", "--map", "duration_s=len"),
        *("--map", "cards=gpus", "--map", "tenant=who"),
    )
    assert code == 0, err
    document = json.loads(stdout)
    assert list(document["policies"]) == ["cheapest", "fifo"]
    assert document["policies"]["fifo"]["jct_mean_s"] == 100 * 125 / 320  # on the 910B pool "gov"


def test_shipped_scenario_on_the_real_gavel_trace(run, tmp_path: Path) -> None:
    assert GAVEL_CSV.is_file(), f"the development trace is missing: {GAVEL_CSV}"
    out = tmp_path / "gavel.json"
    code, _, err = run(
        "sim",
        "compare",
        *("--scenario", "pinghu-dev", "--trace", str(GAVEL_CSV), "--trace-format", "gavel"),
        *("--limit", "300", "--out", str(out)),
    )
    assert code == 0, err
    policies = json.loads(out.read_text(encoding="utf-8"))["policies"]
    assert list(policies) == ALL
    for metrics in policies.values():
        assert metrics["jobs_finished"] == 300 and metrics["jobs_unfinished"] == 0
        assert metrics["constraint_violations"] == 0 and metrics["government_zone_violations"] == 0
        assert 0 < metrics["utilization"] <= 1 and 0 < metrics["jain_fairness"] <= 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policies", "fifo,lottery"], "unknown policy 'lottery'"),
        (["--policies", ","], "--policies is empty"),
        (["--map", "job_id"], "DST=SRC"),
        (["--trace-format", "gavel"], "not a Gavel trace"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(run, world, args: list[str], needle: str) -> None:
    scenario, trace = world
    code, stdout, err = run("sim", "compare", "--scenario", str(scenario), "--trace", str(trace), *args)
    assert code == 2 and stdout == ""
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_bad_files_are_one_line_errors(run, world, tmp_path: Path) -> None:
    scenario, trace = world
    bad_trace = tmp_path / "bad.csv"
    bad_trace.write_text("job_id,submit_time_s,duration_s,cards\nok,0,10,1\nneg,0,10,-4\n", encoding="utf-8")
    code, _, err = run("sim", "compare", "--scenario", str(scenario), "--trace", str(bad_trace))
    assert code == 2 and "line 3 (data row 2), column 'cards'" in err
    bad_scenario = tmp_path / "bad.toml"
    bad_scenario.write_text(MINIMAL.replace('accelerator = "h800"', 'accelerator = "H900"'), encoding="utf-8")
    code, _, err = run("sim", "compare", "--scenario", str(bad_scenario), "--trace", str(trace))
    assert code == 2 and "pool 'p1'" in err and "H900" in err
    code, _, err = run("sim", "compare", "--scenario", "nowhere", "--trace", str(trace))
    assert code == 2 and "pinghu-dev" in err
    code, _, err = run("sim", "compare", "--scenario", str(scenario), "--trace", str(tmp_path / "none.csv"))
    assert code == 2 and err.startswith("error: ")
    code, _, err = run("sim", "compare", "--scenario", str(scenario), "--trace", str(trace), "--limit", "0")
    assert code == 2 and err.startswith("error: ")


def test_chinese_help(capsys) -> None:
    assert cli.main(["--lang", "zh", "sim", "compare", "--help"]) == 0
    assert "作业轨迹" in capsys.readouterr().out
