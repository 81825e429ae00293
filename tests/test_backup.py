"""`suanwang db backup` / `restore` / `verify` on SQLite and PostgreSQL: a backup of a live database,
restored into a fresh one, holds the same rows, the ledger balances and its double entry; a restore
never lands on a database that holds data unless asked, and a damaged ledger is reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from suanwang.audit.guard import drop_guard
from suanwang.config import get_settings
from suanwang.db import backup
from suanwang.db.base import Base
from tests import factories

pytestmark = pytest.mark.db


@pytest.fixture
def fresh_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the test database."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    url = make_url(db_url)
    name = f"{url.database}_restore"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the platform, in primary-key order."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = {}
            for table in Base.metadata.sorted_tables:
                keys = ", ".join(c.name for c in table.primary_key.columns) or "1"
                rows = connection.execute(text(f"SELECT * FROM {table.name} ORDER BY {keys}"))
                found[table.name] = [tuple(row) for row in rows]
            return found
    finally:
        engine.dispose()


def money_world(regulator: Any) -> None:
    """Organisations with money moved (top-ups, refunds, a credit limit): rows in every ledger table."""
    for amount in (50_000, 120_000):
        org = factories.org(regulator, funds_fen=amount)
        regulator.post(f"/orgs/{org['id']}/refunds", {"amount_fen": 1_000, "reason": "overpaid"}, expect=201)
    regulator.call("PUT", f"/orgs/{org['id']}/credit-limit", json={"credit_limit_fen": 5_000}, expect=200)


def test_a_backup_restored_into_a_fresh_database_is_the_same_and_sound(
    regulator: Any, clean_engine: Engine, db_url: str, fresh_url: str, tmp_path: Path
) -> None:
    money_world(regulator)
    before = contents(db_url)
    assert before["ledger_transfers"] and before["organisations"]
    file = tmp_path / "suanwang.backup"
    backup.backup(db_url, file)
    assert backup.format_of(file) == make_url(db_url).get_backend_name()
    with pytest.raises(backup.BackupError) as exists:
        backup.backup(db_url, file)
    assert exists.value.key == "backup.exists"

    verified = backup.restore(fresh_url, file)
    assert verified.ok and verified.ledger_problems == []
    source = backup.verify(db_url)
    assert verified.revision == source.revision is not None
    assert contents(fresh_url) == before
    # The audit trail came along whole: the same chain, still append-only, still checked.
    assert verified.audit.ok and verified.audit.checked == len(before["audit_log"]) > 0
    assert verified.audit.last == source.audit.last
    with pytest.raises(DBAPIError, match="append-only"), create_engine(fresh_url).begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))
    # Ids continue after the restored ones (PostgreSQL restores its sequences with the rows).
    engine = create_engine(fresh_url)
    try:
        assert set(inspect(engine).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                top = connection.scalar(text("SELECT max(id) FROM ledger_accounts"))
                following = connection.scalar(
                    text("SELECT nextval(pg_get_serial_sequence('ledger_accounts', 'id'))")
                )
                assert following > top
    finally:
        engine.dispose()


def test_a_restore_does_not_land_on_a_database_with_data_unless_asked(
    regulator: Any, clean_engine: Engine, db_url: str, tmp_path: Path
) -> None:
    money_world(regulator)
    file = tmp_path / "suanwang.backup"
    backup.backup(db_url, file)
    before = contents(db_url)
    with pytest.raises(backup.BackupError) as refused:
        backup.restore(db_url, file)
    assert refused.value.key == "backup.not-empty" and "--replace" in refused.value.message("en")
    assert contents(db_url) == before
    # Asked to replace: what was added since the backup is gone, the backup's rows are back.
    factories.org(regulator, funds_fen=7_000)
    assert contents(db_url) != before
    clean_engine.dispose()  # the restore replaces the tables under any open connection
    assert backup.restore(db_url, file, replace=True).ok
    assert contents(db_url) == before


def test_files_that_are_not_backups_or_of_the_other_kind_are_refused(db_url: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a backup at all")
    with pytest.raises(backup.BackupError) as unknown:
        backup.restore(db_url, junk)
    assert unknown.value.key == "backup.unknown-format" and "pg_dump" in unknown.value.message("en")
    other = tmp_path / "other.backup"
    other.write_bytes(
        backup.PG_DUMP_MAGIC + b"\0" * 16 if db_url.startswith("sqlite") else backup.SQLITE_MAGIC
    )
    with pytest.raises(backup.BackupError) as wrong:
        backup.restore(db_url, other)
    assert wrong.value.key == "backup.wrong-kind"
    with pytest.raises(backup.BackupError) as missing:
        backup.restore(db_url, tmp_path / "nowhere.backup")
    assert missing.value.key == "backup.no-file" and "没有备份文件" in missing.value.message("zh")


def test_verify_reports_a_ledger_whose_balances_were_edited(
    regulator: Any, clean_engine: Engine, db_url: str
) -> None:
    money_world(regulator)
    assert backup.verify(db_url).ok
    with clean_engine.begin() as connection:  # someone edits a balance behind the ledger's back
        connection.execute(
            text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = 1")
        )
    verified = backup.verify(db_url)
    assert not verified.ok and any("account 1" in problem for problem in verified.ledger_problems)


def test_the_cli_backs_up_restores_and_verifies(
    regulator: Any,
    clean_engine: Engine,
    db_url: str,
    fresh_url: str,
    tmp_path: Path,
    cli_run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    money_world(regulator)
    file = tmp_path / "cli.backup"
    monkeypatch.setenv("SUANWANG_DATABASE_URL", db_url)
    code, out, err = cli_run("db", "backup", str(file))
    assert code == 0 and "Backup written" in out, err
    code, out, err = cli_run("--lang", "zh", "db", "backup", str(file))
    assert code == 2 and "已存在" in err
    monkeypatch.setenv("SUANWANG_DATABASE_URL", fresh_url)
    get_settings.cache_clear()
    code, out, err = cli_run("db", "restore", str(file))
    assert code == 0 and "double entry holds" in out, err
    code, out, err = cli_run("db", "restore", str(file))
    assert code == 2 and "not empty" in err
    code, out, _ = cli_run("db", "verify")
    assert code == 0 and "Schema revision" in out and "the chain is unbroken" in out
    with create_engine(fresh_url).begin() as connection:  # someone edits the restored trail
        drop_guard(connection)
        connection.execute(text("UPDATE audit_log SET actor = 'nobody' WHERE seq = 1"))
    code, out, _ = cli_run("db", "verify")
    assert code == 1 and "double entry holds" in out and "Audit entry 1: edited" in out
