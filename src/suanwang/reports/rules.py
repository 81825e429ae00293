"""Region reports' arithmetic (pure: no I/O, no clock): periods, exact splits, shares and percentiles.

- A period is a calendar day, ISO week (Monday first) or month in Asia/Shanghai; a report's periods are
  those meeting its window [start, end), the first and last cut to the window. Reports work in whole
  seconds: the window's bounds drop their fractions of a second.
- A usage record that spans period boundaries is split in proportion to the time it spends in each
  period, in integers: the pieces add up to the record's card-seconds exactly (largest remainder), and
  each piece is within one card-second of its exact share. The part outside the window is dropped.
- Ratios are exact integers in basis points, rounded half up once, and shown as "40.00%" ("—" when
  the whole is 0), as the voucher reports show them.
- Percentiles are nearest-rank: the smallest value with at least p % of the values at or below it, so
  every percentile is a wait that really happened.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from suanwang.timeutil import SHANGHAI

DAY, WEEK, MONTH = "day", "week", "month"
PERIODS = (DAY, WEEK, MONTH)
GROUPS = ("provider", "pool", "region", "accelerator")
LOCAL_SME, LOCAL_OTHER, OUTSIDE = "local_sme", "local_other", "outside"
CLASSES = (LOCAL_SME, LOCAL_OTHER, OUTSIDE)
LOCAL_CLASSES = frozenset({LOCAL_SME, LOCAL_OTHER})
# A limit on every report: 400 periods is more than a year of days, enough for any dashboard chart.
MAX_PERIODS = 400

BASIS_POINTS = 10_000
NO_RATIO = "—"
SECONDS_PER_HOUR = 3600
TFLOPS_PER_PFLOPS = 1000
HOUR_PLACES = Decimal("0.0001")  # card-hours and PFLOPS·h are shown to 4 places, as statements show them
_US = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)


def tenant_class(*, local: bool, sme: bool, enterprise: bool) -> str:
    """The report's class of a tenant; only an enterprise can be an SME (中小企业), whatever the flag says."""
    if not local:
        return OUTSIDE
    return LOCAL_SME if sme and enterprise else LOCAL_OTHER


# --- exact ratios ------------------------------------------------------------------------------


def _half_up(numerator: int, denominator: int) -> int:
    """numerator ÷ denominator rounded half up (numerator ≥ 0, denominator > 0)."""
    return (2 * numerator + denominator) // (2 * denominator)


def share_bp(part: int, whole: int) -> int | None:
    """part ÷ whole in basis points, rounded half up (4000 = 40 %); None when the whole is 0."""
    if whole <= 0:
        return None
    return _half_up(BASIS_POINTS * part, whole)


def percent(bp: int | None) -> str:
    """Basis points as a percentage with two decimals: 4000 → '40.00%'; None → '—'."""
    return NO_RATIO if bp is None else f"{bp // 100}.{bp % 100:02d}%"


def hours(seconds: int | Decimal) -> Decimal:
    """Seconds (or card-seconds) as hours to 4 places, rounded half up once."""
    return (Decimal(seconds) / SECONDS_PER_HOUR).quantize(HOUR_PLACES, rounding=ROUND_HALF_UP)


# --- periods -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """One period of a report, cut to the window: [start, end) in UTC."""

    label: str  # "2025-06-01", "2025-W23" (ISO week) or "2025-06"
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return (self.end - self.start) // _SECOND


def whole_seconds(at: datetime) -> datetime:
    """An aware time in UTC without its fraction of a second."""
    if at.utcoffset() is None:
        raise ValueError(f"a report's window needs aware times (got naive {at.isoformat()})")
    return at.astimezone(UTC).replace(microsecond=0)


def _first_day(day: date, period: str) -> date:
    if period == DAY:
        return day
    if period == WEEK:
        return day - timedelta(days=day.weekday())
    if period == MONTH:
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r} (periods: {', '.join(PERIODS)})")


def _next_first_day(first: date, period: str) -> date:
    if period == DAY:
        return first + timedelta(days=1)
    if period == WEEK:
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _label(first: date, period: str) -> str:
    if period == DAY:
        return first.isoformat()
    if period == WEEK:
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{first.year}-{first.month:02d}"


def _midnight(day: date) -> datetime:
    """The UTC instant at which `day` begins in Asia/Shanghai."""
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


def _iter_spans(start: datetime, end: datetime, period: str) -> Iterator[Span]:
    first = _first_day(start.astimezone(SHANGHAI).date(), period)
    while _midnight(first) < end:
        following = _next_first_day(first, period)
        yield Span(_label(first, period), max(start, _midnight(first)), min(end, _midnight(following)))
        first = following


