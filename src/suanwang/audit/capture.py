"""What goes into the audit trail, and when: changes are gathered while a transaction runs and sealed
into the chain as it commits.

- ORM changes (most writes) are read after each flush from the session's new, changed and deleted
  objects, with the attributes' before and after values.
- Bulk writes that bypass the ORM (job intake, usage batches, ledger transfers) are noted by the code
  that makes them (`note_inserts`; `db.bulk` does it for every batch insert).
- Pending entries live on the database connection, so a savepoint rolled back takes its entries with
  it and a rolled back transaction leaves none.
- At commit (the connection's commit event, inside the transaction), the head row is locked, the
  entries are numbered and hashed after it, inserted, and the head moved: entries are in commit order,
  and a transaction that does not commit leaves no entry.

Who acted comes from the session (`act_as`: the API sets the caller, the controller itself); a row may
name its own actor (a batch of several callers' submissions).

Not audited, by design (docs/reliability.md): replay caches and dedup marks, job output, the expiry index
of holds, jobs' history rows (each restates a state change that the job's own entry records, with
before and after: auditing them too cost a third of the trail's price on every submission), the audit
tables themselves; columns that change on every heartbeat or read (last seen, last
used, log size), the controller's "why it waits" notes, and the ledger's balances (derived from the
transfers, which are audited). Secrets are redacted: token hashes, and the values of environments.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    UniqueConstraint,
    bindparam,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session

from suanwang.audit.chain import GENESIS, digest
from suanwang.audit.models import ACTOR_CHARS, KEY_CHARS, AuditEntry, AuditHead
from suanwang.db.pgcopy import copy_rows
from suanwang.timeutil import utcnow

PENDING = "suanwang.audit.pending"
MARKS = "suanwang.audit.marks"
ACTOR = "actor"
SYSTEM = "system"
REDACTED = "[redacted]"

SKIPPED_TABLES = frozenset(
    {
        "audit_log",
        "audit_head",
        "alembic_version",
        "idempotency_keys",  # the answers kept for replays
        "metering_seen_events",  # which event ids were seen (dedup marks)
        "node_log_chunks",  # job output
        "ledger_pending_expiries",  # an index of holds by expiry time
        "job_events",  # a job's history: each row restates a change the jobs entries record
    }
)
SKIPPED_COLUMNS: Mapping[str, frozenset[str]] = {
    "*": frozenset({"updated_at"}),
    "api_tokens": frozenset({"last_used_at"}),
    "nodes": frozenset({"last_heartbeat_at"}),
    "node_launches": frozenset({"log_bytes"}),
    "jobs": frozenset({"reason_code", "reason_params"}),
    "ledger_accounts": frozenset({"debits_pending", "debits_posted", "credits_pending", "credits_posted"}),
}
SECRET_COLUMNS = frozenset({("api_tokens", "token_hash")})
SECRET_VALUES = frozenset({("jobs", "env"), ("node_launches", "env")})  # keys kept, values hidden

Row = Mapping[str, Any]
# A name for every row, or one per row (None: the session's), or None (the session's).
ActorOf = str | Callable[[Row], str | None] | None


@dataclass(slots=True)
class Pending:
    actor: str
    action: str
    table_name: str
    row_key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# -- who acts ---------------------------------------------------------------------------------------


def act_as(session: Session, actor: str) -> None:
    """Name who the session's writes are by, from now on (`user:12`, `controller:host:pid`)."""
    session.info[ACTOR] = actor[:ACTOR_CHARS]


def user_actor(user_id: int) -> str:
    return f"user:{user_id}"


def controller_actor() -> str:
    """The controller process's name in the trail: which host and process made the change."""
    return f"controller:{socket.gethostname()}:{os.getpid()}"


def actor_of(session: Session) -> str:
    return str(session.info.get(ACTOR, SYSTEM))


# -- noting changes ---------------------------------------------------------------------------------


def note_inserts(session: Session, table: Table, rows: Sequence[Row], *, actor: ActorOf = None) -> None:
    """Bulk-inserted rows (Core, COPY), noted by the code that writes them, in its transaction."""
    if table.name in SKIPPED_TABLES or not rows:
        return
    connection = session.connection()
    if not _installed(connection):
        return
    default = actor_of(session)
    keys = _key_columns(table, rows[0])
    pending = _pending(connection)
    for row in rows:
        who = (actor(row) if callable(actor) else actor) or default
        pending.append(
            Pending(
                actor=who[:ACTOR_CHARS],
                action="insert",
                table_name=table.name,
                row_key=_key(row.get(name) for name in keys),
                before=None,
                after=_clean(table.name, row),
            )
        )


