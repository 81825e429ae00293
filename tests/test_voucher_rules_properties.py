"""Properties of the pure compute-voucher rules over random programmes, tenants, orders and headroom.

Whatever the programme: every fen of a line is either subsidised or refused for a reason; the subsidy
never exceeds the ratio, the caps or the grant; programmes stacked on one order never pay more than
the charge; a flagged tenant gets nothing; and more money in the grant never means less subsidy.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanwang.timeutil import SHANGHAI
from suanwang.vouchers import rules
from suanwang.vouchers.rules import (
    BASIS_POINTS,
    Decision,
    Headroom,
    Line,
    Programme,
    ProviderRules,
    Reason,
    Refusal,
    Stacking,
    Tenant,
    TenantRules,
    Tier,
)

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ORG_KINDS = ("enterprise", "research_institute", "university", "government_unit")
LOCALITIES = ("330482", "330481", "330106", "110108", "310115")
SEGMENTS = ("software_it", "manufacturing", "finance")
REGISTRY_TIERS = ("innovative_sme", "little_giant", "leader", "major_project_lead_a")
LINE_KINDS = ("compute", "storage", "network", "inference")
PROVIDERS = ("dc-1", "dc-2", "dc-3")
REGIONS = ("zj-pinghu", "zj-jiaxing", "gz-guiyang")
GROUPS = (None, "g1", "g2")
ORDER_REFUSALS = {Reason.TENANT_FLAGGED, Reason.TENANT_INELIGIBLE, Reason.NOT_IN_VALIDITY}

T = TypeVar("T")
World = tuple[Programme, Tenant, list[Line], Headroom, datetime]  # one order and everything it is decided on
Stack = tuple[list[tuple[Programme, Headroom]], Tenant, list[Line], datetime]


def mostly(common: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`common` three draws in four, else `rare`: most orders reach the ratio and the caps, and the
    refusals still come up often."""
    return st.integers(0, 3).flatmap(lambda n: rare if n == 3 else common)


ratios = st.integers(1, BASIS_POINTS)
fen = mostly(st.integers(10_000, 10**9), st.integers(0, 10**9))
caps = mostly(st.none(), st.integers(1, 10**9))
maybe_bool = st.none() | st.booleans()
# Dates 2015-2027 and aware moments 2024-2026, drawn as offsets (much cheaper than st.dates/st.datetimes).
days = st.integers(0, 13 * 366).map(lambda d: date(2015, 1, 1) + timedelta(days=d))
moments = st.integers(0, 3 * 366 * 86_400).map(
    lambda s: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
)


@st.composite
def tiers(draw: st.DrawFn, name: str) -> Tier:
    """A tier on the tenant alone (which may set the tenant's annual cap), or on the line."""
    if draw(st.booleans()):
        return Tier(
            name,
            draw(ratios),
            registry_tiers=draw(st.frozensets(st.sampled_from(REGISTRY_TIERS), max_size=2)),
            startup_max_age_months=draw(st.none() | st.integers(1, 120)),
            cap_enterprise_year_fen=draw(caps),
        )
    return Tier(
        name,
        draw(ratios),
        domestic=draw(maybe_bool),
        workload=draw(st.none() | st.sampled_from(("training", "inference"))),
        filed_model=draw(maybe_bool),
    )


# No condition, or one condition at a time (several at once would refuse nearly every tenant).
tenant_rules = mostly(
    st.just(TenantRules()),
    st.one_of(
        st.lists(st.sampled_from(("3304", "330482", "11", "33")), min_size=1, max_size=2).map(
            lambda found: TenantRules(localities=tuple(found))
        ),
        st.frozensets(st.sampled_from(ORG_KINDS), min_size=1, max_size=3).map(lambda k: TenantRules(kinds=k)),
        st.just(TenantRules(sme_only=True)),
        st.frozensets(st.sampled_from(SEGMENTS), min_size=1).map(lambda s: TenantRules(segments=s)),
        st.frozensets(st.sampled_from(REGISTRY_TIERS), min_size=1).map(
            lambda r: TenantRules(registry_tiers=r)
        ),
        st.integers(1, 5).map(lambda years: TenantRules(no_default_years=years)),
    ),
)
provider_rules = mostly(
    st.just(ProviderRules()),
    st.one_of(
        st.frozensets(st.sampled_from(PROVIDERS), min_size=1, max_size=2).map(
            lambda d: ProviderRules(designated=d)
        ),
        st.lists(st.sampled_from(("zj-", "zj-pinghu", "gz-")), min_size=1, max_size=2).map(
            lambda found: ProviderRules(regions=tuple(found))
        ),
        st.just(ProviderRules(local_only=True)),
    ),
)