def count_periods(start: datetime, end: datetime, period: str, limit: int = MAX_PERIODS) -> int:
    """How many periods meet [start, end), counting no further than limit + 1 (a huge window is cheap)."""
    count = 0
    for _ in _iter_spans(start, end, period):
        count += 1
        if count > limit:
            break
    return count


def spans(start: datetime, end: datetime, period: str) -> tuple[Span, ...]:
    """The periods meeting [start, end) in order, contiguous, the first and last cut to the window.

    start and end are aware; their fractions of a second are dropped. An empty window or one of more
    than MAX_PERIODS periods is a ValueError (the service refuses those with a message first)."""
    start, end = whole_seconds(start), whole_seconds(end)
    if end <= start:
        raise ValueError(f"empty window: {start.isoformat()} to {end.isoformat()}")
    if count_periods(start, end, period) > MAX_PERIODS:
        raise ValueError(f"more than {MAX_PERIODS} periods of a {period}")
    return tuple(_iter_spans(start, end, period))


def span_index(at: datetime, periods: Sequence[Span]) -> int | None:
    """The index of the span holding `at`, or None when `at` lies outside them (spans contiguous)."""
    if not periods or at < periods[0].start or at >= periods[-1].end:
        return None
    return bisect_right([s.start for s in periods], at) - 1


# --- splitting usage over periods --------------------------------------------------------------


