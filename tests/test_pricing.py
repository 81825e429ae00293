"""Rate-card rules as pure functions: price lookup against a brute-force model, placement, withdrawal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from suanwang.supply.pricing import Interval, PricingError, check_retire, place, price_at

BASE = datetime(2025, 1, 1, tzinfo=UTC)
HORIZON = 60  # hours covered by generated histories


def at(hour: float) -> datetime:
    return BASE + timedelta(hours=hour)


@st.composite
def histories(draw: st.DrawFn, *, max_cards: int = 6) -> list[Interval]:
    """A valid history: non-overlapping cards in random order, gaps allowed, the last maybe open-ended."""
    n = draw(st.integers(min_value=0, max_value=max_cards))
    points = sorted(
        draw(st.sets(st.integers(min_value=0, max_value=HORIZON), min_size=2 * n, max_size=2 * n))
    )
    cards = []
    for i in range(n):
        start, end = points[2 * i], points[2 * i + 1]
        # Sometimes the card ends where the next one starts (a closed price change), sometimes a gap.
        if i + 1 < n and draw(st.booleans()):
            end = points[2 * i + 2]
        cards.append([i + 1, draw(st.integers(min_value=1, max_value=10_000)), start, end])
    if cards and draw(st.booleans()):
        cards[-1][3] = None
    intervals = [Interval(cid, price, at(s), at(e) if e is not None else None) for cid, price, s, e in cards]
    return draw(st.permutations(intervals))


def brute_force_price(cards: list[Interval], hour: float) -> int | None:
    """Model: walk every card's covered minutes, independently of Interval.covers."""
    t = at(hour)
    found = [c for c in cards if c.start <= t and (c.end is None or t < c.end)]
    assert len(found) <= 1, "generated history overlaps"
    return found[0].card_id if found else None


def minute_table(cards: list[Interval]) -> dict[int, int]:
    """Model 2: which card owns each quarter-hour tick in [0, HORIZON + 5), by enumerating ticks."""
    table: dict[int, int] = {}
    for c in cards:
        first = int((c.start - BASE) / timedelta(minutes=15))
        last = int((c.end - BASE) / timedelta(minutes=15)) if c.end else (HORIZON + 5) * 4
        for tick in range(first, last):
            assert tick not in table
            table[tick] = c.card_id
    return table


def overlaps(a: Interval, b: Interval) -> bool:
    a_end = a.end or datetime.max.replace(tzinfo=UTC)
    b_end = b.end or datetime.max.replace(tzinfo=UTC)
    return a.start < b_end and b.start < a_end


def apply(cards: list[Interval], new: Interval, close_id: int | None) -> list[Interval]:
    result = []
    for c in cards:
        if c.card_id == close_id:
            c = Interval(c.card_id, c.price_fen_per_card_hour, c.start, new.start)
        result.append(c)
    return [*result, new]


# --- price_at ------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(histories())
def test_price_at_matches_a_tick_by_tick_model(cards):
    table = minute_table(cards)
    for tick in range(-4, (HORIZON + 5) * 4):
        found = price_at(cards, at(tick / 4))
        assert (found.card_id if found else None) == table.get(tick)


@settings(max_examples=200)
@given(histories(), st.floats(min_value=-5, max_value=HORIZON + 5, allow_nan=False))
def test_price_at_any_instant_matches_the_model(cards, hour):
    found = price_at(cards, at(hour))
    expected = brute_force_price(cards, hour)
    assert (found.card_id if found else None) == expected
    if found is not None:
        assert found.start <= at(hour)
        assert found.end is None or at(hour) < found.end


@settings(max_examples=200)
@given(histories(max_cards=4).filter(bool), st.data())
def test_boundaries_are_half_open(cards, data):
    card = data.draw(st.sampled_from(cards))
    assert price_at(cards, card.start) == card
    assert price_at(cards, card.start + timedelta(microseconds=1)) == card
    if card.end is not None:
        assert price_at(cards, card.end - timedelta(microseconds=1)) == card
        assert price_at(cards, card.end) != card


def test_price_at_with_no_cards_is_none():
    assert price_at([], BASE) is None


# --- place ---------------------------------------------------------------------------------------

new_bounds = st.tuples(
    st.integers(min_value=-2, max_value=HORIZON + 2),
    st.one_of(st.none(), st.integers(min_value=-2, max_value=HORIZON + 4)),
)