@st.composite
def programmes(
    draw: st.DrawFn, code: str = "p", stacking: st.SearchStrategy[Stacking] = st.sampled_from(Stacking)
) -> Programme:
    return Programme(
        code=code,
        ratio_bp=draw(ratios),
        tiers=tuple(draw(tiers(f"t{i}")) for i in range(draw(st.integers(0, 3)))),
        cap_order_fen=draw(caps),
        cap_enterprise_year_fen=draw(mostly(st.none(), st.integers(1, 10**10))),
        budget_fen=10**12,
        tenants=draw(tenant_rules),
        providers=draw(provider_rules),
        excluded_kinds=draw(
            mostly(
                st.just(frozenset({"storage", "network"})),
                st.frozensets(st.sampled_from(LINE_KINDS), max_size=2),
            )
        ),
        stacking=draw(stacking),
        stack_order=draw(st.integers(0, 3)),
    )


@st.composite
def tenants(draw: st.DrawFn, flagged: bool | None = None) -> Tenant:
    return Tenant(
        org_id=1,
        kind=draw(st.sampled_from(ORG_KINDS)),
        locality_code=draw(st.sampled_from(LOCALITIES)),
        is_sme=draw(st.booleans()),
        segments=draw(st.frozensets(st.sampled_from(SEGMENTS), max_size=2)),
        registry_tier=draw(st.none() | st.sampled_from(REGISTRY_TIERS)),
        founded_on=draw(st.none() | days),
        affiliation_group=draw(st.sampled_from(GROUPS)),
        last_default_on=draw(st.none() | days),
        flagged=draw(mostly(st.just(False), st.booleans())) if flagged is None else flagged,
    )


@st.composite
def orders(draw: st.DrawFn, min_lines: int = 0) -> list[Line]:
    """The lines of one order (distinct keys); some were partly paid by earlier programmes."""
    lines = []
    for i in range(draw(st.integers(min_lines, 6))):
        amount = draw(fen)
        lines.append(
            Line(
                key=f"l{i}",
                amount_fen=amount,
                provider_code=draw(st.sampled_from(PROVIDERS)),
                provider_region=draw(st.sampled_from(REGIONS)),
                provider_local=draw(mostly(st.just(True), st.just(False))),
                provider_affiliation=draw(mostly(st.none(), st.sampled_from(GROUPS))),
                kind=draw(mostly(st.just("compute"), st.sampled_from(LINE_KINDS))),
                domestic=draw(maybe_bool),
                workload=draw(st.none() | st.sampled_from(("training", "inference"))),
                filed_model=draw(maybe_bool),
                earlier_subsidy_fen=draw(mostly(st.just(0), st.integers(0, amount))),
            )
        )
    return lines


