"""Ledger rules (pure): double-entry accounts and transfers in the TigerBeetle style.

Every transfer debits one account and credits another by a positive integer amount (fen), so the sum
of all balances in a ledger (currency) is always zero. Holds are pending transfers that are later
posted (in full or in part) or voided, or that expire. Transfer ids are chosen by the client, so a
retried batch is answered `exists` and changes nothing.

No I/O and no clock: the store loads what a batch needs, `apply_batch` decides, the store writes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

# Limits: a limit that is hit gives a result code or a ValueError, never a silent truncation.
TRANSFERS_PER_BATCH_MAX = 8190  # TigerBeetle's batch size; also keeps SQL parameter lists in bounds
ID_CHARS_MAX = 100
KEY_CHARS_MAX = 100
LEDGER_CHARS_MAX = 16
CODE_CHARS_MAX = 32
REFERENCE_CHARS_MAX = 100
REASON_CHARS_MAX = 500
OWNER_KIND_CHARS_MAX = 32
TIMEOUT_S_MAX = 2**31 - 1
BALANCE_MAX = 2**63 - 1  # the database's BIGINT
# The id of the transfer that records a pending's expiry is the pending's id + this suffix; clients may
# not end their ids with it, so the expiry can never collide with a client's transfer.
EXPIRED_SUFFIX = "/expired"

_ID = re.compile(r"[A-Za-z0-9:/._-]+")


class TransferResult(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"  # the same transfer was already created: idempotent success, nothing changes
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    ID_INVALID = "id_invalid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    LEDGER_INVALID = "ledger_invalid"
    CODE_INVALID = "code_invalid"
    REFERENCE_INVALID = "reference_invalid"
    REASON_INVALID = "reason_invalid"
    USER_ID_INVALID = "user_id_invalid"
    TIMEOUT_INVALID = "timeout_invalid"
    TIMEOUT_RESERVED_FOR_PENDING = "timeout_reserved_for_pending"
    PENDING_ID_MUST_NOT_BE_SET = "pending_id_must_not_be_set"
    PENDING_ID_REQUIRED = "pending_id_required"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    LEDGER_MISMATCH = "ledger_mismatch"
    ACCOUNT_CLOSED = "account_closed"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOWS = "overflows"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS = "pending_transfer_has_different_accounts"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    EXCEEDS_PENDING_AMOUNT = "exceeds_pending_amount"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"


SUCCEEDED = frozenset({TransferResult.OK, TransferResult.EXISTS})


class AccountResult(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    KEY_INVALID = "key_invalid"
    LEDGER_INVALID = "ledger_invalid"
    CODE_INVALID = "code_invalid"
    OWNER_INVALID = "owner_invalid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    ACCOUNT_NOT_FOUND = "account_not_found"
    CREDIT_LIMIT_MUST_NOT_BE_NEGATIVE = "credit_limit_must_not_be_negative"
    CREDIT_LIMIT_REQUIRES_DEBITS_MUST_NOT_EXCEED_CREDITS = (
        "credit_limit_requires_debits_must_not_exceed_credits"
    )


class Resolution(enum.StrEnum):
    """Where a pending transfer is: open, or resolved exactly once."""

    OPEN = "open"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class AccountFlags:
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    # Allowed overdraft of a debits_must_not_exceed_credits account (set by the regulator).
    credit_limit_fen: int = 0
    # A closed account takes no new transfers; pendings already on it may still be posted or voided.
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Balances:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the rules need to know of an account."""

    ledger: str
    flags: AccountFlags
    balances: Balances


@dataclass(frozen=True, slots=True)
class AccountSpec:
    key: str  # chosen by the caller, e.g. "wallet/org/12": creating the same key again is idempotent
    ledger: str  # currency, e.g. "CNY"
    code: str  # the kind of account, e.g. "wallet", "revenue", "escrow"
    owner_kind: str | None = None
    owner_id: int | None = None
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """A transfer as a client asks for it.

    For post_pending / void_pending: debit_account_id and credit_account_id may be 0, ledger and code
    may be "" (all taken from the pending transfer); amount None or 0 posts the full pending amount
    (a void always releases the full amount); reference None takes the pending's.
    """

    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int | None
    ledger: str
    code: str
    reference: str | None = None
    linked: bool = False
    pending: bool = False
    post_pending: bool = False
    void_pending: bool = False
    pending_id: str | None = None
    timeout_s: int | None = None  # pending only; None or 0: never expires
    reason: str | None = None
    user_id: int | None = None


