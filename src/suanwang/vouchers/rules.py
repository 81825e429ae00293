"""Voucher rules (pure): what a compute-voucher programme pays of a charge, and why it pays no more.

Given a programme, the tenant, the lines of one order (a job's charge per pool, with each line's
provider), what this programme already paid this tenant this year and what its grant still holds,
`decide` returns the subsidy of every line and, for every fen not subsidised, the reason. The rule,
stated once:

1. Whole-order refusals: the tenant is flagged by the regulator, is not eligible (locality, kind, SME,
   segment, tier, a credit default within the stated years), or the order ended outside the grant's
   validity: nothing is subsidised (what earlier programmes paid is shown as theirs, not as refused).
2. Per line: an excluded kind (storage, network), a provider that is not eligible (not designated,
   not in the programme's regions), or a provider of the tenant's own affiliation group: nothing.
3. What earlier programmes (stacking) already paid of the line is not paid again; where this
   programme does not stack, or an earlier one that paid on the line does not, the line gets nothing.
4. The line's ratio is the first matching tier's (accelerator origin, workload, filed model, the
   tenant's registry tier, start-up age), else the programme's; the subsidy is ⌊ratio × eligible⌋ fen
   (rounded down, so never above the ratio), the rest is the tenant's share.
5. Caps, in this order, across the lines in order: per order, per enterprise per year (a tier that
   depends on the tenant alone may set the tenant's own: `year_cap_for`), and what the grant still
   holds (the grant was funded from the programme's budget, so it is also the programme's remaining
   budget for this tenant).

Every line satisfies charge = subsidy + Σ refusals. No I/O and no clock: time comes in the order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from suanwang.timeutil import SHANGHAI

BASIS_POINTS = 10_000
CODE_CHARS_MAX = 40


class Stacking(enum.StrEnum):
    NONE = "none"  # one spend is subsidised by at most one programme
    ORDERED = "ordered"  # stacks with other stacking programmes, applied by `stack_order`


class Cadence(enum.StrEnum):
    PER_JOB = "per_job"  # the subsidy is paid to the provider when each job is settled
    QUARTERLY = "quarterly"  # claims accrue (pending) and are settled per quarter


class Reason(enum.StrEnum):
    """Why fen were not subsidised; each has a message `voucher.reason.<value>` in both languages."""

    TENANT_FLAGGED = "tenant-flagged"
    TENANT_INELIGIBLE = "tenant-ineligible"
    NOT_IN_VALIDITY = "not-in-validity"
    EXCLUDED_KIND = "excluded-kind"
    PROVIDER_INELIGIBLE = "provider-ineligible"
    AFFILIATED = "affiliated"
    EARLIER_PROGRAMME = "earlier-programme"
    NO_STACKING = "no-stacking"
    TENANT_SHARE = "tenant-share"
    ORDER_CAP = "order-cap"
    ENTERPRISE_YEAR_CAP = "enterprise-year-cap"
    GRANT_EXHAUSTED = "grant-exhausted"


@dataclass(frozen=True, slots=True)
class Tier:
    """A ratio for lines or tenants that match every condition set (None / empty = any)."""

    name: str
    ratio_bp: int
    domestic: bool | None = None  # the accelerator's origin
    workload: str | None = None  # "training" or "inference"
    filed_model: bool | None = None  # a model service on a filed (备案) model
    registry_tiers: frozenset[str] = frozenset()  # the tenant's tier is one of these
    startup_max_age_months: int | None = None  # the tenant was founded less than this long ago
    # Replaces the programme's cap for tenants of this tier; only a tier that depends on the tenant alone
    # (registry tier, start-up age) may set one, so each tenant has one cap a year.
    cap_enterprise_year_fen: int | None = None

    @property
    def tenant_only(self) -> bool:
        return self.domestic is None and self.workload is None and self.filed_model is None


@dataclass(frozen=True, slots=True)
class TenantRules:
    """Who may receive the programme's subsidy (empty = no condition)."""

    localities: tuple[str, ...] = ()  # GB/T 2260 division-code prefixes
    kinds: frozenset[str] = frozenset()  # organisation kinds
    sme_only: bool = False  # enterprises must be SMEs (institutes and public bodies are not sized)
    sme_exempt_tiers: frozenset[str] = (
        frozenset()
    )  # registry tiers exempt from sme_only (major-project leads)
    segments: frozenset[str] = frozenset()  # industry-chain segments, any of
    registry_tiers: frozenset[str] = frozenset()
    no_default_years: int | None = None  # no credit default recorded within this many years


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """Whose compute the programme pays for (empty = any). Affiliated providers never qualify."""

    designated: frozenset[str] = frozenset()  # provider codes
    regions: tuple[str, ...] = ()  # site-region prefixes, e.g. "zj-jiaxing"
    local_only: bool = False  # only providers local to the platform's region


