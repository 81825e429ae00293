"""PostgreSQL's `COPY … FROM STDIN` through psycopg, the batch paths' fastest insert (job intake,
the ledger's transfers, the audit trail's entries).

COPY goes past SQLAlchemy's statement execution, so its errors would arrive as the driver's own: a
database lost mid-batch as `psycopg.OperationalError`, which the API's handlers do not know (a 500
where every other statement gives a 503). They are raised as SQLAlchemy's classes instead, as any
statement's are, and a connection found broken is invalidated, as SQLAlchemy does for a statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def copy_rows(
    connection: Connection, table: str, names: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Stream `rows` (values in the order of `names`) into `table` in the connection's transaction."""
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = f"COPY {table} ({', '.join(names)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        lost = driver.broken
        if lost:  # as SQLAlchemy does when a statement finds the server gone: the pool drops it
            connection.invalidate(error)
        # The class by the driver error's name: OperationalError (503), IntegrityError (409), DataError…
        raise DBAPIError.instance(
            statement, None, error, psycopg.Error, connection_invalidated=lost
        ) from error
