"""Ledger store: the pure rules over SQLite and PostgreSQL, inside the caller's transaction.

Nothing here commits: a caller (settlement, say) moves money and writes its own rows in one transaction.
Transfers are written with SQLAlchemy Core (COPY on PostgreSQL), never updated; account balances are
updated in one statement per batch, guarded by the balances read under lock.

Locking: on PostgreSQL the accounts a batch touches are locked `FOR UPDATE` in id order (no deadlocks
between batches); SQLite has one writer, taken before anything is read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Delete,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from suanwang.audit.capture import note_inserts, user_actor
from suanwang.db.pgcopy import copy_rows
from suanwang.db.query import among_bound, dialect_of
from suanwang.db.session import take_write_lock
from suanwang.ledger.models import TRANSFER_ID_CHARS, LedgerAccount, LedgerPendingExpiry, LedgerTransfer
from suanwang.ledger.rules import (
    TRANSFERS_PER_BATCH_MAX,
    AccountFlags,
    AccountResult,
    AccountSpec,
    AccountState,
    Balances,
    PendingState,
    Resolution,
    Transfer,
    TransferResult,
    TransferSpec,
    apply_batch,
    check_account,
    check_credit_limit,
    expire_pendings,
    resolution_of,
)
from suanwang.timeutil import require_aware

ACCOUNTS = cast(Table, LedgerAccount.__table__)
TRANSFERS = cast(Table, LedgerTransfer.__table__)
EXPIRIES = cast(Table, LedgerPendingExpiry.__table__)
TRANSFER_COLUMNS = [TRANSFERS.c[name] for name in Transfer._fields]
_INSERT_EXPIRY = insert(EXPIRIES)
HISTORY_PAGE_MAX = 1000
ACCOUNT_ID_MAX = 2**31 - 1


class AccountNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    result: AccountResult
    account: LedgerAccount | None  # the created or existing account (None when the spec was refused)


# -- accounts -------------------------------------------------------------------------------------


def _spec_of(account: LedgerAccount) -> AccountSpec:
    return AccountSpec(
        key=account.key,
        ledger=account.ledger,
        code=account.code,
        owner_kind=account.owner_kind,
        owner_id=account.owner_id,
        debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
    )


@cache
def _accounts_statement(dialect: str) -> Select[tuple[LedgerAccount]]:
    return _among(dialect, select(LedgerAccount), ACCOUNTS.c.key, "keys")


def create_accounts(session: Session, specs: Sequence[AccountSpec], *, now: datetime) -> list[AccountOutcome]:
    """Create accounts by key; a key that exists answers `exists` (same fields) and changes nothing."""
    now = require_aware(now)
    if len(specs) > TRANSFERS_PER_BATCH_MAX:
        raise ValueError(f"at most {TRANSFERS_PER_BATCH_MAX} accounts per call (got {len(specs)})")
    checks = [check_account(spec) for spec in specs]
    keys = [spec.key for spec, check in zip(specs, checks, strict=True) if check is AccountResult.OK]
    stored = session.scalars(_accounts_statement(dialect_of(session)), {"keys": keys})
    by_key: dict[str, LedgerAccount] = {account.key: account for account in stored}
    outcomes = []
    for spec, check in zip(specs, checks, strict=True):
        if check is not AccountResult.OK:
            outcomes.append(AccountOutcome(check, None))
            continue
        found = by_key.get(spec.key)
        if found is not None:
            same = _spec_of(found) == spec
            result = AccountResult.EXISTS if same else AccountResult.EXISTS_WITH_DIFFERENT_FIELDS
            outcomes.append(AccountOutcome(result, found))
            continue
        account = LedgerAccount(
            key=spec.key,
            ledger=spec.ledger,
            code=spec.code,
            owner_kind=spec.owner_kind,
            owner_id=spec.owner_id,
            debits_must_not_exceed_credits=spec.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=spec.credits_must_not_exceed_debits,
            credit_limit_fen=0,
            debits_pending=0,
            debits_posted=0,
            credits_pending=0,
            credits_posted=0,
            created_at=now,
        )
        session.add(account)
        by_key[spec.key] = account
        outcomes.append(AccountOutcome(AccountResult.OK, account))
    session.flush()
    return outcomes


def get_account(session: Session, *, key: str) -> LedgerAccount | None:
    return session.scalar(select(LedgerAccount).where(LedgerAccount.key == key))


def _locked_account(session: Session, account_id: int) -> LedgerAccount | None:
    stmt = select(LedgerAccount).where(LedgerAccount.id == account_id).with_for_update()
    return session.scalar(stmt.execution_options(populate_existing=True))


def _flags(account: LedgerAccount) -> AccountFlags:
    return AccountFlags(
        debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
        credit_limit_fen=account.credit_limit_fen,
        closed=account.closed_at is not None,
    )


def set_credit_limit(session: Session, *, account_id: int, credit_limit_fen: int) -> AccountResult:
    """Set how far a debits_must_not_exceed_credits account may be overdrawn (the regulator's decision)."""
    account = _locked_account(session, account_id)
    if account is None:
        return AccountResult.ACCOUNT_NOT_FOUND
    result = check_credit_limit(_flags(account), credit_limit_fen)
    if result is AccountResult.OK:
        account.credit_limit_fen = credit_limit_fen
        session.flush()
    return result


def close_account(session: Session, *, account_id: int, now: datetime) -> AccountResult:
    """Close an account to new transfers (pendings already on it may still be posted or voided)."""
    account = _locked_account(session, account_id)
    if account is None:
        return AccountResult.ACCOUNT_NOT_FOUND
    if account.closed_at is None:
        account.closed_at = require_aware(now)
        session.flush()
    return AccountResult.OK


# -- transfers ------------------------------------------------------------------------------------


def _is_postgres(session: Session) -> bool:
    return dialect_of(session) == "postgresql"


def _account_ids(values: Iterable[object]) -> set[int]:
    return {v for v in values if type(v) is int and 0 < v <= ACCOUNT_ID_MAX}


def _transfer_ids(values: Iterable[object]) -> set[str]:
    return {v for v in values if isinstance(v, str) and 0 < len(v) <= TRANSFER_ID_CHARS}


def _among(dialect: str, stmt: Select[Any], column: ColumnElement[Any], name: str) -> Select[Any]:
    """`stmt` restricted to rows whose `column` is among the values bound under `name` at execution.
    PostgreSQL: a join on the unnested array, one index probe per value, for the thousands of ids of a
    large batch. The statements every batch runs are built once per dialect (cached below): building
    one costs more than running it."""
    if dialect == "postgresql":
        keys = func.unnest(bindparam(name, type_=ARRAY(column.type))).table_valued("key")
        keys = keys.render_derived("keys")
        return stmt.join(keys, column == keys.c.key)
    return stmt.where(column.in_(bindparam(name, expanding=True)))


@cache
def _transfers_statement(dialect: str, by: str) -> Select[Any]:
    return _among(dialect, select(*TRANSFER_COLUMNS), TRANSFERS.c[by], "values")


def _transfers(
    session: Session, *, ids: Collection[str], pending_ids: Collection[str] = ()
) -> list[Transfer]:
    """Stored transfers with these ids, and those that resolve these pending ids."""
    found: list[Any] = []
    dialect = dialect_of(session)
    for by, values in (("id", ids), ("pending_id", pending_ids)):
        if values:
            found += session.execute(_transfers_statement(dialect, by), {"values": list(values)}).all()
    return list({row[0]: Transfer(*row) for row in found}.values())


def lock_accounts(session: Session, account_ids: Collection[int]) -> dict[int, Balances]:
    """Lock the accounts until the transaction ends and return their balances: a caller that decides
    an amount from a balance (a subsidy from what a cap has left) reads it under the lock it will write
    under, so concurrent deciders queue instead of both spending the same headroom."""
    take_write_lock(session)
    return {account_id: state.balances for account_id, state in _lock_accounts(session, account_ids).items()}


@cache
def _lock_statement(dialect: str) -> Select[Any]:
    a = ACCOUNTS.c
    stmt = select(
        a.id,
        a.ledger,
        a.debits_must_not_exceed_credits,
        a.credits_must_not_exceed_debits,
        a.credit_limit_fen,
        a.closed_at,
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
    )
    return _among(dialect, stmt, a.id, "ids").order_by(a.id).with_for_update(of=ACCOUNTS)


def _lock_accounts(session: Session, account_ids: Collection[int]) -> dict[int, AccountState]:
    if not account_ids:
        return {}
    return {
        row[0]: AccountState(
            row[1],
            AccountFlags(row[2], row[3], row[4], row[5] is not None),
            Balances(row[6], row[7], row[8], row[9]),
        )
        for row in session.execute(_lock_statement(dialect_of(session)), {"ids": list(account_ids)})
    }


@cache
def _due_statement(dialect: str) -> Select[Any]:
    """Due pendings on the accounts bound as `ids`, at the time bound as `now`."""
    e = EXPIRIES.c
    return select(e.transfer_id, e.debit_account_id, e.credit_account_id).where(
        e.expires_at <= bindparam("now"),
        or_(
            among_bound(dialect, e.debit_account_id, "ids"), among_bound(dialect, e.credit_account_id, "ids")
        ),
    )


def _due(
    session: Session, now: datetime, *, account_ids: Collection[int] = (), limit: int | None = None
) -> dict[str, tuple[int, int]]:
    """Pending transfers whose timeout has passed (maybe resolved meanwhile): id → their two accounts."""
    if limit is None:
        params = {"now": now, "ids": list(account_ids)}
        return {
            row[0]: (row[1], row[2]) for row in session.execute(_due_statement(dialect_of(session)), params)
        }
    e = EXPIRIES.c
    stmt = select(e.transfer_id, e.debit_account_id, e.credit_account_id).where(e.expires_at <= now)
    stmt = stmt.order_by(e.expires_at, e.transfer_id).limit(limit)
    return {row[0]: (row[1], row[2]) for row in session.execute(stmt)}


def create_transfers(
    session: Session, specs: Sequence[TransferSpec], *, now: datetime
) -> list[TransferResult]:
    """Create a batch of transfers (see `rules.apply_batch`); one result per spec, in order.

    Pending transfers past their timeout on the accounts the batch touches are expired first, so an
    expired hold never blocks a payment even before the sweep (`expire_pending`) comes by.
    """
    now = require_aware(now)
    if len(specs) > TRANSFERS_PER_BATCH_MAX:
        raise ValueError(f"at most {TRANSFERS_PER_BATCH_MAX} transfers per batch (got {len(specs)})")
    if not specs:
        return []
    take_write_lock(session)
    pending_ids = _transfer_ids(s.pending_id for s in specs if s.post_pending or s.void_pending)
    # A transfer's fields never change, so the referenced pendings may be read before locking: their
    # accounts must be locked too.
    referenced = {t.id: t for t in _transfers(session, ids=pending_ids)}
    account_ids = _account_ids(s.debit_account_id for s in specs) | _account_ids(
        s.credit_account_id for s in specs
    )
    account_ids |= {a for t in referenced.values() for a in (t.debit_account_id, t.credit_account_id)}
    due = _due(session, now, account_ids=account_ids)
    account_ids |= {a for pair in due.values() for a in pair}
    accounts = _lock_accounts(session, account_ids)
    # Under the locks: which ids exist already, and how the referenced and due pendings stand now.
    spec_ids = _transfer_ids(s.id for s in specs)
    stored = _transfers(session, ids=spec_ids | due.keys(), pending_ids=pending_ids | due.keys())
    by_id = {t.id: t for t in stored}
    resolutions = {t.pending_id: resolution_of(t) for t in stored if t.pending_id is not None}

    due_open = [by_id[i] for i in due if i in by_id and i not in resolutions]
    expired = expire_pendings(due_open, accounts=accounts, now=now)
    after_expiry = dict(accounts)
    for account_id, balances in expired.balances.items():
        after_expiry[account_id] = replace(accounts[account_id], balances=balances)
    resolutions.update((pending_id, Resolution.EXPIRED) for pending_id in expired.resolved)

    outcome = apply_batch(
        specs,
        accounts=after_expiry,
        existing={i: by_id[i] for i in spec_ids if i in by_id},
        pendings={i: PendingState(t, resolutions.get(i, Resolution.OPEN)) for i, t in referenced.items()},
        now=now,
    )
    resolved = set(outcome.resolved)
    new_pendings = [t for t in outcome.inserts if t.expires_at is not None and t.id not in resolved]
    # Resolved pendings with a timeout (here or earlier: stale candidates) leave the expiry candidates.
    timed = {t.id for t in referenced.values() if t.expires_at is not None}
    _write(
        session,
        inserts=expired.inserts + outcome.inserts,
        balances=expired.balances | outcome.balances,
        before=accounts,
        new_pendings=new_pendings,
        forget_expiries=[i for i in due if i in resolutions] + [i for i in outcome.resolved if i in timed],
    )
    return outcome.results


def expire_pending(session: Session, *, now: datetime, limit: int = 1000) -> list[str]:
    """Expire open pending transfers past their timeout (oldest first, at most `limit`); their ids."""
    now = require_aware(now)
    if not 0 < limit <= TRANSFERS_PER_BATCH_MAX:
        raise ValueError(f"limit must be 1 to {TRANSFERS_PER_BATCH_MAX} (got {limit})")
    take_write_lock(session)
    due = _due(session, now, limit=limit)
    if not due:
        return []
    accounts = _lock_accounts(session, {a for pair in due.values() for a in pair})
    stored = _transfers(session, ids=due.keys(), pending_ids=due.keys())
    by_id = {t.id: t for t in stored}
    resolved = {t.pending_id for t in stored if t.pending_id is not None}
    outcome = expire_pendings([by_id[i] for i in due if i not in resolved], accounts=accounts, now=now)
    _write(
        session,
        inserts=outcome.inserts,
        balances=outcome.balances,
        before=accounts,
        new_pendings=[],
        forget_expiries=list(due),
    )
    return outcome.resolved


# -- writing --------------------------------------------------------------------------------------


@cache
def _forget_statement(dialect: str) -> Delete:
    """Delete the expiry candidates whose transfer ids are bound as `ids`."""
    ids = _among(dialect, select(EXPIRIES.c.transfer_id), EXPIRIES.c.transfer_id, "ids")
    return EXPIRIES.delete().where(EXPIRIES.c.transfer_id.in_(ids))


def _write(
    session: Session,
    *,
    inserts: list[Transfer],
    balances: Mapping[int, Balances],
    before: Mapping[int, AccountState],
    new_pendings: list[Transfer],
    forget_expiries: list[str],
) -> None:
    if inserts:
        _insert_transfers(session, inserts)
    if new_pendings:
        session.execute(
            _INSERT_EXPIRY,
            [
                {
                    "transfer_id": t.id,
                    "debit_account_id": t.debit_account_id,
                    "credit_account_id": t.credit_account_id,
                    "expires_at": t.expires_at,
                }
                for t in new_pendings
            ],
        )
    if forget_expiries:
        session.execute(_forget_statement(dialect_of(session)), {"ids": forget_expiries})
    if balances:
        _update_balances(session, balances, before)


def _insert_transfers(session: Session, rows: list[Transfer]) -> None:
    # The audit trail: a transfer names its acting user where a person acted (else the session's actor).
    note_inserts(
        session,
        TRANSFERS,
        [t._asdict() for t in rows],
        actor=lambda row: user_actor(row["user_id"]) if row["user_id"] is not None else None,
    )
    if _is_postgres(session):
        # COPY: one round trip for the whole batch; seq comes from the column's identity, in row order.
        # A concurrent same id raises IntegrityError, as an INSERT would.
        copy_rows(session.connection(), "ledger_transfers", Transfer._fields, rows)
        return
    # SQLite: the single writer (held since take_write_lock) numbers the rows.
    last = session.scalar(select(func.coalesce(func.max(TRANSFERS.c.seq), 0))) or 0
    fields = Transfer._fields
    session.execute(
        insert(TRANSFERS),
        [dict(zip(fields, row, strict=True), seq=last + n) for n, row in enumerate(rows, start=1)],
    )


_UPDATE_BALANCES_PG = text(
    "UPDATE ledger_accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo,"
    " credits_pending = v.cp, credits_posted = v.cpo"
    " FROM unnest(CAST(:id AS INTEGER[]), CAST(:odp AS BIGINT[]), CAST(:odpo AS BIGINT[]),"
    " CAST(:ocp AS BIGINT[]), CAST(:ocpo AS BIGINT[]), CAST(:dp AS BIGINT[]), CAST(:dpo AS BIGINT[]),"
    " CAST(:cp AS BIGINT[]), CAST(:cpo AS BIGINT[])) AS v(id, odp, odpo, ocp, ocpo, dp, dpo, cp, cpo)"
    " WHERE a.id = v.id AND a.debits_pending = v.odp AND a.debits_posted = v.odpo"
    " AND a.credits_pending = v.ocp AND a.credits_posted = v.ocpo"
)
_UPDATE_BALANCES = text(
    "UPDATE ledger_accounts SET debits_pending = :dp, debits_posted = :dpo, credits_pending = :cp,"
    " credits_posted = :cpo WHERE id = :id AND debits_pending = :odp AND debits_posted = :odpo"
    " AND credits_pending = :ocp AND credits_posted = :ocpo"
)


def _update_balances(
    session: Session, balances: Mapping[int, Balances], before: Mapping[int, AccountState]
) -> None:
    """Write new balances, only where the stored ones are still those read under lock (else: a bug)."""
    rows = []
    for account_id, new in balances.items():
        old = before[account_id].balances
        rows.append(
            {
                "id": account_id,
                "odp": old.debits_pending,
                "odpo": old.debits_posted,
                "ocp": old.credits_pending,
                "ocpo": old.credits_posted,
                "dp": new.debits_pending,
                "dpo": new.debits_posted,
                "cp": new.credits_pending,
                "cpo": new.credits_posted,
            }
        )
    if _is_postgres(session):
        # Integer arrays as literals: psycopg's list dumper costs ~10 µs an element in Python.
        params = {name: "{" + ",".join(str(row[name]) for row in rows) + "}" for name in rows[0]}
        updated = session.execute(_UPDATE_BALANCES_PG, params).rowcount  # type: ignore[attr-defined]
    else:
        updated = session.execute(_UPDATE_BALANCES, rows).rowcount  # type: ignore[attr-defined]
    if updated != len(rows):
        raise AssertionError(f"ledger balances changed under lock: {updated} of {len(rows)} accounts updated")
    _forget_loaded_accounts(session, balances.keys())


def _forget_loaded_accounts(session: Session, account_ids: Iterable[int]) -> None:
    """Account objects the caller loaded in this session now hold old balances: expire them."""
    if not len(session.identity_map):
        return
    for account_id in account_ids:
        account = session.identity_map.get(identity_key(LedgerAccount, account_id))
        if account is not None:
            session.expire(account)


# -- reading --------------------------------------------------------------------------------------


def balance(session: Session, account_id: int, *, at: datetime | None = None) -> Balances:
    """The account's balances now, or as they stood at `at` (from its transfers created until then)."""
    row = session.execute(
        select(
            ACCOUNTS.c.debits_pending,
            ACCOUNTS.c.debits_posted,
            ACCOUNTS.c.credits_pending,
            ACCOUNTS.c.credits_posted,
        ).where(ACCOUNTS.c.id == account_id)
    ).first()
    if row is None:
        raise AccountNotFound(f"ledger account {account_id} not found")
    if at is None:
        return Balances(*row)
    sums = _sums(session, until=require_aware(at, name="at"), account_id=account_id)
    return sums.get(account_id, Balances())


def _sums(
    session: Session, *, until: datetime | None = None, account_id: int | None = None
) -> dict[int, Balances]:
    """Balances recomputed from transfers (created until `until`, of one account or all): account → sums."""
    t = TRANSFERS.c
    p = TRANSFERS.alias("p")  # the pending transfer a post or void resolves
    sums: dict[int, list[int]] = {}

    def add(side: int, stmt: Any, field: int, sign: int) -> None:
        for acc, total in session.execute(stmt):
            sums.setdefault(acc, [0, 0, 0, 0])[field + side] += sign * int(total)

    for side, column in ((0, t.debit_account_id), (2, t.credit_account_id)):
        conditions = []
        if until is not None:
            conditions.append(t.created_at <= until)
        if account_id is not None:
            conditions.append(column == account_id)
        posted = (
            select(column, func.sum(t.amount))
            .where(~t.pending, ~t.void_pending, *conditions)
            .group_by(column)
        )
        pending = select(column, func.sum(t.amount)).where(t.pending, *conditions).group_by(column)
        released = (
            select(column, func.sum(p.c.amount))
            .select_from(TRANSFERS.join(p, p.c.id == t.pending_id))
            .where(*conditions)
            .group_by(column)
        )
        add(side, posted, 1, 1)
        add(side, pending, 0, 1)
        add(side, released, 0, -1)
    return {acc: Balances(*values) for acc, values in sums.items()}


def history(
    session: Session, account_id: int, *, limit: int = 100, after_seq: int = 0
) -> list[LedgerTransfer]:
    """Transfers that debit or credit the account, in the order they were written, after `after_seq`."""
    if not 0 < limit <= HISTORY_PAGE_MAX:
        raise ValueError(f"limit must be 1 to {HISTORY_PAGE_MAX} (got {limit})")
    t = TRANSFERS.c
    # Each side walks its own (account, seq) index and stops after `limit` rows.
    sides = [
        select(t.seq).where(column == account_id, t.seq > after_seq).order_by(t.seq).limit(limit)
        for column in (t.debit_account_id, t.credit_account_id)
    ]
    seqs = union_all(*(side.subquery().select() for side in sides)).subquery()
    stmt = (
        select(LedgerTransfer)
        .where(LedgerTransfer.seq.in_(select(seqs.c.seq)))
        .order_by(LedgerTransfer.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def check_invariants(session: Session) -> list[str]:
    """What is wrong with the ledger, if anything (an empty list: double entry holds everywhere)."""
    violations = []
    a = ACCOUNTS.c
    for ledger, posted, pending in session.execute(
        select(
            a.ledger,
            func.sum(a.credits_posted - a.debits_posted),
            func.sum(a.credits_pending - a.debits_pending),
        ).group_by(a.ledger)
    ):
        if posted != 0 or pending != 0:
            violations.append(
                f"ledger {ledger}: credits - debits = {posted} posted, {pending} pending (not 0)"
            )
    sums = _sums(session)
    for account_id, *stored in session.execute(
        select(a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
    ):
        computed = sums.get(account_id, Balances())
        if Balances(*stored) != computed:
            violations.append(
                f"account {account_id}: stored {Balances(*stored)} but transfers sum to {computed}"
            )
    t = TRANSFERS.c
    p = TRANSFERS.alias("p")
    for (pending_id,) in session.execute(
        select(t.pending_id).where(t.pending_id.is_not(None)).group_by(t.pending_id).having(func.count() > 1)
    ):
        violations.append(f"pending transfer {pending_id} resolved more than once")
    bad_resolutions = (
        select(t.id)
        .select_from(TRANSFERS.join(p, p.c.id == t.pending_id))
        .where(
            or_(
                ~p.c.pending,
                p.c.debit_account_id != t.debit_account_id,
                p.c.credit_account_id != t.credit_account_id,
                t.amount > p.c.amount,
                and_(t.void_pending, t.amount != p.c.amount),
            )
        )
    )
    for (transfer_id,) in session.execute(bad_resolutions):
        violations.append(f"transfer {transfer_id} does not match the pending transfer it resolves")
    debit = ACCOUNTS.alias("debit")
    credit = ACCOUNTS.alias("credit")
    wrong_ledger = (
        select(t.id)
        .select_from(
            TRANSFERS.join(debit, debit.c.id == t.debit_account_id).join(
                credit, credit.c.id == t.credit_account_id
            )
        )
        .where(or_(debit.c.ledger != t.ledger, credit.c.ledger != t.ledger))
    )
    for (transfer_id,) in session.execute(wrong_ledger):
        violations.append(f"transfer {transfer_id} moves money between ledgers")
    return violations
