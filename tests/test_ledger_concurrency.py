"""Many settlers against one nearly empty wallet on PostgreSQL: the wallet is never overdrawn.

PostgreSQL only (SQLite has one writer, so there is no race to lose there). CI and `make test` set
SUANWANG_TEST_DATABASE_URL, so this runs there; without it pytest reports it skipped, with the reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from suanwang.db.session import session_factory, session_scope
from suanwang.ledger import store
from suanwang.ledger.models import LedgerTransfer
from suanwang.ledger.rules import AccountSpec, Balances, TransferResult
from tests.conftest import PG_URL
from tests.ledger_model import NOW, post, spec, void
from tests.test_ledger_store import BANK, WALLET, make_accounts

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set SUANWANG_TEST_DATABASE_URL (CI does)"),
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]
R = TransferResult
SETTLERS = 16
ATTEMPTS = 8
AMOUNT_FEN = 300


def test_sixteen_settlers_never_overdraw_one_wallet(clean_engine: Engine):
    ids = make_accounts(clean_engine)  # the wallet holds 1,000 fen
    wallet, bank = ids[WALLET], ids[BANK]
    start = threading.Barrier(SETTLERS + 1)
    done = threading.Event()
    lock = threading.Lock()
    results: Counter[str] = Counter()
    debited = Counter[str]()
    seen: list[Balances] = []
    failures: list[BaseException] = []

    def settle(n: int) -> None:
        try:
            start.wait()
            for i in range(ATTEMPTS):
                key = f"s{n}-{i}"
                if n % 2 == 0:  # charge at once
                    with session_scope(clean_engine) as session:
                        [result] = store.create_transfers(
                            session, [spec(key, wallet, bank, AMOUNT_FEN)], now=NOW
                        )
                    if result is R.OK:
                        with lock:
                            debited["direct"] += AMOUNT_FEN
                else:  # hold, then post (or void every third) in a second transaction
                    hold = spec(key, wallet, bank, AMOUNT_FEN, pending=True, timeout_s=600)
                    with session_scope(clean_engine) as session:
                        [result] = store.create_transfers(session, [hold], now=NOW)
                    if result is R.OK:
                        resolve = void(f"{key}-v", key) if i % 3 == 0 else post(f"{key}-p", key, 200)
                        with session_scope(clean_engine) as session:
                            [resolved] = store.create_transfers(session, [resolve], now=NOW)
                        assert resolved is R.OK
                        if resolve.post_pending:
                            with lock:
                                debited["posted"] += 200
                with lock:
                    results[result.value] += 1
        except BaseException as error:  # surfaced below: a thread's failure must fail the test
            failures.append(error)

    def watch() -> None:
        while not done.is_set():
            with session_scope(clean_engine) as session:
                seen.append(store.balance(session, wallet))

    threads = [threading.Thread(target=settle, args=(n,)) for n in range(SETTLERS)]
    watcher = threading.Thread(target=watch)
    for thread in [*threads, watcher]:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    watcher.join(timeout=30)

    assert failures == []
    assert set(results) <= {R.OK.value, R.EXCEEDS_CREDITS.value}
    assert results[R.OK.value] >= 3  # the wallet did pay, up to what it held
    assert results[R.EXCEEDS_CREDITS.value] > 0
    assert seen, "the watcher saw no balance"
    for b in seen:
        assert b.debits_pending + b.debits_posted <= b.credits_posted == 1000
    with session_scope(clean_engine) as session:
        final = store.balance(session, wallet)
        assert final.debits_pending == 0
        assert final.debits_posted == debited.total() <= 1000
        assert store.check_invariants(session) == []


def _wait_until_blocked(engine: Engine, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(query):
                return
        time.sleep(0.02)
    raise AssertionError("the second transaction never waited on the first")


def test_the_same_id_sent_twice_at_once_is_written_once(clean_engine: Engine):
    ids = make_accounts(clean_engine)
    with session_scope(clean_engine) as session:
        usd = store.create_accounts(
            session, [AccountSpec("usd-a", "USD", "bank"), AccountSpec("usd-b", "USD", "bank")], now=NOW
        )
        usd_a, usd_b = (o.account.id for o in usd if o.account is not None)
    first = session_factory(clean_engine)()
    assert store.create_transfers(first, [spec("dup", ids[BANK], ids[WALLET], 5)], now=NOW) == [R.OK]
    outcome: list[object] = []

    def second() -> None:  # other accounts, so no account lock orders it after the first
        try:
            with session_scope(clean_engine) as session:
                outcome.append(
                    store.create_transfers(session, [spec("dup", usd_a, usd_b, 5, ledger="USD")], now=NOW)
                )
        except IntegrityError as error:
            outcome.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    _wait_until_blocked(clean_engine)  # on the id's unique index
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], IntegrityError)
    with session_scope(clean_engine) as session:
        retried = store.create_transfers(session, [spec("dup", usd_a, usd_b, 5, ledger="USD")], now=NOW)
        assert retried == [R.EXISTS_WITH_DIFFERENT_FIELDS]
        assert (
            session.scalar(select(LedgerTransfer.debit_account_id).where(LedgerTransfer.id == "dup"))
            == ids[BANK]
        )
        assert store.check_invariants(session) == []
