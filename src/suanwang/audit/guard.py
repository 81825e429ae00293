"""The database's own refusal to change or delete audit entries (triggers), on both databases.

Whoever can drop a trigger can still edit the table: the hash chain is what proves an edit; the
triggers stop the honest mistakes and the careless scripts.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

MESSAGE = "audit_log is append-only"

_POSTGRES_ADD = (
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$"
    f" BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
    " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
)
_POSTGRES_DROP = ("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",)
_SQLITE_ADD = tuple(
    f"CREATE TRIGGER audit_log_no_{verb} BEFORE {verb.upper()} ON audit_log"
    f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    for verb in ("update", "delete")
)
_SQLITE_DROP = tuple(f"DROP TRIGGER IF EXISTS audit_log_no_{verb}" for verb in ("update", "delete"))


def add_guard(connection: Connection) -> None:
    for statement in _POSTGRES_ADD if connection.dialect.name == "postgresql" else _SQLITE_ADD:
        connection.execute(text(statement))


def drop_guard(connection: Connection) -> None:
    for statement in _POSTGRES_DROP if connection.dialect.name == "postgresql" else _SQLITE_DROP:
        connection.execute(text(statement))
