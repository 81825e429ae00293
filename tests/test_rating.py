"""Rating (settlement/rating.py): usage × the rate card in force, split at price changes, rounded once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanwang.settlement.rating import (
    RatingError,
    Usage,
    billable_seconds,
    largest_remainder,
    rate,
    rate_usage,
    round_half_up,
)
from suanwang.supply.pricing import Interval

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def card(price: int, start: datetime, end: datetime | None = None, card_id: int = 1) -> Interval:
    return Interval(card_id=card_id, price_fen_per_card_hour=price, start=start, end=end)


def usage(cards: int, start: datetime, seconds: int) -> Usage:
    return Usage(
        cards=cards,
        started_at=start,
        ended_at=start + timedelta(seconds=seconds),
        card_seconds=cards * seconds,
    )


def test_one_price_is_card_hours_times_price() -> None:
    rated = rate([usage(8, T0, 3600)], [card(450, T0 - timedelta(days=1))])
    assert rated.amount_fen == 8 * 450
    assert rated.card_seconds == 8 * 3600


def test_usage_across_a_price_change_is_split() -> None:
    change = T0 + timedelta(minutes=30)
    cards = [card(100, T0, change, 1), card(200, change, None, 2)]
    rated = rate([usage(1, T0, 3600)], cards)
    assert [(p.price_fen_per_card_hour, p.card_seconds) for p in rated.pieces] == [(100, 1800), (200, 1800)]
    assert rated.amount_fen == 150


def test_rounding_is_half_up_and_once_per_job() -> None:
    price = card(1800, T0)  # half a fen per card-second
    assert rate([usage(1, T0, 1)], [price]).amount_fen == 1  # 0.5 → 1
    tiny = card(1440, T0)  # 0.4 fen per card-second
    one = usage(1, T0, 1)
    assert rate([one], [tiny]).amount_fen == 0
    # Two records of 0.4 fen each: rounded once, 0.8 → 1 (rounding each would give 0).
    assert rate([one, usage(1, T0 + timedelta(seconds=5), 1)], [tiny]).amount_fen == 1


def test_billing_increment_rounds_each_record_up() -> None:
    assert billable_seconds(usage(2, T0, 61), increment_s=60) == 120
    assert billable_seconds(usage(2, T0, 60), increment_s=60) == 60
    assert billable_seconds(usage(2, T0, 0), increment_s=60) == 0
    rated = rate([usage(1, T0, 61)], [card(3600, T0)], increment_s=60)
    assert rated.amount_fen == 120  # 120 billable seconds at 1 fen per second


def test_the_round_up_tail_takes_the_price_at_the_end() -> None:
    change = T0 + timedelta(seconds=30)
    cards = [card(3600, T0, change, 1), card(7200, change, None, 2)]
    pieces = rate_usage(usage(1, T0, 61), cards, increment_s=60)
    assert [(p.price_fen_per_card_hour, p.card_seconds) for p in pieces] == [(3600, 30), (7200, 90)]


def test_time_without_a_price_is_an_error() -> None:
    with pytest.raises(RatingError):
        rate([usage(1, T0, 3600)], [card(100, T0 + timedelta(minutes=10))])
    gap = [card(100, T0, T0 + timedelta(minutes=10), 1), card(100, T0 + timedelta(minutes=20), None, 2)]
    with pytest.raises(RatingError):
        rate([usage(1, T0, 3600)], gap)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        billable_seconds(usage(1, T0, 10), increment_s=0)
    with pytest.raises(ValueError):
        round_half_up(Fraction(-1, 2))


# --- properties ----------------------------------------------------------------------------------

prices = st.integers(min_value=0, max_value=1_000_000)
usages = st.builds(
    usage,
    cards=st.integers(min_value=1, max_value=64),
    start=st.integers(min_value=0, max_value=86_400).map(lambda s: T0 + timedelta(seconds=s)),
    seconds=st.integers(min_value=0, max_value=7 * 86_400),
)


@given(usages, prices, st.integers(min_value=1, max_value=3600))
def test_one_price_matches_the_closed_form(u: Usage, price: int, increment: int) -> None:
    rated = rate([u], [card(price, T0 - timedelta(days=1))], increment)
    billed = u.cards * billable_seconds(u, increment)
    assert rated.card_seconds == billed
    assert rated.amount_fen == round_half_up(Fraction(billed * price, 3600))


@given(usages, prices, st.integers(min_value=1, max_value=7 * 86_400))
def test_splitting_at_a_change_to_the_same_price_changes_nothing(u: Usage, price: int, offset: int) -> None:
    change = u.started_at + timedelta(seconds=offset)
    whole = rate([u], [card(price, T0 - timedelta(days=1))])
    split = rate([u], [card(price, T0 - timedelta(days=1), change, 1), card(price, change, None, 2)])
    assert split.amount_exact == whole.amount_exact and split.amount_fen == whole.amount_fen


@given(usages, prices, prices, st.integers(min_value=1, max_value=7 * 86_400), st.integers(1, 600))
def test_a_split_charge_lies_between_the_two_prices(
    u: Usage, low: int, high: int, offset: int, increment: int
) -> None:
    low, high = min(low, high), max(low, high)
    change = u.started_at + timedelta(seconds=offset)
    rated = rate([u], [card(low, T0 - timedelta(days=1), change, 1), card(high, change, None, 2)], increment)
    billed = u.cards * billable_seconds(u, increment)
    assert rated.card_seconds == billed
    assert Fraction(billed * low, 3600) <= rated.amount_exact <= Fraction(billed * high, 3600)
    assert all(p.card_seconds > 0 for p in rated.pieces)
    assert abs(rated.amount_fen - rated.amount_exact) <= Fraction(1, 2)


@given(st.lists(usages, max_size=6), prices)
def test_a_jobs_charge_is_rounded_once(records: list[Usage], price: int) -> None:
    cards = [card(price, T0 - timedelta(days=1))]
    rated = rate(records, cards)
    parts = [rate([r], cards).amount_exact for r in records]
    assert rated.amount_exact == sum(parts, Fraction(0))
    assert rated.amount_fen == round_half_up(sum(parts, Fraction(0)))


@given(
    st.integers(min_value=0, max_value=10**12),
    st.lists(st.fractions(min_value=0, max_value=10**9), min_size=1, max_size=8),
)
def test_largest_remainder_adds_up_and_stays_within_a_fen(total: int, weights: list[Fraction]) -> None:
    parts = largest_remainder(total, weights)
    assert sum(parts) == total and all(p >= 0 for p in parts)
    whole = sum(weights, Fraction(0))
    for part, weight in zip(parts, weights, strict=True):
        share = Fraction(total) * weight / whole if whole else Fraction(total, len(weights))
        assert abs(part - share) < 1