class Transfer(NamedTuple):
    """A stored transfer (one row of ledger_transfers, in column order): never changed once written.

    A tuple, so it goes to the database driver as it is. The first COMPARED fields are what a retry
    must repeat to be answered `exists`.
    """

    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: str
    code: str
    reference: str | None
    linked: bool
    pending: bool
    post_pending: bool
    void_pending: bool
    pending_id: str | None
    timeout_s: int | None
    reason: str | None
    user_id: int | None
    expired: bool
    expires_at: datetime | None
    created_at: datetime


COMPARED = 15  # Transfer's fields up to user_id


def resolution_of(resolving: Transfer) -> Resolution:
    """How the transfer `resolving` (a post or void) resolved its pending."""
    if resolving.post_pending:
        return Resolution.POSTED
    return Resolution.EXPIRED if resolving.expired else Resolution.VOIDED


@dataclass(frozen=True, slots=True)
class PendingState:
    """A transfer referenced by a post or void (pending or not, as stored) and where it stands."""

    transfer: Transfer
    resolution: Resolution


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    results: list[TransferResult]  # one per spec, in order
    inserts: list[Transfer]  # rows to write, in order
    balances: dict[int, Balances]  # new balances of the accounts that changed
    resolved: list[str]  # ids of the pending transfers this batch resolved


def _text_ok(value: str | None, chars_max: int, *, required: bool) -> bool:
    if value is None:
        return not required
    return isinstance(value, str) and (0 < len(value) <= chars_max or (not required and value == ""))


def id_valid(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= ID_CHARS_MAX
        and _ID.fullmatch(value) is not None
        and not value.endswith(EXPIRED_SUFFIX)
    )


def check_account(spec: AccountSpec) -> AccountResult:
    """Is this a well-formed account to create? (ok, or why not)"""
    if not isinstance(spec.key, str) or not 0 < len(spec.key) <= KEY_CHARS_MAX or not _ID.fullmatch(spec.key):
        return AccountResult.KEY_INVALID
    if not _text_ok(spec.ledger, LEDGER_CHARS_MAX, required=True):
        return AccountResult.LEDGER_INVALID
    if not _text_ok(spec.code, CODE_CHARS_MAX, required=True):
        return AccountResult.CODE_INVALID
    if not _text_ok(spec.owner_kind, OWNER_KIND_CHARS_MAX, required=False) or (
        spec.owner_id is not None and not spec.owner_kind
    ):
        return AccountResult.OWNER_INVALID
    if spec.debits_must_not_exceed_credits and spec.credits_must_not_exceed_debits:
        return AccountResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    return AccountResult.OK


def check_credit_limit(flags: AccountFlags, credit_limit_fen: int) -> AccountResult:
    """May this account get this credit limit?"""
    if type(credit_limit_fen) is not int or credit_limit_fen < 0:
        return AccountResult.CREDIT_LIMIT_MUST_NOT_BE_NEGATIVE
    if credit_limit_fen > 0 and not flags.debits_must_not_exceed_credits:
        return AccountResult.CREDIT_LIMIT_REQUIRES_DEBITS_MUST_NOT_EXCEED_CREDITS
    return AccountResult.OK


