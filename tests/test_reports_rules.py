"""The region reports' pure core: Shanghai calendar periods, exact splitting of usage over them, shares,
utilization and nearest-rank percentiles — properties by hypothesis, and cases computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanwang.reports import rules
from suanwang.reports.rules import (
    LOCAL_OTHER,
    LOCAL_SME,
    OUTSIDE,
    Capacity,
    Queued,
    Span,
    Usage,
    Wait,
)
from suanwang.timeutil import SHANGHAI

US = timedelta(microseconds=1)


def sh(*args: int) -> datetime:
    """A wall-clock time in Asia/Shanghai, as aware UTC."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


def overlap_us(start: datetime, end: datetime, lo: datetime | None, hi: datetime | None) -> int:
    lo = start if lo is None else max(start, lo)
    hi = end if hi is None else min(end, hi)
    return max(0, (hi - lo) // US)


times = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40))
card_seconds = st.integers(min_value=0, max_value=10**13)
periods = st.sampled_from(rules.PERIODS)
classes = st.sampled_from(rules.CLASSES)


# --- splitting ---------------------------------------------------------------------------------


@given(
    card_seconds,
    times,
    durations,
    st.lists(times, max_size=8, unique=True).map(sorted),
)
def test_split_conserves_card_seconds_and_keeps_each_piece_in_its_interval(amount, start, length, cuts):
    end = start + length
    pieces = rules.split(amount, start, end, cuts)
    assert len(pieces) == len(cuts) + 1
    assert sum(pieces) == amount
    assert all(piece >= 0 for piece in pieces)
    total_us = (end - start) // US
    bounds: list[datetime | None] = [None, *cuts, None]
    for i, piece in enumerate(pieces):
        lo, hi = bounds[i], bounds[i + 1]
        if total_us == 0:  # no duration: all of it where it starts
            holds = (lo is None or lo <= start) and (hi is None or start < hi)
            assert piece == (amount if holds else 0)
            continue
        weight = overlap_us(start, end, lo, hi)
        if weight == 0:
            assert piece == 0
        # Within one card-second of the exact proportional share.
        assert abs(piece * total_us - amount * weight) < total_us


@given(card_seconds, times, durations, times, st.integers(min_value=1, max_value=60 * 24 * 3600), periods)
def test_split_over_periods_conserves_what_lies_in_the_window(amount, start, length, w_start, w_len, period):
    window = rules.spans(w_start, w_start + timedelta(seconds=w_len), period)
    usage = Usage(LOCAL_SME, amount, start, start + length)
    tallied = rules.tally([usage], window)[LOCAL_SME]
    cuts = [window[0].start, *(s.end for s in window)]
    whole = rules.split(amount, start, start + length, cuts)
    assert [c.card_seconds for c in tallied] == whole[1:-1]
    assert sum(whole) == amount
    for span, piece in zip(window, tallied, strict=True):
        if piece.card_seconds and length:
            assert overlap_us(start, start + length, span.start, span.end) > 0
    if window[0].start <= start and start + length <= window[-1].end and (length or start < window[-1].end):
        assert sum(c.card_seconds for c in tallied) == amount


