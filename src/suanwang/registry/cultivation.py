"""Enterprise cultivation (企业梯度培育), pure: which enterprises could be proposed for the next tier up.

The ladder follows MIIT's 2022 《优质中小企业梯度培育管理暂行办法》: no tier → 创新型中小企业 →
专精特新中小企业 → 专精特新"小巨人", with 单项冠军 and 领军企业 above it. The regulator's criteria for a
target tier are simple thresholds on the figures the registry holds (see `Metric`); the shipped defaults
are in cultivation.toml. The rule, stated once:

1. Only enterprises on the tier just below the target are candidates (`previous_tier`).
2. Every criterion must hold, except that criteria sharing a `group` are alternatives: one met member
   meets the group (its other members are then left out of the report, being irrelevant).
3. A criterion on a figure the registry does not hold is neither met nor missed but unknown, and an
   enterprise with anything unknown is not eligible: missing data is a reason an official must see.
   A group none of whose members is met is unknown if any member is unknown (all its members are then
   reported as unknown, with the figures that are known), else missed.

An assessment only proposes: officials decide. No database and no clock: `as_of` is passed in.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

from suanwang.registry.models import Tier

BASIS_POINTS = 10_000
CRITERIA_MAX = 50  # per target tier: more than a regulator writes by hand, few enough to show on one page
GROUP_CHARS_MAX = 40
THRESHOLD_MAX = 2**63 - 1  # a threshold must fit the BIGINT columns the figures come from
FIELDS = ("metric", "minimum", "maximum", "group")

# Who may be proposed for what: the tiers right above each tier. Single champion and leader are both
# reached from little giant; the tiers of major-project leads are not on the ladder.
_LADDER: dict[Tier | None, tuple[Tier, ...]] = {
    None: (Tier.INNOVATIVE_SME,),
    Tier.INNOVATIVE_SME: (Tier.SPECIALISED_SME,),
    Tier.SPECIALISED_SME: (Tier.LITTLE_GIANT,),
    Tier.LITTLE_GIANT: (Tier.SINGLE_CHAMPION, Tier.LEADER),
}
TARGETS: tuple[Tier, ...] = tuple(target for above in _LADDER.values() for target in above)


class Metric(enum.StrEnum):
    """A figure an enterprise's facts provide; each has a label `registry.cultivation.metric.<value>`."""

    REVENUE_FEN = "revenue_fen"  # last full calendar year
    RD_INTENSITY_BP = "rd_intensity_bp"  # R&D spend / revenue
    RD_SPEND_FEN = "rd_spend_fen"  # derived: revenue × intensity, rounded down
    PATENTS = "patents"  # valid invention patents
    EMPLOYEES = "employees"
    AGE_MONTHS = "age_months"  # whole months since founding
    REVENUE_GROWTH_BP = "revenue_growth_bp"  # last full year against the year before, rounded down
    ABOVE_SIZE = "above_size"  # 规上: 1 or 0


class Status(enum.StrEnum):
    MET = "met"
    MISSED = "missed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CriteriaError(Exception):
    """Why criteria are invalid: a message key and its parameters (rendered in the user's language)."""

    key: str
    params: dict[str, object]


@dataclass(frozen=True, slots=True)
class Criterion:
    """minimum ≤ value ≤ maximum (either bound may be absent); criteria sharing a group are alternatives."""

    metric: Metric
    minimum: int | None = None
    maximum: int | None = None
    group: str | None = None

    def holds(self, value: int) -> bool:
        return (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )

    def as_json(self) -> dict[str, object]:
        return {
            "metric": self.metric.value,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "group": self.group,
        }


@dataclass(frozen=True, slots=True)
class Facts:
    """What the registry holds about an enterprise; None = not known. Revenues are of the last two full
    calendar years."""

    enterprise_id: int
    name: str
    tier: Tier | None
    revenue_fen: int | None = None
    previous_revenue_fen: int | None = None
    rd_intensity_bp: int | None = None
    patents: int | None = None
    employees: int | None = None
    founded_on: date | None = None
    above_size: bool | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    criterion: Criterion
    value: int | None  # the enterprise's figure

    def as_json(self) -> dict[str, object]:
        return {**self.criterion.as_json(), "value": self.value}


@dataclass(frozen=True, slots=True)
class Assessment:
    enterprise_id: int
    name: str
    target: Tier
    met: tuple[Outcome, ...]
    missed: tuple[Outcome, ...]
    unknown: tuple[Outcome, ...]
    eligible: bool
    as_of: date

    def as_json(self) -> dict[str, object]:
        return {
            "enterprise_id": self.enterprise_id,
            "name": self.name,
            "target": self.target.value,
            "as_of": self.as_of.isoformat(),
            "eligible": self.eligible,
            "met": [o.as_json() for o in self.met],
            "missed": [o.as_json() for o in self.missed],
            "unknown": [o.as_json() for o in self.unknown],
        }


