"""The chain's output statistics (pure): cumulative output on the 规上 scope, year on year on a comparable
basis, breakdowns that add up, the monthly series, and exact half-up growth figures.

The hand-computed table (fen), months 1-3, is:

    enterprise  stage/segment/tier                    2023 (above_size)         2024 (above_size)
    1           upstream / compute_hw / little_giant  100 110 120 (T T T)       130 140 150 (T T T)
    2           downstream / ai_apps / innovative_sme  50  60  70 (F F F)        80  90 100 (T T T)  joins
    3           midstream / compute_hw / (none)       200  —  220 (T - T)       210 230 240 (T F F)  leaves
    4           (not classified)                        —   —   —                 —  30  40 (- T T)  new
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanwang.registry.statistics import (
    Cumulative,
    EnterpriseFacts,
    OutputFact,
    Row,
    Scope,
    cumulative,
    growth,
    monthly,
    percent_text,
)

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ENTERPRISES = [
    EnterpriseFacts(1, "compute_hw", "upstream", "little_giant"),
    EnterpriseFacts(2, "ai_apps", "downstream", "innovative_sme"),
    EnterpriseFacts(3, "compute_hw", "midstream", None),
]


def fact(enterprise: int, year: int, month: int, output: int, revenue: int | None, above: bool) -> OutputFact:
    return OutputFact(enterprise, year, month, output, revenue, above)


FACTS = [
    fact(1, 2023, 1, 100, 90, True),
    fact(1, 2023, 2, 110, 100, True),
    fact(1, 2023, 3, 120, None, True),
    fact(2, 2023, 1, 50, 40, False),
    fact(2, 2023, 2, 60, 50, False),
    fact(2, 2023, 3, 70, 60, False),
    fact(3, 2023, 1, 200, 150, True),
    fact(3, 2023, 3, 220, 200, True),
    fact(1, 2024, 1, 130, 120, True),
    fact(1, 2024, 2, 140, None, True),
    fact(1, 2024, 3, 150, 140, True),
    fact(2, 2024, 1, 80, 70, True),
    fact(2, 2024, 2, 90, 80, True),
    fact(2, 2024, 3, 100, 90, True),
    fact(3, 2024, 1, 210, 190, True),
    fact(3, 2024, 2, 230, 210, False),
    fact(3, 2024, 3, 240, 220, False),
    fact(4, 2024, 2, 30, None, True),
    fact(4, 2024, 3, 40, 35, True),
]


def brief(row: Row) -> tuple[str, int, int, int, int, Decimal | None]:
    return (row.key, row.enterprises, row.output_fen, row.previous_fen, row.previous_reported_fen, row.growth)


# --- the hand-computed table ----------------------------------------------------------------------------


def test_cumulative_total_counts_above_size_records_against_a_comparable_previous_year() -> None:
    total = cumulative(FACTS, ENTERPRISES, 2024, 3).total
    assert total.key == "total"
    assert total.enterprises == 4
    assert total.records == 9  # enterprise 3 only in January, after that it left 规上
    assert total.output_fen == 420 + 270 + 210 + 70
    # enterprise 2 is compared with its own (non-规上) 2023 months; enterprise 3 only with January.
    assert total.previous_fen == 330 + 180 + 200 + 0
    # published a year ago: the 2023 规上 records, enterprise 3's March included.
    assert total.previous_reported_fen == 330 + 420
    assert total.growth == Decimal("36.62")  # 260 / 710
    assert percent_text(total.output_fen, total.previous_fen) == "36.6%"


def test_revenue_sums_like_output_and_counts_missing_revenue() -> None:
    total = cumulative(FACTS, ENTERPRISES, 2024, 3).total
    assert total.revenue_fen == 260 + 240 + 190 + 35
    assert total.previous_revenue_fen == 190 + 150 + 150  # 2023-03 of enterprise 1 has no revenue: 0
    assert total.revenue_missing == 2  # 2024-02 of enterprises 1 and 4
    assert total.revenue_growth == Decimal("47.96")  # 235 / 490


def test_breakdown_by_stage_in_chain_order_with_unclassified_last() -> None:
    rows = cumulative(FACTS, ENTERPRISES, 2024, 3).by_stage
    assert [brief(r) for r in rows] == [
        ("upstream", 1, 420, 330, 330, Decimal("27.27")),
        ("midstream", 1, 210, 200, 420, Decimal("5.00")),
        ("downstream", 1, 270, 180, 0, Decimal("50.00")),
        ("unclassified", 1, 70, 0, 0, None),
    ]


def test_breakdown_by_segment_groups_enterprises_of_one_segment() -> None:
    rows = cumulative(FACTS, ENTERPRISES, 2024, 3).by_segment
    assert [brief(r) for r in rows] == [
        ("ai_apps", 1, 270, 180, 0, Decimal("50.00")),
        ("compute_hw", 2, 630, 530, 750, Decimal("18.87")),
        ("unclassified", 1, 70, 0, 0, None),
    ]


def test_breakdown_by_tier_follows_the_ladder_and_puts_tierless_with_unknown() -> None:
    rows = cumulative(FACTS, ENTERPRISES, 2024, 3).by_tier
    assert [brief(r) for r in rows] == [
        ("innovative_sme", 1, 270, 180, 0, Decimal("50.00")),
        ("little_giant", 1, 420, 330, 330, Decimal("27.27")),
        ("unclassified", 2, 280, 200, 420, Decimal("40.00")),
    ]


def test_scope_all_counts_every_record() -> None:
    result = cumulative(FACTS, ENTERPRISES, 2024, 3, scope="all")
    assert result.scope is Scope.ALL
    total = result.total
    assert total.records == 11
    assert total.output_fen == 420 + 270 + 680 + 70
    assert total.previous_fen == 330 + 180 + (200 + 0 + 220)  # 2023-02 of enterprise 3 is missing: 0
    assert total.previous_reported_fen == 330 + 180 + 420
    assert total.growth == Decimal("54.84")  # 510 / 930
    assert total.revenue_fen == 260 + 240 + 620 + 35


def test_cumulative_of_january_only_uses_january() -> None:
    total = cumulative(FACTS, ENTERPRISES, 2024, 1).total
    assert (total.enterprises, total.output_fen, total.previous_fen, total.previous_reported_fen) == (
        3,
        420,
        350,
        300,
    )
    assert total.growth == Decimal("20.00")


def test_monthly_series_with_comparable_months_and_cumulatives() -> None:
    series = monthly(FACTS, ENTERPRISES, 2024)
    got = [
        (
            m.month,
            m.enterprises,
            m.output_fen,
            m.cumulative_fen,
            m.previous_month_fen,
            m.previous_cumulative_fen,
        )
        for m in series.months
    ]
    assert got == [(1, 3, 420, 420, 350, 350), (2, 3, 260, 680, 170, 520), (3, 3, 290, 970, 190, 710)]
    assert [(m.growth, m.cumulative_growth) for m in series.months] == [
        (Decimal("20.00"), Decimal("20.00")),
        (Decimal("52.94"), Decimal("30.77")),
        (Decimal("52.63"), Decimal("36.62")),
    ]


def test_monthly_without_a_previous_year_has_no_growth_and_keeps_a_missing_month() -> None:
    series = monthly(FACTS, ENTERPRISES, 2023)
    assert [(m.month, m.enterprises, m.output_fen, m.cumulative_fen) for m in series.months] == [
        (1, 2, 300, 300),
        (2, 1, 110, 410),
        (3, 2, 340, 750),
    ]
    assert all(m.growth is None and m.cumulative_growth is None for m in series.months)


def test_monthly_through_extends_with_empty_months_and_an_empty_year_has_none() -> None:
    series = monthly(FACTS, ENTERPRISES, 2024, through=5)
    assert [(m.month, m.output_fen, m.cumulative_fen) for m in series.months[3:]] == [
        (4, 0, 970),
        (5, 0, 970),
    ]
    assert series.months[4].growth is None  # nothing a year earlier either
    assert series.months[4].cumulative_growth == Decimal("36.62")
    assert monthly(FACTS, ENTERPRISES, 2025).months == ()
    assert [m.output_fen for m in monthly(FACTS, ENTERPRISES, 2024, through=2).months] == [420, 260]


def test_as_json_gives_ints_strings_and_none() -> None:
    data = cumulative(FACTS, ENTERPRISES, 2024, 3).as_json()
    assert data["year"] == 2024 and data["month"] == 3 and data["scope"] == "above_size"
    total = data["total"]
    assert isinstance(total, dict)
    assert total["output_fen"] == 970 and total["growth"] == "36.62" and total["revenue_missing"] == 2
    by_stage = data["by_stage"]
    assert isinstance(by_stage, list)
    assert by_stage[-1]["key"] == "unclassified" and by_stage[-1]["growth"] is None
    series = monthly(FACTS, ENTERPRISES, 2023).as_json()
    months = series["months"]
    assert isinstance(months, list)
    assert months[0] == {
        "month": 1,
        "enterprises": 2,
        "output_fen": 300,
        "cumulative_fen": 300,
        "previous_month_fen": 0,
        "previous_cumulative_fen": 0,
        "growth": None,
        "cumulative_growth": None,
    }


# --- the city report's figures --------------------------------------------------------------------------


def report_facts() -> list[OutputFact]:
    """2023: 27.44 亿元 (Jan–Sep 15.75 亿元); 2024 Jan–Sep 39.52 亿元; a non-规上 enterprise beside it."""
    facts = [fact(1, 2023, m, 17_500_000_000, None, True) for m in range(1, 10)]
    facts += [fact(1, 2023, m, v, None, True) for m, v in ((10, 38_900_000_000), (11, 39_000_000_000))]
    facts.append(fact(1, 2023, 12, 39_000_000_000, None, True))
    facts += [fact(1, 2024, m, 44_000_000_000, None, True) for m in range(1, 9)]
    facts.append(fact(1, 2024, 9, 43_200_000_000, None, True))
    facts += [fact(2, y, m, 999_999, 1, False) for y in (2023, 2024) for m in range(1, 13)]
    return facts


def test_the_reports_figures() -> None:
    facts = report_facts()
    assert cumulative(facts, [], 2023, 12).total.output_fen == 274_400_000_000
    september = cumulative(facts, [], 2024, 9).total
    assert september.output_fen == 395_200_000_000
    assert september.previous_fen == september.previous_reported_fen == 157_500_000_000
    assert september.growth == Decimal("150.92")
    assert percent_text(september.output_fen, september.previous_fen) == "150.9%"
    assert percent_text(september.output_fen, september.previous_fen, places=0) == "151%"
    assert percent_text(september.output_fen, september.previous_fen, places=3) == "150.921%"


# --- rounding --------------------------------------------------------------------------------------------


def test_exact_ties_round_half_up() -> None:
    assert growth(10_125, 10_000) == Decimal("1.25")
    assert percent_text(10_125, 10_000) == "1.3%"  # half-even would say 1.2 %
    assert growth(80_900, 80_000) == Decimal("1.13")  # exactly 1.125 %
    assert percent_text(1_105, 1_000, places=0) == "11%"  # exactly 10.5 %


def test_negative_growth_and_its_ties_round_away_from_zero() -> None:
    assert growth(97, 100) == Decimal("-3.00")
    assert percent_text(97, 100) == "-3.0%"
    assert percent_text(9_875, 10_000) == "-1.3%"  # exactly -1.25 %
    assert growth(0, 100) == Decimal("-100.00")
    assert growth(100, 100) == Decimal("0.00") and percent_text(100, 100) == "0.0%"


def test_text_rounds_the_exact_fraction_not_the_two_place_value() -> None:
    assert growth(1_012_496, 1_000_000) == Decimal("1.25")  # exactly 1.2496 %
    assert percent_text(1_012_496, 1_000_000) == "1.2%"


def test_no_growth_without_a_previous_figure() -> None:
    assert growth(100, 0) is None and growth(0, 0) is None
    assert percent_text(100, 0) is None


# --- arguments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("month", [0, 13, True])
def test_month_out_of_range_is_refused(month: int) -> None:
    with pytest.raises(ValueError, match=r"month must be an integer 1\.\.12"):
        cumulative(FACTS, ENTERPRISES, 2024, month)


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="scope must be one of 'above_size', 'all'"):
        cumulative(FACTS, ENTERPRISES, 2024, 3, scope="规上")
    with pytest.raises(ValueError, match="scope"):
        monthly(FACTS, ENTERPRISES, 2024, scope="above-size")


def test_through_and_places_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"through must be an integer 1\.\.12"):
        monthly(FACTS, ENTERPRISES, 2024, through=13)
    with pytest.raises(ValueError, match="places"):
        percent_text(1, 2, places=-1)


def test_inconsistent_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="two records for enterprise 1 in 2024-01"):
        cumulative([*FACTS, fact(1, 2024, 1, 5, None, True)], ENTERPRISES, 2024, 3)
    with pytest.raises(ValueError, match="enterprise 1 is classified twice"):
        cumulative(FACTS, [*ENTERPRISES, EnterpriseFacts(1, None, None, None)], 2024, 3)
    with pytest.raises(ValueError, match="must not be negative"):
        cumulative([fact(1, 2024, 1, -1, None, True)], [], 2024, 1)
    with pytest.raises(ValueError, match="a record's month"):
        cumulative([fact(1, 2024, 14, 1, None, True)], [], 2024, 1)


# --- properties -------------------------------------------------------------------------------------------

amounts = st.integers(0, 10**12)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[OutputFact], list[EnterpriseFacts]]:
    """Up to 6 enterprises over 2023-2024, each month present or not, 规上 or not; some unclassified."""
    keys = draw(
        st.sets(st.tuples(st.integers(1, 6), st.sampled_from((2023, 2024)), st.integers(1, 12)), max_size=60)
    )
    facts = [
        OutputFact(e, y, m, draw(amounts), draw(st.none() | amounts), draw(st.booleans()))
        for e, y, m in sorted(keys)
    ]
    classified = draw(st.sets(st.integers(1, 7)))
    enterprises = [
        EnterpriseFacts(
            e,
            draw(st.none() | st.sampled_from(("compute_hw", "ai_apps", "networks"))),
            draw(st.none() | st.sampled_from(("upstream", "midstream", "downstream"))),
            draw(st.none() | st.sampled_from(("innovative_sme", "little_giant", "leader", "other"))),
        )
        for e in sorted(classified)
    ]
    return facts, enterprises


def figures(row: Row) -> tuple[int, ...]:
    return (
        row.enterprises,
        row.records,
        row.output_fen,
        row.previous_fen,
        row.previous_reported_fen,
        row.revenue_fen,
        row.previous_revenue_fen,
        row.revenue_missing,
    )


def added(rows: tuple[Row, ...]) -> tuple[int, ...]:
    return tuple(sum(figures(row)[i] for row in rows) for i in range(8))


scopes = st.sampled_from(("above_size", "all"))


@PROPERTIES
@given(worlds(), st.integers(1, 12), scopes)
def test_breakdown_rows_add_up_to_the_total(
    world: tuple[list[OutputFact], list[EnterpriseFacts]], month: int, scope: str
) -> None:
    result: Cumulative = cumulative(*world, 2024, month, scope=scope)
    for rows in (result.by_stage, result.by_segment, result.by_tier):
        assert added(rows) == figures(result.total)
        assert len({row.key for row in rows}) == len(rows)


@PROPERTIES
@given(worlds(), scopes)
def test_monthly_cumulative_equals_cumulative_for_every_month(
    world: tuple[list[OutputFact], list[EnterpriseFacts]], scope: str
) -> None:
    series = monthly(*world, 2024, scope=scope, through=12)
    assert [m.month for m in series.months] == list(range(1, 13))
    for row in series.months:
        total = cumulative(*world, 2024, row.month, scope=scope).total
        assert (row.cumulative_fen, row.previous_cumulative_fen) == (total.output_fen, total.previous_fen)
        assert row.cumulative_growth == total.growth


@PROPERTIES
@given(worlds(), st.integers(1, 12))
def test_scope_all_is_never_below_above_size(
    world: tuple[list[OutputFact], list[EnterpriseFacts]], month: int
) -> None:
    wide = cumulative(*world, 2024, month, scope="all").total
    narrow = cumulative(*world, 2024, month, scope="above_size").total
    assert all(w >= n for w, n in zip(figures(wide), figures(narrow), strict=True))
    # on scope "all" the comparable months are a part of what was reported a year earlier
    assert wide.previous_fen <= wide.previous_reported_fen


@PROPERTIES
@given(amounts, amounts)
def test_growth_sign_matches_current_against_previous(current: int, previous: int) -> None:
    value = growth(current, previous)
    if previous == 0:
        assert value is None
        return
    assert value is not None
    if current == previous:
        assert value == 0
    elif current > previous:
        assert value >= 0
    else:
        assert value <= 0
    exact = Fraction(100 * (current - previous), previous)
    assert abs(Fraction(value) - exact) <= Fraction(1, 200)
    with localcontext() as context:
        context.prec = 80
        reference = (Decimal(100 * (current - previous)) / Decimal(previous)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
    assert value == reference