class _Batch:
    """The working state of one batch: balances as changed so far, and what the open chain undoes."""

    def __init__(
        self,
        accounts: Mapping[int, AccountState],
        existing: Mapping[str, Transfer],
        pendings: Mapping[str, PendingState],
        now: datetime,
    ) -> None:
        self.accounts = accounts
        self.existing = existing
        self.pendings = pendings
        self.now = now
        # [debits_pending, debits_posted, credits_pending, credits_posted] of each touched account
        self.work: dict[int, list[int]] = {}
        self.created: dict[str, Transfer] = {}  # committed so far in this batch, by id
        self.resolved: dict[str, Resolution] = {}  # pendings resolved so far in this batch
        self.inserts: list[Transfer] = []
        self.in_chain = False
        self.chain_start = 0
        self.undo: dict[int, list[int] | None] = {}

    # -- balances and the chain's undo log --------------------------------------------------------

    def balance(self, account_id: int) -> list[int]:
        work = self.work.get(account_id)
        if work is None:
            b = self.accounts[account_id].balances
            work = [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted]
            self.work[account_id] = work
            if self.in_chain:
                self.undo.setdefault(account_id, None)
        elif self.in_chain and account_id not in self.undo:
            self.undo[account_id] = list(work)
        return work

    def begin_chain(self) -> None:
        self.in_chain = True
        self.chain_start = len(self.inserts)
        self.undo = {}

    def end_chain(self, *, commit: bool) -> None:
        if not commit:
            for row in self.inserts[self.chain_start :]:
                del self.created[row.id]
                if row.pending_id is not None:
                    del self.resolved[row.pending_id]
            del self.inserts[self.chain_start :]
            for account_id, before in self.undo.items():
                if before is None:
                    del self.work[account_id]
                else:
                    self.work[account_id] = before
        self.in_chain = False
        self.undo = {}

    # -- one transfer --------------------------------------------------------------------------

    def apply(self, spec: TransferSpec) -> TransferResult:
        if not id_valid(spec.id):
            return TransferResult.ID_INVALID
        if spec.pending + spec.post_pending + spec.void_pending > 1:
            return TransferResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if spec.post_pending or spec.void_pending:
            return self._resolve(spec)
        return self._create(spec)

    def _exists(self, spec: TransferSpec, expected: Transfer) -> TransferResult | None:
        stored = self.created.get(spec.id) or self.existing.get(spec.id)
        if stored is None:
            return None
        if stored[:COMPARED] == expected[:COMPARED]:
            return TransferResult.EXISTS
        return TransferResult.EXISTS_WITH_DIFFERENT_FIELDS

    def _common_fields(self, spec: TransferSpec) -> TransferResult | None:
        if not _text_ok(spec.reference, REFERENCE_CHARS_MAX, required=False):
            return TransferResult.REFERENCE_INVALID
        if not _text_ok(spec.reason, REASON_CHARS_MAX, required=False):
            return TransferResult.REASON_INVALID
        if spec.user_id is not None and type(spec.user_id) is not int:
            return TransferResult.USER_ID_INVALID
        return None

    def _create(self, spec: TransferSpec) -> TransferResult:
        amount = spec.amount
        timeout_s = spec.timeout_s or None
        if timeout_s is not None and (type(timeout_s) is not int or not 0 < timeout_s <= TIMEOUT_S_MAX):
            return TransferResult.TIMEOUT_INVALID
        expires_at = self.now + timedelta(seconds=timeout_s) if timeout_s is not None else None
        if amount is not None and type(amount) is not int:
            return TransferResult.AMOUNT_MUST_BE_POSITIVE  # money is int fen: never a float, never a bool
        row = Transfer(
            spec.id,
            spec.debit_account_id,
            spec.credit_account_id,
            amount or 0,
            spec.ledger,
            spec.code,
            spec.reference,
            spec.linked,
            spec.pending,
            False,
            False,
            spec.pending_id,
            timeout_s,
            spec.reason,
            spec.user_id,
            False,
            expires_at,
            self.now,
        )
        found = self._exists(spec, row)
        if found is not None:
            return found
        if spec.pending_id is not None:
            return TransferResult.PENDING_ID_MUST_NOT_BE_SET
        if timeout_s is not None and not spec.pending:
            return TransferResult.TIMEOUT_RESERVED_FOR_PENDING
        if amount is None or amount <= 0:
            return TransferResult.AMOUNT_MUST_BE_POSITIVE
        if spec.debit_account_id == spec.credit_account_id:
            return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
        if not _text_ok(spec.ledger, LEDGER_CHARS_MAX, required=True):
            return TransferResult.LEDGER_INVALID
        if not _text_ok(spec.code, CODE_CHARS_MAX, required=True):
            return TransferResult.CODE_INVALID
        invalid = self._common_fields(spec)
        if invalid is not None:
            return invalid
        debit_account = self.accounts.get(spec.debit_account_id)
        if debit_account is None:
            return TransferResult.DEBIT_ACCOUNT_NOT_FOUND
        credit_account = self.accounts.get(spec.credit_account_id)
        if credit_account is None:
            return TransferResult.CREDIT_ACCOUNT_NOT_FOUND
        if debit_account.ledger != spec.ledger or credit_account.ledger != spec.ledger:
            return TransferResult.LEDGER_MISMATCH
        if debit_account.flags.closed or credit_account.flags.closed:
            return TransferResult.ACCOUNT_CLOSED
        debit = self.work.get(spec.debit_account_id) or _as_list(debit_account.balances)
        credit = self.work.get(spec.credit_account_id) or _as_list(credit_account.balances)
        flags = debit_account.flags
        if flags.debits_must_not_exceed_credits and (
            debit[0] + debit[1] + amount > debit[3] + flags.credit_limit_fen
        ):
            return TransferResult.EXCEEDS_CREDITS
        if credit_account.flags.credits_must_not_exceed_debits and credit[2] + credit[3] + amount > credit[1]:
            return TransferResult.EXCEEDS_DEBITS
        field = 0 if spec.pending else 1  # debits_pending or debits_posted (credits: field + 2)
        if debit[field] + amount > BALANCE_MAX or credit[field + 2] + amount > BALANCE_MAX:
            return TransferResult.OVERFLOWS
        self.balance(spec.debit_account_id)[field] += amount
        self.balance(spec.credit_account_id)[field + 2] += amount
        self._insert(row)
        return TransferResult.OK

    def _pending_of(self, spec: TransferSpec) -> Transfer | None:
        pending_id = spec.pending_id
        if pending_id is None:
            return None
        made = self.created.get(pending_id)
        if made is not None:
            return made
        state = self.pendings.get(pending_id)
        return state.transfer if state is not None else None

    def _resolution(self, pending: Transfer) -> Resolution:
        resolved = self.resolved.get(pending.id)
        if resolved is not None:
            return resolved
        state = self.pendings.get(pending.id)
        if state is not None and state.resolution is not Resolution.OPEN:
            return state.resolution
        if pending.expires_at is not None and pending.expires_at <= self.now:
            return Resolution.EXPIRED
        return Resolution.OPEN

    def _resolve(self, spec: TransferSpec) -> TransferResult:
        pending = self._pending_of(spec)
        amount = spec.amount
        if amount is not None and type(amount) is not int:
            return TransferResult.AMOUNT_MUST_BE_POSITIVE
        if pending is not None:
            # Defaults taken from the pending, so that a retry is compared with what was stored.
            posted = (amount or pending.amount) if spec.post_pending else pending.amount
            row = Transfer(
                spec.id,
                spec.debit_account_id or pending.debit_account_id,
                spec.credit_account_id or pending.credit_account_id,
                posted,
                spec.ledger or pending.ledger,
                spec.code or pending.code,
                spec.reference if spec.reference is not None else pending.reference,
                spec.linked,
                False,
                spec.post_pending,
                spec.void_pending,
                spec.pending_id,
                spec.timeout_s or None,
                spec.reason,
                spec.user_id,
                False,
                None,
                self.now,
            )
            found = self._exists(spec, row)
            if found is not None:
                return found
        elif spec.id in self.created or spec.id in self.existing:
            return TransferResult.EXISTS_WITH_DIFFERENT_FIELDS  # its pending is not the stored one's
        if not spec.pending_id:
            return TransferResult.PENDING_ID_REQUIRED
        if spec.timeout_s:
            return TransferResult.TIMEOUT_RESERVED_FOR_PENDING
        if spec.code and not _text_ok(spec.code, CODE_CHARS_MAX, required=True):
            return TransferResult.CODE_INVALID
        invalid = self._common_fields(spec)
        if invalid is not None:
            return invalid
        if pending is None:
            return TransferResult.PENDING_TRANSFER_NOT_FOUND
        if not pending.pending:
            return TransferResult.PENDING_TRANSFER_NOT_PENDING
        if spec.debit_account_id not in (0, pending.debit_account_id) or spec.credit_account_id not in (
            0,
            pending.credit_account_id,
        ):
            return TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS
        if spec.ledger not in ("", pending.ledger):
            return TransferResult.LEDGER_MISMATCH
        resolution = self._resolution(pending)
        if resolution is Resolution.POSTED:
            return TransferResult.PENDING_TRANSFER_ALREADY_POSTED
        if resolution is Resolution.VOIDED:
            return TransferResult.PENDING_TRANSFER_ALREADY_VOIDED
        if resolution is Resolution.EXPIRED:
            return TransferResult.PENDING_TRANSFER_EXPIRED
        if amount is not None and amount < 0:
            return TransferResult.AMOUNT_MUST_BE_POSITIVE
        if spec.post_pending and amount is not None and amount > pending.amount:
            return TransferResult.EXCEEDS_PENDING_AMOUNT
        if spec.void_pending and amount not in (None, 0, pending.amount):
            return TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        if pending.debit_account_id not in self.accounts:
            return TransferResult.DEBIT_ACCOUNT_NOT_FOUND
        if pending.credit_account_id not in self.accounts:
            return TransferResult.CREDIT_ACCOUNT_NOT_FOUND
        debit = self.balance(pending.debit_account_id)
        credit = self.balance(pending.credit_account_id)
        # Posting moves at most the pending amount from pending to posted: it can only overflow posted.
        if spec.post_pending and (
            row.amount + debit[1] > BALANCE_MAX or row.amount + credit[3] > BALANCE_MAX
        ):
            return TransferResult.OVERFLOWS
        _release(debit, credit, pending.amount)
        if spec.post_pending:
            debit[1] += row.amount
            credit[3] += row.amount
        self.resolved[pending.id] = Resolution.POSTED if spec.post_pending else Resolution.VOIDED
        self._insert(row)
        return TransferResult.OK

    def _insert(self, row: Transfer) -> None:
        self.created[row.id] = row
        self.inserts.append(row)

    def expire(self, pending: Transfer) -> None:
        if not pending.pending or pending.expires_at is None or pending.expires_at > self.now:
            raise ValueError(f"transfer {pending.id} is not a pending transfer due to expire")
        if self._resolution(pending) is not Resolution.EXPIRED or pending.id in self.resolved:
            raise ValueError(f"pending transfer {pending.id} is already resolved")
        _release(
            self.balance(pending.debit_account_id), self.balance(pending.credit_account_id), pending.amount
        )
        self.resolved[pending.id] = Resolution.EXPIRED
        self._insert(expiry_of(pending, self.now))

    def outcome(self, results: list[TransferResult]) -> BatchOutcome:
        changed: dict[int, Balances] = {}
        delta = [0, 0, 0, 0]
        for account_id, work in self.work.items():
            before = self.accounts[account_id].balances
            after = Balances(*work)
            if after != before:
                changed[account_id] = after
                for i, old in enumerate(_as_list(before)):
                    delta[i] += work[i] - old
        # Double entry, checked on every batch (not `assert`: it must hold with -O too).
        if delta[0] != delta[2] or delta[1] != delta[3]:
            raise AssertionError(f"ledger batch does not balance: {delta}")
        if any(value < 0 for b in changed.values() for value in _as_list(b)):
            raise AssertionError("ledger batch would leave a negative balance")
        resolved = [row.pending_id for row in self.inserts if row.pending_id is not None]
        return BatchOutcome(results, self.inserts, changed, resolved)