def _pieces(
    card_seconds: int, started_at: datetime, ended_at: datetime, cuts: Sequence[datetime]
) -> tuple[int, list[int]]:
    """The stretch of `split` the record overlaps: (the index of its first interval, its pieces)."""
    if card_seconds < 0:
        raise ValueError(f"card_seconds must not be negative (got {card_seconds})")
    if ended_at < started_at:
        raise ValueError("a usage record cannot end before it starts")
    first = bisect_right(cuts, started_at)  # the interval holding the start
    total_us = (ended_at - started_at) // _US
    if total_us == 0:
        return first, [card_seconds]
    last = bisect_left(cuts, ended_at)  # the interval holding the last instant before the end
    bounds = [started_at, *cuts[first:last], ended_at]
    weights = [(bounds[i + 1] - bounds[i]) // _US for i in range(len(bounds) - 1)]
    shares = [divmod(card_seconds * weight, total_us) for weight in weights]
    pieces = [whole for whole, _ in shares]
    left = card_seconds - sum(pieces)  # < number of non-zero remainders, so only overlapped pieces grow
    by_remainder = sorted(range(len(shares)), key=lambda i: (-shares[i][1], i))
    for i in by_remainder[:left]:
        pieces[i] += 1
    return first, pieces


def split(card_seconds: int, started_at: datetime, ended_at: datetime, cuts: Sequence[datetime]) -> list[int]:
    """card_seconds over the len(cuts) + 1 intervals that sorted `cuts` make — (…, cuts[0]),
    [cuts[0], cuts[1]), …, [cuts[-1], …) — in proportion to the time [started_at, ended_at) spends in each.

    The pieces add up to card_seconds exactly: each gets the floor of its exact share, and what is left
    goes one card-second at a time to the largest remainders (ties to the earlier interval); so each
    piece is within one card-second of its exact share, and an interval the record does not overlap
    gets 0. A record of no duration falls wholly in the interval holding its start."""
    result = [0] * (len(cuts) + 1)
    first, pieces = _pieces(card_seconds, started_at, ended_at, cuts)
    result[first : first + len(pieces)] = pieces
    return result


@dataclass(frozen=True, slots=True)
class Usage:
    """One usage record, reduced to what a report needs."""

    key: str  # what the report sums it under: the tenant's class, or the pool's group
    card_seconds: int
    started_at: datetime
    ended_at: datetime
    dense_tflops_per_card: Decimal = Decimal(0)  # 0 when the accelerator is not in the catalogue


@dataclass(frozen=True, slots=True)
class Compute:
    """Card-seconds and their dense compute (card-seconds × TFLOPS per card), both exact."""

    card_seconds: int = 0
    tflops_seconds: Decimal = Decimal(0)

    def __add__(self, other: Compute) -> Compute:
        return Compute(self.card_seconds + other.card_seconds, self.tflops_seconds + other.tflops_seconds)

    @property
    def card_hours(self) -> Decimal:
        return hours(self.card_seconds)

    @property
    def pflops_hours(self) -> Decimal:
        return hours(self.tflops_seconds / TFLOPS_PER_PFLOPS)


def _total(values: Iterable[Compute]) -> Compute:
    result = Compute()
    for value in values:
        result += value
    return result


def tally(usages: Iterable[Usage], periods: Sequence[Span]) -> dict[str, list[Compute]]:
    """Each usage split over the periods (its part outside them dropped), summed per key and period."""
    if not periods:
        return {}
    cuts = [periods[0].start, *(s.end for s in periods)]  # interval i + 1 is period i
    card_seconds: dict[str, list[int]] = {}
    tflops_seconds: dict[str, list[Decimal]] = {}
    for usage in usages:
        if usage.key not in card_seconds:
            card_seconds[usage.key] = [0] * len(periods)
            tflops_seconds[usage.key] = [Decimal(0)] * len(periods)
        first, pieces = _pieces(usage.card_seconds, usage.started_at, usage.ended_at, cuts)
        for offset, piece in enumerate(pieces):
            index = first + offset - 1
            if piece and 0 <= index < len(periods):
                card_seconds[usage.key][index] += piece
                tflops_seconds[usage.key][index] += piece * usage.dense_tflops_per_card
    return {
        key: [Compute(c, f) for c, f in zip(card_seconds[key], tflops_seconds[key], strict=True)]
        for key in card_seconds
    }


# --- local share -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Share:
    """Compute used per tenant class, and the local classes' share of it (by card-hours)."""

    by_class: Mapping[str, Compute]  # every class of CLASSES, 0 when unused

    @property
    def total(self) -> Compute:
        return _total(self.by_class.values())

    @property
    def local(self) -> Compute:
        return _total(v for k, v in self.by_class.items() if k in LOCAL_CLASSES)

    @property
    def local_share_bp(self) -> int | None:
        return share_bp(self.local.card_seconds, self.total.card_seconds)

    @property
    def local_share(self) -> str:
        return percent(self.local_share_bp)


@dataclass(frozen=True, slots=True)
class LocalShare:
    periods: tuple[tuple[Span, Share], ...]
    total: Share


def local_share(usages: Iterable[Usage], periods: Sequence[Span]) -> LocalShare:
    """Usage keyed by tenant class, per period and over the window."""
    tallied = tally(usages, periods)
    unknown = tallied.keys() - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown tenant class(es): {', '.join(sorted(unknown))}")
    empty = [Compute()] * len(periods)
    rows = tuple(
        (span, Share({c: tallied.get(c, empty)[i] for c in CLASSES})) for i, span in enumerate(periods)
    )
    total = Share({c: _total(tallied.get(c, empty)) for c in CLASSES})
    return LocalShare(rows, total)


# --- utilization -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capacity:
    """A pool's cards, available over [available_from, available_until) (None: without that bound)."""

    key: str  # the pool's group
    cards: int
    available_from: datetime | None = None
    available_until: datetime | None = None

    def card_seconds_in(self, span: Span) -> int:
        start = span.start if self.available_from is None else max(span.start, self.available_from)
        end = span.end if self.available_until is None else min(span.end, self.available_until)
        return self.cards * max(0, (end - start) // _SECOND)


@dataclass(frozen=True, slots=True)
class Utilization:
    used_card_seconds: int = 0
    available_card_seconds: int = 0

    def __add__(self, other: Utilization) -> Utilization:
        return Utilization(
            self.used_card_seconds + other.used_card_seconds,
            self.available_card_seconds + other.available_card_seconds,
        )

    @property
    def utilization_bp(self) -> int | None:
        """Used ÷ available; above 10,000 when usage ran on cards not counted as available."""
        return share_bp(self.used_card_seconds, self.available_card_seconds)

    @property
    def utilization(self) -> str:
        return percent(self.utilization_bp)


def _sum_utilization(values: Iterable[Utilization]) -> Utilization:
    result = Utilization()
    for value in values:
        result += value
    return result


@dataclass(frozen=True, slots=True)
class UtilizationPeriod:
    span: Span
    by_group: Mapping[str, Utilization]
    total: Utilization


@dataclass(frozen=True, slots=True)
class UtilizationReport:
    groups: tuple[str, ...]  # sorted: every group with capacity or usage
    periods: tuple[UtilizationPeriod, ...]
    by_group: Mapping[str, Utilization]  # over the whole window
    total: Utilization


def utilization(
    usages: Iterable[Usage], capacities: Sequence[Capacity], periods: Sequence[Span]
) -> UtilizationReport:
    """Used ÷ available card-seconds per period and group, per group over the window, and overall."""
    used = tally(usages, periods)
    groups = tuple(sorted(used.keys() | {c.key for c in capacities}))
    available = {g: [0] * len(periods) for g in groups}
    for capacity in capacities:
        for i, span in enumerate(periods):
            available[capacity.key][i] += capacity.card_seconds_in(span)
    cells = {
        g: [
            Utilization(used[g][i].card_seconds if g in used else 0, available[g][i])
            for i in range(len(periods))
        ]
        for g in groups
    }
    rows = tuple(
        UtilizationPeriod(
            span,
            {g: cells[g][i] for g in groups},
            _sum_utilization(cells[g][i] for g in groups),
        )
        for i, span in enumerate(periods)
    )
    by_group = {g: _sum_utilization(cells[g]) for g in groups}
    return UtilizationReport(groups, rows, by_group, _sum_utilization(by_group.values()))


# --- waiting times -----------------------------------------------------------------------------


EVERYONE_ELSE = "everyone_else"  # all but local SMEs: the regulator compares local SMEs with them


def wait_seconds(submitted_at: datetime, started_at: datetime) -> int:
    """Whole seconds from submission to start; a start before submission (a skewed clock) waits 0."""
    return max(0, (started_at - submitted_at) // _SECOND)


def percentile(ordered: Sequence[int], p: int) -> int:
    """The nearest-rank p-th percentile (0 < p ≤ 100) of ascending, non-empty `ordered`."""
    if not ordered or not 0 < p <= 100:
        raise ValueError("percentile needs values and 0 < p <= 100")
    rank = -(-p * len(ordered) // 100)  # ⌈p·n/100⌉, in integers
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class WaitStats:
    """Waits of a set of jobs in whole seconds; None where there are no jobs."""

    jobs: int = 0
    mean_wait_s: int | None = None  # rounded half up
    p50_wait_s: int | None = None
    p90_wait_s: int | None = None
    max_wait_s: int | None = None


def wait_stats(waits: Iterable[int]) -> WaitStats:
    ordered = sorted(waits)
    if not ordered:
        return WaitStats()
    return WaitStats(
        jobs=len(ordered),
        mean_wait_s=_half_up(sum(ordered), len(ordered)),
        p50_wait_s=percentile(ordered, 50),
        p90_wait_s=percentile(ordered, 90),
        max_wait_s=ordered[-1],
    )


@dataclass(frozen=True, slots=True)
class Wait:
    """A job that started: its tenant's class, when it started, and how long it waited."""

    tenant_class: str
    started_at: datetime
    wait_s: int


@dataclass(frozen=True, slots=True)
class WaitRow:
    by_class: Mapping[str, WaitStats]  # every class of CLASSES
    everyone_else: WaitStats
    all: WaitStats


def _wait_row(items: Sequence[Wait]) -> WaitRow:
    return WaitRow(
        by_class={c: wait_stats(w.wait_s for w in items if w.tenant_class == c) for c in CLASSES},
        everyone_else=wait_stats(w.wait_s for w in items if w.tenant_class != LOCAL_SME),
        all=wait_stats(w.wait_s for w in items),
    )


@dataclass(frozen=True, slots=True)
class Waits:
    periods: tuple[tuple[Span, WaitRow], ...]
    total: WaitRow


def waits(items: Iterable[Wait], periods: Sequence[Span]) -> Waits:
    """Waits per period of the job's start (starts outside the periods are dropped) and over the window."""
    per_period: list[list[Wait]] = [[] for _ in periods]
    for item in items:
        index = span_index(item.started_at, periods)
        if index is not None:
            per_period[index].append(item)
    rows = tuple((span, _wait_row(found)) for span, found in zip(periods, per_period, strict=True))
    return Waits(rows, _wait_row([w for found in per_period for w in found]))


# --- the queue now -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queued:
    """A job waiting for cards now."""

    tenant_class: str
    cards: int
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class QueueStats:
    jobs: int = 0
    cards: int = 0
    oldest_submitted_at: datetime | None = None
    oldest_wait_s: int | None = None


@dataclass(frozen=True, slots=True)
class QueueRow:
    by_class: Mapping[str, QueueStats]
    everyone_else: QueueStats
    all: QueueStats


def _queue_stats(items: Sequence[Queued], now: datetime) -> QueueStats:
    if not items:
        return QueueStats()
    oldest = min(q.submitted_at for q in items)
    return QueueStats(len(items), sum(q.cards for q in items), oldest, wait_seconds(oldest, now))


def queue_now(items: Iterable[Queued], now: datetime) -> QueueRow:
    """The waiting jobs by class: how many, how many cards they ask for, and the longest wait so far."""
    found = list(items)
    return QueueRow(
        by_class={c: _queue_stats([q for q in found if q.tenant_class == c], now) for c in CLASSES},
        everyone_else=_queue_stats([q for q in found if q.tenant_class != LOCAL_SME], now),
        all=_queue_stats(found, now),
    )