def _after_flush(session: Session, _context: Any) -> None:
    """The ORM's changes of this flush (the session still shows them, with their attribute history)."""
    if not (session.new or session.dirty or session.deleted):
        return
    connection = session.connection()
    if not _installed(connection):
        return
    actor = actor_of(session)
    pending = _pending(connection)
    for obj in session.new:
        pending.extend(_inserted(obj, actor))
    for obj in session.dirty:
        pending.extend(_updated(obj, actor))
    for obj in session.deleted:
        pending.extend(_deleted(obj, actor))


def _columns(obj: Any) -> tuple[Table | None, list[tuple[str, str]]]:
    """The object's table (None if not audited) and its (attribute, column) pairs."""
    mapper = inspect(obj).mapper
    table = mapper.local_table
    if not isinstance(table, Table) or table.name in SKIPPED_TABLES:
        return None, []
    return table, [(attr.key, attr.columns[0].name) for attr in mapper.column_attrs]


def _row_key(obj: Any) -> str:
    state = inspect(obj)
    if state.identity is not None:
        return _key(state.identity)
    mapper = state.mapper
    return _key(state.dict.get(mapper.get_property_by_column(c).key) for c in mapper.primary_key)


def _inserted(obj: Any, actor: str) -> list[Pending]:
    table, columns = _columns(obj)
    if table is None:
        return []
    loaded = inspect(obj).dict  # values the database made itself and not yet read back are left out
    after = {name: loaded[key] for key, name in columns if key in loaded}
    return [Pending(actor, "insert", table.name, _row_key(obj), None, _clean(table.name, after))]


def _updated(obj: Any, actor: str) -> list[Pending]:
    table, columns = _columns(obj)
    if table is None:
        return []
    skipped = _skipped(table.name)
    attrs = inspect(obj).attrs
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key, name in columns:
        if name in skipped:
            continue
        history = attrs[key].history
        if not history.has_changes():
            continue
        # An attribute set without being read first has no known old value: left out of `before`.
        if history.deleted:
            before[name] = history.deleted[0]
        after[name] = history.added[0] if history.added else None
    if not after:
        return []
    return [
        Pending(
            actor,
            "update",
            table.name,
            _row_key(obj),
            _clean(table.name, before),
            _clean(table.name, after),
        )
    ]


def _deleted(obj: Any, actor: str) -> list[Pending]:
    table, columns = _columns(obj)
    if table is None:
        return []
    loaded = inspect(obj).dict
    before = {name: loaded[key] for key, name in columns if key in loaded}
    return [Pending(actor, "delete", table.name, _row_key(obj), _clean(table.name, before), None)]


def _key_columns(table: Table, row: Row) -> list[str]:
    """The primary key if the rows carry it, else the first unique key they carry (a serial id is only
    known after the insert)."""
    candidates = [[c.name for c in table.primary_key.columns]]
    candidates += [[c.name for c in u.columns] for u in table.constraints if isinstance(u, UniqueConstraint)]
    candidates += [[c.name] for c in table.columns if c.unique]
    for names in candidates:
        if names and all(name in row for name in names):
            return names
    return []


@lru_cache(maxsize=128)
def _skipped(table_name: str) -> frozenset[str]:
    return SKIPPED_COLUMNS["*"] | SKIPPED_COLUMNS.get(table_name, frozenset())


def _key(values: Iterable[Any]) -> str:
    return "/".join("" if v is None else str(_plain(v)) for v in values)[:KEY_CHARS]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _clean(table_name: str, row: Row) -> dict[str, Any]:
    # On every audited row of every batch: plain values take the short way.
    skipped = _skipped(table_name)
    clean: dict[str, Any] = {}
    for name, value in row.items():
        if name in skipped:
            continue
        if type(value) in _SCALARS and (table_name, name) not in SECRET_COLUMNS:
            clean[name] = value
        elif (table_name, name) in SECRET_COLUMNS and value is not None:
            clean[name] = REDACTED
        elif (table_name, name) in SECRET_VALUES and isinstance(value, Mapping):
            clean[name] = dict.fromkeys(sorted(map(str, value)), REDACTED)
        else:
            clean[name] = _plain(value)
    return clean