# --- the ladder -----------------------------------------------------------------------------------


def next_tiers(tier: Tier | None) -> tuple[Tier, ...]:
    """The tiers an enterprise on `tier` (None: no tier yet) may be proposed for; none from the top or
    from a tier off the ladder."""
    return _LADDER.get(tier, ())


def previous_tier(target: Tier) -> Tier | None:
    """The tier candidates for `target` hold now (None: no tier). A target off the ladder is an error."""
    for below, above in _LADDER.items():
        if target in above:
            return below
    raise CriteriaError("registry.cultivation.not-on-ladder", {"tier": target.value})


# --- the figures ----------------------------------------------------------------------------------


def age_months(founded_on: date, as_of: date) -> int | None:
    """Whole months from founded_on to as_of; a month ends on the same day of the month, or on the last
    day of a shorter month (as 民法典 第二百零二条 counts periods). None when founded after as_of, which is
    bad data an official must see, not an age of zero."""
    if as_of < founded_on:
        return None
    months = (as_of.year - founded_on.year) * 12 + as_of.month - founded_on.month
    return months - (as_of.day < min(founded_on.day, _days_in_month(as_of)))


def metric_values(facts: Facts, as_of: date) -> dict[Metric, int | None]:
    """Every metric's value for the enterprise on as_of, None where not known."""
    revenue = facts.revenue_fen
    return {
        Metric.REVENUE_FEN: revenue,
        Metric.RD_INTENSITY_BP: facts.rd_intensity_bp,
        Metric.RD_SPEND_FEN: _rd_spend_fen(revenue, facts.rd_intensity_bp),
        Metric.PATENTS: facts.patents,
        Metric.EMPLOYEES: facts.employees,
        Metric.AGE_MONTHS: None if facts.founded_on is None else age_months(facts.founded_on, as_of),
        Metric.REVENUE_GROWTH_BP: _growth_bp(revenue, facts.previous_revenue_fen),
        Metric.ABOVE_SIZE: None if facts.above_size is None else int(facts.above_size),
    }


# Derived figures are rounded down (towards minus infinity), so rounding never lifts one over a minimum.


def _rd_spend_fen(revenue_fen: int | None, intensity_bp: int | None) -> int | None:
    if revenue_fen is None or intensity_bp is None:
        return None
    return revenue_fen * intensity_bp // BASIS_POINTS


def _growth_bp(revenue_fen: int | None, previous_fen: int | None) -> int | None:
    """None without a positive revenue the year before: growth from nothing is not a figure."""
    if revenue_fen is None or previous_fen is None or previous_fen <= 0:
        return None
    return (revenue_fen - previous_fen) * BASIS_POINTS // previous_fen


# --- assessment -----------------------------------------------------------------------------------


def assess(facts: Facts, target: Tier, criteria: Iterable[Criterion], as_of: date) -> Assessment:
    """How the enterprise stands against the criteria for `target` (whatever its current tier)."""
    values = metric_values(facts, as_of)
    judged = [(c, values[c.metric], _status(c, values[c.metric])) for c in criteria]
    group_status: dict[str, Status] = {}
    for criterion, _, status in judged:
        if criterion.group is not None:
            group_status[criterion.group] = _combine(group_status.get(criterion.group), status)
    lists: dict[Status, list[Outcome]] = {status: [] for status in Status}
    for criterion, value, status in judged:
        shown = status if criterion.group is None else group_status[criterion.group]
        if shown is Status.MET and status is not Status.MET:
            continue  # an alternative not needed: its group is met through another member
        lists[shown].append(Outcome(criterion, value))
    return Assessment(
        enterprise_id=facts.enterprise_id,
        name=facts.name,
        target=target,
        met=tuple(lists[Status.MET]),
        missed=tuple(lists[Status.MISSED]),
        unknown=tuple(lists[Status.UNKNOWN]),
        eligible=not lists[Status.MISSED] and not lists[Status.UNKNOWN],
        as_of=as_of,
    )


def candidates(
    all_facts: Iterable[Facts], target: Tier, criteria: Iterable[Criterion], as_of: date
) -> list[Assessment]:
    """The enterprises on the tier below `target`, assessed: eligible first, then the closest (fewest
    missed, then fewest unknown criteria), then by name."""
    below = previous_tier(target)
    rules = tuple(criteria)
    assessed = [assess(facts, target, rules, as_of) for facts in all_facts if facts.tier == below]
    return sorted(
        assessed, key=lambda a: (not a.eligible, len(a.missed), len(a.unknown), a.name, a.enterprise_id)
    )


def _status(criterion: Criterion, value: int | None) -> Status:
    if value is None:
        return Status.UNKNOWN
    return Status.MET if criterion.holds(value) else Status.MISSED