@dataclass(frozen=True, slots=True)
class Programme:
    code: str
    ratio_bp: int
    tiers: tuple[Tier, ...] = ()
    cap_order_fen: int | None = None
    cap_enterprise_year_fen: int | None = None
    budget_fen: int = 0
    min_claim_fen: int = 0
    tenants: TenantRules = field(default_factory=TenantRules)
    providers: ProviderRules = field(default_factory=ProviderRules)
    excluded_kinds: frozenset[str] = frozenset({"storage", "network"})
    stacking: Stacking = Stacking.NONE
    stack_order: int = 0
    cadence: Cadence = Cadence.PER_JOB
    starts_on: date | None = None
    ends_on: date | None = None  # inclusive
    grant_validity_days: int | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    org_id: int
    kind: str
    locality_code: str
    is_sme: bool = False
    segments: frozenset[str] = frozenset()
    registry_tier: str | None = None
    founded_on: date | None = None
    affiliation_group: str | None = None
    last_default_on: date | None = None  # the latest credit default on record
    flagged: bool = False  # the regulator stopped its redemptions


@dataclass(frozen=True, slots=True)
class Line:
    """One part of an order: the charge on one pool."""

    key: str
    amount_fen: int
    provider_code: str
    provider_region: str
    provider_local: bool = True
    provider_affiliation: str | None = None
    kind: str = "compute"
    domestic: bool | None = None
    workload: str | None = None
    filed_model: bool | None = None
    earlier_subsidy_fen: int = 0  # what programmes earlier in the stacking order paid of this line
    earlier_exclusive: bool = False  # one of them does not stack: no later programme pays on this line


@dataclass(frozen=True, slots=True)
class Headroom:
    """What the tenant has already drawn, and what it can still draw."""

    enterprise_year_redeemed_fen: int = 0  # this programme, this tenant, this calendar year
    grant_available_fen: int = 0  # what the tenant's grant still holds
    grant_valid_from: datetime | None = None
    grant_valid_until: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class Refusal:
    amount_fen: int
    reason: Reason
    detail: str = ""  # e.g. which eligibility condition failed, or the ratio