def test_split_by_hand():
    # Three equal thirds of 10: 3 each, the card-second left goes to the earliest (ties).
    t0 = datetime(2025, 5, 30, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert rules.split(10, t0, t0 + 3 * hour, [t0 + hour, t0 + 2 * hour]) == [4, 3, 3]
    # 8 cards from 22:00 to 02:00 in Shanghai: half on each day.
    cuts = [sh(2025, 5, 30), sh(2025, 5, 31), sh(2025, 6, 1)]
    assert rules.split(115_200, sh(2025, 5, 30, 22), sh(2025, 5, 31, 2), cuts) == [0, 57_600, 57_600, 0]
    # 7 card-seconds, a third before the cut and two thirds after: 2.33 and 4.67 -> 2 and 5.
    assert rules.split(7, t0, t0 + 3 * hour, [t0 + hour]) == [2, 5]
    # Nothing ran for no time: the whole falls where it starts, a cut at the start belongs after it.
    assert rules.split(5, t0, t0, [t0]) == [0, 5]
    with pytest.raises(ValueError):
        rules.split(5, t0 + hour, t0, [])
    with pytest.raises(ValueError):
        rules.split(-1, t0, t0 + hour, [])


# --- periods -----------------------------------------------------------------------------------


def _period_of(at: datetime, period: str) -> tuple[int, ...]:
    day = at.astimezone(SHANGHAI).date()
    if period == "day":
        return (day.toordinal(),)
    if period == "week":
        year, week, _ = day.isocalendar()
        return (year, week)
    return (day.year, day.month)


@given(times, st.integers(min_value=1, max_value=200 * 24 * 3600), periods)
def test_periods_are_contiguous_calendar_periods_covering_the_window(start, length_s, period):
    end = start + timedelta(seconds=length_s)
    found = rules.spans(start, end, period)
    assert found[0].start == rules.whole_seconds(start)
    assert found[-1].end == rules.whole_seconds(end)
    assert all(a.end == b.start for a, b in pairwise(found))
    assert all(s.start < s.end for s in found)
    assert len({s.label for s in found}) == len(found)
    for span in found:
        assert _period_of(span.start, period) == _period_of(span.end - US, period)
    for span in found[1:]:  # inner boundaries are Shanghai midnights
        assert span.start.astimezone(SHANGHAI).time().isoformat() == "00:00:00"
    assert sum(s.seconds for s in found) == (found[-1].end - found[0].start).total_seconds()


def test_period_labels_and_bounds_by_hand():
    days = rules.spans(sh(2025, 5, 30, 12), sh(2025, 6, 1, 6), "day")
    assert [(s.label, s.start, s.end) for s in days] == [
        ("2025-05-30", sh(2025, 5, 30, 12), sh(2025, 5, 31)),
        ("2025-05-31", sh(2025, 5, 31), sh(2025, 6, 1)),
        ("2025-06-01", sh(2025, 6, 1), sh(2025, 6, 1, 6)),
    ]
    # 16:00 UTC is already the next day in Shanghai.
    assert days[1].start == datetime(2025, 5, 30, 16, tzinfo=UTC)
    weeks = rules.spans(sh(2025, 12, 28), sh(2026, 1, 6), "week")
    assert [s.label for s in weeks] == ["2025-W52", "2026-W01", "2026-W02"]
    assert weeks[1].start == sh(2025, 12, 29) and weeks[1].seconds == 7 * 86_400
    months = rules.spans(sh(2025, 11, 15), sh(2026, 2, 1), "month")
    assert [s.label for s in months] == ["2025-11", "2025-12", "2026-01"]
    assert months[1].seconds == 31 * 86_400


def test_a_window_is_refused_when_empty_or_too_long_or_of_an_unknown_period():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        rules.spans(t0, t0, "day")
    with pytest.raises(ValueError):
        rules.spans(t0, t0 + timedelta(milliseconds=500), "day")  # whole seconds: nothing left
    with pytest.raises(ValueError):
        rules.spans(t0, t0 + timedelta(days=1), "year")
    with pytest.raises(ValueError):
        rules.spans(datetime(2025, 1, 1), datetime(2025, 1, 2), "day")  # naive
    assert rules.count_periods(sh(2025, 1, 1), sh(2026, 2, 5), "day") == rules.MAX_PERIODS
    assert rules.count_periods(sh(2025, 1, 1), sh(2026, 2, 6), "day") == rules.MAX_PERIODS + 1
    assert rules.count_periods(t0, t0 + timedelta(days=10**5), "day") == rules.MAX_PERIODS + 1  # stops
    with pytest.raises(ValueError):
        rules.spans(sh(2025, 1, 1), sh(2026, 2, 6), "day")
    assert len(rules.spans(sh(2025, 1, 1), sh(2026, 2, 6), "week")) == 58


# --- local share -------------------------------------------------------------------------------

usages = st.builds(
    lambda key, amount, start, length: Usage(key, amount, start, start + length, Decimal("989.4")),
    classes,
    st.integers(min_value=0, max_value=10**9),
    times,
    durations,
)


@given(st.lists(usages, max_size=20), times, st.integers(min_value=1, max_value=90 * 24 * 3600), periods)
def test_class_totals_add_up_and_the_local_share_is_a_fraction(found, start, length_s, period):
    window = rules.spans(start, start + timedelta(seconds=length_s), period)
    report = rules.local_share(found, window)
    for _, share in report.periods:
        assert set(share.by_class) == set(rules.CLASSES)
        assert sum(c.card_seconds for c in share.by_class.values()) == share.total.card_seconds
        assert share.local.card_seconds == (
            share.by_class[LOCAL_SME].card_seconds + share.by_class[LOCAL_OTHER].card_seconds
        )
        if share.total.card_seconds == 0:
            assert share.local_share_bp is None and share.local_share == "—"
        else:
            assert share.local_share_bp is not None and 0 <= share.local_share_bp <= 10_000
    for c in rules.CLASSES:
        per_period = sum(share.by_class[c].card_seconds for _, share in report.periods)
        assert per_period == report.total.by_class[c].card_seconds
        tflops = sum((share.by_class[c].tflops_seconds for _, share in report.periods), Decimal(0))
        assert tflops == report.total.by_class[c].tflops_seconds
    inside = [u for u in found if window[0].start <= u.started_at and u.ended_at < window[-1].end]
    assert report.total.total.card_seconds >= sum(u.card_seconds for u in inside)


def test_local_share_by_hand():
    """The API test's world, without the database (pool 1: H800 989.4 TFLOPS, pool 2: A800 312)."""
    h800, a800 = Decimal("989.4"), Decimal("312")
    found = [
        Usage(LOCAL_SME, 115_200, sh(2025, 5, 30, 22), sh(2025, 5, 31, 2), h800),  # 8 cards × 4 h
        Usage(LOCAL_OTHER, 43_200, sh(2025, 5, 31, 10), sh(2025, 5, 31, 13), a800),  # 4 × 3 h
        Usage(OUTSIDE, 7_200, sh(2025, 5, 30, 9), sh(2025, 5, 30, 10), h800),  # 2 × 1 h
        Usage(LOCAL_SME, 28_800, sh(2025, 6, 1, 9), sh(2025, 6, 1, 10), h800),  # after the window
        Usage(LOCAL_SME, 57_600, sh(2025, 5, 29, 23), sh(2025, 5, 30, 1), a800),  # half before it
    ]
    report = rules.local_share(found, rules.spans(sh(2025, 5, 30), sh(2025, 6, 1), "day"))
    (day1, first), (day2, second) = report.periods
    assert (day1.label, day2.label) == ("2025-05-30", "2025-05-31")
    assert first.by_class[LOCAL_SME].card_seconds == 57_600 + 28_800
    assert first.by_class[LOCAL_SME].card_hours == Decimal("24.0000")
    assert first.by_class[LOCAL_SME].pflops_hours == Decimal("18.3264")  # 16 h × 0.9894 + 8 h × 0.312
    assert first.by_class[OUTSIDE].card_hours == Decimal("2.0000")
    assert (first.local_share_bp, first.local_share) == (9231, "92.31%")  # 86400 / 93600
    assert (second.local_share_bp, second.local_share) == (10_000, "100.00%")
    assert second.by_class[LOCAL_OTHER].pflops_hours == Decimal("3.7440")
    total = report.total
    assert [total.by_class[c].card_seconds for c in rules.CLASSES] == [144_000, 43_200, 7_200]
    assert total.total.card_hours == Decimal("54.0000")
    assert (total.local_share_bp, total.local_share) == (9630, "96.30%")  # 187200 / 194400


def test_shares_and_percentages_are_exact():
    assert rules.share_bp(1, 3) == 3333 and rules.percent(3333) == "33.33%"
    assert rules.share_bp(2, 3) == 6667
    assert rules.share_bp(1, 20_000) == 1  # half a basis point rounds up
    assert rules.share_bp(0, 5) == 0 and rules.percent(0) == "0.00%"
    assert rules.share_bp(3, 0) is None and rules.percent(None) == "—"
    assert rules.share_bp(10**18 + 1, 10**18) == 10_000  # far beyond a float's exact integers
    assert rules.hours(5) == Decimal("0.0014") and rules.hours(9) == Decimal("0.0025")  # half up


def test_only_a_local_enterprise_flagged_sme_is_a_local_sme():
    assert rules.tenant_class(local=True, sme=True, enterprise=True) == LOCAL_SME
    assert rules.tenant_class(local=True, sme=True, enterprise=False) == LOCAL_OTHER
    assert rules.tenant_class(local=True, sme=False, enterprise=True) == LOCAL_OTHER
    assert rules.tenant_class(local=False, sme=True, enterprise=True) == OUTSIDE


# --- utilization -------------------------------------------------------------------------------


def test_utilization_by_hand():
    window = rules.spans(sh(2025, 5, 30), sh(2025, 6, 1), "day")
    capacities = [
        Capacity("p1", 16),
        Capacity("p2", 32),
        Capacity("p3", 8, available_until=sh(2025, 5, 31, 12)),  # retired at noon on the second day
        Capacity("p4", 8, available_from=sh(2025, 5, 31)),  # operational from the second day
    ]
    found = [
        Usage("p1", 115_200, sh(2025, 5, 30, 22), sh(2025, 5, 31, 2)),
        Usage("p1", 7_200, sh(2025, 5, 30, 9), sh(2025, 5, 30, 10)),
        Usage("p2", 43_200, sh(2025, 5, 31, 10), sh(2025, 5, 31, 13)),
        Usage("p2", 57_600, sh(2025, 5, 29, 23), sh(2025, 5, 30, 1)),
        Usage("gone", 3_600, sh(2025, 5, 30, 1), sh(2025, 5, 30, 2)),  # a pool with no capacity counted
    ]
    report = rules.utilization(found, capacities, window)
    assert report.groups == ("gone", "p1", "p2", "p3", "p4")
    first, second = report.periods
    assert first.by_group["p1"] == rules.Utilization(64_800, 16 * 86_400)  # 18 of 384 card-hours
    assert (first.by_group["p1"].utilization_bp, first.by_group["p1"].utilization) == (469, "4.69%")
    assert second.by_group["p1"].utilization == "4.17%"  # 16 / 384
    assert first.by_group["p2"].utilization == "1.04%" and second.by_group["p2"].utilization == "1.56%"
    assert first.by_group["p3"].available_card_seconds == 8 * 86_400
    assert second.by_group["p3"].available_card_seconds == 8 * 12 * 3_600
    assert (first.by_group["p4"].available_card_seconds, second.by_group["p4"].available_card_seconds) == (
        0,
        8 * 86_400,
    )
    assert report.by_group["gone"].utilization == "—"
    assert report.by_group["p1"].utilization == "4.43%"  # 34 / 768
    assert report.total.used_card_seconds == 64_800 + 57_600 + 28_800 + 43_200 + 3_600
    assert report.total == sum((row.total for row in report.periods), rules.Utilization())


@given(st.lists(usages, max_size=10), times, st.integers(min_value=1, max_value=40 * 24 * 3600), periods)
def test_utilization_totals_are_the_sums_of_their_cells(found, start, length_s, period):
    window = rules.spans(start, start + timedelta(seconds=length_s), period)
    capacities = [Capacity(c, 8) for c in (LOCAL_SME, OUTSIDE)]
    report = rules.utilization(found, capacities, window)
    for row in report.periods:
        assert row.total == sum(row.by_group.values(), rules.Utilization())
        assert row.by_group[LOCAL_SME].available_card_seconds == 8 * row.span.seconds
    assert report.total == sum(report.by_group.values(), rules.Utilization())
    shares = rules.local_share([u for u in found], window)
    assert report.total.used_card_seconds == shares.total.total.card_seconds


# --- waiting times -----------------------------------------------------------------------------


def brute_percentile(values: list[int], p: int) -> int:
    """The smallest value with at least p % of the values at or below it, by trying every value."""
    return min(v for v in values if 100 * sum(1 for x in values if x <= v) >= p * len(values))


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=60))
def test_percentiles_are_monotone_and_match_brute_force(values):
    stats = rules.wait_stats(values)
    assert stats.jobs == len(values)
    assert stats.p50_wait_s == brute_percentile(values, 50)
    assert stats.p90_wait_s == brute_percentile(values, 90)
    assert stats.max_wait_s == max(values)
    assert stats.p50_wait_s <= stats.p90_wait_s <= stats.max_wait_s
    assert stats.mean_wait_s is not None and min(values) <= stats.mean_wait_s <= max(values)
    for p in (1, 25, 75, 99, 100):
        assert rules.percentile(sorted(values), p) == brute_percentile(values, p)


