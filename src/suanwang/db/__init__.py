"""Database: SQLAlchemy 2 typed ORM, one Alembic history, SQLite embedded and PostgreSQL in production."""

from suanwang.db.base import Base, IdMixin, RetiredMixin, TimestampsMixin, UTCDateTime, enum_column
from suanwang.db.session import engine_for, make_engine, session_factory, session_scope, upgrade

__all__ = [
    "Base",
    "IdMixin",
    "RetiredMixin",
    "TimestampsMixin",
    "UTCDateTime",
    "engine_for",
    "enum_column",
    "make_engine",
    "session_factory",
    "session_scope",
    "upgrade",
]
