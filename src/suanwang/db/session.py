"""Engines, sessions and migrations for the embedded SQLite default and for PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def sqlite_become_writer(connection: Connection) -> None:
    """Make this SQLite connection the writer now, waiting its turn (busy_timeout) if another is.

    pysqlite opens a transaction only just before a write statement. A transaction opened any other
    way (a SAVEPOINT) is deferred: its first read pins a snapshot, and a write after another connection
    has committed then fails at once with "database is locked" (SQLite cannot wait: the snapshot is
    stale). Starting it as the writer means its reads see the latest data and its writes never fail so.
    """
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def take_write_lock(session: Session) -> None:
    """Before a read whose answer decides a write (a balance, an overlap check): on SQLite, become the
    writer first (FOR UPDATE does nothing there); PostgreSQL's row locks do this job."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        sqlite_become_writer(connection)


def _sqlite_savepoint(connection: Connection, _name: str) -> None:
    # Savepoints guard writes (create-or-read, imports): start their transaction as the writer.
    sqlite_become_writer(connection)


def make_engine(url: str) -> Engine:
    """An engine whose every commit seals its writes into the audit trail (suanwang.audit.capture)."""
    from suanwang.audit.capture import install

    engine = _make_engine(url)
    install(engine)
    return engine


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint)
        return engine
    # Plan every statement for the tables as they are now: psycopg prepares statements it sees often,
    # and PostgreSQL's generic plan for one, made while a table was small, stays a sequential scan as
    # the table grows (measured: a ledger batch went from milliseconds to seconds). Planning each time
    # costs a little on the largest ledger batches (docs/benchmarks.md).
    options = "-c plan_cache_mode=force_custom_plan"
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"options": options}
    )


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def session_factory(engine: Engine, actor: str | None = None) -> sessionmaker[Session]:
    """Sessions whose writes the audit trail names as `actor`'s (until one says otherwise)."""
    return sessionmaker(bind=engine, expire_on_commit=False, info={"actor": actor} if actor else None)


@contextmanager
def session_scope(engine: Engine, actor: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = session_factory(engine, actor)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    script_location = str(resources.files("suanwang.db").joinpath("migrations"))
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision` (idempotent)."""
    engine = engine_for(url)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine_for(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