@dataclass(frozen=True, slots=True)
class LineDecision:
    key: str
    charge_fen: int
    subsidy_fen: int
    tier: str | None
    refusals: tuple[Refusal, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    lines: tuple[LineDecision, ...]

    @property
    def subsidy_fen(self) -> int:
        return sum(line.subsidy_fen for line in self.lines)

    @property
    def charge_fen(self) -> int:
        return sum(line.charge_fen for line in self.lines)

    def refused(self) -> dict[Reason, int]:
        """Fen not subsidised, by reason."""
        totals: dict[Reason, int] = {}
        for line in self.lines:
            for refusal in line.refusals:
                totals[refusal.reason] = totals.get(refusal.reason, 0) + refusal.amount_fen
        return totals


# --- checks a programme must pass before it is stored ----------------------------------------------


def problems(programme: Programme) -> list[tuple[str, dict[str, object]]]:
    """What is wrong with a programme's parameters: (message key, parameters) for each problem."""
    found: list[tuple[str, dict[str, object]]] = []
    ratios = [("ratio_bp", programme.ratio_bp), *((f"tier {t.name}", t.ratio_bp) for t in programme.tiers)]
    for name, ratio in ratios:
        if not 0 < ratio <= BASIS_POINTS:
            found.append(("voucher.ratio-out-of-range", {"field": name, "value": ratio}))
    caps = {
        "cap_order_fen": programme.cap_order_fen,
        "cap_enterprise_year_fen": programme.cap_enterprise_year_fen,
        **{f"tier {t.name} cap": t.cap_enterprise_year_fen for t in programme.tiers},
    }
    for name, cap in caps.items():
        if cap is not None and cap <= 0:
            found.append(("voucher.cap-not-positive", {"field": name}))
        elif cap is not None and cap < programme.min_claim_fen:
            found.append(("voucher.cap-below-min-claim", {"field": name}))
    if programme.budget_fen <= 0:
        found.append(("voucher.budget-not-positive", {}))
    elif programme.min_claim_fen > programme.budget_fen:
        found.append(("voucher.cap-below-min-claim", {"field": "budget_fen"}))
    if programme.min_claim_fen < 0:
        found.append(("voucher.min-claim-negative", {}))
    if programme.starts_on and programme.ends_on and programme.ends_on < programme.starts_on:
        found.append(("voucher.period-reversed", {}))
    if programme.grant_validity_days is not None and programme.grant_validity_days <= 0:
        found.append(("voucher.validity-not-positive", {}))
    return found


def periods_overlap(a: Programme, b: Programme) -> bool:
    start_a, end_a = a.starts_on or date.min, a.ends_on or date.max
    start_b, end_b = b.starts_on or date.min, b.ends_on or date.max
    return start_a <= end_b and start_b <= end_a


def may_coexist(a: Programme, b: Programme) -> bool:
    """Two programmes may run at once only when both stack, each at its own place in the order."""
    if not periods_overlap(a, b):
        return True
    both_stack = a.stacking is Stacking.ORDERED and b.stacking is Stacking.ORDERED
    return both_stack and a.stack_order != b.stack_order


# --- eligibility ----------------------------------------------------------------------------------


def tenant_refusal(programme: Programme, tenant: Tenant, on: date) -> str | None:
    """Why the tenant may not receive the programme's subsidy on `on` (a Shanghai date), or None."""
    rules = programme.tenants
    if rules.localities and not tenant.locality_code.startswith(rules.localities):
        return "locality"
    if rules.kinds and tenant.kind not in rules.kinds:
        return "kind"
    if (
        rules.sme_only
        and tenant.kind == "enterprise"
        and not tenant.is_sme
        and tenant.registry_tier not in rules.sme_exempt_tiers
    ):
        return "sme"
    if rules.segments and not (rules.segments & tenant.segments):
        return "segment"
    if rules.registry_tiers and tenant.registry_tier not in rules.registry_tiers:
        return "tier"
    if (
        rules.no_default_years is not None
        and tenant.last_default_on is not None
        and tenant.last_default_on > _years_before(on, rules.no_default_years)
    ):
        return "credit-default"
    return None


def provider_refusal(programme: Programme, tenant: Tenant, line: Line) -> Refusal | None:
    rules = programme.providers
    if tenant.affiliation_group and tenant.affiliation_group == line.provider_affiliation:
        return Refusal(line.amount_fen, Reason.AFFILIATED, tenant.affiliation_group)
    if rules.designated and line.provider_code not in rules.designated:
        return Refusal(line.amount_fen, Reason.PROVIDER_INELIGIBLE, "designated")
    if rules.regions and not line.provider_region.startswith(rules.regions):
        return Refusal(line.amount_fen, Reason.PROVIDER_INELIGIBLE, "region")
    if rules.local_only and not line.provider_local:
        return Refusal(line.amount_fen, Reason.PROVIDER_INELIGIBLE, "local")
    return None


def tier_for(programme: Programme, tenant: Tenant, line: Line, on: date) -> Tier | None:
    """The first tier whose conditions all hold for this tenant and line."""
    for tier in programme.tiers:
        if tier.domestic is not None and line.domestic is not tier.domestic:
            continue
        if tier.workload is not None and line.workload != tier.workload:
            continue
        if tier.filed_model is not None and line.filed_model is not tier.filed_model:
            continue
        if tier.registry_tiers and tenant.registry_tier not in tier.registry_tiers:
            continue
        if tier.startup_max_age_months is not None and not _younger_than(
            tenant.founded_on, on, tier.startup_max_age_months
        ):
            continue
        return tier
    return None


def year_cap_for(programme: Programme, tenant: Tenant, on: date) -> int | None:
    """The tenant's annual cap: that of the first tier setting a cap whose (tenant-only) conditions the
    tenant meets, else the programme's."""
    for tier in programme.tiers:
        if tier.cap_enterprise_year_fen is None:
            continue
        if tier.registry_tiers and tenant.registry_tier not in tier.registry_tiers:
            continue
        if tier.startup_max_age_months is not None and not _younger_than(
            tenant.founded_on, on, tier.startup_max_age_months
        ):
            continue
        return tier.cap_enterprise_year_fen
    return programme.cap_enterprise_year_fen


# --- the decision ---------------------------------------------------------------------------------


def decide(
    programme: Programme, tenant: Tenant, lines: Sequence[Line], headroom: Headroom, at: datetime
) -> Decision:
    """The subsidy of each line of an order that ended at `at` (aware), with a reason for every fen not
    paid."""
    for line in lines:
        _check_line(line)
    if headroom.grant_available_fen < 0 or headroom.enterprise_year_redeemed_fen < 0:
        raise ValueError(f"negative headroom: {headroom}")
    on = at.astimezone(SHANGHAI).date()
    whole = _order_refusal(programme, tenant, headroom, at, on)
    if whole is not None:
        return Decision(tuple(_refused(line, Refusal(0, *whole)) for line in lines))
    order_left = programme.cap_order_fen
    year_cap = year_cap_for(programme, tenant, on)
    year_drawn = headroom.enterprise_year_redeemed_fen
    grant_left = headroom.grant_available_fen
    decided: list[LineDecision] = []
    for line in lines:
        refusal = _line_refusal(programme, tenant, line)
        if refusal is not None:
            decided.append(_refused(line, refusal))
            continue
        tier = tier_for(programme, tenant, line, on)
        ratio = tier.ratio_bp if tier else programme.ratio_bp
        eligible = line.amount_fen - line.earlier_subsidy_fen
        subsidy = eligible * ratio // BASIS_POINTS
        refusals = [
            Refusal(line.earlier_subsidy_fen, Reason.EARLIER_PROGRAMME),
            Refusal(eligible - subsidy, Reason.TENANT_SHARE, _percent(ratio)),
        ]
        limits = [
            (order_left, Reason.ORDER_CAP),
            (None if year_cap is None else max(0, year_cap - year_drawn), Reason.ENTERPRISE_YEAR_CAP),
            (grant_left, Reason.GRANT_EXHAUSTED),
        ]
        for limit, reason in limits:
            if limit is not None and subsidy > limit:
                refusals.append(Refusal(subsidy - limit, reason))
                subsidy = limit
        if order_left is not None:
            order_left -= subsidy
        year_drawn += subsidy
        grant_left -= subsidy
        decided.append(
            LineDecision(
                line.key,
                line.amount_fen,
                subsidy,
                tier.name if tier else None,
                _nonzero(*refusals),
            )
        )
    return Decision(tuple(decided))


def stack(
    decide_in_order: Sequence[tuple[Programme, Headroom]],
    tenant: Tenant,
    lines: Sequence[Line],
    at: datetime,
) -> list[tuple[Programme, Decision]]:
    """Apply several programmes to one order in their stacking order; each sees what the earlier ones
    paid, so their sum never exceeds the charge."""
    paid = {line.key: line.earlier_subsidy_fen for line in lines}
    exclusive = {line.key: line.earlier_exclusive for line in lines}
    results: list[tuple[Programme, Decision]] = []
    for programme, headroom in sorted(decide_in_order, key=lambda p: p[0].stack_order):
        current = [
            replace(line, earlier_subsidy_fen=paid[line.key], earlier_exclusive=exclusive[line.key])
            for line in lines
        ]
        decision = decide(programme, tenant, current, headroom, at)
        for line in decision.lines:
            paid[line.key] += line.subsidy_fen
            # A programme that does not stack closes the line to every later programme too.
            exclusive[line.key] |= bool(line.subsidy_fen) and programme.stacking is Stacking.NONE
        results.append((programme, decision))
    return results


def _order_refusal(
    programme: Programme, tenant: Tenant, headroom: Headroom, at: datetime, on: date
) -> tuple[Reason, str] | None:
    if tenant.flagged:
        return Reason.TENANT_FLAGGED, ""
    why = tenant_refusal(programme, tenant, on)
    if why is not None:
        return Reason.TENANT_INELIGIBLE, why
    if (headroom.grant_valid_from is not None and at < headroom.grant_valid_from) or (
        headroom.grant_valid_until is not None and at >= headroom.grant_valid_until
    ):
        return Reason.NOT_IN_VALIDITY, ""
    return None


def _line_refusal(programme: Programme, tenant: Tenant, line: Line) -> Refusal | None:
    """Why nothing of the line is paid (the amount is filled in by `_refused`), or None."""
    if line.kind in programme.excluded_kinds:
        return Refusal(0, Reason.EXCLUDED_KIND, line.kind)
    provider = provider_refusal(programme, tenant, line)
    if provider is not None:
        return replace(provider, amount_fen=0)
    if line.earlier_subsidy_fen and (programme.stacking is Stacking.NONE or line.earlier_exclusive):
        return Refusal(0, Reason.NO_STACKING)
    return None


def _refused(line: Line, why: Refusal) -> LineDecision:
    """A line of which nothing is paid: what earlier programmes paid stays theirs, the rest is refused."""
    earlier = Refusal(line.earlier_subsidy_fen, Reason.EARLIER_PROGRAMME)
    rest = replace(why, amount_fen=line.amount_fen - line.earlier_subsidy_fen)
    return LineDecision(line.key, line.amount_fen, 0, None, _nonzero(earlier, rest))


def _check_line(line: Line) -> None:
    if line.amount_fen < 0 or not 0 <= line.earlier_subsidy_fen <= line.amount_fen:
        raise ValueError(f"line {line.key}: amount {line.amount_fen}, earlier {line.earlier_subsidy_fen}")


def _nonzero(*refusals: Refusal) -> tuple[Refusal, ...]:
    return tuple(r for r in refusals if r.amount_fen)


def _percent(ratio_bp: int) -> str:
    whole, rest = divmod(ratio_bp, 100)
    return f"{whole}%" if not rest else f"{whole}.{rest:02d}".rstrip("0") + "%"


def _years_before(on: date, years: int) -> date:
    try:
        return on.replace(year=on.year - years)
    except ValueError:  # 29 February
        return on.replace(year=on.year - years, day=28)


def _younger_than(founded_on: date | None, on: date, months: int) -> bool:
    if founded_on is None:
        return False
    age = (on.year - founded_on.year) * 12 + on.month - founded_on.month - (on.day < founded_on.day)
    return 0 <= age < months