@settings(max_examples=400)
@given(histories(), new_bounds, st.integers(min_value=-2, max_value=HORIZON + 2))
def test_place_keeps_the_history_non_overlapping_and_the_past_unchanged(cards, bounds, now_hour):
    start_h, end_h = bounds
    start, end, now = at(start_h), (at(end_h) if end_h is not None else None), at(now_hour)
    try:
        placement = place(cards, start=start, end=end, now=now)
    except PricingError as exc:
        assert exc.key in {"price.empty-interval", "price.overlap", "price.retroactive"}
        if exc.key == "price.empty-interval":
            assert end is not None and end <= start
        if exc.key == "price.overlap":
            culprit = next(c for c in cards if c.card_id == exc.params["card_id"])
            assert overlaps(culprit, Interval(0, 1, start, end))
        if exc.key == "price.retroactive":
            assert start < now
            assert any(c.end is None and c.start < start for c in cards)
        return
    assert end is None or start < end
    new = Interval(999, 1, start, end)
    closed = next((c for c in cards if c.card_id == placement.close_card_id), None)
    if placement.close_card_id is not None:
        assert closed is not None, "placement closed a card that does not exist"
        assert closed.end is None and closed.start < start
        assert start >= now, "a price change may not take effect in the past"
    after = apply(cards, new, placement.close_card_id)
    for i, a in enumerate(after):
        for b in after[i + 1 :]:
            assert not overlaps(a, b), (a, b)
    # History is not rewritten: every instant before now that had a price keeps the same card.
    for tick in range(-8, now_hour * 4):
        t = at(tick / 4)
        before = price_at(cards, t)
        if before is not None:
            assert price_at(after, t).card_id == before.card_id


# Most random cards overlap something; the filter is the point of the test, not a generation bug.
@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(histories(), new_bounds, st.integers(min_value=-2, max_value=HORIZON + 2))
def test_place_accepts_whatever_fits(cards, bounds, now_hour):
    """Completeness: a card overlapping nothing (or only the open card it supersedes) is accepted."""
    start_h, end_h = bounds
    start, end, now = at(start_h), (at(end_h) if end_h is not None else None), at(now_hour)
    assume(end is None or start < end)
    new = Interval(0, 1, start, end)
    open_before = [c for c in cards if c.end is None and c.start < start]
    others = [c for c in cards if c not in open_before]
    assume(not any(overlaps(c, new) for c in others))
    if open_before and start < now:
        with pytest.raises(PricingError) as info:
            place(cards, start=start, end=end, now=now)
        assert info.value.key == "price.retroactive"
        return
    placement = place(cards, start=start, end=end, now=now)
    expected_close = open_before[0].card_id if open_before else None
    assert placement.close_card_id == expected_close


def test_price_change_closes_the_open_card():
    old = Interval(1, 1000, at(0), None)
    placement = place([old], start=at(10), end=None, now=at(5))
    assert placement.close_card_id == 1


def test_price_change_starting_now_is_allowed_but_not_a_second_earlier():
    old = Interval(1, 1000, at(0), None)
    assert place([old], start=at(5), end=None, now=at(5)).close_card_id == 1
    with pytest.raises(PricingError) as info:
        place([old], start=at(5) - timedelta(seconds=1), end=None, now=at(5))
    assert info.value.key == "price.retroactive"


def test_new_card_at_the_same_start_as_the_open_card_overlaps():
    old = Interval(1, 1000, at(10), None)
    with pytest.raises(PricingError) as info:
        place([old], start=at(10), end=None, now=at(0))
    assert info.value.key == "price.overlap"
    assert info.value.params["card_id"] == 1
    assert info.value.params["end"] == "∞"


def test_open_card_before_an_open_card_overlaps():
    later = Interval(1, 1000, at(10), None)
    with pytest.raises(PricingError) as info:
        place([later], start=at(5), end=None, now=at(0))
    assert info.value.key == "price.overlap"


def test_bounded_card_before_an_open_card_fits():
    later = Interval(1, 1000, at(10), None)
    assert place([later], start=at(5), end=at(10), now=at(0)).close_card_id is None


def test_touching_cards_do_not_overlap():
    first = Interval(1, 1000, at(0), at(10))
    assert place([first], start=at(10), end=at(20), now=at(0)).close_card_id is None
    assert place([first], start=at(-5), end=at(0), now=at(-10)).close_card_id is None


def test_card_inside_a_bounded_card_overlaps():
    first = Interval(1, 1000, at(0), at(10))
    with pytest.raises(PricingError) as info:
        place([first], start=at(3), end=at(4), now=at(0))
    assert info.value.key == "price.overlap"
    assert info.value.params["end"] == at(10).isoformat()


@pytest.mark.parametrize("end_hour", [0, -1])
def test_empty_or_reversed_interval_is_refused(end_hour):
    with pytest.raises(PricingError) as info:
        place([], start=at(0), end=at(end_hour), now=at(-5))
    assert info.value.key == "price.empty-interval"


# --- check_retire --------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.integers(min_value=-100, max_value=100), st.integers(min_value=-100, max_value=100))
def test_only_cards_not_yet_in_force_may_be_withdrawn(start_h, now_h):
    card = Interval(7, 1000, at(start_h), None)
    if start_h > now_h:
        check_retire(card, now=at(now_h))
    else:
        with pytest.raises(PricingError) as info:
            check_retire(card, now=at(now_h))
        assert info.value.key == "price.in-force"
        assert info.value.params["card_id"] == 7


def test_card_starting_exactly_now_is_in_force():
    with pytest.raises(PricingError):
        check_retire(Interval(1, 1, at(3), at(4)), now=at(3))
    check_retire(Interval(1, 1, at(3), at(4)), now=at(3) - timedelta(microseconds=1))
