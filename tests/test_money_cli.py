"""`suanwang money` through the in-process CLI (local mode on the test database): exact yuan amounts,
tables and --json, one-line errors with exit code 2, roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.config import Settings, get_settings
from suanwang.units import parse_yuan
from tests import jobs_world

pytestmark = pytest.mark.db


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1200", 120_000),
        ("1200.5", 120_050),
        ("1200.05", 120_005),
        ("¥1,200.50", 120_050),
        ("-12.50", -1250),
        ("0.01", 1),
        ("1.234", None),
        ("1e3", None),
        ("abc", None),
        ("", None),
        (".5", None),
    ],
)
def test_parse_yuan_is_exact(text: str, fen: int | None) -> None:
    assert parse_yuan(text) == fen


@pytest.fixture
def world(
    regulator: Any,
    clock: Any,
    settings: Settings,
    clean_engine: Engine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_run: Any,
) -> tuple[Any, Any]:
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return jobs_world.build(regulator, clock, settings, clean_engine), cli_run


def test_top_up_adjust_and_read_back(world: tuple[Any, Any]) -> None:
    ew, run = world
    org = ew.org["id"]
    token = ("--token", ew.regulator.token)
    code, out, err = run(*token, "money", "top-up", str(org), "1200.50", "--reason", "bank transfer 42")
    assert code == 0, err
    assert "¥1,200.50" in out
    code, out, err = run(*token, "money", "adjust", str(org), "--reason", "fee waived", "--", "-0.50")
    assert code == 0, err
    code, out, err = run("--token", ew.tenant.token, "--json", "money", "accounts", "--org", str(org))
    assert code == 0, err
    wallet = next(a for a in json.loads(out) if a["code"] == "tenant_wallet")
    assert wallet["balance_fen"] == 100_000_000 + 120_050 - 50
    code, out, err = run("--token", ew.tenant.token, "money", "history", str(wallet["id"]))
    assert code == 0, err
    assert "bank transfer 42" in out and "fee waived" in out
    code, out, err = run("--token", ew.tenant.token, "--json", "money", "balance", str(wallet["id"]))
    assert json.loads(out)["balance_fen"] == wallet["balance_fen"]


def test_errors_are_one_line_with_exit_code_2(world: tuple[Any, Any]) -> None:
    ew, run = world
    org = str(ew.org["id"])
    code, _, err = run("--token", ew.regulator.token, "money", "top-up", org, "1.234", "--reason", "x")
    assert code == 2 and "1.234" in err and "Traceback" not in err
    code, _, err = run("--token", ew.tenant.token, "money", "top-up", org, "10", "--reason", "x")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = run(
        "--token", ew.regulator.token, "--lang", "zh", "money", "refund", org, "99999999", "--reason", "x"
    )
    assert code == 2 and "无法支付" in err


def test_invoice_documents_from_the_cli(world: tuple[Any, Any], tmp_path: Path) -> None:
    from suanwang.timeutil import SHANGHAI, utcnow

    ew, run = world
    month = utcnow().astimezone(SHANGHAI).strftime("%Y-%m")
    token = ("--token", ew.tenant.token)
    code, out, err = run(*token, "money", "invoice", str(ew.org["id"]), month, "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Job,")
    target = tmp_path / "invoice.pdf"
    code, _, err = run(
        *token, "money", "invoice", str(ew.org["id"]), month, "--format", "pdf", "--out", str(target)
    )
    assert code == 0, err
    assert target.read_bytes().startswith(b"%PDF-")
    code, _, err = run(*token, "money", "invoice", str(ew.org["id"]), month, "--format", "pdf")
    assert code == 2 and "--out" in err
    code, _, err = run(*token, "money", "invoice", str(ew.org["id"]), "2026-13")
    assert code == 2 and "YYYY-MM" in err
