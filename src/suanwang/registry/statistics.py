"""Output statistics of the industry chain (pure): cumulative output value (产值) and revenue, year on year,
the way the city's monthly report states them ("规上企业 1-9 月产值 39.52 亿元，同比增长 150.9%").

Inputs are the enterprises' monthly records as reported (`OutputFact`) and each enterprise's current
classification (`EnterpriseFacts`). The rules, stated once:

1. Scope "above_size" (the report's) counts a record only if the enterprise was among the 规上 enterprises
   that month; scope "all" counts every record.
2. The cumulative figure for January to month M of year Y is the sum of the counted records of months 1..M.
3. Year on year is on a comparable basis (可比口径, as the statistics bureau does it): the previous figure is,
   for every enterprise-month (e, m) counted now, e's record of (Y-1, m), whatever its flag then (none: 0).
   An enterprise that joined the 规上 list is compared with its own output of a year ago, not with nothing.
   What was published a year ago (the scope applied to the previous year's records) is reported beside it
   as `previous_reported_fen`, but growth uses the comparable basis.
4. Growth is (current - previous) / previous, exact from integers, rounded half-up only when shown; none
   when the previous figure is 0.

Breakdowns by stage, segment and tier put each enterprise in exactly one group, so their rows add up to the
total. No I/O, no clock and no floats.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from suanwang.registry.models import Stage, Tier

UNCLASSIFIED = "unclassified"
TOTAL = "total"
PERCENT_PLACES_MAX = 10


class Scope(enum.StrEnum):
    ABOVE_SIZE = "above_size"  # only records of enterprises counted as 规上 that month
    ALL = "all"


@dataclass(frozen=True, slots=True)
class OutputFact:
    """One enterprise-month as reported that month."""

    enterprise_id: int
    year: int
    month: int
    output_fen: int
    revenue_fen: int | None
    above_size: bool  # counted among the 规上 enterprises that month


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    """An enterprise's classification now (None = unclassified)."""

    enterprise_id: int
    segment: str | None  # top-level segment code of its primary segment
    stage: str | None  # "upstream" / "midstream" / "downstream"
    tier: str | None


# --- growth, exact ---------------------------------------------------------------------------------------


