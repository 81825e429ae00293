"""Facts about this platform installation, kept in its database (key → value)."""

from __future__ import annotations

import secrets

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from suanwang.db.base import Base

INSTANCE_ID = "instance_id"


class PlatformMeta(Base):
    __tablename__ = "platform_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


def instance_id(session: Session) -> str:
    """A short random id of this database, made once: it prefixes every launch name sent to a backend."""
    found = session.scalar(select(PlatformMeta.value).where(PlatformMeta.key == INSTANCE_ID))
    if found is not None:
        return found
    value = secrets.token_hex(3)
    try:
        with session.begin_nested():
            session.add(PlatformMeta(key=INSTANCE_ID, value=value))
    except IntegrityError:  # another process made it first: use theirs
        return session.scalar(select(PlatformMeta.value).where(PlatformMeta.key == INSTANCE_ID)) or value
    session.commit()
    return value
