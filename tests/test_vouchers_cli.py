"""`suanwang vouchers` through the in-process CLI (local mode on the test database): a programme from the
Pinghu preset, an application with an attachment (only its metadata is sent), the review, the grant, a
settled job's redemption, a clawback, flags and the audit trail; exact ratios and amounts; bad input is
one line with exit code 2 and stores nothing; Chinese help."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.cli import main as cli
from suanwang.cli.vouchers import parse_ratio
from suanwang.config import Settings, get_settings
from suanwang.db.session import session_scope
from suanwang.ledger import store as ledger
from suanwang.timeutil import SHANGHAI, utcnow
from suanwang.vouchers.models import VoucherApplication, VoucherProgramme
from tests import factories, jobs_world
from tests.jobs_world import ExecWorld
from tests.voucher_world import run_job

pytestmark = pytest.mark.db

Run = Any


@pytest.fixture
def world(
    regulator: Any,
    clock: Any,
    settings: Settings,
    clean_engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    cli_run: Any,
) -> tuple[ExecWorld, Run]:
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return jobs_world.build(regulator, clock, settings, clean_engine), cli_run


def as_json(run: Run, token: str, *args: str) -> Any:
    code, out, err = run("--token", token, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def fails(run: Run, token: str, *args: str, lang: str = "en") -> str:
    """The command fails with one line on stderr and exit code 2; that line."""
    code, out, err = run("--token", token, "--lang", lang, *args)
    assert code == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def period() -> tuple[str, str]:
    """A month ago to a year from now, so the tests do not depend on the date."""
    today = utcnow().date()
    return (today - timedelta(days=30)).isoformat(), (today + timedelta(days=365)).isoformat()


def pinghu(*extra: str, code: str = "pinghu-cli") -> list[str]:
    starts, ends = period()
    return [
        "vouchers",
        "programmes",
        "create",
        "--preset",
        "pinghu-2026",
        "--code",
        code,
        "--starts-on",
        starts,
        "--ends-on",
        ends,
        *extra,
    ]


@pytest.mark.parametrize(
    ("text", "bp"),
    [
        ("30%", 3000),
        ("30", None),  # 30 % or 3000 %? say which: 30% or 0.3
        ("0.3", 3000),
        ("12.5 %", 1250),
        ("12.5％", 1250),
        ("0.01%", 1),
        ("0.0001", 1),
        ("100%", 10_000),
        ("100", None),
        ("1", 10_000),
        ("0.999", 9990),
        ("0", None),
        ("0%", None),
        ("101%", None),
        ("100.01%", None),
        ("12.345%", None),  # not a whole basis point
        ("0.00005", None),
        ("1e2", None),
        ("-5", None),
        ("", None),
        ("abc", None),
    ],
)
def test_ratios_are_exact_basis_points(text: str, bp: int | None) -> None:
    assert parse_ratio(text) == bp


def test_the_whole_voucher_flow_through_the_cli(
    world: tuple[ExecWorld, Run], tmp_path: Path, clean_engine: Engine
) -> None:
    ew, run = world
    reg, tenant = ew.regulator.token, ew.tenant.token
    org = str(ew.org["id"])

    # Presets: the list and one preset, with what each leaves open.
    code, out, err = run("--token", tenant, "vouchers", "presets")
    assert code == 0, err
    assert "pinghu-2026" in out and "平湖市算力券" in out and "¥200,000.00" in out and "60%" in out
    code, out, err = run("--token", tenant, "vouchers", "presets", "show", "jiaxing")
    assert code == 0, err
    assert "ratio_bp, budget_fen" in out and "¥2,000,000.00" in out
    assert "ratio_bp" in as_json(run, tenant, "vouchers", "presets", "show", "jiaxing")["required"]

    # A programme from the Pinghu preset, overriding the ratio and the order cap (exact conversions).
    created = as_json(
        run, reg, *pinghu("--ratio", "45.5%", "--cap-order", "150000.50", "--idempotency-key", "prog-1")
    )
    assert created["ratio_bp"] == 4550 and created["cap_order_fen"] == 15_000_050
    assert created["budget_fen"] == 2_000_000_000 and created["preset"] == "pinghu-2026"
    assert created["tenant_rules"]["localities"] == ["330482"]
    again = as_json(
        run, reg, *pinghu("--ratio", "45.5%", "--cap-order", "150000.50", "--idempotency-key", "prog-1")
    )
    assert again["id"] == created["id"]  # the same key: a retry, not a second programme
    assert count(clean_engine, VoucherProgramme) == 1
    pid = str(created["id"])
    code, out, err = run("--token", tenant, "vouchers", "programmes", "list")
    assert code == 0, err
    assert "pinghu-cli" in out and "45.5%" in out and "¥20,000,000.00" in out
    code, out, err = run("--token", reg, "vouchers", "programmes", "show", pid)
    assert code == 0, err
    assert "330482" in out and "domestic-chips 60%" in out
    budget = as_json(run, reg, "vouchers", "programmes", "budget", pid)
    assert budget["unallocated_fen"] == 2_000_000_000 and budget["granted_fen"] == 0

    # The tenant applies with an attachment: the CLI sends its name, size and SHA-256, not its content.
    plan = tmp_path / "plan.pdf"
    content = b"%PDF-1.4 training plan\n" * 100
    plan.write_bytes(content)
    apply_args = (
        "vouchers",
        "apply",
        "--programme",
        pid,
        "--amount",
        "100000",
        "--purpose",
        "train a defect-detection model",
        "--attachment",
        str(plan),
        "--idempotency-key",
        "apply-1",
    )
    application = as_json(run, tenant, *apply_args)
    assert application["status"] == "submitted" and application["org_id"] == ew.org["id"]
    assert application["requested_fen"] == 10_000_000
    assert application["attachments"] == [
        {
            "name": "plan.pdf",
            "size_bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "media_type": "application/pdf",
        }
    ]
    assert as_json(run, tenant, *apply_args)["id"] == application["id"]
    assert count(clean_engine, VoucherApplication) == 1
    aid = str(application["id"])
    listed = as_json(
        run, reg, "vouchers", "applications", "list", "--programme", pid, "--status", "submitted"
    )
    assert [a["id"] for a in listed["items"]] == [application["id"]]
    code, out, err = run("--token", tenant, "vouchers", "applications", "show", aid)
    assert code == 0, err
    assert hashlib.sha256(content).hexdigest() in out and "¥100,000.00" in out

    # The regulator approves part of it: a grant, funded from the budget.
    err = fails(run, tenant, "vouchers", "review", aid, "--approve", "--reason", "mine")
    reviewed = as_json(
        run, reg, "vouchers", "review", aid, "--approve", "--amount", "80000", "--reason", "complete file"
    )
    assert reviewed["status"] == "approved" and reviewed["approved_fen"] == 8_000_000
    gid = reviewed["grant_id"]
    code, out, err = run("--token", tenant, "vouchers", "grants", "list")
    assert code == 0, err
    assert "¥80,000.00" in out and "active" in out
    (grant,) = as_json(run, reg, "vouchers", "grants", "list", "--programme", pid, "--org", org)["items"]
    assert grant["id"] == gid and grant["available_fen"] == 8_000_000
    assert as_json(run, tenant, "vouchers", "grants", "show", str(gid))["amount_fen"] == 8_000_000
    expired = as_json(run, reg, "vouchers", "grants", "expire")
    assert expired == {"grants": 0, "returned_fen": 0}

    # A settled job is redeemed: 2 card-hours at ¥4.50 on an imported chip, 45.5 % subsidised.
    job = run_job(ew, ew.local_pool["id"], cards=2, seconds=3600, accelerators=["A800"])
    charge = job["charged_fen"]
    subsidy = charge * 4550 // 10_000
    (redemption,) = as_json(run, tenant, "vouchers", "redemptions", "list", "--job", str(job["id"]))["items"]
    assert redemption["subsidy_fen"] == subsidy and redemption["charge_fen"] == charge
    code, out, err = run("--token", reg, "vouchers", "redemptions", "list", "--programme", pid, "--org", org)
    assert code == 0, err
    assert "tenant-share" in out
    assert as_json(run, reg, "vouchers", "grants", "show", str(gid))["redeemed_fen"] == subsidy

    # A clawback with a reason (regulator only).
    rid = str(redemption["id"])
    fails(run, tenant, "vouchers", "clawback", rid, "--reason", "x")
    clawed = as_json(
        run, reg, "vouchers", "clawback", rid, "--amount", "1.00", "--reason", "duplicate invoice"
    )
    assert clawed["clawed_back_fen"] == 100
    budget = as_json(run, reg, "vouchers", "programmes", "budget", pid)
    assert budget["clawed_back_fen"] == 100 and budget["redeemed_fen"] == subsidy
    err = fails(run, reg, "vouchers", "clawback", rid, "--amount", "99999", "--reason", "x")

    # Flags: a suspension, listed, lifted.
    today = utcnow().astimezone(SHANGHAI).date().isoformat()
    flag = as_json(
        run,
        reg,
        "vouchers",
        "flags",
        "add",
        "--org",
        org,
        "--kind",
        "suspended",
        "--on",
        today,
        "--reason",
        "invoices under review",
    )
    assert flag["kind"] == "suspended" and flag["effective_on"] == today
    code, out, err = run("--token", reg, "vouchers", "flags", "list", "--org", org)
    assert code == 0, err
    assert "invoices under review" in out
    lifted = as_json(run, reg, "vouchers", "flags", "lift", str(flag["id"]), "--reason", "cleared")
    assert lifted["lifted_at"] and lifted["lift_reason"] == "cleared"
    assert as_json(run, reg, "vouchers", "flags", "list") == []
    assert len(as_json(run, reg, "vouchers", "flags", "list", "--all")) == 1
    fails(run, reg, "vouchers", "flags", "list", "--org", "x")

    # Quarterly claims: a per-job programme has none; a quarter must be a quarter.
    settled = as_json(run, reg, "vouchers", "programmes", "settle-claims", pid, "2025Q1")
    assert settled["claims"] == 0 and settled["amount_fen"] == 0
    fails(run, reg, "vouchers", "programmes", "settle-claims", pid, "2025Q9")

    # The audit trail: every decision, with who and why.
    trail = as_json(run, reg, "vouchers", "audit", "--programme", pid, "--sort", "id", "--limit", "100")
    actions = [a["action"] for a in trail["items"]]
    for action in ("programme.created", "application.submitted", "application.approved", "redemption"):
        assert action in actions
    by_org = [a["action"] for a in as_json(run, reg, "vouchers", "audit", "--org", org)["items"]]
    assert {"clawback", "flag.suspended", "flag.lifted"} <= set(by_org)
    code, out, err = run("--token", reg, "vouchers", "audit", "--action", "clawback")
    assert code == 0, err
    assert "duplicate invoice" in out and "¥1.00" in out
    fails(run, tenant, "vouchers", "audit")  # the regulator's


def test_reject_grants_nothing(world: tuple[ExecWorld, Run]) -> None:
    ew, run = world
    reg, tenant = ew.regulator.token, ew.tenant.token
    pid = str(as_json(run, reg, *pinghu())["id"])
    application = as_json(
        run, tenant, "vouchers", "apply", "--programme", pid, "--amount", "6000", "--purpose", "x"
    )
    aid = str(application["id"])
    err = fails(run, reg, "vouchers", "review", aid, "--reject", "--amount", "10", "--reason", "no")
    reviewed = as_json(run, reg, "vouchers", "review", aid, "--reject", "--reason", "purpose not eligible")
    assert reviewed["status"] == "rejected" and reviewed["grant_id"] is None
    assert as_json(run, reg, "vouchers", "grants", "list")["total"] == 0
    err = fails(run, reg, "vouchers", "review", aid, "--reason", "x")  # neither --approve nor --reject
    assert "--approve" in err
    # The regulator applies on the tenant's behalf.
    other = as_json(
        run,
        reg,
        "vouchers",
        "apply",
        "--programme",
        pid,
        "--amount",
        "6000",
        "--purpose",
        "on its behalf",
        "--org",
        str(ew.org["id"]),
    )
    assert other["org_id"] == ew.org["id"] and other["attachments"] == []


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--ratio", "0"], ["'0'", "ratio"]),
        (["--ratio", "101%"], ["101%"]),
        (["--ratio", "12.345%"], ["12.345%"]),
        (["--ratio", "thirty"], ["thirty"]),
        (["--budget", "1.234"], ["1.234"]),
        (["--budget", "-5"], ["-5"]),
        (["--cap-order", "1"], ["cap_order_fen"]),  # below the preset's minimum claim
        (["--preset", "jiaxing"], ["ratio_bp", "budget_fen", "--ratio", "--budget"]),
        (["--preset", "atlantis"], ["atlantis", "pinghu-2026"]),
        (["--stacking", "sometimes"], ["sometimes"]),
        (["--starts-on", "2026-02-30"], ["2026-02-30"]),
    ],
)
def test_bad_programmes_are_one_line_with_exit_code_2_and_store_nothing(
    world: tuple[ExecWorld, Run], clean_engine: Engine, args: list[str], needles: list[str]
) -> None:
    ew, run = world
    err = fails(run, ew.regulator.token, *pinghu(*args))
    for needle in needles:
        assert needle in err, err
    assert count(clean_engine, VoucherProgramme) == 0
    with session_scope(clean_engine) as session:
        assert ledger.get_account(session, key="voucher/1/budget") is None
    assert as_json(run, ew.regulator.token, "vouchers", "programmes", "list")["total"] == 0


def test_errors_speak_chinese_when_asked(world: tuple[ExecWorld, Run], clean_engine: Engine) -> None:
    ew, run = world
    err = fails(run, ew.regulator.token, *pinghu("--preset", "jiaxing"), lang="zh")
    assert "缺少" in err and "请用以下选项提供" in err and "--ratio" in err
    err = fails(run, ew.regulator.token, *pinghu("--ratio", "101%"), lang="zh")
    assert "补贴比例" in err
    err = fails(run, ew.tenant.token, *pinghu(), lang="zh")  # tenants do not create programmes
    assert count(clean_engine, VoucherProgramme) == 0


def test_bad_applications_store_nothing(
    world: tuple[ExecWorld, Run], clean_engine: Engine, tmp_path: Path
) -> None:
    ew, run = world
    reg, tenant = ew.regulator.token, ew.tenant.token
    pid = str(as_json(run, reg, *pinghu())["id"])
    base = ["vouchers", "apply", "--programme", pid, "--purpose", "x"]
    err = fails(run, tenant, *base, "--amount", "4999.99")  # below the minimum claim of ¥5,000
    err = fails(run, tenant, *base, "--amount", "6000", "--attachment", str(tmp_path / "missing.pdf"))
    assert "missing.pdf" in err
    err = fails(run, tenant, *base, "--amount", "12.345")
    assert "12.345" in err
    assert count(clean_engine, VoucherApplication) == 0


def test_a_programme_from_a_file_with_options_over_it(world: tuple[ExecWorld, Run], tmp_path: Path) -> None:
    ew, run = world
    reg = ew.regulator.token
    starts, ends = period()
    toml = tmp_path / "programme.toml"
    toml.write_text(
        f"""
