"""Backups of the platform's database, restored into a fresh one and checked there.

SQLite: SQLite's online backup (a consistent copy taken while the server writes). PostgreSQL: pg_dump's
custom format (one consistent snapshot), restored by pg_restore in a single transaction, so a failed
restore leaves the target as it was. A restore goes into an empty database only, unless `replace` is
asked for; afterwards the schema revision is the backup's and the ledger's invariants are checked.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from suanwang.audit.chain import Verdict
from suanwang.db.session import current_revision, make_engine, session_scope

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """What went wrong, as a message key (i18n/messages.toml) and its parameters."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def message(self, lang: str) -> str:
        from suanwang.i18n import t

        return t(self.key, lang, **self.params)


@dataclass(frozen=True, slots=True)
class Verified:
    revision: str | None
    tables: int
    ledger_problems: list[str]
    audit: Verdict

    @property
    def ok(self) -> bool:
        return not self.ledger_problems and self.audit.ok


def kind_of(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError("backup.unsupported", backend=backend)
    return backend


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("backup.in-memory")
    return Path(database)


def _libpq(url: str) -> str:
    """The URL as pg_dump and pg_restore take it (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError("backup.tool-missing", tool=name)
    return found


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(
            "backup.tool-failed", tool=Path(command[0]).name, detail=result.stderr.strip()[-2000:]
        )


def backup(url: str, destination: Path) -> None:
    """Write a consistent copy of the database at `url` to `destination` (not overwritten)."""
    if destination.exists():
        raise BackupError("backup.exists", path=str(destination))
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if kind_of(url) == "sqlite":
            source_path = _sqlite_path(url)
            if not source_path.exists():
                raise BackupError("backup.no-database", path=str(source_path))
            with sqlite3.connect(source_path) as source, sqlite3.connect(partial) as copy:
                source.backup(copy)
            os.chmod(partial, 0o600)  # it holds what the database holds: tokens' hashes, money
        else:
            _run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    "-f",
                    str(partial),
                    _libpq(url),
                ]
            )
        os.replace(partial, destination)  # whole or not there
    finally:
        partial.unlink(missing_ok=True)


def format_of(path: Path) -> str:
    if not path.is_file():
        raise BackupError("backup.no-file", path=str(path))
    with open(path, "rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError("backup.unknown-format", path=str(path))


def _has_tables(url: str) -> bool:
    engine = make_engine(url)
    try:
        return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def restore(url: str, source: Path, *, replace: bool = False) -> Verified:
    """Restore the backup `source` into the database at `url` and verify the result."""
    kind, found = kind_of(url), format_of(source)
    if kind != found:
        raise BackupError("backup.wrong-kind", path=str(source), found=found, kind=kind)
    if not replace and _has_tables(url):
        raise BackupError("backup.not-empty")
    if kind == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(source) as backup_db, sqlite3.connect(target) as live:
            backup_db.backup(live)  # page by page into the target, replacing what was there
    else:
        command = [
            _tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
        ]
        if replace:
            command += ["--clean", "--if-exists"]
        _run([*command, "-d", _libpq(url), str(source)])
    return verify(url)


def verify(url: str) -> Verified:
    """The database's schema revision, table count, and what is wrong with its ledger and its audit
    trail's hash chain (nothing, if sound)."""
    from suanwang.audit.service import verify_database
    from suanwang.ledger import store as ledger

    engine = make_engine(url)
    try:
        tables = len(inspect(engine).get_table_names())
        with session_scope(engine) as session:
            problems = ledger.check_invariants(session)
        audit = verify_database(engine)
    finally:
        engine.dispose()
    return Verified(current_revision(url), tables, problems, audit)