def _divide_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties away from zero (ROUND_HALF_UP)."""
    if denominator == 0:
        raise ZeroDivisionError("denominator is 0")
    negative = (numerator < 0) != (denominator < 0)
    quotient, remainder = divmod(abs(numerator), abs(denominator))
    if 2 * remainder >= abs(denominator):
        quotient += 1
    return -quotient if negative else quotient


def _check_places(places: int) -> None:
    if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= PERCENT_PLACES_MAX:
        raise ValueError(f"places must be an integer 0..{PERCENT_PLACES_MAX}, got {places!r}")


def _growth_percent(current: int, previous: int, places: int) -> Decimal | None:
    # Rounding the exact fraction once (not a rounded value again) keeps e.g. 2.9949 % at "2.99" / "3.0".
    if previous == 0:
        return None
    scaled = _divide_half_up((current - previous) * 100 * 10**places, previous)
    return Decimal(scaled).scaleb(-places)


def growth(current: int, previous: int) -> Decimal | None:
    """Growth of `current` over `previous` in percent, exact to 2 places rounded half-up
    (Decimal("150.92")); None when `previous` is 0 (no base to grow from)."""
    return _growth_percent(current, previous, 2)


def percent_text(current: int, previous: int, places: int = 1) -> str | None:
    """Growth as the report prints it ("150.9%", "-3.0%"), rounding the exact fraction half-up to `places`;
    None when `previous` is 0."""
    _check_places(places)
    value = _growth_percent(current, previous, places)
    return None if value is None else f"{value:f}%"


def _decimal_json(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


# --- rows ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """The figures of one group (or the total) for one cumulative period."""

    key: str
    enterprises: int  # distinct enterprises with a counted record in the period
    records: int  # counted enterprise-months
    output_fen: int
    previous_fen: int  # comparable basis: the same enterprise-months a year earlier
    previous_reported_fen: int  # as published a year earlier (the scope applied to that year's records)
    revenue_fen: int  # a missing revenue counts as 0 ...
    previous_revenue_fen: int  # comparable basis
    revenue_missing: int  # ... and is counted here: counted records without revenue

    @property
    def growth(self) -> Decimal | None:
        return growth(self.output_fen, self.previous_fen)

    @property
    def revenue_growth(self) -> Decimal | None:
        return growth(self.revenue_fen, self.previous_revenue_fen)

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "enterprises": self.enterprises,
            "records": self.records,
            "output_fen": self.output_fen,
            "previous_fen": self.previous_fen,
            "previous_reported_fen": self.previous_reported_fen,
            "growth": _decimal_json(self.growth),
            "revenue_fen": self.revenue_fen,
            "previous_revenue_fen": self.previous_revenue_fen,
            "revenue_growth": _decimal_json(self.revenue_growth),
            "revenue_missing": self.revenue_missing,
        }


@dataclass(frozen=True, slots=True)
class Cumulative:
    """January to `month` of `year`: the total and its breakdowns (each adds up to the total)."""

    year: int
    month: int
    scope: Scope
    total: Row
    by_stage: tuple[Row, ...]
    by_segment: tuple[Row, ...]
    by_tier: tuple[Row, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "year": self.year,
            "month": self.month,
            "scope": self.scope.value,
            "total": self.total.as_json(),
            "by_stage": [row.as_json() for row in self.by_stage],
            "by_segment": [row.as_json() for row in self.by_segment],
            "by_tier": [row.as_json() for row in self.by_tier],
        }


@dataclass(frozen=True, slots=True)
class MonthRow:
    month: int
    enterprises: int  # distinct enterprises with a counted record this month
    output_fen: int
    cumulative_fen: int  # January to this month
    previous_month_fen: int  # comparable basis
    previous_cumulative_fen: int  # comparable basis

    @property
    def growth(self) -> Decimal | None:
        return growth(self.output_fen, self.previous_month_fen)

    @property
    def cumulative_growth(self) -> Decimal | None:
        return growth(self.cumulative_fen, self.previous_cumulative_fen)

    def as_json(self) -> dict[str, object]:
        return {
            "month": self.month,
            "enterprises": self.enterprises,
            "output_fen": self.output_fen,
            "cumulative_fen": self.cumulative_fen,
            "previous_month_fen": self.previous_month_fen,
            "previous_cumulative_fen": self.previous_cumulative_fen,
            "growth": _decimal_json(self.growth),
            "cumulative_growth": _decimal_json(self.cumulative_growth),
        }


@dataclass(frozen=True, slots=True)
class Monthly:
    year: int
    scope: Scope
    months: tuple[MonthRow, ...]  # months 1..through, none skipped

    def as_json(self) -> dict[str, object]:
        return {
            "year": self.year,
            "scope": self.scope.value,
            "months": [row.as_json() for row in self.months],
        }


# --- validation and indexing --------------------------------------------------------------------------


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer {low}..{high}, got {value!r}")


def _scope(scope: str) -> Scope:
    try:
        return Scope(scope)
    except ValueError:
        allowed = ", ".join(repr(s.value) for s in Scope)
        raise ValueError(f"scope must be one of {allowed}, got {scope!r}") from None


@dataclass(frozen=True, slots=True)
class _Index:
    by_key: dict[tuple[int, int, int], OutputFact]  # (enterprise, year, month)
    by_month: dict[tuple[int, int], list[OutputFact]]  # (year, month)
    enterprises: dict[int, EnterpriseFacts]


def _index(facts: Iterable[OutputFact], enterprises: Iterable[EnterpriseFacts]) -> _Index:
    """Index the records, refusing what the table's constraints would: a second record of one
    enterprise-month, a month out of range, a negative amount, a second classification of one enterprise."""
    by_key: dict[tuple[int, int, int], OutputFact] = {}
    by_month: dict[tuple[int, int], list[OutputFact]] = {}
    for fact in facts:
        _check_int("a record's month", fact.month, 1, 12)
        if fact.output_fen < 0 or (fact.revenue_fen is not None and fact.revenue_fen < 0):
            raise ValueError(f"a record's amounts must not be negative: {fact!r}")
        key = (fact.enterprise_id, fact.year, fact.month)
        if key in by_key:
            raise ValueError(f"two records for enterprise {key[0]} in {key[1]}-{key[2]:02d}")
        by_key[key] = fact
        by_month.setdefault((fact.year, fact.month), []).append(fact)
    classified: dict[int, EnterpriseFacts] = {}
    for enterprise in enterprises:
        if enterprise.enterprise_id in classified:
            raise ValueError(f"enterprise {enterprise.enterprise_id} is classified twice")
        classified[enterprise.enterprise_id] = enterprise
    return _Index(by_key, by_month, classified)


def _counts(fact: OutputFact, scope: Scope) -> bool:
    return scope is Scope.ALL or fact.above_size


# --- sums ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Sums:
    """Running figures of one enterprise over a period."""

    records: int = 0
    output_fen: int = 0
    previous_fen: int = 0
    previous_reported_fen: int = 0
    revenue_fen: int = 0
    previous_revenue_fen: int = 0
    revenue_missing: int = 0


def _add_month(index: _Index, year: int, month: int, scope: Scope, sums: dict[int, _Sums]) -> None:
    """Add one month's counted records, their comparable previous records and what was reported a year
    earlier, per enterprise."""
    for fact in index.by_month.get((year, month), ()):
        if not _counts(fact, scope):
            continue
        entry = sums.setdefault(fact.enterprise_id, _Sums())
        entry.records += 1
        entry.output_fen += fact.output_fen
        entry.revenue_fen += fact.revenue_fen or 0
        entry.revenue_missing += fact.revenue_fen is None
        before = index.by_key.get((fact.enterprise_id, year - 1, month))
        if before is not None:  # whatever its flag was then: the comparable basis
            entry.previous_fen += before.output_fen
            entry.previous_revenue_fen += before.revenue_fen or 0
    for fact in index.by_month.get((year - 1, month), ()):
        if _counts(fact, scope):
            sums.setdefault(fact.enterprise_id, _Sums()).previous_reported_fen += fact.output_fen


def _row(key: str, members: Iterable[_Sums]) -> Row:
    parts = list(members)
    return Row(
        key=key,
        enterprises=sum(1 for s in parts if s.records > 0),
        records=sum(s.records for s in parts),
        output_fen=sum(s.output_fen for s in parts),
        previous_fen=sum(s.previous_fen for s in parts),
        previous_reported_fen=sum(s.previous_reported_fen for s in parts),
        revenue_fen=sum(s.revenue_fen for s in parts),
        previous_revenue_fen=sum(s.previous_revenue_fen for s in parts),
        revenue_missing=sum(s.revenue_missing for s in parts),
    )


def _order(known: Sequence[str]) -> dict[str, int]:
    return {value: position for position, value in enumerate(known)}


STAGE_ORDER = _order([stage.value for stage in Stage])  # upstream to downstream, as the report lists them
TIER_ORDER = _order([tier.value for tier in Tier])  # the ladder, lowest first


def _breakdown(
    sums: dict[int, _Sums], key_of: dict[int, str | None], order: dict[str, int] | None
) -> tuple[Row, ...]:
    """Group the enterprises by key: known keys in their order, others alphabetical, unclassified last."""
    groups: dict[str, list[_Sums]] = {}
    for enterprise_id, entry in sums.items():
        groups.setdefault(key_of.get(enterprise_id) or UNCLASSIFIED, []).append(entry)
    ranks = order or {}

    def rank(key: str) -> tuple[int, int, str]:
        if key == UNCLASSIFIED:
            return (2, 0, key)
        if key in ranks:
            return (0, ranks[key], key)
        return (1, 0, key)

    return tuple(_row(key, groups[key]) for key in sorted(groups, key=rank))


# --- the reports --------------------------------------------------------------------------------------


def cumulative(
    facts: Iterable[OutputFact],
    enterprises: Iterable[EnterpriseFacts],
    year: int,
    month: int,
    scope: str = Scope.ABOVE_SIZE,
) -> Cumulative:
    """January to `month` of `year`: the total and its breakdowns by stage, segment and tier."""
    _check_int("month", month, 1, 12)
    _check_int("year", year, 1, 9999)
    counted = _scope(scope)
    index = _index(facts, enterprises)
    sums: dict[int, _Sums] = {}
    for m in range(1, month + 1):
        _add_month(index, year, m, counted, sums)
    known = index.enterprises
    total = _row(TOTAL, sums.values())
    result = Cumulative(
        year=year,
        month=month,
        scope=counted,
        total=total,
        by_stage=_breakdown(sums, {e: f.stage for e, f in known.items()}, STAGE_ORDER),
        by_segment=_breakdown(sums, {e: f.segment for e, f in known.items()}, None),
        by_tier=_breakdown(sums, {e: f.tier for e, f in known.items()}, TIER_ORDER),
    )
    for rows in (result.by_stage, result.by_segment, result.by_tier):
        assert _figures_sum(rows) == _figures(total), "a breakdown must add up to the total"
    return result


def _figures(row: Row) -> tuple[int, ...]:
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


def _figures_sum(rows: Sequence[Row]) -> tuple[int, ...]:
    """Every figure summed over the rows (enterprises too: each is in exactly one group)."""
    if not rows:
        return _figures(_row(TOTAL, []))
    return tuple(sum(column) for column in zip(*(_figures(row) for row in rows), strict=True))


def monthly(
    facts: Iterable[OutputFact],
    enterprises: Iterable[EnterpriseFacts],
    year: int,
    scope: str = Scope.ABOVE_SIZE,
    through: int | None = None,
) -> Monthly:
    """Each month of `year` up to `through` (default: the last month with any record that year, whatever
    its flag): the month's output and the cumulative, each beside its comparable figure a year earlier."""
    _check_int("year", year, 1, 9999)
    if through is not None:
        _check_int("through", through, 1, 12)
    counted = _scope(scope)
    index = _index(facts, enterprises)
    if through is None:
        through = max((m for (y, m) in index.by_month if y == year), default=0)
    months: list[MonthRow] = []
    cumulative_fen = previous_cumulative_fen = 0
    for m in range(1, through + 1):
        sums: dict[int, _Sums] = {}
        _add_month(index, year, m, counted, sums)
        month_total = _row(TOTAL, sums.values())
        cumulative_fen += month_total.output_fen
        previous_cumulative_fen += month_total.previous_fen
        months.append(
            MonthRow(
                month=m,
                enterprises=month_total.enterprises,
                output_fen=month_total.output_fen,
                cumulative_fen=cumulative_fen,
                previous_month_fen=month_total.previous_fen,
                previous_cumulative_fen=previous_cumulative_fen,
            )
        )
    return Monthly(year=year, scope=counted, months=tuple(months))