preset = "qingyang-2024"
code = "qingyang-file"
starts_on = {starts}
ends_on = {ends}
budget_fen = 100_000_000
tenant_rules = {{ localities = ["33"] }}
provider_rules = {{ designated = ["p-one"] }}
""",
        encoding="utf-8",
    )
    created = as_json(
        run,
        reg,
        "vouchers",
        "programmes",
        "create",
        "--file",
        str(toml),
        "--ratio",
        "0.25",
        "--locality",
        "330482",
        "--locality",
        "3304",
        "--local-only",
    )
    assert created["code"] == "qingyang-file" and created["cadence"] == "quarterly"
    assert created["ratio_bp"] == 2500 and created["budget_fen"] == 100_000_000
    assert created["starts_on"] == starts and created["ends_on"] == ends
    assert created["tenant_rules"]["localities"] == ["330482", "3304"]
    assert created["provider_rules"] == {"designated": ["p-one"], "local_only": True}
    # A JSON file, and files that are not programmes.
    body = {
        "code": "scratch",
        "name": "试点",
        "issuer": "平湖",
        "starts_on": "2031-01-01",
        "ends_on": "2031-12-31",
        "budget_fen": 100_000,
        "ratio_bp": 3000,
        "stacking": "ordered",
    }
    (tmp_path / "p.json").write_text(json.dumps(body), encoding="utf-8")
    scratch = as_json(run, reg, "vouchers", "programmes", "create", "--file", str(tmp_path / "p.json"))
    assert scratch["preset"] is None and scratch["ratio_bp"] == 3000
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "bad.toml").write_text("code = ", encoding="utf-8")
    for name in ("list.json", "bad.toml", "nowhere.toml"):
        err = fails(run, reg, "vouchers", "programmes", "create", "--file", str(tmp_path / name))
        assert name in err
    assert as_json(run, reg, "vouchers", "programmes", "list")["total"] == 2


def test_organisations_take_an_affiliation_group(world: tuple[ExecWorld, Run]) -> None:
    ew, run = world
    reg = ew.regulator.token
    org = as_json(
        run,
        reg,
        "orgs",
        "create",
        "--credit-code",
        factories.credit_code(),
        "--name",
        "Group member",
        "--kind",
        "enterprise",
        "--affiliation-group",
        "Group A",
    )
    assert org["affiliation_group"] == "Group A"
    oid = str(org["id"])
    updated = as_json(run, reg, "orgs", "update", oid, "--affiliation-group", "Group B")
    assert updated["affiliation_group"] == "Group B"
    assert as_json(run, reg, "orgs", "update", oid, "--name", "Renamed")["affiliation_group"] == "Group B"
    cleared = as_json(run, reg, "orgs", "update", oid, "--affiliation-group", "")
    assert cleared["affiliation_group"] is None


def test_voucher_help_is_bilingual(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--lang", "zh", "vouchers", "--help"]) == 0
    out = capsys.readouterr().out
    assert "补贴计划" in out and "审计记录" in out and "命令" in out
    assert cli.main(["--lang", "zh", "vouchers", "programmes", "create", "--help"]) == 0
    out = capsys.readouterr().out
    assert "补贴比例" in out and "以此预设为基础" in out
    assert cli.main(["--lang", "zh", "vouchers", "apply", "--help"]) == 0
    assert "SHA-256" in capsys.readouterr().out
    assert cli.main(["vouchers", "programmes", "create", "--help"]) == 0
    assert "Subsidy ratio" in capsys.readouterr().out