@st.composite
def headrooms(draw: st.DrawFn, at: datetime) -> Headroom:
    near = st.integers(-3 * 86_400, 3 * 86_400).map(lambda s: at + timedelta(seconds=s))
    valid_from, valid_until = draw(
        mostly(st.just((None, None)), st.tuples(st.none() | near, st.none() | near))
    )
    return Headroom(
        enterprise_year_redeemed_fen=draw(mostly(st.just(0), st.integers(0, 10**10))),
        grant_available_fen=draw(mostly(st.integers(10**9, 10**11), st.integers(0, 10**9))),
        grant_valid_from=valid_from,
        grant_valid_until=valid_until,
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    at = draw(moments)
    return draw(programmes()), draw(tenants()), draw(orders(min_lines=1)), draw(headrooms(at)), at


def max_ratio(programme: Programme) -> int:
    return max([programme.ratio_bp, *(t.ratio_bp for t in programme.tiers)])


def limits(programme: Programme, tenant: Tenant, headroom: Headroom, at: datetime) -> list[int]:
    """What the order may be paid at most: per order, the rest of the tenant's annual cap, the grant."""
    found = [headroom.grant_available_fen]
    if programme.cap_order_fen is not None:
        found.append(programme.cap_order_fen)
    cap = rules.year_cap_for(programme, tenant, at.astimezone(SHANGHAI).date())
    if cap is not None:
        found.append(max(0, cap - headroom.enterprise_year_redeemed_fen))
    return found


def line_refusal(programme: Programme, tenant: Tenant, line: Line) -> Reason | None:
    """The reason a whole line is refused, stated independently of the rules module."""
    if line.kind in programme.excluded_kinds:
        return Reason.EXCLUDED_KIND
    if tenant.affiliation_group is not None and tenant.affiliation_group == line.provider_affiliation:
        return Reason.AFFILIATED
    providers = programme.providers
    if (
        (providers.designated and line.provider_code not in providers.designated)
        or (providers.regions and not any(line.provider_region.startswith(r) for r in providers.regions))
        or (providers.local_only and not line.provider_local)
    ):
        return Reason.PROVIDER_INELIGIBLE
    if line.earlier_subsidy_fen > 0 and programme.stacking is Stacking.NONE:
        return Reason.NO_STACKING
    return None


def assert_accounted(decision: Decision, lines: list[Line]) -> None:
    """(a) every fen of every line is subsidised or refused; (c) nothing paid twice."""
    assert [d.key for d in decision.lines] == [line.key for line in lines]
    for decided, line in zip(decision.lines, lines, strict=True):
        assert decided.charge_fen == line.amount_fen
        assert decided.charge_fen == decided.subsidy_fen + sum(r.amount_fen for r in decided.refusals)
        assert decided.subsidy_fen >= 0
        assert all(r.amount_fen > 0 for r in decided.refusals)
        assert decided.subsidy_fen <= line.amount_fen - line.earlier_subsidy_fen


@PROPERTIES
@given(worlds())
def test_every_fen_is_subsidised_or_refused(world: World) -> None:
    programme, tenant, lines, headroom, at = world
    decision = rules.decide(programme, tenant, lines, headroom, at)
    assert_accounted(decision, lines)
    for decided, line in zip(decision.lines, lines, strict=True):
        assert (
            decided.subsidy_fen
            <= (line.amount_fen - line.earlier_subsidy_fen) * max_ratio(programme) // BASIS_POINTS
        )
        if decided.tier is not None:
            assert decided.tier in {t.name for t in programme.tiers}


@PROPERTIES
@given(worlds())
def test_total_within_ratio_caps_and_grant(world: World) -> None:
    """(b) the order's subsidy is at most the best ratio of what is eligible, and at most each limit."""
    programme, tenant, lines, headroom, at = world
    decision = rules.decide(programme, tenant, lines, headroom, at)
    by_ratio = sum(
        (line.amount_fen - line.earlier_subsidy_fen) * max_ratio(programme) // BASIS_POINTS for line in lines
    )
    assert decision.subsidy_fen <= min([by_ratio, *limits(programme, tenant, headroom, at)])


@PROPERTIES
@given(worlds())
def test_caps_fill_greedily(world: World) -> None:
    """Lines are paid in order until a limit is reached: the total is the lesser of what the ratios give
    the lines that qualify and the tightest limit; and a line refused as a whole is refused for one reason."""
    programme, tenant, lines, headroom, at = world
    decision = rules.decide(programme, tenant, lines, headroom, at)
    reasons = {r.reason for d in decision.lines for r in d.refusals}
    outside = (headroom.grant_valid_from is not None and at < headroom.grant_valid_from) or (
        headroom.grant_valid_until is not None and at >= headroom.grant_valid_until
    )
    if (tenant.flagged or outside) and any(line.amount_fen for line in lines):
        assert reasons & ORDER_REFUSALS
    if reasons & ORDER_REFUSALS:
        assert decision.subsidy_fen == 0
        # One reason per line, besides what earlier programmes paid (theirs, not refused).
        assert all(
            len({r.reason for r in d.refusals} - {Reason.EARLIER_PROGRAMME}) == 1
            for d, line in zip(decision.lines, lines, strict=True)
            if d.charge_fen > line.earlier_subsidy_fen
        )
        return
    ratio_of = {t.name: t.ratio_bp for t in programme.tiers}
    by_ratio = 0
    for decided, line in zip(decision.lines, lines, strict=True):
        refused = line_refusal(programme, tenant, line)
        if refused is not None:
            assert decided.subsidy_fen == 0
            earlier = [Reason.EARLIER_PROGRAMME] if line.earlier_subsidy_fen else []
            rest = [refused] if line.amount_fen > line.earlier_subsidy_fen else []
            assert [r.reason for r in decided.refusals] == earlier + rest
            continue
        ratio = ratio_of[decided.tier] if decided.tier else programme.ratio_bp
        by_ratio += (line.amount_fen - line.earlier_subsidy_fen) * ratio // BASIS_POINTS
    assert decision.subsidy_fen == min([by_ratio, *limits(programme, tenant, headroom, at)])


@st.composite
def stacks(draw: st.DrawFn) -> Stack:
    at = draw(moments)
    stacking = mostly(st.just(Stacking.ORDERED), st.sampled_from(Stacking))
    count = draw(st.integers(2, 4))
    stacked = [(draw(programmes(f"p{i}", stacking)), draw(headrooms(at))) for i in range(count)]
    return stacked, draw(tenants()), draw(orders(min_lines=1)), at


@PROPERTIES
@given(stacks())
def test_stacked_programmes_never_pay_more_than_the_charge(world: Stack) -> None:
    """(d) programmes applied in their stacking order each see what the earlier ones paid."""
    stacked, tenant, lines, at = world
    results = rules.stack(stacked, tenant, lines, at)
    assert [p.stack_order for p, _ in results] == sorted(p.stack_order for p, _ in stacked)
    paid = {line.key: line.earlier_subsidy_fen for line in lines}
    for _, decision in results:  # each sees, as paid before, what the lines came with and earlier ones paid
        assert_accounted(decision, [replace(line, earlier_subsidy_fen=paid[line.key]) for line in lines])
        for decided in decision.lines:
            paid[decided.key] += decided.subsidy_fen
    for i, line in enumerate(lines):
        by_programmes = sum(decision.lines[i].subsidy_fen for _, decision in results)
        assert line.earlier_subsidy_fen + by_programmes <= line.amount_fen


@PROPERTIES
@given(programmes(), tenants(flagged=True), orders(), moments, st.data())
def test_a_flagged_tenant_gets_nothing(
    programme: Programme, tenant: Tenant, lines: list[Line], at: datetime, data: st.DataObject
) -> None:
    """(e) every fen of every line is refused, as flagged."""
    decision = rules.decide(programme, tenant, lines, data.draw(headrooms(at)), at)
    assert decision.subsidy_fen == 0
    for decided, line in zip(decision.lines, lines, strict=True):
        expected = [
            Refusal(line.earlier_subsidy_fen, Reason.EARLIER_PROGRAMME),
            Refusal(line.amount_fen - line.earlier_subsidy_fen, Reason.TENANT_FLAGGED),
        ]
        assert decided.refusals == tuple(r for r in expected if r.amount_fen)


@PROPERTIES
@given(worlds(), st.integers(0, 10**10), st.integers(0, 10**10))
def test_more_headroom_never_lowers_the_subsidy(world: World, more_grant: int, less_drawn: int) -> None:
    """(f) a fuller grant, or less drawn this year, never lowers the order's subsidy."""
    programme, tenant, lines, headroom, at = world
    before = rules.decide(programme, tenant, lines, headroom, at).subsidy_fen
    fuller = replace(headroom, grant_available_fen=headroom.grant_available_fen + more_grant)
    assert rules.decide(programme, tenant, lines, fuller, at).subsidy_fen >= before
    drawn = max(0, headroom.enterprise_year_redeemed_fen - less_drawn)
    undrawn = replace(headroom, enterprise_year_redeemed_fen=drawn)
    assert rules.decide(programme, tenant, lines, undrawn, at).subsidy_fen >= before
