"""The audit trail: every write by a user or the controller is an entry (who, when, what, before and
after) in an append-only, hash-chained table, and `suanwang audit verify` finds any entry edited,
deleted or reordered, a cut tail, or a chain rewritten since an anchor was written down."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from suanwang.audit import service as audit
from suanwang.audit.capture import SKIPPED_TABLES
from suanwang.audit.chain import GENESIS, Head, digest
from suanwang.audit.guard import add_guard, drop_guard
from suanwang.audit.models import AuditEntry
from suanwang.config import Settings
from suanwang.db.base import Base
from suanwang.db.session import session_scope
from suanwang.tenants.models import Organisation
from tests import factories, jobs_world
from tests.jobs_world import ExecWorld, state_is

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def entries(engine: Engine, **where: Any) -> list[AuditEntry]:
    with session_scope(engine) as session:
        stmt = select(AuditEntry).order_by(AuditEntry.seq)
        for name, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, name) == value)
        return list(session.scalars(stmt))


def after(entry: AuditEntry) -> dict[str, Any]:
    return dict(json.loads(entry.after or "{}"))


def before(entry: AuditEntry) -> dict[str, Any]:
    return dict(json.loads(entry.before or "{}"))


def user_id_of(api: Any) -> int:
    return int(api.get("/me")["user_id"])


def sql(engine: Engine, statement: str, **params: Any) -> None:
    """A write that bypasses the platform (someone with database access), past the table's guard."""
    with engine.begin() as connection:
        drop_guard(connection)
        connection.execute(text(statement), params)
        add_guard(connection)


# -- what is recorded --------------------------------------------------------------------------------


def test_a_users_writes_are_recorded_with_who_before_and_after(regulator: Any, clean_engine: Engine) -> None:
    org = factories.org(regulator, name="审计测试公司")
    regulator.patch(f"/orgs/{org['id']}", {"name": "审计测试公司（新）", "contact_email": "a@b.cn"})

    rows = entries(clean_engine, table_name="organisations", row_key=str(org["id"]))
    assert [e.action for e in rows] == ["insert", "update"]
    me = f"user:{user_id_of(regulator)}"
    assert {e.actor for e in rows} == {me}
    assert after(rows[0])["name"] == "审计测试公司" and after(rows[0])["credit_code"] == org["credit_code"]
    assert before(rows[1]) == {"name": "审计测试公司", "contact_email": None}
    assert after(rows[1]) == {"name": "审计测试公司（新）", "contact_email": "a@b.cn"}
    assert "updated_at" not in after(rows[1])  # bookkeeping columns are left out
    # The top-up at creation moved money: its transfer is an entry too, by the same person.
    transfers = entries(clean_engine, table_name="ledger_transfers")
    assert transfers and all(e.actor == me for e in transfers)


def test_reads_and_refused_writes_leave_no_entry(regulator: Any, clean_engine: Engine) -> None:
    factories.org(regulator)
    count = len(entries(clean_engine))
    regulator.get("/orgs")
    regulator.post("/orgs", {"name": "x", "credit_code": "not-a-code", "kind": "enterprise"}, expect=422)
    factories_org = regulator.get("/orgs")["items"][0]
    regulator.post("/orgs", {**_org_body(), "credit_code": factories_org["credit_code"]}, expect=409)
    assert len(entries(clean_engine)) == count


def _org_body() -> dict[str, Any]:
    return {"name": "重复公司", "kind": "enterprise", "locality_code": "330482"}


def test_secrets_are_not_copied_into_the_trail(ew: ExecWorld) -> None:
    job = ew.submit(env={"API_KEY": "s3cr3t-value"})
    token = factories.token_for(ew.regulator, user_id_of(ew.tenant))
    everything = " ".join(f"{e.before} {e.after}" for e in entries(ew.engine))
    assert "s3cr3t-value" not in everything
    assert token not in everything
    (inserted,) = entries(ew.engine, table_name="jobs", row_key=str(job["id"]), action="insert")
    assert after(inserted)["env"] == {"API_KEY": "[redacted]"}
    for created in entries(ew.engine, table_name="api_tokens", action="insert"):
        assert after(created)["token_hash"] == "[redacted]"


def test_a_job_s_life_is_in_the_trail_by_its_submitter_and_the_controller(ew: ExecWorld) -> None:
    job = ew.submit(command=["sh", "-c", "echo audited"], cards=1)
    ew.run_until(job["id"], state_is("succeeded"))

    rows = entries(ew.engine, table_name="jobs", row_key=str(job["id"]))
    submitter = f"user:{user_id_of(ew.tenant)}"
    assert rows[0].action == "insert" and rows[0].actor == submitter
    assert after(rows[0])["command"] == ["sh", "-c", "echo audited"]
    changes = [(before(e).get("state"), after(e).get("state")) for e in rows[1:] if "state" in after(e)]
    assert changes[0][0] == "queued" and changes[-1][1] == "succeeded"
    assert all(e.actor.startswith("controller:") for e in rows[1:])
    # Its history rows restate those changes and are not copied; its launch, its usage record and its
    # settlement's transfers are entries.
    assert not entries(ew.engine, table_name="job_events")
    assert entries(ew.engine, table_name="launches", action="insert")
    assert entries(ew.engine, table_name="usage_records", action="insert")
    settled = [
        e for e in entries(ew.engine, table_name="ledger_transfers") if f"job/{job['id']}/" in e.row_key
    ]
    assert len(settled) >= 2  # the hold, and its posting


