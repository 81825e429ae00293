"""Declarative base, the aware-UTC column type and the columns most tables share."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Enum, Integer, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from suanwang.timeutil import require_aware, utcnow

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC; refuses naive datetimes; SQLite's naive strings come back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = require_aware(value)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_column(enum_type: type[enum.Enum], name: str) -> Enum:
    """Store enums by value as plain strings (portable, readable, no PostgreSQL enum types to migrate)."""
    return Enum(
        enum_type,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class IdMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class TimestampsMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RetiredMixin:
    """Nothing that history refers to is deleted: it is retired, and lists hide it unless asked."""

    retired_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    def set_retired(self, retired: bool | None, now: datetime) -> None:
        """True retires (keeping the first date), False brings back, None leaves it as it is."""
        if retired is True and self.retired_at is None:
            self.retired_at = now
        elif retired is False:
            self.retired_at = None


def assign_changed(obj: object, values: dict[str, Any]) -> bool:
    """Set the attributes whose value differs; True when any did. An upsert that finds nothing to change
    writes nothing (no UPDATE, no new updated_at), so re-importing a file is a no-op."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed
