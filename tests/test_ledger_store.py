"""The ledger store on SQLite and PostgreSQL: the rules' behaviours through the database, and more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from suanwang.db.session import session_scope
from suanwang.ledger import store
from suanwang.ledger.models import LedgerAccount, LedgerPendingExpiry, LedgerTransfer
from suanwang.ledger.rules import (
    AccountResult,
    AccountSpec,
    Balances,
    TransferResult,
    TransferSpec,
)
from tests.ledger_model import ACCOUNT_IDS, LIMITS, NOW, LedgerMachine, post, spec, void

pytestmark = pytest.mark.db
R = TransferResult
BANK, WALLET, REVENUE, USD = "bank", "wallet/org/1", "revenue", "usd"


def make_accounts(engine: Engine) -> dict[str, int]:
    """A bank, a wallet that may not be overdrawn (holding 1,000 fen), a revenue account that may not be
    credited beyond its debits, and a USD account."""
    with session_scope(engine) as session:
        outcomes = store.create_accounts(
            session,
            [
                AccountSpec(BANK, "CNY", "bank"),
                AccountSpec(WALLET, "CNY", "wallet", "org", 1, debits_must_not_exceed_credits=True),
                AccountSpec(REVENUE, "CNY", "revenue", credits_must_not_exceed_debits=True),
                AccountSpec(USD, "USD", "bank"),
            ],
            now=NOW,
        )
        ids = {o.account.key: o.account.id for o in outcomes if o.account is not None}
        assert store.create_transfers(session, [spec("fund", ids[BANK], ids[WALLET], 1000)], now=NOW) == [
            R.OK
        ]
    return ids


@pytest.fixture
def ids(clean_engine: Engine) -> dict[str, int]:
    return make_accounts(clean_engine)


def create(engine: Engine, specs: list[TransferSpec], now: Any = NOW) -> list[TransferResult]:
    with session_scope(engine) as session:
        return store.create_transfers(session, specs, now=now)


def balance(engine: Engine, account_id: int, at: Any = None) -> Balances:
    with session_scope(engine) as session:
        return store.balance(session, account_id, at=at)


def snapshot(engine: Engine) -> tuple[Any, ...]:
    with session_scope(engine) as session:
        accounts = session.execute(select(LedgerAccount.__table__).order_by(LedgerAccount.id)).all()
        transfers = session.execute(select(LedgerTransfer.__table__).order_by(LedgerTransfer.seq)).all()
        expiries = session.execute(select(LedgerPendingExpiry.__table__)).all()
    return accounts, transfers, sorted(expiries)


def invariants(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return store.check_invariants(session)


# -- accounts -------------------------------------------------------------------------------------


def test_accounts_are_created_once_per_key(clean_engine):
    ids = make_accounts(clean_engine)
    with session_scope(clean_engine) as session:
        again = store.create_accounts(
            session,
            [
                AccountSpec(WALLET, "CNY", "wallet", "org", 1, debits_must_not_exceed_credits=True),
                AccountSpec(WALLET, "CNY", "wallet", "org", 2, debits_must_not_exceed_credits=True),
                AccountSpec("new", "CNY", "wallet"),
                AccountSpec("new", "CNY", "wallet"),
                AccountSpec("bad key", "CNY", "wallet"),
            ],
            now=NOW,
        )
        results = [o.result for o in again]
        assert results == [
            AccountResult.EXISTS,
            AccountResult.EXISTS_WITH_DIFFERENT_FIELDS,
            AccountResult.OK,
            AccountResult.EXISTS,
            AccountResult.KEY_INVALID,
        ]
        assert again[0].account is not None and again[0].account.id == ids[WALLET]
        assert again[4].account is None
        assert session.scalar(select(func.count()).select_from(LedgerAccount)) == 5
        assert store.get_account(session, key="new") is not None


def test_the_regulator_sets_a_credit_limit_on_wallets_only(clean_engine, ids):
    with session_scope(clean_engine) as session:
        assert (
            store.set_credit_limit(session, account_id=ids[WALLET], credit_limit_fen=500) is AccountResult.OK
        )
        refused = store.set_credit_limit(session, account_id=ids[BANK], credit_limit_fen=500)
        assert refused is AccountResult.CREDIT_LIMIT_REQUIRES_DEBITS_MUST_NOT_EXCEED_CREDITS
        assert (
            store.set_credit_limit(session, account_id=999, credit_limit_fen=1)
            is AccountResult.ACCOUNT_NOT_FOUND
        )
        negative = store.set_credit_limit(session, account_id=ids[WALLET], credit_limit_fen=-1)
        assert negative is AccountResult.CREDIT_LIMIT_MUST_NOT_BE_NEGATIVE
    assert create(clean_engine, [spec("over", ids[WALLET], ids[BANK], 1501)]) == [R.EXCEEDS_CREDITS]
    assert create(clean_engine, [spec("over", ids[WALLET], ids[BANK], 1500)]) == [R.OK]
    assert balance(clean_engine, ids[WALLET]) == Balances(debits_posted=1500, credits_posted=1000)


def test_a_closed_account_takes_no_new_transfers_but_settles_its_holds(clean_engine, ids):
    create(clean_engine, [spec("hold", ids[WALLET], ids[BANK], 300, pending=True)])
    with session_scope(clean_engine) as session:
        assert store.close_account(session, account_id=ids[WALLET], now=NOW) is AccountResult.OK
        assert store.close_account(session, account_id=ids[WALLET], now=NOW) is AccountResult.OK
        assert store.close_account(session, account_id=999, now=NOW) is AccountResult.ACCOUNT_NOT_FOUND
    assert create(clean_engine, [spec("pay", ids[WALLET], ids[BANK], 1)]) == [R.ACCOUNT_CLOSED]
    assert create(clean_engine, [post("charge", "hold")]) == [R.OK]


# -- transfers ------------------------------------------------------------------------------------


def test_a_transfer_moves_balances_and_double_entry_holds(clean_engine, ids):
    assert create(
        clean_engine, [spec("pay", ids[WALLET], ids[BANK], 300, reference="job:42", user_id=7)]
    ) == [R.OK]
    assert balance(clean_engine, ids[WALLET]) == Balances(debits_posted=300, credits_posted=1000)
    assert balance(clean_engine, ids[BANK]) == Balances(debits_posted=1000, credits_posted=300)
    assert invariants(clean_engine) == []
    with session_scope(clean_engine) as session:
        row = session.get(LedgerTransfer, "pay")
        assert row is not None
        assert (row.amount, row.reference, row.user_id, row.code, row.created_at) == (
            300,
            "job:42",
            7,
            "test",
            NOW,
        )


def test_a_retried_batch_exists_and_changes_nothing(clean_engine, ids):
    batch = [
        spec("a", ids[WALLET], ids[BANK], 100),
        spec("h", ids[WALLET], ids[BANK], 200, pending=True, timeout_s=60, linked=True),
        post("p", "h", 150),
    ]
    assert create(clean_engine, batch) == [R.OK, R.OK, R.OK]
    before = snapshot(clean_engine)
    assert create(clean_engine, batch) == [R.EXISTS, R.EXISTS, R.EXISTS]
    assert snapshot(clean_engine) == before


def test_bad_input_changes_nothing(clean_engine, ids):
    before = snapshot(clean_engine)
    results = create(
        clean_engine,
        [
            spec("", ids[WALLET], ids[BANK], 1),
            spec("same", ids[WALLET], ids[WALLET], 1),
            spec("zero", ids[WALLET], ids[BANK], 0),
            spec("float", ids[WALLET], ids[BANK], 1.0),  # type: ignore[arg-type]
            spec("usd", ids[WALLET], ids[USD], 1),
            spec("nobody", 999, ids[BANK], 1),
            spec("weird-account", "1", ids[BANK], 1),  # type: ignore[arg-type]
            spec("much", ids[WALLET], ids[BANK], 1001),
            spec("fund", ids[BANK], ids[WALLET], 5),
            post("nothing", "no-such-hold"),
            spec("chain", ids[WALLET], ids[BANK], 1, linked=True),
        ],
    )
    assert results == [
        R.ID_INVALID,
        R.ACCOUNTS_MUST_BE_DIFFERENT,
        R.AMOUNT_MUST_BE_POSITIVE,
        R.AMOUNT_MUST_BE_POSITIVE,
        R.LEDGER_MISMATCH,
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.EXCEEDS_CREDITS,
        R.EXISTS_WITH_DIFFERENT_FIELDS,
        R.PENDING_TRANSFER_NOT_FOUND,
        R.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert snapshot(clean_engine) == before


def test_a_failed_chain_writes_none_of_it(clean_engine, ids):
    results = create(
        clean_engine,
        [
            spec("a", ids[WALLET], ids[BANK], 600, linked=True),
            spec("b", ids[WALLET], ids[BANK], 600),
            spec("c", ids[WALLET], ids[BANK], 10),
        ],
    )
    assert results == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.OK]
    with session_scope(clean_engine) as session:
        assert session.scalars(select(LedgerTransfer.id).order_by(LedgerTransfer.seq)).all() == ["fund", "c"]


def test_revenue_may_not_be_credited_beyond_its_debits(clean_engine, ids):
    assert create(clean_engine, [spec("in", ids[BANK], ids[REVENUE], 1)]) == [R.EXCEEDS_DEBITS]


def test_a_hold_then_a_partial_post_and_a_void(clean_engine, ids):
    wallet, bank = ids[WALLET], ids[BANK]
    create(
        clean_engine,
        [spec("h1", wallet, bank, 600, pending=True), spec("h2", wallet, bank, 300, pending=True)],
    )
    assert balance(clean_engine, wallet) == Balances(debits_pending=900, credits_posted=1000)
    assert create(clean_engine, [spec("pay", wallet, bank, 101)]) == [R.EXCEEDS_CREDITS]
    assert create(clean_engine, [post("charge", "h1", 250, code="charge"), void("cancel", "h2")]) == [
        R.OK,
        R.OK,
    ]
    assert balance(clean_engine, wallet) == Balances(debits_posted=250, credits_posted=1000)
    assert create(clean_engine, [post("again", "h1"), post("late", "h2")]) == [
        R.PENDING_TRANSFER_ALREADY_POSTED,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
    ]
    assert invariants(clean_engine) == []


def test_a_hold_and_its_post_in_one_batch(clean_engine, ids):
    batch = [spec("h", ids[WALLET], ids[BANK], 1000, pending=True, timeout_s=60), post("p", "h")]
    assert create(clean_engine, batch) == [R.OK, R.OK]
    assert balance(clean_engine, ids[WALLET]) == Balances(debits_posted=1000, credits_posted=1000)
    with session_scope(clean_engine) as session:  # resolved at once: not a candidate for expiry
        assert session.scalar(select(func.count()).select_from(LedgerPendingExpiry)) == 0


def test_the_database_resolves_a_pending_at_most_once(clean_engine, ids):
    create(clean_engine, [spec("h", ids[WALLET], ids[BANK], 100, pending=True), void("v", "h")])
    with pytest.raises(IntegrityError), session_scope(clean_engine) as session:
        row = session.get(LedgerTransfer, "v")
        assert row is not None
        values = {c.key: getattr(row, c.key) for c in LedgerTransfer.__table__.columns if c.key != "seq"}
        session.execute(LedgerTransfer.__table__.insert().values(values | {"id": "v2", "seq": 999}))


def test_the_database_refuses_to_update_a_transfer(clean_engine, ids):
    with pytest.raises(DBAPIError, match="append-only"), session_scope(clean_engine) as session:
        session.execute(text("UPDATE ledger_transfers SET amount = 1 WHERE id = 'fund'"))


def test_ledger_changes_roll_back_with_the_callers_transaction(clean_engine, ids):
    before = snapshot(clean_engine)
    with pytest.raises(RuntimeError), session_scope(clean_engine) as session:
        assert store.create_transfers(session, [spec("pay", ids[WALLET], ids[BANK], 5)], now=NOW) == [R.OK]
        raise RuntimeError("the caller's own write failed")
    assert snapshot(clean_engine) == before


def test_account_objects_loaded_by_the_caller_see_the_new_balances(clean_engine, ids):
    with session_scope(clean_engine) as session:
        wallet = session.get(LedgerAccount, ids[WALLET])
        assert wallet is not None and wallet.debits_posted == 0
        store.create_transfers(session, [spec("pay", ids[WALLET], ids[BANK], 5)], now=NOW)
        assert wallet.debits_posted == 5


def test_a_batch_over_the_limit_is_refused_whole(clean_engine, ids):
    with pytest.raises(ValueError, match="at most 8190"), session_scope(clean_engine) as session:
        store.create_transfers(
            session, [spec(f"t{i}", ids[BANK], ids[WALLET], 1) for i in range(8191)], now=NOW
        )


def test_naive_times_are_refused(clean_engine, ids):
    with pytest.raises(ValueError, match="timezone-aware"), session_scope(clean_engine) as session:
        store.create_transfers(session, [spec("t", ids[BANK], ids[WALLET], 1)], now=NOW.replace(tzinfo=None))


# -- expiry ---------------------------------------------------------------------------------------


def test_an_expired_hold_releases_itself_when_the_wallet_pays(clean_engine, ids):
    wallet, bank = ids[WALLET], ids[BANK]
    create(clean_engine, [spec("hold", wallet, bank, 900, pending=True, timeout_s=60)])
    assert create(clean_engine, [spec("pay", wallet, bank, 500)], NOW + timedelta(seconds=59)) == [
        R.EXCEEDS_CREDITS
    ]
    assert create(clean_engine, [spec("pay", wallet, bank, 500)], NOW + timedelta(seconds=60)) == [R.OK]
    assert create(clean_engine, [post("late", "hold")], NOW + timedelta(seconds=61)) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    with session_scope(clean_engine) as session:
        expiry = session.get(LedgerTransfer, "hold/expired")
        assert expiry is not None
        assert (expiry.void_pending, expiry.expired, expiry.pending_id, expiry.amount) == (
            True,
            True,
            "hold",
            900,
        )
        assert session.scalar(select(func.count()).select_from(LedgerPendingExpiry)) == 0
    assert invariants(clean_engine) == []


def test_an_expired_hold_on_an_account_outside_the_batch_is_released_too(clean_engine, ids):
    with session_scope(clean_engine) as session:
        [escrow] = store.create_accounts(session, [AccountSpec("escrow", "CNY", "escrow")], now=NOW)
        assert escrow.account is not None
        escrow_id = escrow.account.id
    create(clean_engine, [spec("hold", ids[WALLET], escrow_id, 900, pending=True, timeout_s=60)])
    assert create(clean_engine, [spec("pay", ids[WALLET], ids[BANK], 500)], NOW + timedelta(seconds=60)) == [
        R.OK
    ]
    assert balance(clean_engine, escrow_id) == Balances()
    assert invariants(clean_engine) == []


def test_a_post_of_an_expired_hold_expires_it(clean_engine, ids):
    create(clean_engine, [spec("hold", ids[WALLET], ids[BANK], 900, pending=True, timeout_s=60)])
    assert create(clean_engine, [post("late", "hold")], NOW + timedelta(seconds=60)) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    assert balance(clean_engine, ids[WALLET]) == Balances(credits_posted=1000)


def test_the_sweep_expires_due_holds_oldest_first_within_its_limit(clean_engine, ids):
    wallet, bank = ids[WALLET], ids[BANK]
    create(
        clean_engine,
        [
            spec("h30", wallet, bank, 100, pending=True, timeout_s=30),
            spec("h10", wallet, bank, 100, pending=True, timeout_s=10),
            spec("h20", wallet, bank, 100, pending=True, timeout_s=20),
            spec("h-never", wallet, bank, 100, pending=True),
            spec("h99", wallet, bank, 100, pending=True, timeout_s=99),
        ],
    )
    create(clean_engine, [void("v20", "h20")])
    later = NOW + timedelta(seconds=30)
    with session_scope(clean_engine) as session:
        assert store.expire_pending(session, now=later, limit=1) == ["h10"]
        assert store.expire_pending(session, now=later, limit=10) == ["h30"]
        assert store.expire_pending(session, now=later, limit=10) == []
        with pytest.raises(ValueError, match="limit"):
            store.expire_pending(session, now=later, limit=0)
    assert balance(clean_engine, wallet).debits_pending == 200
    assert invariants(clean_engine) == []


# -- reading --------------------------------------------------------------------------------------


def test_balances_at_a_time_come_from_the_transfers_until_then(clean_engine, ids):
    wallet, bank = ids[WALLET], ids[BANK]
    t1, t2, t3 = (NOW + timedelta(minutes=m) for m in (1, 2, 3))
    create(clean_engine, [spec("h", wallet, bank, 400, pending=True)], t1)
    create(clean_engine, [post("p", "h", 300), spec("pay", wallet, bank, 50)], t2)
    create(clean_engine, [spec("h2", wallet, bank, 100, pending=True, timeout_s=60)], t3)
    assert balance(clean_engine, wallet, NOW - timedelta(seconds=1)) == Balances()
    assert balance(clean_engine, wallet, NOW) == Balances(credits_posted=1000)
    assert balance(clean_engine, wallet, t1) == Balances(debits_pending=400, credits_posted=1000)
    assert balance(clean_engine, wallet, t2) == Balances(debits_posted=350, credits_posted=1000)
    assert balance(clean_engine, bank, t2) == Balances(debits_posted=1000, credits_posted=350)
    assert balance(clean_engine, wallet, t3) == balance(clean_engine, wallet)
    create(clean_engine, [spec("pay2", wallet, bank, 1)], t3 + timedelta(seconds=60))  # expires h2
    assert balance(clean_engine, wallet, t3 + timedelta(seconds=60)) == balance(clean_engine, wallet)
    assert balance(clean_engine, wallet, t3).debits_pending == 100
    with pytest.raises(store.AccountNotFound), session_scope(clean_engine) as session:
        store.balance(session, 999)


def test_history_lists_an_accounts_transfers_in_order_page_by_page(clean_engine, ids):
    wallet, bank, revenue = ids[WALLET], ids[BANK], ids[REVENUE]
    create(clean_engine, [spec("r1", revenue, bank, 5)])
    for i in range(5):
        create(clean_engine, [spec(f"out{i}", wallet, bank, 10), spec(f"in{i}", bank, wallet, 1)])
    with session_scope(clean_engine) as session:
        first = store.history(session, wallet, limit=4)
        assert [t.id for t in first] == ["fund", "out0", "in0", "out1"]
        rest = store.history(session, wallet, limit=100, after_seq=first[-1].seq)
        assert [t.id for t in rest] == ["in1", "out2", "in2", "out3", "in3", "out4", "in4"]
        assert [t.id for t in store.history(session, revenue)] == ["r1"]
        with pytest.raises(ValueError, match="limit"):
            store.history(session, wallet, limit=1001)


def test_the_invariant_check_finds_a_tampered_balance(clean_engine, ids):
    assert invariants(clean_engine) == []
    with session_scope(clean_engine) as session:
        session.execute(text(f"UPDATE ledger_accounts SET credits_posted = 999 WHERE id = {ids[WALLET]}"))
    found = invariants(clean_engine)
    assert any("ledger CNY" in v for v in found)
    assert any(f"account {ids[WALLET]}" in v for v in found)


# -- the store agrees with the pure model -----------------------------------------------------------


class StoreMachine(LedgerMachine):
    """The rules' state machine, driving the store alongside the in-memory model and comparing them."""

    engine: Engine

    def __init__(self) -> None:
        super().__init__()
        _reset_ledger(self.engine)
        with session_scope(self.engine) as session:
            specs = [
                AccountSpec(
                    f"a{i}",
                    "USD" if i == 5 else "CNY",
                    "test",
                    debits_must_not_exceed_credits=isinstance(LIMITS[i], int),
                    credits_must_not_exceed_debits=LIMITS[i] == "credits",
                )
                for i in ACCOUNT_IDS
            ]
            outcomes = store.create_accounts(session, specs, now=NOW)
            assert [o.account.id for o in outcomes if o.account] == list(ACCOUNT_IDS)
            assert store.set_credit_limit(session, account_id=3, credit_limit_fen=300) is AccountResult.OK

    def create(self, specs: list[TransferSpec]) -> list[TransferResult]:
        expected = super().create(specs)
        with session_scope(self.engine) as session:
            assert store.create_transfers(session, specs, now=self.now) == expected
        self._compare()
        return expected

    def expire(self) -> list[str]:
        expected = super().expire()
        with session_scope(self.engine) as session:
            assert sorted(store.expire_pending(session, now=self.now, limit=100)) == sorted(expected)
        self._compare()
        return expected

    def _compare(self) -> None:
        with session_scope(self.engine) as session:
            for account_id, account in self.ledger.accounts.items():
                assert store.balance(session, account_id) == account.balances
            ids = set(session.scalars(select(LedgerTransfer.id)))
            assert ids == set(self.ledger.transfers)
            assert store.check_invariants(session) == []


def _reset_ledger(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                # CASCADE: tables that refer to ledger accounts (voucher grants) are emptied with them.
                text(
                    "TRUNCATE ledger_pending_expiries, ledger_transfers, ledger_accounts"
                    " RESTART IDENTITY CASCADE"
                )
            )
        else:
            for table in ("ledger_pending_expiries", "ledger_transfers", "ledger_accounts"):
                conn.execute(text(f"DELETE FROM {table}"))


def test_the_store_agrees_with_the_pure_model(clean_engine):
    StoreMachine.engine = clean_engine
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
