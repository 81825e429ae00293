"""COPY on PostgreSQL (the intake's and the audit trail's batch insert) fails as any statement does:
with SQLAlchemy's error classes, which the API answers as 503 (database gone) or 409 (duplicate key).

Found by the database-outage test in CI: a submission whose intake batch met the outage inside a COPY
was answered 500, the driver's own OperationalError being unknown to the API's handlers."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from suanwang.db.bulk import copy_many
from suanwang.db.meta import PlatformMeta
from suanwang.db.pgcopy import copy_rows
from suanwang.db.session import session_factory
from tests.conftest import PG_URL

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SUANWANG_TEST_DATABASE_URL (CI does)"),
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]

TABLE = PlatformMeta.__table__


def stored(engine: Engine) -> dict[str, str]:
    with session_factory(engine)() as session:
        return {
            row.key: row.value for row in session.scalars(select(PlatformMeta)) if row.key.startswith("t-")
        }


def cut_off(engine: Engine, session: Session) -> None:
    """End the session's server process from another connection, as a database restart would."""
    pid = session.scalar(text("SELECT pg_backend_pid()"))
    with engine.begin() as other:
        assert other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_copy_many_inserts_the_rows_in_the_transaction(clean_engine: Engine) -> None:
    with session_factory(clean_engine)() as session:
        copy_many(session, TABLE, [{"key": "t-1", "value": "one"}, {"key": "t-2", "value": "two"}])
        assert stored(clean_engine) == {}  # not committed yet
        session.commit()
    assert stored(clean_engine) == {"t-1": "one", "t-2": "two"}


def test_a_duplicate_key_in_copy_is_an_integrity_error_and_stores_nothing(clean_engine: Engine) -> None:
    with session_factory(clean_engine)() as session:
        copy_many(session, TABLE, [{"key": "t-1", "value": "one"}])
        session.commit()
    with session_factory(clean_engine)() as session:
        with pytest.raises(IntegrityError):
            copy_many(session, TABLE, [{"key": "t-2", "value": "two"}, {"key": "t-1", "value": "again"}])
        session.rollback()
    assert stored(clean_engine) == {"t-1": "one"}


def test_copy_into_a_lost_database_is_an_operational_error(clean_engine: Engine) -> None:
    with session_factory(clean_engine)() as session:
        session.execute(text("SELECT 1"))  # the transaction holds its connection
        cut_off(clean_engine, session)
        with pytest.raises(OperationalError):
            copy_many(session, TABLE, [{"key": "t-1", "value": "one"}])
        session.rollback()
    assert stored(clean_engine) == {}


def test_copy_rows_raises_sqlalchemy_classes_by_the_driver_error(clean_engine: Engine) -> None:
    # The audit trail's entries go through copy_rows on a Connection: the same mapping holds there.
    with clean_engine.connect() as connection:
        with pytest.raises(IntegrityError), connection.begin():
            copy_rows(connection, "platform_meta", ["key", "value"], [["t-1", "a"], ["t-1", "b"]])
        transaction = connection.begin()
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        with clean_engine.begin() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError):
            copy_rows(connection, "platform_meta", ["key", "value"], [["t-2", "c"]])
        assert connection.invalidated  # the pool will not hand the dead connection out again
        transaction.rollback()
    assert stored(clean_engine) == {}
