"""An in-memory ledger over the pure rules: the model the property tests drive and compare the store with.

It does what the store does around `apply_batch` (expire due pendings on the touched accounts first,
then apply), with dicts instead of tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from suanwang.ledger.rules import (
    AccountFlags,
    AccountState,
    Balances,
    BatchOutcome,
    PendingState,
    Resolution,
    Transfer,
    TransferResult,
    TransferSpec,
    apply_batch,
    expire_pendings,
    resolution_of,
)

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
R = TransferResult


def spec(id: str, debit: int = 1, credit: int = 2, amount: int | None = 100, **kw: Any) -> TransferSpec:
    return TransferSpec(
        id=id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=kw.pop("ledger", "CNY"),
        code=kw.pop("code", "test"),
        **kw,
    )


def post(id: str, pending_id: str, amount: int | None = None, **kw: Any) -> TransferSpec:
    return spec(
        id, 0, 0, amount, **({"ledger": "", "code": ""} | kw), post_pending=True, pending_id=pending_id
    )


def void(id: str, pending_id: str, amount: int | None = None, **kw: Any) -> TransferSpec:
    return spec(
        id, 0, 0, amount, **({"ledger": "", "code": ""} | kw), void_pending=True, pending_id=pending_id
    )


@dataclass
class MemoryLedger:
    accounts: dict[int, AccountState] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)  # in the order written
    resolutions: dict[str, Resolution] = field(default_factory=dict)  # pending id → how it was resolved

    def add_account(self, account_id: int, ledger: str = "CNY", flags: AccountFlags | None = None) -> None:
        self.accounts[account_id] = AccountState(ledger, flags or AccountFlags(), Balances())

    def set_flags(self, account_id: int, flags: AccountFlags) -> None:
        self.accounts[account_id] = replace(self.accounts[account_id], flags=flags)

    def _open_due(self, now: datetime, account_ids: set[int] | None) -> list[Transfer]:
        return [
            t
            for t in self.transfers.values()
            if t.pending
            and t.expires_at is not None
            and t.expires_at <= now
            and t.id not in self.resolutions
            and (account_ids is None or {t.debit_account_id, t.credit_account_id} & account_ids)
        ]

    def _merge(self, outcome: BatchOutcome) -> None:
        for account_id, balances in outcome.balances.items():
            self.accounts[account_id] = replace(self.accounts[account_id], balances=balances)
        for row in outcome.inserts:
            assert row.id not in self.transfers
            self.transfers[row.id] = row
            if row.pending_id is not None:
                assert row.pending_id not in self.resolutions, "a pending resolved twice"
                self.resolutions[row.pending_id] = resolution_of(row)

    def expire(self, now: datetime) -> list[str]:
        outcome = expire_pendings(self._open_due(now, None), accounts=self.accounts, now=now)
        self._merge(outcome)
        return outcome.resolved

    def create_transfers(self, specs: Sequence[TransferSpec], now: datetime) -> list[TransferResult]:
        pending_ids = {s.pending_id for s in specs if (s.post_pending or s.void_pending) and s.pending_id}
        referenced = {i: self.transfers[i] for i in pending_ids if i in self.transfers}
        touched = {s.debit_account_id for s in specs} | {s.credit_account_id for s in specs}
        touched |= {a for t in referenced.values() for a in (t.debit_account_id, t.credit_account_id)}
        self._merge(expire_pendings(self._open_due(now, touched), accounts=self.accounts, now=now))
        outcome = apply_batch(
            specs,
            accounts=self.accounts,
            existing={s.id: self.transfers[s.id] for s in specs if s.id in self.transfers},
            pendings={
                i: PendingState(t, self.resolutions.get(i, Resolution.OPEN)) for i, t in referenced.items()
            },
            now=now,
        )
        self._merge(outcome)
        return outcome.results

    def sums(self) -> dict[int, Balances]:
        """Balances recomputed from the transfers alone."""
        sums = {account_id: [0, 0, 0, 0] for account_id in self.accounts}
        for t in self.transfers.values():
            debit, credit = sums[t.debit_account_id], sums[t.credit_account_id]
            if t.pending:
                debit[0] += t.amount
                credit[2] += t.amount
                continue
            if t.pending_id is not None:
                released = self.transfers[t.pending_id].amount
                debit[0] -= released
                credit[2] -= released
            if not t.void_pending:
                debit[1] += t.amount
                credit[3] += t.amount
        return {account_id: Balances(*values) for account_id, values in sums.items()}

    def violations(self) -> list[str]:
        """The invariants the store's check_invariants checks, over the model."""
        found = []
        for ledger in {a.ledger for a in self.accounts.values()}:
            members = [a.balances for a in self.accounts.values() if a.ledger == ledger]
            if sum(b.credits_posted - b.debits_posted for b in members) != 0:
                found.append(f"ledger {ledger} posted does not sum to zero")
            if sum(b.credits_pending - b.debits_pending for b in members) != 0:
                found.append(f"ledger {ledger} pending does not sum to zero")
        sums = self.sums()
        for account_id, account in self.accounts.items():
            if account.balances != sums[account_id]:
                found.append(f"account {account_id}: {account.balances} != {sums[account_id]}")
        resolving = [t.pending_id for t in self.transfers.values() if t.pending_id is not None]
        if len(resolving) != len(set(resolving)):
            found.append("a pending transfer was resolved more than once")
        return found


# -- the property test's state machine --------------------------------------------------------