def _combine(group: Status | None, member: Status) -> Status:
    """A group is met by any member, else unknown by any member, else missed."""
    statuses = {member} if group is None else {group, member}
    for status in (Status.MET, Status.UNKNOWN):
        if status in statuses:
            return status
    return Status.MISSED


def _days_in_month(day: date) -> int:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (following - date(day.year, day.month, 1)).days


# --- criteria from configuration ------------------------------------------------------------------


def parse_criteria(data: object) -> tuple[Criterion, ...]:
    """Criteria from their stored form (a list of tables with metric, minimum, maximum, group), checked:
    raises CriteriaError on the first problem, naming the criterion by its position (from 1)."""
    if not isinstance(data, list | tuple):
        raise CriteriaError("registry.cultivation.criteria-not-a-list", {})
    if not data:
        raise CriteriaError("registry.cultivation.criteria-empty", {})
    if len(data) > CRITERIA_MAX:
        raise CriteriaError(
            "registry.cultivation.criteria-too-many", {"count": len(data), "limit": CRITERIA_MAX}
        )
    return tuple(_parse_criterion(number, entry) for number, entry in enumerate(data, start=1))


def _parse_criterion(number: int, entry: object) -> Criterion:
    if not isinstance(entry, Mapping):
        raise CriteriaError("registry.cultivation.criterion-not-a-table", {"number": number})
    for field in entry:
        if field not in FIELDS:
            raise CriteriaError(
                "registry.cultivation.criterion-unknown-field",
                {"number": number, "field": str(field), "fields": ", ".join(FIELDS)},
            )
    name = entry.get("metric")
    if not isinstance(name, str) or name not in {m.value for m in Metric}:
        raise CriteriaError(
            "registry.cultivation.criterion-unknown-metric",
            {"number": number, "metric": str(name), "metrics": ", ".join(Metric)},
        )
    metric = Metric(name)
    minimum = _threshold(number, metric, "minimum", entry.get("minimum"))
    maximum = _threshold(number, metric, "maximum", entry.get("maximum"))
    if minimum is None and maximum is None:
        raise CriteriaError("registry.cultivation.criterion-no-threshold", {"number": number, "metric": name})
    if minimum is not None and maximum is not None and minimum > maximum:
        raise CriteriaError(
            "registry.cultivation.criterion-reversed",
            {"number": number, "minimum": minimum, "maximum": maximum},
        )
    return Criterion(metric, minimum, maximum, _group(number, entry.get("group")))


def _threshold(number: int, metric: Metric, field: str, raw: object) -> int | None:
    if raw is None:
        return None
    if metric is Metric.ABOVE_SIZE:
        # A yes/no figure: minimum 1 asks for 规上, maximum 0 for not 规上; true/false are accepted too.
        if isinstance(raw, bool) or (isinstance(raw, int) and raw in (0, 1)):
            return int(raw)
        raise CriteriaError(
            "registry.cultivation.criterion-not-boolean",
            {"number": number, "field": field, "value": repr(raw)},
        )
    # bool is an int to Python, but `minimum = true` on a count is a mistake, not 1.
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise CriteriaError(
            "registry.cultivation.criterion-not-integer",
            {"number": number, "field": field, "value": repr(raw)},
        )
    if not 0 <= raw <= THRESHOLD_MAX:
        raise CriteriaError(
            "registry.cultivation.criterion-out-of-range",
            {"number": number, "field": field, "value": raw, "limit": THRESHOLD_MAX},
        )
    return raw


def _group(number: int, raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > GROUP_CHARS_MAX:
        raise CriteriaError(
            "registry.cultivation.criterion-bad-group",
            {"number": number, "value": repr(raw), "limit": GROUP_CHARS_MAX},
        )
    return raw


# --- the shipped defaults -------------------------------------------------------------------------


def load_defaults(text: str) -> dict[Tier, tuple[Criterion, ...]]:
    """Criteria per target tier from TOML text shaped like cultivation.toml (one array of tables per tier)."""
    found: dict[Tier, tuple[Criterion, ...]] = {}
    for key, entries in tomllib.loads(text).items():
        if key not in {t.value for t in TARGETS}:
            raise CriteriaError(
                "registry.cultivation.criteria-unknown-tier",
                {"tier": key, "tiers": ", ".join(t.value for t in TARGETS)},
            )
        found[Tier(key)] = parse_criteria(entries)
    return found


@cache
def _shipped() -> dict[Tier, tuple[Criterion, ...]]:
    text = resources.files("suanwang.registry").joinpath("cultivation.toml").read_text(encoding="utf-8")
    return load_defaults(text)


def defaults() -> dict[Tier, tuple[Criterion, ...]]:
    """The shipped criteria for every target tier (a copy: callers may change their dict)."""
    return dict(_shipped())
