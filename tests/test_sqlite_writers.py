"""The embedded SQLite database with several writers at once (the API's threads, the controller, node
agents' heartbeats): a read that decides a write happens as the writer, so it neither reads stale data
nor fails with "database is locked" when another connection commits in between.

Found on a 16-core GPU machine (bench/gpu_check.sh): a wallet top-up answered 503 because its ledger
accounts were created in a savepoint whose deferred transaction had read before the controller committed.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from suanwang.db.session import _sqlite_pragmas, session_factory, take_write_lock
from suanwang.settlement import chart

pytestmark = [pytest.mark.db, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def committing(engine: Engine, stop: threading.Event) -> threading.Thread:
    """A thread that commits small writes as fast as it can until `stop` (the controller, say)."""

    def run() -> None:
        sessions = session_factory(engine)
        number = 0
        while not stop.is_set():
            with sessions() as session:
                session.execute(
                    text("INSERT INTO platform_meta (key, value) VALUES (:key, 'x')"), {"key": f"w{number}"}
                )
                session.commit()
            number += 1

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_accounts_made_in_a_savepoint_while_another_connection_commits(clean_engine: Engine) -> None:
    # Before the fix nearly every one of these failed at once with "database is locked".
    stop = threading.Event()
    writer = committing(clean_engine, stop)
    sessions = session_factory(clean_engine)
    failures: list[str] = []
    try:
        for provider_id in range(1, 201):
            with sessions() as session:
                try:
                    made = chart.ensure(session, [chart.provider(provider_id)])
                    session.commit()
                except OperationalError as exc:
                    failures.append(str(exc.orig))
                    continue
                assert made[f"provider/{provider_id}/payable"].id is not None
    finally:
        stop.set()
        writer.join()
    assert failures == []
    with sessions() as session:
        count = session.scalar(text("SELECT count(*) FROM ledger_accounts WHERE key LIKE 'provider/%'"))
        assert count == 200


def test_take_write_lock_makes_the_session_the_only_writer_until_it_ends(clean_engine: Engine) -> None:
    impatient = create_engine(clean_engine.url, connect_args={"timeout": 0.05})
    event.listen(impatient, "connect", _sqlite_pragmas)

    @event.listens_for(impatient, "connect")
    def _no_wait(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")  # type: ignore[attr-defined]

    holder = session_factory(clean_engine)()
    other = session_factory(impatient)()
    try:
        take_write_lock(holder)
        take_write_lock(holder)  # again in the same transaction: nothing changes
        with pytest.raises(OperationalError, match="locked"):
            take_write_lock(other)
        other.rollback()
        # A plain read still answers while the writer holds the lock (WAL).
        assert other.scalar(text("SELECT count(*) FROM platform_meta")) is not None
        other.rollback()
        holder.commit()
        take_write_lock(other)  # the lock is free again
        other.commit()
    finally:
        holder.close()
        other.close()
        impatient.dispose()