def _plain(value: Any) -> Any:
    """A JSON value for what a column holds."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    # Lists first: asking the abstract Mapping about every list cost more than the rest of the checks.
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


# -- pending entries on the connection, with savepoints ----------------------------------------------


def _pending(connection: Connection) -> list[Pending]:
    pending: list[Pending] = connection.info.setdefault(PENDING, [])
    return pending


def _forget(connection: Connection) -> None:
    connection.info.pop(PENDING, None)
    connection.info.pop(MARKS, None)


def _savepoint(connection: Connection, _name: str | None) -> None:
    # Savepoints nest, so their marks are a stack (the event comes before the savepoint has its name).
    connection.info.setdefault(MARKS, []).append(len(connection.info.get(PENDING, ())))


def _rollback_savepoint(connection: Connection, _name: str, _context: Any) -> None:
    if connection.invalidated:
        return
    marks = connection.info.get(MARKS)
    if marks:
        mark = marks.pop()
        if PENDING in connection.info:
            del connection.info[PENDING][mark:]


def _release_savepoint(connection: Connection, _name: str, _context: Any) -> None:
    if connection.invalidated:
        return
    marks = connection.info.get(MARKS)
    if marks:
        marks.pop()


def _rollback(connection: Connection) -> None:
    # A connection the database dropped is invalidated and its info cannot be reached (what it held
    # goes with it); the caller's error must stay the OperationalError (a 503), not become ours.
    if connection.invalidated:
        return
    _forget(connection)


def _checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info.pop(PENDING, None)
    record.info.pop(MARKS, None)


# -- sealing ----------------------------------------------------------------------------------------

HEAD = AuditHead.__table__
LOG = AuditEntry.__table__
# Built once: every committing transaction runs them.
_LOCK_HEAD = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(HEAD).where(HEAD.c.id == 1).values(seq=bindparam("seq"), hash=bindparam("hash"))


def _commit(connection: Connection) -> None:
    pending = connection.info.pop(PENDING, None)
    connection.info.pop(MARKS, None)
    if pending:
        seal(connection, pending)


def seal(connection: Connection, pending: Sequence[Pending]) -> int:
    """Chain `pending` after the head, in this transaction; returns the new head's sequence number."""
    if connection.dialect.name == "sqlite":
        from suanwang.db.session import sqlite_become_writer

        sqlite_become_writer(connection)
    head = _lock_head(connection)
    seq, prev = head
    at = utcnow()
    rows = []
    for entry in pending:
        seq += 1
        before = _dumps(entry.before)
        after = _dumps(entry.after)
        value = digest(
            seq=seq,
            at=at,
            actor=entry.actor,
            action=entry.action,
            table_name=entry.table_name,
            row_key=entry.row_key,
            before=before,
            after=after,
            prev_hash=prev,
        )
        rows.append(
            {
                "seq": seq,
                "at": at,
                "actor": entry.actor,
                "action": entry.action,
                "table_name": entry.table_name,
                "row_key": entry.row_key,
                "before": before,
                "after": after,
                "prev_hash": prev,
                "hash": value,
            }
        )
        prev = value
    _insert_entries(connection, rows)
    connection.execute(_MOVE_HEAD, {"seq": seq, "hash": prev})
    return seq


def _insert_entries(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if connection.dialect.name != "postgresql":
        connection.execute(insert(LOG), rows)
        return
    # COPY: the entries of a large batch stream in one command, with no statement to parse.
    names = list(rows[0])
    copy_rows(connection, "audit_log", names, ([row[name] for name in names] for row in rows))


def _lock_head(connection: Connection) -> tuple[int, str]:
    row = connection.execute(_LOCK_HEAD).first()
    if row is None:  # a fresh or emptied database: the chain starts here
        connection.execute(_insert_head(connection))
        row = connection.execute(_LOCK_HEAD).first()
    assert row is not None
    return int(row[0]), str(row[1])


def _insert_head(connection: Connection) -> Any:
    values = {"id": 1, "seq": 0, "hash": GENESIS}
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(HEAD).values(values).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(HEAD).values(values).on_conflict_do_nothing()


def _dumps(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# -- wiring -----------------------------------------------------------------------------------------

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _installed(connection: Connection) -> bool:
    return connection.engine in _ENGINES


def install(engine: Engine) -> None:
    """Audit every transaction on `engine` (made by `db.session.make_engine`)."""
    if engine in _ENGINES:
        return
    event.listen(engine, "savepoint", _savepoint)
    event.listen(engine, "rollback_savepoint", _rollback_savepoint)
    event.listen(engine, "release_savepoint", _release_savepoint)
    event.listen(engine, "rollback", _rollback)
    event.listen(engine, "commit", _commit)
    event.listen(engine, "checkin", _checkin)
    _ENGINES.add(engine)


event.listen(Session, "after_flush", _after_flush)