def test_every_row_written_through_the_platform_has_its_insert_entry(ew: ExecWorld) -> None:
    """Nothing escapes: each row of each audited table was recorded when it was made."""
    done = ew.submit(command=["sh", "-c", "echo one"])
    failed = ew.submit(command=["sh", "-c", "exit 3"])
    cancelled = ew.submit(command=["sleep", "30"], cards=1)
    ew.run_until(done["id"], state_is("succeeded"))
    ew.run_until(failed["id"], state_is("failed"))
    ew.tenant.post(f"/jobs/{cancelled['id']}/cancel", None, expect=200)
    ew.run_until(cancelled["id"], state_is("cancelled"))

    missing: dict[str, int] = {}
    with session_scope(ew.engine) as session:
        recorded: dict[str, set[str]] = {}
        for table_name, key in session.execute(
            select(AuditEntry.table_name, AuditEntry.row_key).where(AuditEntry.action == "insert")
        ):
            recorded.setdefault(table_name, set()).add(key)
        for table in Base.metadata.sorted_tables:
            if table.name in SKIPPED_TABLES or table.name == "platform_meta":
                continue
            keys = [c.name for c in table.primary_key.columns]
            for row in session.execute(select(*table.primary_key.columns)):
                key = "/".join(str(getattr(row, k)) for k in keys)
                if key not in recorded.get(table.name, set()) and not _keyed_otherwise(table.name):
                    missing[table.name] = missing.get(table.name, 0) + 1
    assert not missing, f"rows with no insert entry: {missing}"


def _keyed_otherwise(table_name: str) -> bool:
    # Batch inserts of rows whose id the database makes are keyed by their unique key (a usage record
    # by its launch).
    return table_name == "usage_records"


# -- transactions ----------------------------------------------------------------------------------


def test_only_committed_writes_are_recorded(clean_engine: Engine) -> None:
    count = len(entries(clean_engine))
    with session_scope(clean_engine, actor="test") as session:
        session.add(_org("91330482MA00000011"))
        session.flush()
        savepoint = session.begin_nested()
        session.add(_org("91330482MA00000022"))
        session.flush()
        savepoint.rollback()
        with session.begin_nested():
            session.add(_org("91330482MA00000033"))
    with pytest.raises(RuntimeError), session_scope(clean_engine, actor="test") as session:
        session.add(_org("91330482MA00000044"))
        session.flush()
        raise RuntimeError("the transaction fails")

    made = [after(e)["credit_code"] for e in entries(clean_engine)[count:]]
    assert made == ["91330482MA00000011", "91330482MA00000033"]
    assert {e.actor for e in entries(clean_engine)[count:]} == {"test"}


def _org(credit_code: str) -> Organisation:
    from suanwang.tenants.models import OrgKind

    return Organisation(
        credit_code=credit_code, name=credit_code, kind=OrgKind.ENTERPRISE, locality_code="330482"
    )