def _as_list(b: Balances) -> list[int]:
    return [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted]


def _release(debit: list[int], credit: list[int], amount: int) -> None:
    debit[0] -= amount
    credit[2] -= amount


def expiry_of(pending: Transfer, now: datetime) -> Transfer:
    """The transfer that records a pending's expiry and releases its hold (a void, flagged expired)."""
    return Transfer(
        pending.id + EXPIRED_SUFFIX,
        pending.debit_account_id,
        pending.credit_account_id,
        pending.amount,
        pending.ledger,
        pending.code,
        pending.reference,
        False,
        False,
        False,
        True,
        pending.id,
        None,
        None,
        None,
        True,
        None,
        now,
    )


def apply_batch(
    specs: Sequence[TransferSpec],
    *,
    accounts: Mapping[int, AccountState],
    existing: Mapping[str, Transfer],
    pendings: Mapping[str, PendingState],
    now: datetime,
) -> BatchOutcome:
    """Decide a batch of transfers, in order; each sees the effects of those before it.

    accounts: every account the specs and the referenced pendings name (missing ones are "not found");
    existing: stored transfers with the specs' ids; pendings: stored transfers the specs' pending_ids
    name, with their resolution. A run of transfers flagged `linked` and the first one after it without
    the flag form a chain that succeeds or fails as one.
    """
    if len(specs) > TRANSFERS_PER_BATCH_MAX:
        raise ValueError(f"at most {TRANSFERS_PER_BATCH_MAX} transfers per batch (got {len(specs)})")
    batch = _Batch(accounts, existing, pendings, now)
    results = [TransferResult.OK] * len(specs)
    start = 0
    while start < len(specs):
        end = start
        while end < len(specs) and specs[end].linked:
            end += 1
        if end == len(specs):  # the last transfer is linked: its chain never closes
            results[start:end] = [TransferResult.LINKED_EVENT_FAILED] * (end - start)
            results[end - 1] = TransferResult.LINKED_EVENT_CHAIN_OPEN
            break
        if start == end:
            results[start] = batch.apply(specs[start])
        else:
            _apply_chain(batch, specs, start, end, results)
        start = end + 1
    return batch.outcome(results)


def _apply_chain(
    batch: _Batch, specs: Sequence[TransferSpec], start: int, end: int, results: list[TransferResult]
) -> None:
    batch.begin_chain()
    for index in range(start, end + 1):
        result = batch.apply(specs[index])
        if result not in SUCCEEDED:
            batch.end_chain(commit=False)
            results[start : end + 1] = [TransferResult.LINKED_EVENT_FAILED] * (end + 1 - start)
            results[index] = result
            return
        results[index] = result
    batch.end_chain(commit=True)


def expire_pendings(
    due: Sequence[Transfer], *, accounts: Mapping[int, AccountState], now: datetime
) -> BatchOutcome:
    """Release the holds of open pending transfers whose time is up (expires_at ≤ now)."""
    batch = _Batch(accounts, {}, {}, now)
    for pending in due:
        batch.expire(pending)
    return batch.outcome([TransferResult.OK] * len(due))