def test_wait_statistics_by_hand():
    assert rules.wait_stats([60, 120, 600]) == rules.WaitStats(3, 260, 120, 600, 600)
    assert rules.wait_stats(range(1, 11)) == rules.WaitStats(10, 6, 5, 9, 10)  # mean 5.5 rounds up
    assert rules.wait_stats([]) == rules.WaitStats()
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    assert rules.wait_seconds(t0, t0 + timedelta(seconds=90, milliseconds=999)) == 90
    assert rules.wait_seconds(t0, t0 - timedelta(seconds=5)) == 0  # a skewed clock waits nothing
    with pytest.raises(ValueError):
        rules.percentile([], 50)


def test_waits_fall_in_the_period_of_their_start_and_local_smes_stand_apart():
    window = rules.spans(sh(2025, 5, 30), sh(2025, 6, 1), "day")
    items = [
        Wait(LOCAL_SME, sh(2025, 5, 30, 10), 60),
        Wait(LOCAL_SME, sh(2025, 5, 30, 11), 120),
        Wait(LOCAL_SME, sh(2025, 5, 30, 23, 59, 59), 600),
        Wait(OUTSIDE, sh(2025, 5, 31, 11), 30),
        Wait(LOCAL_OTHER, sh(2025, 5, 31, 12), 3600),
        Wait(LOCAL_SME, sh(2025, 6, 1), 5),  # the window's end is excluded
    ]
    report = rules.waits(items, window)
    (_, first), (_, second) = report.periods
    assert first.by_class[LOCAL_SME] == rules.WaitStats(3, 260, 120, 600, 600)
    assert first.everyone_else == rules.WaitStats()
    assert second.by_class[LOCAL_SME].jobs == 0 and second.by_class[OUTSIDE].max_wait_s == 30
    assert second.everyone_else == rules.WaitStats(2, 1815, 30, 3600, 3600)
    assert report.total.all == rules.WaitStats(5, 882, 120, 3600, 3600)


