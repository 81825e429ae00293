"""The pure ledger rules: every result code, linked chains, two-phase transfers, expiry, and properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings

from suanwang.ledger.rules import (
    BALANCE_MAX,
    TRANSFERS_PER_BATCH_MAX,
    AccountFlags,
    AccountResult,
    AccountSpec,
    AccountState,
    Balances,
    PendingState,
    Resolution,
    TransferResult,
    TransferSpec,
    apply_batch,
    check_account,
    check_credit_limit,
    expire_pendings,
)
from tests.ledger_model import NOW, LedgerMachine, MemoryLedger, post, spec, void

R = TransferResult
BANK, WALLET, REVENUE, USD, CLOSED, OVERDRAFT = 1, 2, 3, 4, 5, 6
DMNEC = AccountFlags(debits_must_not_exceed_credits=True)


def world() -> MemoryLedger:
    """A bank (no limits), a wallet holding 1,000 fen, a revenue account that may not be credited beyond
    its debits, a USD account, a closed account and a wallet with a 500 fen overdraft."""
    ledger = MemoryLedger()
    ledger.add_account(BANK)
    ledger.add_account(WALLET, flags=DMNEC)
    ledger.add_account(REVENUE, flags=AccountFlags(credits_must_not_exceed_debits=True))
    ledger.add_account(USD, ledger="USD")
    ledger.add_account(CLOSED)
    ledger.add_account(OVERDRAFT, flags=replace(DMNEC, credit_limit_fen=500))
    assert ledger.create_transfers([spec("fund", BANK, WALLET, 1000)], NOW) == [R.OK]
    ledger.set_flags(CLOSED, AccountFlags(closed=True))
    return ledger


def balances(ledger: MemoryLedger, account_id: int) -> Balances:
    return ledger.accounts[account_id].balances


def one(ledger: MemoryLedger, transfer: TransferSpec, now: datetime = NOW) -> TransferResult:
    [result] = ledger.create_transfers([transfer], now)
    return result


# -- results of single transfers -------------------------------------------------------------------


def test_a_transfer_moves_posted_balances_and_sums_to_zero():
    ledger = world()
    assert one(ledger, spec("pay", WALLET, BANK, 300)) is R.OK
    assert balances(ledger, WALLET) == Balances(debits_posted=300, credits_posted=1000)
    assert balances(ledger, BANK) == Balances(debits_posted=1000, credits_posted=300)
    assert ledger.violations() == []


def test_a_retried_transfer_exists_and_changes_nothing():
    ledger = world()
    before = dict(ledger.accounts)
    assert one(ledger, spec("fund", BANK, WALLET, 1000)) is R.EXISTS
    assert ledger.accounts == before


def test_the_same_id_twice_in_one_batch_is_created_once():
    ledger = world()
    results = ledger.create_transfers([spec("a", amount=5), spec("a", amount=5), spec("a", amount=6)], NOW)
    assert results == [R.OK, R.EXISTS, R.EXISTS_WITH_DIFFERENT_FIELDS]
    assert balances(ledger, WALLET).credits_posted == 1005


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": 999},
        {"debit": USD},
        {"code": "other"},
        {"reference": "job:1"},
        {"reason": "why"},
        {"user_id": 7},
        {"pending": True},
        {"linked": True},
    ],
)
def test_a_reused_id_with_other_fields_is_refused(changed):
    ledger = world()
    fields = {"debit": BANK, "credit": WALLET, "amount": 1000} | changed
    transfer = spec("fund", fields.pop("debit"), fields.pop("credit"), fields.pop("amount"), **fields)
    batch = [transfer, spec("end")] if changed.get("linked") else [transfer]
    assert ledger.create_transfers(batch, NOW)[0] is R.EXISTS_WITH_DIFFERENT_FIELDS


@pytest.mark.parametrize("bad_id", ["", "a b", "x" * 101, "日本", "hold/expired", None, 5])
def test_ids_are_short_plain_strings(bad_id):
    assert one(world(), spec(bad_id)) is R.ID_INVALID


def test_an_id_of_100_allowed_characters_is_fine():
    assert one(world(), spec("A-z0.9:/_" + "x" * 91)) is R.OK


@pytest.mark.parametrize(
    "flags", [{"pending": True, "post_pending": True}, {"post_pending": True, "void_pending": True}]
)
def test_two_phase_flags_are_mutually_exclusive(flags):
    assert one(world(), spec("t", pending_id="p", **flags)) is R.FLAGS_ARE_MUTUALLY_EXCLUSIVE


@pytest.mark.parametrize("amount", [0, -1, None, 1.5, 100.0, True])
def test_amounts_are_positive_integers(amount):
    assert one(world(), spec("t", amount=amount)) is R.AMOUNT_MUST_BE_POSITIVE


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"debit": WALLET, "credit": WALLET}, R.ACCOUNTS_MUST_BE_DIFFERENT),
        ({"ledger": ""}, R.LEDGER_INVALID),
        ({"ledger": "C" * 17}, R.LEDGER_INVALID),
        ({"code": ""}, R.CODE_INVALID),
        ({"code": "c" * 33}, R.CODE_INVALID),
        ({"reference": "r" * 101}, R.REFERENCE_INVALID),
        ({"reason": "r" * 501}, R.REASON_INVALID),
        ({"user_id": "7"}, R.USER_ID_INVALID),
        ({"timeout_s": -1, "pending": True}, R.TIMEOUT_INVALID),
        ({"timeout_s": 2**31, "pending": True}, R.TIMEOUT_INVALID),
        ({"timeout_s": 60}, R.TIMEOUT_RESERVED_FOR_PENDING),
        ({"pending_id": "fund"}, R.PENDING_ID_MUST_NOT_BE_SET),
        ({"debit": 99}, R.DEBIT_ACCOUNT_NOT_FOUND),
        ({"credit": 99}, R.CREDIT_ACCOUNT_NOT_FOUND),
        ({"credit": USD}, R.LEDGER_MISMATCH),
        ({"ledger": "USD"}, R.LEDGER_MISMATCH),
        ({"credit": CLOSED}, R.ACCOUNT_CLOSED),
        ({"debit": CLOSED}, R.ACCOUNT_CLOSED),
    ],
)
def test_bad_transfers_are_refused_and_change_nothing(fields, expected):
    ledger = world()
    before = dict(ledger.accounts), dict(ledger.transfers)
    debit, credit = fields.pop("debit", BANK), fields.pop("credit", WALLET)
    assert one(ledger, spec("t", debit, credit, 100, **fields)) is expected
    assert (ledger.accounts, ledger.transfers) == before


def test_a_wallet_may_not_spend_more_than_it_holds():
    ledger = world()
    assert one(ledger, spec("too-much", WALLET, BANK, 1001)) is R.EXCEEDS_CREDITS
    assert one(ledger, spec("all", WALLET, BANK, 1000)) is R.OK
    assert one(ledger, spec("one-more", WALLET, BANK, 1)) is R.EXCEEDS_CREDITS


def test_holds_count_against_the_wallet():
    ledger = world()
    assert one(ledger, spec("hold", WALLET, BANK, 800, pending=True)) is R.OK
    assert one(ledger, spec("pay", WALLET, BANK, 201)) is R.EXCEEDS_CREDITS
    assert one(ledger, spec("pay", WALLET, BANK, 200)) is R.OK


def test_a_credit_limit_allows_that_much_overdraft():
    ledger = world()
    assert one(ledger, spec("over", OVERDRAFT, BANK, 501)) is R.EXCEEDS_CREDITS
    assert one(ledger, spec("over", OVERDRAFT, BANK, 500)) is R.OK
    assert balances(ledger, OVERDRAFT) == Balances(debits_posted=500)


def test_credits_must_not_exceed_debits():
    ledger = world()
    assert one(ledger, spec("in", BANK, REVENUE, 1)) is R.EXCEEDS_DEBITS
    assert one(ledger, spec("out", REVENUE, BANK, 50)) is R.OK
    assert one(ledger, spec("in", BANK, REVENUE, 51)) is R.EXCEEDS_DEBITS
    assert one(ledger, spec("in", BANK, REVENUE, 50)) is R.OK


def test_balances_never_overflow_the_database_column():
    ledger = world()
    assert one(ledger, spec("huge", BANK, WALLET, BALANCE_MAX)) is R.OVERFLOWS
    assert one(ledger, spec("max", BANK, WALLET, BALANCE_MAX - 1000)) is R.OK


# -- two-phase transfers -----------------------------------------------------------------------------


def test_a_hold_moves_pending_balances_and_a_post_makes_them_posted():
    ledger = world()
    assert one(ledger, spec("hold", WALLET, BANK, 600, pending=True)) is R.OK
    assert balances(ledger, WALLET) == Balances(debits_pending=600, credits_posted=1000)
    assert one(ledger, post("charge", "hold")) is R.OK
    assert balances(ledger, WALLET) == Balances(debits_posted=600, credits_posted=1000)
    assert balances(ledger, BANK) == Balances(debits_posted=1000, credits_posted=600)
    charge = ledger.transfers["charge"]
    assert (charge.amount, charge.debit_account_id, charge.code) == (600, WALLET, "test")
    assert ledger.resolutions == {"hold": Resolution.POSTED}
    assert ledger.violations() == []


def test_a_partial_post_releases_the_rest_of_the_hold():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True))
    assert one(ledger, post("charge", "hold", 250, code="charge")) is R.OK
    assert balances(ledger, WALLET) == Balances(debits_posted=250, credits_posted=1000)
    assert ledger.transfers["charge"].code == "charge"
    assert one(ledger, post("again", "hold", 100)) is R.PENDING_TRANSFER_ALREADY_POSTED


def test_a_void_releases_the_hold_and_resolves_it():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True))
    assert one(ledger, void("cancel", "hold")) is R.OK
    assert balances(ledger, WALLET) == Balances(credits_posted=1000)
    assert ledger.transfers["cancel"].amount == 600
    assert one(ledger, post("late", "hold")) is R.PENDING_TRANSFER_ALREADY_VOIDED
    assert one(ledger, void("twice", "hold")) is R.PENDING_TRANSFER_ALREADY_VOIDED


def test_a_hold_and_its_post_in_one_batch():
    ledger = world()
    results = ledger.create_transfers(
        [spec("hold", WALLET, BANK, 900, pending=True), post("charge", "hold")], NOW
    )
    assert results == [R.OK, R.OK]
    assert balances(ledger, WALLET) == Balances(debits_posted=900, credits_posted=1000)


def test_a_retried_post_exists_whatever_defaults_it_used():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True, reference="job:1"))
    assert one(ledger, post("charge", "hold")) is R.OK
    assert one(ledger, post("charge", "hold")) is R.EXISTS
    explicit = spec("charge", WALLET, BANK, 600, post_pending=True, pending_id="hold", reference="job:1")
    assert one(ledger, explicit) is R.EXISTS
    assert one(ledger, post("charge", "hold", 599)) is R.EXISTS_WITH_DIFFERENT_FIELDS


@pytest.mark.parametrize(
    ("resolving", "expected"),
    [
        (post("p", None), R.PENDING_ID_REQUIRED),
        (post("p", "nothing"), R.PENDING_TRANSFER_NOT_FOUND),
        (post("p", "fund"), R.PENDING_TRANSFER_NOT_PENDING),
        (post("p", "hold", timeout_s=5), R.TIMEOUT_RESERVED_FOR_PENDING),
        (post("p", "hold", 601), R.EXCEEDS_PENDING_AMOUNT),
        (post("p", "hold", -1), R.AMOUNT_MUST_BE_POSITIVE),
        (void("p", "hold", amount=5), R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT),
        (replace(post("p", "hold"), debit_account_id=BANK), R.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS),
        (replace(void("p", "hold"), credit_account_id=WALLET), R.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS),
        (replace(post("p", "hold"), ledger="USD"), R.LEDGER_MISMATCH),
        (replace(post("p", "hold"), code="c" * 33), R.CODE_INVALID),
    ],
)
def test_bad_posts_and_voids_are_refused_and_keep_the_hold(resolving, expected):
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True))
    before = dict(ledger.accounts)
    assert one(ledger, resolving) is expected
    assert ledger.accounts == before and ledger.resolutions == {}


def test_a_void_may_name_the_full_amount():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True))
    assert one(ledger, void("cancel", "hold", amount=600)) is R.OK


def test_pendings_on_a_closed_account_may_still_be_posted_or_voided():
    ledger = world()
    one(ledger, spec("h1", WALLET, BANK, 100, pending=True))
    one(ledger, spec("h2", WALLET, BANK, 100, pending=True))
    ledger.set_flags(WALLET, replace(DMNEC, closed=True))
    assert one(ledger, spec("new", WALLET, BANK, 1)) is R.ACCOUNT_CLOSED
    assert one(ledger, post("p1", "h1")) is R.OK
    assert one(ledger, void("v2", "h2")) is R.OK


def test_an_expired_hold_can_be_neither_posted_nor_voided_and_is_released():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True, timeout_s=60))
    later = NOW + timedelta(seconds=60)
    assert one(ledger, post("late", "hold"), later) is R.PENDING_TRANSFER_EXPIRED
    assert one(ledger, void("late", "hold"), later) is R.PENDING_TRANSFER_EXPIRED
    assert ledger.resolutions == {"hold": Resolution.EXPIRED}
    expiry = ledger.transfers["hold/expired"]
    assert (expiry.void_pending, expiry.expired, expiry.amount, expiry.pending_id) == (
        True,
        True,
        600,
        "hold",
    )
    assert balances(ledger, WALLET) == Balances(credits_posted=1000)


def test_a_hold_may_be_posted_until_its_last_second():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True, timeout_s=60))
    assert one(ledger, post("charge", "hold"), NOW + timedelta(seconds=59)) is R.OK


def test_expired_holds_release_by_themselves_when_the_wallet_pays_again():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 900, pending=True, timeout_s=60))
    assert one(ledger, spec("pay", WALLET, BANK, 500), NOW + timedelta(seconds=30)) is R.EXCEEDS_CREDITS
    assert one(ledger, spec("pay", WALLET, BANK, 500), NOW + timedelta(seconds=61)) is R.OK
    assert ledger.violations() == []


def test_a_hold_without_timeout_never_expires():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True, timeout_s=0))
    assert ledger.expire(NOW + timedelta(days=3650)) == []
    assert one(ledger, post("charge", "hold"), NOW + timedelta(days=3650)) is R.OK


def test_the_expiry_sweep_releases_only_due_holds():
    ledger = world()
    one(ledger, spec("soon", WALLET, BANK, 100, pending=True, timeout_s=10))
    one(ledger, spec("later", WALLET, BANK, 100, pending=True, timeout_s=100))
    assert ledger.expire(NOW + timedelta(seconds=10)) == ["soon"]
    assert ledger.expire(NOW + timedelta(seconds=10)) == []
    assert balances(ledger, WALLET).debits_pending == 100


def test_expiring_a_pending_twice_or_too_early_is_a_bug():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True, timeout_s=60))
    hold = ledger.transfers["hold"]
    with pytest.raises(ValueError, match="not a pending transfer due"):
        expire_pendings([hold], accounts=ledger.accounts, now=NOW)
    with pytest.raises(ValueError, match="already resolved"):
        expire_pendings([hold, hold], accounts=ledger.accounts, now=NOW + timedelta(seconds=60))


# -- linked chains ---------------------------------------------------------------------------------


def test_a_linked_chain_commits_together():
    ledger = world()
    chain = [spec("a", WALLET, BANK, 400, linked=True), spec("b", WALLET, BANK, 600)]
    assert ledger.create_transfers(chain, NOW) == [R.OK, R.OK]
    assert balances(ledger, WALLET).debits_posted == 1000


def test_a_failing_transfer_fails_its_whole_chain_and_only_its_chain():
    ledger = world()
    batch = [
        spec("before", WALLET, BANK, 10),
        spec("a", WALLET, BANK, 400, linked=True, pending=True),
        post("a-post", "a", linked=True),
        spec("b", WALLET, BANK, 600, linked=True),  # 10 + 400 + 600 > 1000
        spec("c", BANK, WALLET, 5),
        spec("after", WALLET, BANK, 20),
    ]
    results = ledger.create_transfers(batch, NOW)
    assert results == [
        R.OK,
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.EXCEEDS_CREDITS,
        R.LINKED_EVENT_FAILED,
        R.OK,
    ]
    assert set(ledger.transfers) == {"fund", "before", "after"}
    assert balances(ledger, WALLET) == Balances(debits_posted=30, credits_posted=1000)
    assert ledger.resolutions == {}


def test_a_batch_ending_in_a_linked_transfer_leaves_its_chain_open():
    ledger = world()
    batch = [
        spec("x", WALLET, BANK, 1),
        spec("a", WALLET, BANK, 1, linked=True),
        spec("b", WALLET, BANK, 1, linked=True),
    ]
    assert ledger.create_transfers(batch, NOW) == [R.OK, R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]
    assert set(ledger.transfers) == {"fund", "x"}


def test_a_retried_chain_exists_in_full():
    ledger = world()
    chain = [spec("a", WALLET, BANK, 400, linked=True), spec("b", WALLET, BANK, 600)]
    ledger.create_transfers(chain, NOW)
    before = dict(ledger.accounts)
    assert ledger.create_transfers(chain, NOW) == [R.EXISTS, R.EXISTS]
    assert ledger.accounts == before


def test_a_failed_chain_frees_its_ids_for_later_in_the_batch():
    ledger = world()
    batch = [
        spec("a", WALLET, BANK, 400, linked=True),
        spec("b", WALLET, BANK, 900),
        spec("a", WALLET, BANK, 400),
    ]
    assert ledger.create_transfers(batch, NOW) == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.OK]


def test_a_failed_chain_undoes_a_post_within_it():
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True))
    batch = [post("charge", "hold", linked=True), spec("bad", WALLET, WALLET, 1)]
    assert ledger.create_transfers(batch, NOW) == [R.LINKED_EVENT_FAILED, R.ACCOUNTS_MUST_BE_DIFFERENT]
    assert balances(ledger, WALLET).debits_pending == 600
    assert one(ledger, post("charge", "hold")) is R.OK


# -- batches and accounts --------------------------------------------------------------------------


def test_a_batch_has_a_size_limit():
    with pytest.raises(ValueError, match="at most 8190"):
        apply_batch(
            [spec(f"t{i}") for i in range(TRANSFERS_PER_BATCH_MAX + 1)],
            accounts={},
            existing={},
            pendings={},
            now=NOW,
        )


def test_the_rules_refuse_to_write_an_unbalanced_or_negative_result():
    # An inconsistent input (a pending whose hold is not in the balances) trips the batch assertion.
    ledger = world()
    one(ledger, spec("hold", WALLET, BANK, 600, pending=True))
    accounts = dict(ledger.accounts)
    accounts[WALLET] = AccountState("CNY", DMNEC, Balances(credits_posted=1000))
    with pytest.raises(AssertionError, match="negative"):
        apply_batch(
            [void("v", "hold")],
            accounts=accounts,
            existing={},
            pendings={"hold": PendingState(ledger.transfers["hold"], Resolution.OPEN)},
            now=NOW,
        )


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (AccountSpec("wallet/org/1", "CNY", "wallet"), AccountResult.OK),
        (AccountSpec("", "CNY", "wallet"), AccountResult.KEY_INVALID),
        (AccountSpec("a b", "CNY", "wallet"), AccountResult.KEY_INVALID),
        (AccountSpec("k", "", "wallet"), AccountResult.LEDGER_INVALID),
        (AccountSpec("k", "CNY", ""), AccountResult.CODE_INVALID),
        (AccountSpec("k", "CNY", "w", owner_id=3), AccountResult.OWNER_INVALID),
        (AccountSpec("k", "CNY", "w", owner_kind="o" * 33), AccountResult.OWNER_INVALID),
        (
            AccountSpec(
                "k", "CNY", "w", debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True
            ),
            AccountResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        ),
    ],
)
def test_account_specs_are_checked(account, expected):
    assert check_account(account) is expected


def test_only_a_debit_limited_account_gets_a_credit_limit():
    assert check_credit_limit(DMNEC, 500) is AccountResult.OK
    assert check_credit_limit(DMNEC, -1) is AccountResult.CREDIT_LIMIT_MUST_NOT_BE_NEGATIVE
    assert (
        check_credit_limit(AccountFlags(), 500)
        is AccountResult.CREDIT_LIMIT_REQUIRES_DEBITS_MUST_NOT_EXCEED_CREDITS
    )
    assert check_credit_limit(AccountFlags(), 0) is AccountResult.OK


LedgerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_ledger_state_machine = LedgerMachine.TestCase