ACCOUNT_IDS = (1, 2, 3, 4, 5)
LIMITS = {1: None, 2: 0, 3: 300, 4: "credits", 5: None}  # debit limit (overdraft) or the credit-side flag


def _flags(account_id: int) -> AccountFlags:
    limit = LIMITS[account_id]
    if limit == "credits":
        return AccountFlags(credits_must_not_exceed_debits=True)
    if limit is None:
        return AccountFlags()
    return AccountFlags(debits_must_not_exceed_credits=True, credit_limit_fen=int(limit))


# Mostly good transfers (so that posts, voids, chains and limits are reached), some bad ones.
CNY_ACCOUNTS = (1, 2, 3, 4)


class LedgerMachine(RuleBasedStateMachine):
    """Random batches of transfers, holds, posts, voids, expiries and retries over the pure rules."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = MemoryLedger()
        self.now = NOW
        self.counter = 0
        self.last_batch: list[TransferSpec] = []
        self.last_results: list[TransferResult] = []

    @initialize()
    def accounts(self) -> None:
        for account_id in ACCOUNT_IDS:
            self.ledger.add_account(
                account_id, ledger="USD" if account_id == 5 else "CNY", flags=_flags(account_id)
            )

    # What the rules drive; a subclass drives the store alongside and compares.
    def create(self, specs: list[TransferSpec]) -> list[TransferResult]:
        return self.ledger.create_transfers(specs, self.now)

    def expire(self) -> list[str]:
        return self.ledger.expire(self.now)

    def _id(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def _transfer(self, data: st.DataObject, holds: list[str]) -> TransferSpec:
        # Mostly well-formed transfers between CNY accounts, so that posts, voids, chains and limits
        # are reached; one in ten is mangled.
        kind = data.draw(st.sampled_from(["plain", "hold", "post", "void", "plain", "hold"]))
        linked = data.draw(st.integers(0, 3)) == 3
        stored = [t.id for t in self.ledger.transfers.values() if t.pending]
        if kind in ("post", "void") and (stored or holds):
            pending_id = data.draw(st.sampled_from([*holds, *stored, "unknown"]))
            amount = data.draw(st.one_of(st.none(), st.integers(0, 600))) if kind == "post" else None
            resolve = post if kind == "post" else void
            return replace(resolve(self._id(), pending_id), amount=amount, linked=linked)
        debit, credit = data.draw(st.permutations(CNY_ACCOUNTS))[:2]
        amount = data.draw(st.integers(1, 500))
        timeout = data.draw(st.sampled_from([None, 0, 30, 120])) if kind == "hold" else None
        transfer = spec(
            self._id(), debit, credit, amount, pending=kind == "hold", timeout_s=timeout, linked=linked
        )
        if data.draw(st.integers(0, 9)) == 9:
            mangle = data.draw(
                st.sampled_from(
                    [
                        {"amount": 0},
                        {"amount": -5},
                        {"amount": None},
                        {"credit_account_id": debit},
                        {"credit_account_id": 5},
                        {"ledger": "USD"},
                        {"ledger": ""},
                        {"debit_account_id": 99},
                    ]
                )
            )
            transfer = replace(transfer, **mangle)
        if transfer.pending:
            holds.append(transfer.id)
        return transfer

    @rule(data=st.data(), size=st.integers(1, 6))
    def batch(self, data: st.DataObject, size: int) -> None:
        holds: list[str] = []
        specs = [self._transfer(data, holds) for _ in range(size)]
        if (
            data.draw(st.integers(0, 4)) == 0 and self.ledger.transfers
        ):  # a reused id (a client's bug or retry)
            old = data.draw(st.sampled_from(sorted(self.ledger.transfers)))
            if not old.endswith("/expired"):
                specs.append(replace(specs[0], id=old, linked=False))
        before = dict(self.ledger.transfers)
        results = self.create(specs)
        assert len(results) == len(specs)
        for transfer, result in zip(specs, results, strict=True):
            if result is R.OK:
                assert transfer.id in self.ledger.transfers and transfer.id not in before
        self.last_batch, self.last_results = specs, results

    @precondition(lambda self: self.last_batch and all(r in (R.OK, R.EXISTS) for r in self.last_results))
    @rule()
    def retry_last_batch(self) -> None:
        self.expire()  # due holds on its accounts would expire first: that is not the retry's doing
        before = (dict(self.ledger.accounts), dict(self.ledger.transfers))
        assert self.create(self.last_batch) == [R.EXISTS] * len(self.last_batch)
        assert (self.ledger.accounts, self.ledger.transfers) == before

    @rule(seconds=st.sampled_from([1, 29, 30, 61, 200]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def sweep(self) -> None:
        for pending_id in self.expire():
            assert self.ledger.resolutions[pending_id] is Resolution.EXPIRED

    @invariant()
    def double_entry_holds(self) -> None:
        assert self.ledger.violations() == []

    @invariant()
    def limits_hold(self) -> None:
        for account in self.ledger.accounts.values():
            b, flags = account.balances, account.flags
            assert min(b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted) >= 0
            if flags.debits_must_not_exceed_credits:
                assert b.debits_pending + b.debits_posted <= b.credits_posted + flags.credit_limit_fen
            if flags.credits_must_not_exceed_debits:
                assert b.credits_pending + b.credits_posted <= b.debits_posted

    @invariant()
    def each_pending_resolved_at_most_once(self) -> None:
        resolving = [t.pending_id for t in self.ledger.transfers.values() if t.pending_id]
        assert len(resolving) == len(set(resolving))
        assert set(resolving) == set(self.ledger.resolutions)
