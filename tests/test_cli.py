"""The `suanwang` command: tables and JSON, one-line errors with exit code 2, Chinese help."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer

from suanwang.cli import main as cli
from suanwang.cli.help import help_texts, translations
from tests import factories


@pytest.fixture
def run(db_url: str, clean_engine, monkeypatch, cli_run):
    """Run the CLI in local mode on the test database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    return cli_run


def run_json(run, *args: str) -> Any:
    code, out, err = run("--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_catalog_lists_every_accelerator_as_json(run):
    models = {a["model"] for a in run_json(run, "catalog", "list")}
    assert {"H100-SXM", "H800", "A800", "ASCEND-910B", "HYGON-K100-AI", "MLU370-X8"} <= models


def test_registry_round_trip_through_the_cli(run):
    provider = run_json(
        run,
        "providers",
        "create",
        "--code",
        "p1",
        "--name",
        "润泽",
        "--kind",
        "intelligent_computing_centre",
        "--region",
        "zj-pinghu",
        "--cert",
        "MLPS-3",
    )
    assert provider["certifications"] == ["MLPS-3"]
    site = run_json(
        run,
        "sites",
        "create",
        "--provider-id",
        str(provider["id"]),
        "--code",
        "s1",
        "--name",
        "一期",
        "--phase",
        "operational",
    )
    pool = run_json(
        run,
        "pools",
        "create",
        "--site-id",
        str(site["id"]),
        "--code",
        "h800",
        "--name",
        "H800",
        "--accelerator",
        "h800",
        "--nodes",
        "2",
        "--cards-per-node",
        "8",
    )
    assert (pool["accelerator"], pool["cards"]) == ("H800", 16)
    card = run_json(
        run, "prices", "add", str(pool["id"]), "--fen-per-card-hour", "1200", "--from", "2025-01-01"
    )
    assert card["effective_from"].startswith("2024-12-31T16:00")  # midnight in Shanghai, stored as UTC
    price = run_json(run, "prices", "at", str(pool["id"]), "--at", "2025-03-01")
    assert price["price_fen_per_card_hour"] == 1200
    capacity = run_json(run, "capacity", "--by", "provider")
    assert capacity["total"]["cards"] == 16
    code, out, _ = run("pools", "list")
    assert code == 0 and "h800" in out and "16" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--nodes", "0"], "nodes"),
        (["--nodes", "-3"], "nodes"),
        (["--accelerator", "H900"], "H800"),  # suggests the close match
    ],
)
def test_bad_pool_input_is_one_line_exit_2_and_creates_nothing(run, args, needle):
    provider = run_json(
        run, "providers", "create", "--code", "p1", "--name", "P", "--kind", "edge_centre", "--region", "r1"
    )
    site = run_json(
        run,
        "sites",
        "create",
        "--provider-id",
        str(provider["id"]),
        "--code",
        "s1",
        "--name",
        "S",
        "--phase",
        "planned",
    )
    base = {
        "--site-id": str(site["id"]),
        "--code": "x",
        "--name": "X",
        "--accelerator": "H800",
        "--nodes": "1",
        "--cards-per-node": "8",
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    code, _, err = run("pools", "create", *[item for pair in base.items() for item in pair])
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err
    assert run_json(run, "pools", "list")["total"] == 0


def test_invalid_credit_code_is_rejected_in_chinese_when_asked(run):
    code, _, err = run(
        "--lang",
        "zh",
        "orgs",
        "create",
        "--credit-code",
        "91330482ma2jd00017",
        "--name",
        "X",
        "--kind",
        "enterprise",
    )
    assert code == 2
    assert "小写" in err and err.count("\n") == 1


def test_missing_option_is_a_usage_error_with_exit_2(run):
    code, _, err = run("pools", "create", "--site-id", "1")
    assert code == 2
    assert "--code" in err and "suanwang pools create --help" in err and err.count("\n") == 1


def test_unreachable_server_exits_1_with_one_line(run):
    code, _, err = run("--url", "http://127.0.0.1:9", "whoami")
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1


def test_tenant_token_sees_only_its_own_organisation(run, regulator):
    mine = factories.org(regulator)
    factories.org(regulator)
    admin = factories.user(regulator, role="tenant_admin", org_id=mine["id"])
    token = factories.token_for(regulator, admin["id"])
    orgs = run_json(run, "--token", token, "orgs", "list")
    assert [o["id"] for o in orgs["items"]] == [mine["id"]]
    code, _, err = run("--token", "sw_wrong", "orgs", "list")
    assert code == 2 and "not valid" in err


def test_help_is_translated_everywhere():
    command = typer.main.get_command(cli.app)
    missing = help_texts(command) - set(translations())
    assert not missing, f"help texts without a zh translation: {sorted(missing)}"


def test_chinese_help_is_shown_with_lang_zh(capsys):
    assert cli.main(["--lang", "zh", "pools", "--help"]) == 0
    out = capsys.readouterr().out
    assert "同型号加速卡资源池" in out and "命令" in out
    assert cli.main(["pools", "--help"]) == 0
    assert "Pools of identical accelerators" in capsys.readouterr().out