def test_the_queue_now_by_class():
    now = datetime(2025, 6, 1, 8, tzinfo=UTC)
    row = rules.queue_now(
        [
            Queued(LOCAL_SME, 8, now - timedelta(hours=1)),
            Queued(LOCAL_SME, 2, now - timedelta(minutes=5)),
            Queued(OUTSIDE, 4, now - timedelta(hours=3)),
        ],
        now,
    )
    assert row.by_class[LOCAL_SME] == rules.QueueStats(2, 10, now - timedelta(hours=1), 3600)
    assert row.by_class[LOCAL_OTHER] == rules.QueueStats()
    assert row.everyone_else == rules.QueueStats(1, 4, now - timedelta(hours=3), 10_800)
    assert row.all == rules.QueueStats(3, 14, now - timedelta(hours=3), 10_800)


def test_span_index_finds_the_period_holding_a_time():
    window = rules.spans(sh(2025, 5, 30), sh(2025, 6, 1), "day")
    assert rules.span_index(sh(2025, 5, 30), window) == 0
    assert rules.span_index(sh(2025, 5, 31) - US, window) == 0
    assert rules.span_index(sh(2025, 5, 31), window) == 1
    assert rules.span_index(sh(2025, 6, 1), window) is None
    assert rules.span_index(sh(2025, 5, 29, 23), window) is None
    assert rules.span_index(sh(2025, 5, 30), []) is None
    assert isinstance(window[0], Span)