def test_concurrent_writers_make_one_unbroken_chain(clean_engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with session_scope(clean_engine, actor=f"writer:{n}") as session:
                    session.add(_org(f"91330482MA{n:02d}{i:04d}00"[:18]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    verdict = audit.verify_database(clean_engine)
    assert verdict.ok, verdict.problems
    assert sum(1 for e in entries(clean_engine) if e.actor.startswith("writer:")) == 40
    seqs = [e.seq for e in entries(clean_engine)]
    assert seqs == list(range(1, len(seqs) + 1))


# -- the check -------------------------------------------------------------------------------------


@pytest.fixture
def chained(regulator: Any, clean_engine: Engine) -> list[AuditEntry]:
    for n in range(3):
        factories.org(regulator, name=f"链上公司{n}")
    rows = entries(clean_engine)
    assert len(rows) >= 6
    assert audit.verify_database(clean_engine).ok
    return rows


def test_the_database_refuses_to_change_or_delete_an_entry(
    chained: list[AuditEntry], clean_engine: Engine
) -> None:
    for statement in (
        "UPDATE audit_log SET actor = 'someone' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
    ):
        with pytest.raises(DBAPIError, match="append-only"), clean_engine.begin() as connection:
            connection.execute(text(statement))
    assert audit.verify_database(clean_engine).ok


def test_an_edited_entry_is_found(chained: list[AuditEntry], clean_engine: Engine) -> None:
    victim = next(e for e in chained[1:] if "链上公司" in (e.after or ""))
    forged = (victim.after or "").replace("链上公司", "别的公司")
    sql(clean_engine, "UPDATE audit_log SET after = :v WHERE seq = :s", v=forged, s=victim.seq)
    verdict = audit.verify_database(clean_engine)
    assert [(p.seq, p.kind) for p in verdict.problems or []] == [(victim.seq, "edited")]


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(
    chained: list[AuditEntry], clean_engine: Engine
) -> None:
    victim = chained[1]
    new_hash = digest(
        seq=victim.seq,
        at=victim.at,
        actor="user:999",
        action=victim.action,
        table_name=victim.table_name,
        row_key=victim.row_key,
        before=victim.before,
        after=victim.after,
        prev_hash=victim.prev_hash,
    )
    sql(
        clean_engine,
        "UPDATE audit_log SET actor = 'user:999', hash = :h WHERE seq = :s",
        h=new_hash,
        s=victim.seq,
    )
    kinds = [(p.seq, p.kind) for p in audit.verify_database(clean_engine).problems or []]
    assert kinds == [(victim.seq + 1, "broken-link")]


def test_a_deleted_entry_is_found(chained: list[AuditEntry], clean_engine: Engine) -> None:
    sql(clean_engine, "DELETE FROM audit_log WHERE seq = 3")
    kinds = {p.kind for p in audit.verify_database(clean_engine).problems or []}
    assert kinds == {"missing", "broken-link"}


def test_a_cut_tail_is_found_by_the_head(chained: list[AuditEntry], clean_engine: Engine) -> None:
    last = chained[-1].seq
    sql(clean_engine, "DELETE FROM audit_log WHERE seq >= :s", s=last - 1)
    problems = audit.verify_database(clean_engine).problems or []
    assert [(p.seq, p.kind) for p in problems] == [(last, "head")]


def test_a_rewritten_chain_is_found_by_an_anchor(chained: list[AuditEntry], clean_engine: Engine) -> None:
    with session_scope(clean_engine) as session:
        anchor = audit.head(session)
    assert anchor is not None and anchor.seq == chained[-1].seq
    # Someone rewrites entry 2 and every hash after it, and the head: a consistent forgery...
    prev = GENESIS
    rows = entries(clean_engine)
    for row in rows:
        actor = "user:999" if row.seq == 2 else row.actor
        value = digest(
            seq=row.seq,
            at=row.at,
            actor=actor,
            action=row.action,
            table_name=row.table_name,
            row_key=row.row_key,
            before=row.before,
            after=row.after,
            prev_hash=prev,
        )
        sql(
            clean_engine,
            "UPDATE audit_log SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s",
            a=actor,
            p=prev,
            h=value,
            s=row.seq,
        )
        prev = value
    sql(clean_engine, "UPDATE audit_head SET hash = :h", h=prev)
    assert audit.verify_database(clean_engine).ok  # ...that only an anchor reveals
    problems = audit.verify_database(clean_engine, [anchor]).problems or []
    assert [(p.seq, p.kind) for p in problems] == [(anchor.seq, "anchor")]


def test_the_regulator_reads_the_trail_and_no_one_else(ew: ExecWorld) -> None:
    job = ew.submit()
    page = ew.regulator.get("/audit", params={"table": "jobs", "key": str(job["id"])})
    assert page["total"] == 1
    (entry,) = page["items"]
    assert entry["action"] == "insert" and entry["after"]["id"] == job["id"]
    assert entry["actor"] == f"user:{user_id_of(ew.tenant)}"
    mine = ew.regulator.get("/audit", params={"actor": entry["actor"], "limit": 500})["items"]
    assert mine and all(e["actor"] == entry["actor"] for e in mine)
    head = ew.regulator.get("/audit/head")
    assert head["seq"] == ew.regulator.get("/audit", params={"limit": 1})["items"][0]["seq"]
    for api in (ew.tenant, ew.operator):
        api.get("/audit", expect=403)
        api.get("/audit/head", expect=403)


def test_the_cli_verifies_and_prints_the_head(
    chained: list[AuditEntry],
    clean_engine: Engine,
    db_url: str,
    cli_run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    code, out, _ = cli_run("audit", "head")
    assert code == 0
    anchor = Head.parse(out.strip().splitlines()[-1])
    code, out, err = cli_run("audit", "verify", "--anchor", str(anchor))
    assert code == 0, out + err
    assert f"{anchor.seq}" in out
    sql(clean_engine, "UPDATE audit_log SET actor = 'x' WHERE seq = 2")
    code, out, err = cli_run("audit", "verify")
    assert code == 1
    assert "2" in out and "edited" in out
    code, out, err = cli_run("--lang", "zh-CN", "audit", "verify")
    assert code == 1 and "篡改" in out
    code, _, err = cli_run("audit", "verify", "--anchor", "12:nothex")
    assert code == 2 and "SEQ:HASH" in err


def test_entries_count_matches_the_head(chained: list[AuditEntry], clean_engine: Engine) -> None:
    with session_scope(clean_engine) as session:
        count = session.scalar(select(func.count()).select_from(AuditEntry))
        head = audit.head(session)
        read_in_pairs = [e.seq for e in audit.stored_entries(session, batch=2)]
    assert head is not None and head.seq == count
    assert read_in_pairs == [e.seq for e in chained] == list(range(1, count + 1))
