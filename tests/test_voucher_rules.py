"""The pure compute-voucher rules, case by case, for every shipped preset (see presets.toml).

Every case is a row of a table: the tenant, the lines of one order, the headroom, and the outcome of
each line hand-computed from the rule in `suanwang.vouchers.rules` (the subsidy, the tier that set the
ratio, and the fen refused by reason). Money is fen; `yuan(n)` is n yuan. A parameter a preset leaves
open (its `required`) is stated here, next to the programme it completes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import suanwang.vouchers
from suanwang.timeutil import SHANGHAI
from suanwang.vouchers import rules
from suanwang.vouchers.rules import Decision, Headroom, Line, LineDecision, Programme, Reason, Tenant, Tier

PRESETS: dict[str, dict[str, Any]] = tomllib.loads(
    (Path(suanwang.vouchers.__file__).parent / "presets.toml").read_text(encoding="utf-8")
)

# --- building programmes from presets ---------------------------------------------------------------

_DESCRIPTIVE = ("name", "name_en", "issuer", "source", "notes", "required")
_PLAIN = (
    "ratio_bp",
    "cap_order_fen",
    "cap_enterprise_year_fen",
    "budget_fen",
    "min_claim_fen",
    "stack_order",
    "grant_validity_days",
)


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _tier(spec: Mapping[str, Any]) -> Tier:
    return Tier(**{**spec, "registry_tiers": frozenset(spec.get("registry_tiers", ()))})


def _tenant_rules(spec: Mapping[str, Any]) -> rules.TenantRules:
    return rules.TenantRules(
        localities=tuple(spec.get("localities", ())),
        kinds=frozenset(spec.get("kinds", ())),
        sme_only=spec.get("sme_only", False),
        sme_exempt_tiers=frozenset(spec.get("sme_exempt_tiers", ())),
        segments=frozenset(spec.get("segments", ())),
        registry_tiers=frozenset(spec.get("registry_tiers", ())),
        no_default_years=spec.get("no_default_years"),
    )


def _provider_rules(spec: Mapping[str, Any]) -> rules.ProviderRules:
    return rules.ProviderRules(
        designated=frozenset(spec.get("designated", ())),
        regions=tuple(spec.get("regions", ())),
        local_only=spec.get("local_only", False),
    )


def from_preset(name: str, given: Mapping[str, Any] | None = None) -> Programme:
    """The preset as a `rules.Programme`, with what the test states for each of its `required` values
    (dotted names such as "provider_rules.designated" set a key of a table)."""
    given = dict(given or {})
    values = {k: v for k, v in PRESETS[name].items() if k not in _DESCRIPTIVE}
    missing = [r for r in PRESETS[name].get("required", ()) if r not in given]
    assert not missing, f"{name}: the test must state {missing}"
    for key, value in given.items():
        table, _, sub = key.partition(".")
        if sub:
            values[table] = {**values.get(table, {}), sub: value}
        else:
            values[key] = value
    fields: dict[str, Any] = {"code": name}
    for key, value in values.items():
        if key in _PLAIN:
            fields[key] = value
        elif key == "tiers":
            fields[key] = tuple(_tier(t) for t in value)
        elif key == "tenant_rules":
            fields["tenants"] = _tenant_rules(value)
        elif key == "provider_rules":
            fields["providers"] = _provider_rules(value)
        elif key == "excluded_kinds":
            fields[key] = frozenset(value)
        elif key == "stacking":
            fields[key] = rules.Stacking(value)
        elif key == "cadence":
            fields[key] = rules.Cadence(value)
        elif key in ("starts_on", "ends_on"):
            fields[key] = _date(value)
        else:
            raise AssertionError(f"{name}: preset key {key!r} is not mapped to the rules")
    return Programme(**fields)


# --- tables -----------------------------------------------------------------------------------------


def yuan(amount: int) -> int:
    return amount * 100


PLENTY = yuan(1_000_000_000)  # a grant that never limits
_SHORT = {
    "flagged": Reason.TENANT_FLAGGED,
    "ineligible": Reason.TENANT_INELIGIBLE,
    "validity": Reason.NOT_IN_VALIDITY,
    "excluded": Reason.EXCLUDED_KIND,
    "provider": Reason.PROVIDER_INELIGIBLE,
    "affiliated": Reason.AFFILIATED,
    "earlier": Reason.EARLIER_PROGRAMME,
    "no_stacking": Reason.NO_STACKING,
    "share": Reason.TENANT_SHARE,
    "order_cap": Reason.ORDER_CAP,
    "year_cap": Reason.ENTERPRISE_YEAR_CAP,
    "grant": Reason.GRANT_EXHAUSTED,
}


@dataclass(frozen=True)
class Out:
    """The expected outcome of one line."""

    subsidy: int
    refused: dict[Reason, int]
    tier: str | None = None
    detail: str | None = None  # a refusal carries this detail (which condition failed)


def out(subsidy: int, tier: str | None = None, detail: str | None = None, **refused: int) -> Out:
    return Out(subsidy, {_SHORT[k]: v for k, v in refused.items()}, tier, detail)


@dataclass(frozen=True)
class Case:
    tenant: Tenant
    lines: Sequence[Line]
    expect: Sequence[Out]
    headroom: Headroom = field(default_factory=lambda: Headroom(grant_available_fen=PLENTY))


def row(
    id: str,
    tenant: Tenant,
    lines: Line | Sequence[Line],
    *expect: Out,
    at: datetime | None = None,
    **headroom: Any,
) -> Any:
    lines = [lines] if isinstance(lines, Line) else list(lines)
    room = Headroom(**{"grant_available_fen": PLENTY, **headroom})
    return pytest.param(Case(tenant, lines, expect, room), at, id=id)


def noon(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, tzinfo=SHANGHAI)


def org(locality: str, kind: str = "enterprise", **facts: Any) -> Tenant:
    return Tenant(org_id=1, kind=kind, locality_code=locality, **facts)


def line(amount: int, key: str = "a", provider: str = "dc-1", region: str = "local", **facts: Any) -> Line:
    return Line(key=key, amount_fen=amount, provider_code=provider, provider_region=region, **facts)


def refused_by_reason(decided: LineDecision) -> dict[Reason, int]:
    totals: dict[Reason, int] = {}
    for refusal in decided.refusals:
        totals[refusal.reason] = totals.get(refusal.reason, 0) + refusal.amount_fen
    return totals


def check(decision: Decision, lines: Sequence[Line], expect: Sequence[Out]) -> None:
    assert [d.key for d in decision.lines] == [line.key for line in lines]
    for decided, source, want in zip(decision.lines, lines, expect, strict=True):
        assert decided.charge_fen == source.amount_fen
        assert decided.charge_fen == decided.subsidy_fen + sum(r.amount_fen for r in decided.refusals)
        assert all(r.amount_fen > 0 for r in decided.refusals)
        got = (decided.subsidy_fen, refused_by_reason(decided), decided.tier)
        assert got == (want.subsidy, want.refused, want.tier), decided.key
        if want.detail is not None:
            assert want.detail in {r.detail for r in decided.refusals}


def run(programme: Programme, case: Case, at: datetime) -> None:
    check(rules.decide(programme, case.tenant, case.lines, case.headroom, at), case.lines, case.expect)


# --- the presets themselves -------------------------------------------------------------------------

# What each preset leaves open, stated once (the ratios are examples a regulator could choose).
FULL_YEAR_2025 = {"starts_on": date(2025, 1, 1), "ends_on": date(2025, 12, 31)}
CHENGDU_CENTRES = ["chengdu-supercomputing", "chengdu-ai"]
CHENGDU_2023 = from_preset(
    "chengdu-2023",
    {
        "ratio_bp": 2000,
        "starts_on": date(2023, 1, 1),
        "ends_on": date(2023, 12, 31),
        "provider_rules.designated": CHENGDU_CENTRES,
    },
)
CHENGDU_2025 = from_preset("chengdu-2025", FULL_YEAR_2025)
SHENZHEN_2024 = from_preset("shenzhen-2024", {"starts_on": date(2024, 1, 1), "ends_on": date(2024, 12, 31)})
SHANGHAI_CITY = from_preset("shanghai-2025-city", {"budget_fen": yuan(100_000_000), **FULL_YEAR_2025})
SHANGHAI_DISTRICT = from_preset("shanghai-2025-district", {"budget_fen": yuan(20_000_000), **FULL_YEAR_2025})
JIAXING = from_preset("jiaxing", {"ratio_bp": 3000, "budget_fen": yuan(20_000_000), **FULL_YEAR_2025})
LINPING = from_preset("hangzhou-linping", {"budget_fen": yuan(10_000_000), **FULL_YEAR_2025})
BEIJING_2023 = from_preset("beijing-2023", {"ratio_bp": 2000, "budget_fen": yuan(100_000_000)})
HANGZHOU_2025 = from_preset("hangzhou-2025", {"budget_fen": yuan(250_000_000), **FULL_YEAR_2025})
QINGYANG_2024 = from_preset(
    "qingyang-2024",
    {"budget_fen": yuan(50_000_000), "starts_on": date(2024, 1, 1), "ends_on": date(2024, 12, 31)},
)
PINGHU_2026 = from_preset("pinghu-2026")
ALL = {
    "chengdu-2023": CHENGDU_2023,
    "chengdu-2025": CHENGDU_2025,
    "shenzhen-2024": SHENZHEN_2024,
    "shanghai-2025-city": SHANGHAI_CITY,
    "shanghai-2025-district": SHANGHAI_DISTRICT,
    "jiaxing": JIAXING,
    "hangzhou-linping": LINPING,
    "beijing-2023": BEIJING_2023,
    "hangzhou-2025": HANGZHOU_2025,
    "qingyang-2024": QINGYANG_2024,
    "pinghu-2026": PINGHU_2026,
}


def test_every_preset_is_covered() -> None:
    assert set(ALL) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(ALL))
def test_completed_presets_have_no_problems(name: str) -> None:
    assert rules.problems(ALL[name]) == []
    for tier in ALL[name].tiers:  # creation refuses a cap on a tier that depends on the line
        assert tier.cap_enterprise_year_fen is None or tier.tenant_only


def test_a_preset_without_its_required_values_is_not_a_programme() -> None:
    with pytest.raises(AssertionError, match="ratio_bp"):
        from_preset("beijing-2023", {"budget_fen": 1})


def test_presets_map_to_the_rules() -> None:
    assert PINGHU_2026.providers == rules.ProviderRules(local_only=True)
    assert PINGHU_2026.tenants == rules.TenantRules(
        localities=("330482",),
        kinds=frozenset({"enterprise", "research_institute", "university"}),
        sme_only=True,
        no_default_years=3,
    )
    assert (PINGHU_2026.starts_on, PINGHU_2026.ends_on) == (date(2026, 1, 1), date(2026, 12, 31))
    assert PINGHU_2026.tiers == (Tier("domestic-chips", 6000, domestic=True),)
    assert CHENGDU_2023.providers.designated == frozenset(CHENGDU_CENTRES)
    assert CHENGDU_2023.tiers[0].registry_tiers == frozenset({"major_project_lead_a"})
    assert QINGYANG_2024.cadence is rules.Cadence.QUARTERLY
    assert QINGYANG_2024.min_claim_fen == yuan(5_000)
    assert BEIJING_2023.stacking is rules.Stacking.NONE
    assert BEIJING_2023.excluded_kinds == frozenset({"storage", "network"})
    assert CHENGDU_2025.excluded_kinds == frozenset({"storage", "network"})  # the default
    assert (SHANGHAI_CITY.stacking, SHANGHAI_CITY.stack_order) == (rules.Stacking.ORDERED, 1)
    assert (SHANGHAI_DISTRICT.stacking, SHANGHAI_DISTRICT.stack_order) == (rules.Stacking.ORDERED, 2)
    assert rules.may_coexist(SHANGHAI_CITY, SHANGHAI_DISTRICT)


CASE = ("case", "at")

# --- Chengdu 2023: SMEs, makers, institutes, universities at the two designated centres; major-project
# leads 30 % with their own annual caps (3M / 1.5M yuan). The SME ratio is stated above (20 %).

CD_SME = org("510104", is_sme=True)
CD_LINE = line(100_000, provider="chengdu-ai")
LEAD_A = replace(CD_SME, registry_tier="major_project_lead_a")
LEAD_B = replace(CD_SME, registry_tier="major_project_lead_b")


@pytest.mark.parametrize(
    CASE,
    [
        row("sme-20pct", CD_SME, CD_LINE, out(20_000, share=80_000)),
        row(
            "other-centre",
            CD_SME,
            replace(CD_LINE, provider_code="chengdu-supercomputing"),
            out(20_000, share=80_000),
        ),
        row("institute-not-sized", org("510104", "research_institute"), CD_LINE, out(20_000, share=80_000)),
        row("university-not-sized", org("510104", "university"), CD_LINE, out(20_000, share=80_000)),
        row("large-enterprise", org("510104"), CD_LINE, out(0, detail="sme", ineligible=100_000)),
        row(
            "government-unit",
            org("510104", "government_unit"),
            CD_LINE,
            out(0, detail="kind", ineligible=100_000),
        ),
        row(
            "centre-not-designated",
            CD_SME,
            replace(CD_LINE, provider_code="beijing-dc"),
            out(0, detail="designated", provider=100_000),
        ),
        row(
            "lead-a-30pct",
            LEAD_A,
            line(yuan(1_000_000), provider="chengdu-ai"),
            out(yuan(300_000), "major-project-lead-a", share=yuan(700_000)),
        ),
        row(
            "lead-a-capped-at-3m",
            LEAD_A,
            line(yuan(20_000_000), provider="chengdu-ai"),
            out(yuan(3_000_000), "major-project-lead-a", share=yuan(14_000_000), year_cap=yuan(3_000_000)),
        ),
        row(
            "lead-a-not-held-to-b-cap",
            LEAD_A,
            line(yuan(1_000_000), provider="chengdu-ai"),
            out(yuan(300_000), "major-project-lead-a", share=yuan(700_000)),
            enterprise_year_redeemed_fen=yuan(2_000_000),
        ),
        row(
            "lead-b-capped-at-1.5m",
            LEAD_B,
            line(yuan(1_000_000), provider="chengdu-ai"),
            out(yuan(100_000), "major-project-lead-b", share=yuan(700_000), year_cap=yuan(200_000)),
            enterprise_year_redeemed_fen=yuan(1_400_000),
        ),
        row(
            "lead-b-cap-drawn",
            LEAD_B,
            line(yuan(10_000), provider="chengdu-ai"),
            out(0, "major-project-lead-b", share=yuan(7_000), year_cap=yuan(3_000)),
            enterprise_year_redeemed_fen=yuan(1_500_000),
        ),
        row(
            "sme-has-no-annual-cap",
            CD_SME,
            line(yuan(10_000_000), provider="chengdu-ai"),
            out(yuan(2_000_000), share=yuan(8_000_000)),
            enterprise_year_redeemed_fen=yuan(50_000_000),
        ),
        row(
            "sme-grant-limits",
            CD_SME,
            line(yuan(10_000), provider="chengdu-ai"),
            out(yuan(1_000), share=yuan(8_000), grant=yuan(1_000)),
            grant_available_fen=yuan(1_000),
        ),
        # Lead organisations of major projects may be large: their tiers are exempt from `sme_only`.
        row(
            "large-enterprise-lead",
            replace(LEAD_A, is_sme=False),
            line(yuan(1_000_000), provider="chengdu-ai"),
            out(yuan(300_000), "major-project-lead-a", share=yuan(700_000)),
        ),
        row(
            "large-enterprise-not-a-lead",
            replace(CD_SME, is_sme=False),
            line(yuan(1_000_000), provider="chengdu-ai"),
            out(0, detail="sme", ineligible=yuan(1_000_000)),
        ),
    ],
)
def test_chengdu_2023(case: Case, at: datetime | None) -> None:
    run(CHENGDU_2023, case, at or noon(2023, 6, 15))


@pytest.mark.parametrize(
    ("tenant", "cap"),
    [
        (CD_SME, None),
        (LEAD_A, yuan(3_000_000)),
        (LEAD_B, yuan(1_500_000)),
        (replace(CD_SME, registry_tier="leader"), None),
    ],
)
def test_chengdu_2023_year_cap_per_tenant(tenant: Tenant, cap: int | None) -> None:
    assert rules.year_cap_for(CHENGDU_2023, tenant, date(2023, 6, 15)) == cap


# --- Chengdu 2025: 60 %, 5M yuan per buyer per year, anyone.

CD25 = org("510107")


@pytest.mark.parametrize(
    CASE,
    [
        row("60pct", CD25, line(100_000), out(60_000, share=40_000)),
        row("rounds-down", CD25, line(33), out(19, share=14)),
        row("any-kind", org("510107", "government_unit"), line(100_000), out(60_000, share=40_000)),
        row(
            "near-year-cap",
            CD25,
            line(yuan(1_000_000)),
            out(yuan(100_000), share=yuan(400_000), year_cap=yuan(500_000)),
            enterprise_year_redeemed_fen=yuan(4_900_000),
        ),
        row(
            "year-cap-across-lines",
            CD25,
            [line(yuan(500_000), "a"), line(yuan(500_000), "b")],
            out(yuan(300_000), share=yuan(200_000)),
            out(yuan(200_000), share=yuan(200_000), year_cap=yuan(100_000)),
            enterprise_year_redeemed_fen=yuan(4_500_000),
        ),
        row(
            "storage-and-network-excluded-by-default",
            CD25,
            [line(1_000, "s", kind="storage"), line(2_000, "n", kind="network"), line(100, "c")],
            out(0, detail="storage", excluded=1_000),
            out(0, detail="network", excluded=2_000),
            out(60, share=40),
        ),
        row("no-stacking", CD25, line(100_000, earlier_subsidy_fen=1), out(0, earlier=1, no_stacking=99_999)),
        row("zero-line", CD25, line(0), out(0)),
    ],
)
def test_chengdu_2025(case: Case, at: datetime | None) -> None:
    run(CHENGDU_2025, case, at or noon(2025, 6, 15))


# --- Shenzhen 2024: enterprises, 50 %; start-ups (founded less than 36 months before) 60 %; 10M yuan.

SZ = org("440305")


@pytest.mark.parametrize(
    CASE,
    [
        row("no-founding-date-50pct", SZ, line(100_000), out(50_000, share=50_000)),
        row(
            "founded-35-months-before",
            replace(SZ, founded_on=date(2021, 6, 16)),
            line(100_000),
            out(60_000, "start-up", share=40_000),
        ),
        row(
            "founded-36-months-before",
            replace(SZ, founded_on=date(2021, 6, 15)),
            line(100_000),
            out(50_000, share=50_000),
        ),
        row(
            "founded-last-year",
            replace(SZ, founded_on=date(2023, 1, 1)),
            line(100_000),
            out(60_000, "start-up", share=40_000),
        ),
        row(
            "founded-long-ago",
            replace(SZ, founded_on=date(2010, 1, 1)),
            line(100_000),
            out(50_000, share=50_000),
        ),
        # 2024-06-14 17:00 UTC is already 15 June in Shanghai: 36 months after founding, no longer a start-up.
        row(
            "age-on-the-shanghai-date",
            replace(SZ, founded_on=date(2021, 6, 15)),
            line(100_000),
            out(50_000, share=50_000),
            at=datetime(2024, 6, 14, 17, tzinfo=UTC),
        ),
        row(
            "age-on-the-shanghai-date-before-midnight",
            replace(SZ, founded_on=date(2021, 6, 15)),
            line(100_000),
            out(60_000, "start-up", share=40_000),
            at=datetime(2024, 6, 14, 15, 59, tzinfo=UTC),
        ),
        row(
            "university",
            org("440305", "university"),
            line(100_000),
            out(0, detail="kind", ineligible=100_000),
        ),
        row(
            "start-up-near-cap",
            replace(SZ, founded_on=date(2023, 1, 1)),
            line(yuan(1_000_000)),
            out(yuan(100_000), "start-up", share=yuan(400_000), year_cap=yuan(500_000)),
            enterprise_year_redeemed_fen=yuan(9_900_000),
        ),
        row(
            "rounds-down-start-up",
            replace(SZ, founded_on=date(2023, 1, 1)),
            line(33),
            out(19, "start-up", share=14),
        ),
    ],
)
def test_shenzhen_2024(case: Case, at: datetime | None) -> None:
    run(SHENZHEN_2024, case, at or noon(2024, 6, 15))


# --- Shanghai 2025: the city pays 30 %, the district 100 % of what the city left (stack order 1, 2).

SH = org("310115")
SH_AT = noon(2025, 6, 15)


def room(grant: int = PLENTY, **more: Any) -> Headroom:
    return Headroom(grant_available_fen=grant, **more)


@pytest.mark.parametrize(
    ("lines", "city_room", "district_room", "city", "district"),
    [
        pytest.param(
            [line(100_000)],
            room(),
            room(),
            [out(30_000, share=70_000)],
            [out(70_000, earlier=30_000)],
            id="30-then-100-is-100",
        ),
        pytest.param(
            [line(33)],
            room(),
            room(),
            [out(9, share=24)],
            [out(24, earlier=9)],
            id="rounding-left-to-district",
        ),
        pytest.param(
            [line(100_000, "c"), line(20_000, "s", kind="storage")],
            room(),
            room(),
            [out(30_000, share=70_000), out(0, excluded=20_000)],
            [out(70_000, earlier=30_000), out(0, excluded=20_000)],
            id="storage-excluded-by-both",
        ),
        pytest.param(
            [line(100_000)],
            room(),
            room(50_000),
            [out(30_000, share=70_000)],
            [out(50_000, earlier=30_000, grant=20_000)],
            id="district-grant-short",
        ),
        pytest.param(
            [line(100_000)],
            room(0),
            room(),
            [out(0, share=70_000, grant=30_000)],
            [out(100_000)],
            id="city-grant-empty",
        ),
        pytest.param(
            [line(100_000, earlier_subsidy_fen=10_000)],
            room(),
            room(),
            [out(27_000, earlier=10_000, share=63_000)],
            [out(63_000, earlier=37_000)],
            id="paid-before-both",
        ),
        # A whole-order refusal refuses what is left of the line; what the city paid stays the city's.
        pytest.param(
            [line(100_000)],
            room(),
            room(grant_valid_until=SH_AT),
            [out(30_000, share=70_000)],
            [out(0, earlier=30_000, validity=70_000)],
            id="district-grant-expired",
        ),
    ],
)
def test_shanghai_city_and_district_stack(
    lines: list[Line], city_room: Headroom, district_room: Headroom, city: list[Out], district: list[Out]
) -> None:
    stacked = rules.stack([(SHANGHAI_DISTRICT, district_room), (SHANGHAI_CITY, city_room)], SH, lines, SH_AT)
    assert [programme.code for programme, _ in stacked] == ["shanghai-2025-city", "shanghai-2025-district"]
    (_, by_city), (_, by_district) = stacked
    check(by_city, lines, city)
    check(by_district, lines, district)
    for i, source in enumerate(lines):
        paid = by_city.lines[i].subsidy_fen + by_district.lines[i].subsidy_fen
        assert paid + source.earlier_subsidy_fen <= source.amount_fen


# --- Jiaxing: localities 3304, 2M yuan per enterprise per year; the ratio is stated above (30 %).

JX = org("330402")


@pytest.mark.parametrize(
    CASE,
    [
        row("jiaxing-city", JX, line(100_000), out(30_000, share=70_000)),
        row("pinghu-is-in-jiaxing", org("330482"), line(100_000), out(30_000, share=70_000)),
        row("any-kind", org("330402", "university"), line(100_000), out(30_000, share=70_000)),
        row("hangzhou", org("330106"), line(100_000), out(0, detail="locality", ineligible=100_000)),
        row(
            "near-year-cap",
            JX,
            line(yuan(1_000_000)),
            out(yuan(100_000), share=yuan(700_000), year_cap=yuan(200_000)),
            enterprise_year_redeemed_fen=yuan(1_900_000),
        ),
        row("rounds-down", JX, line(33), out(9, share=24)),
    ],
)
def test_jiaxing(case: Case, at: datetime | None) -> None:
    run(JIAXING, case, at or noon(2025, 6, 15))


# --- Hangzhou Linping: enterprises of 330113, 50 %, 2M yuan a year.

LP = org("330113")


@pytest.mark.parametrize(
    CASE,
    [
        row("linping-enterprise", LP, line(100_000), out(50_000, share=50_000)),
        row(
            "linping-university",
            org("330113", "university"),
            line(100_000),
            out(0, detail="kind", ineligible=100_000),
        ),
        row("yuhang-enterprise", org("330110"), line(100_000), out(0, detail="locality", ineligible=100_000)),
        row(
            "near-year-cap",
            LP,
            line(yuan(200_000)),
            out(yuan(50_000), share=yuan(100_000), year_cap=yuan(50_000)),
            enterprise_year_redeemed_fen=yuan(1_950_000),
        ),
        row("rounds-down", LP, line(33), out(16, share=17)),
    ],
)
def test_hangzhou_linping(case: Case, at: datetime | None) -> None:
    run(LINPING, case, at or noon(2025, 6, 15))


# --- Beijing 2023-25: local software/IT or manufacturing enterprises, no credit default in 3 years,
# non-affiliated providers, no storage or network, no other subsidy on the same spend. Ratio stated
# above (20 %). Orders on 10 March 2025: "within 3 years" means after 10 March 2022.

BJ = org("110108", segments=frozenset({"software_it"}), affiliation_group="bj-group")
BJ_LINE = line(100_000, provider_affiliation="other-group")


@pytest.mark.parametrize(
    CASE,
    [
        row("software-it", BJ, BJ_LINE, out(20_000, share=80_000)),
        row(
            "manufacturing",
            replace(BJ, segments=frozenset({"manufacturing"})),
            BJ_LINE,
            out(20_000, share=80_000),
        ),
        row(
            "one-segment-of-two",
            replace(BJ, segments=frozenset({"finance", "manufacturing"})),
            BJ_LINE,
            out(20_000, share=80_000),
        ),
        row(
            "finance",
            replace(BJ, segments=frozenset({"finance"})),
            BJ_LINE,
            out(0, detail="segment", ineligible=100_000),
        ),
        row(
            "no-segment",
            replace(BJ, segments=frozenset()),
            BJ_LINE,
            out(0, detail="segment", ineligible=100_000),
        ),
        row(
            "tianjin",
            replace(BJ, locality_code="120101"),
            BJ_LINE,
            out(0, detail="locality", ineligible=100_000),
        ),
        row(
            "institute",
            replace(BJ, kind="research_institute"),
            BJ_LINE,
            out(0, detail="kind", ineligible=100_000),
        ),
        row(
            "default-2023",
            replace(BJ, last_default_on=date(2023, 6, 1)),
            BJ_LINE,
            out(0, detail="credit-default", ineligible=100_000),
        ),
        row(
            "default-a-day-within-3-years",
            replace(BJ, last_default_on=date(2022, 3, 11)),
            BJ_LINE,
            out(0, detail="credit-default", ineligible=100_000),
        ),
        row(
            "default-3-years-ago",
            replace(BJ, last_default_on=date(2022, 3, 10)),
            BJ_LINE,
            out(20_000, share=80_000),
        ),
        row(
            "default-2021",
            replace(BJ, last_default_on=date(2021, 12, 31)),
            BJ_LINE,
            out(20_000, share=80_000),
        ),
        row(
            "storage-line-excluded",
            BJ,
            [line(50_000, "s", kind="storage"), replace(BJ_LINE, key="c")],
            out(0, detail="storage", excluded=50_000),
            out(20_000, share=80_000),
        ),
        row("network-line-excluded", BJ, replace(BJ_LINE, kind="network"), out(0, excluded=100_000)),
        row(
            "affiliated-provider",
            BJ,
            replace(BJ_LINE, provider_affiliation="bj-group"),
            out(0, detail="bj-group", affiliated=100_000),
        ),
        row(
            "no-group-either-side",
            replace(BJ, affiliation_group=None),
            replace(BJ_LINE, provider_affiliation=None),
            out(20_000, share=80_000),
        ),
        row(
            "subsidised-elsewhere",
            BJ,
            replace(BJ_LINE, earlier_subsidy_fen=10_000),
            out(0, earlier=10_000, no_stacking=90_000),
        ),
        row("flagged", replace(BJ, flagged=True), BJ_LINE, out(0, flagged=100_000)),
    ],
)
def test_beijing_2023(case: Case, at: datetime | None) -> None:
    run(BEIJING_2023, case, at or noon(2025, 3, 10))


# --- Hangzhou 2025: 30 % on domestic chips or for model services on filed models, else 20 %; 8M yuan.

HZ = org("330106")


@pytest.mark.parametrize(
    CASE,
    [
        row("domestic-chips", HZ, line(100_000, domestic=True), out(30_000, "domestic-chips", share=70_000)),
        row("imported-chips", HZ, line(100_000, domestic=False), out(20_000, share=80_000)),
        row("origin-unknown", HZ, line(100_000), out(20_000, share=80_000)),
        row(
            "filed-model",
            HZ,
            line(100_000, domestic=False, workload="inference", filed_model=True),
            out(30_000, "filed-model", share=70_000),
        ),
        row("unfiled-model", HZ, line(100_000, domestic=False, filed_model=False), out(20_000, share=80_000)),
        row(
            "both-first-tier-wins",
            HZ,
            line(100_000, domestic=True, filed_model=True),
            out(30_000, "domestic-chips", share=70_000),
        ),
        row(
            "per-line-ratio",
            HZ,
            [line(100_000, "d", domestic=True), line(100_000, "i", domestic=False)],
            out(30_000, "domestic-chips", share=70_000),
            out(20_000, share=80_000),
        ),
        row("ningbo", org("330203"), line(100_000), out(0, detail="locality", ineligible=100_000)),
        row(
            "near-year-cap",
            HZ,
            line(yuan(1_000_000), domestic=True),
            out(yuan(50_000), "domestic-chips", share=yuan(700_000), year_cap=yuan(250_000)),
            enterprise_year_redeemed_fen=yuan(7_950_000),
        ),
        row("rounds-down", HZ, line(33, domestic=True), out(9, "domestic-chips", share=24)),
    ],
)
def test_hangzhou_2025(case: Case, at: datetime | None) -> None:
    run(HANGZHOU_2025, case, at or noon(2025, 6, 15))


# --- Qingyang 2024: 30 %, 2M yuan a year. The minimum claim (5,000 yuan) bounds grants, not orders.

QY = org("621002")


@pytest.mark.parametrize(
    CASE,
    [
        row("30pct", QY, line(100_000), out(30_000, share=70_000)),
        row("order-below-min-claim", QY, line(10_000), out(3_000, share=7_000)),
        row(
            "near-year-cap",
            QY,
            line(yuan(100_000)),
            out(yuan(10_000), share=yuan(70_000), year_cap=yuan(20_000)),
            enterprise_year_redeemed_fen=yuan(1_990_000),
        ),
        row(
            "one-fen-left",
            QY,
            line(yuan(100_000)),
            out(1, share=yuan(70_000), year_cap=yuan(30_000) - 1),
            enterprise_year_redeemed_fen=yuan(2_000_000) - 1,
        ),
        row(
            "year-cap-reached",
            QY,
            line(yuan(100_000)),
            out(0, share=yuan(70_000), year_cap=yuan(30_000)),
            enterprise_year_redeemed_fen=yuan(2_000_000),
        ),
        row(
            "year-cap-exceeded",
            QY,
            line(yuan(100_000)),
            out(0, share=yuan(70_000), year_cap=yuan(30_000)),
            enterprise_year_redeemed_fen=yuan(2_100_000),
        ),
        row(
            "year-cap-across-lines",
            QY,
            [line(yuan(100_000), "a"), line(yuan(100_000), "b"), line(yuan(10_000), "c")],
            out(yuan(30_000), share=yuan(70_000)),
            out(yuan(20_000), share=yuan(70_000), year_cap=yuan(10_000)),
            out(0, share=yuan(7_000), year_cap=yuan(3_000)),
            enterprise_year_redeemed_fen=yuan(1_950_000),
        ),
        row(
            "grant-below-year-cap",
            QY,
            line(yuan(100_000)),
            out(yuan(10_000), share=yuan(70_000), grant=yuan(20_000)),
            grant_available_fen=yuan(10_000),
        ),
        row(
            "year-cap-then-grant",
            QY,
            line(yuan(100_000)),
            out(yuan(5_000), share=yuan(70_000), year_cap=yuan(20_000), grant=yuan(5_000)),
            enterprise_year_redeemed_fen=yuan(1_990_000),
            grant_available_fen=yuan(5_000),
        ),
    ],
)
def test_qingyang_2024(case: Case, at: datetime | None) -> None:
    run(QINGYANG_2024, case, at or noon(2024, 9, 15))


# --- Pinghu 2026: local SMEs, institutes, universities; local providers; 50 % (60 % domestic); 2M yuan
# a year, 200,000 yuan an order; no credit default in 3 years; no stacking. Orders on 20 May 2026.

PH = org("330482", is_sme=True, affiliation_group="ph-group")
PH_AT = noon(2026, 5, 20)
PH_LINE = line(100_000, provider="pinghu-dc")


@pytest.mark.parametrize(
    CASE,
    [
        row("sme-50pct", PH, PH_LINE, out(50_000, share=50_000)),
        row(
            "domestic-60pct", PH, replace(PH_LINE, domestic=True), out(60_000, "domestic-chips", share=40_000)
        ),
        row("rounds-down", PH, line(33, domestic=True), out(19, "domestic-chips", share=14)),
        row(
            "non-local-provider",
            PH,
            replace(PH_LINE, provider_local=False),
            out(0, detail="local", provider=100_000),
        ),
        row("not-sme", replace(PH, is_sme=False), PH_LINE, out(0, detail="sme", ineligible=100_000)),
        row("university-not-sized", org("330482", "university"), PH_LINE, out(50_000, share=50_000)),
        row("institute-not-sized", org("330482", "research_institute"), PH_LINE, out(50_000, share=50_000)),
        row(
            "government-unit",
            org("330482", "government_unit"),
            PH_LINE,
            out(0, detail="kind", ineligible=100_000),
        ),
        row(
            "haining",
            replace(PH, locality_code="330481"),
            PH_LINE,
            out(0, detail="locality", ineligible=100_000),
        ),
        row(
            "order-cap",
            PH,
            line(yuan(500_000), domestic=True),
            out(yuan(200_000), "domestic-chips", share=yuan(200_000), order_cap=yuan(100_000)),
        ),
        row(
            "order-cap-across-lines",
            PH,
            [line(yuan(300_000), "a", domestic=False), line(yuan(200_000), "b", domestic=True)],
            out(yuan(150_000), share=yuan(150_000)),
            out(yuan(50_000), "domestic-chips", share=yuan(80_000), order_cap=yuan(70_000)),
        ),
        row(
            "order-cap-then-year-cap",
            PH,
            line(yuan(500_000)),
            out(yuan(100_000), share=yuan(250_000), order_cap=yuan(50_000), year_cap=yuan(100_000)),
            enterprise_year_redeemed_fen=yuan(1_900_000),
        ),
        row("grant-short", PH, PH_LINE, out(20_000, share=50_000, grant=30_000), grant_available_fen=20_000),
        row("grant-exhausted", PH, PH_LINE, out(0, share=50_000, grant=50_000), grant_available_fen=0),
        row(
            "grant-across-lines",
            PH,
            [line(100_000, "a"), line(100_000, "b"), line(100_000, "c")],
            out(50_000, share=50_000),
            out(20_000, share=50_000, grant=30_000),
            out(0, share=50_000, grant=50_000),
            grant_available_fen=70_000,
        ),
        row(
            "grant-not-yet-valid",
            PH,
            PH_LINE,
            out(0, validity=100_000),
            grant_valid_from=PH_AT + timedelta(seconds=1),
        ),
        row("grant-expired", PH, PH_LINE, out(0, validity=100_000), grant_valid_until=PH_AT),
        row(
            "grant-valid-from-the-order",
            PH,
            PH_LINE,
            out(50_000, share=50_000),
            grant_valid_from=PH_AT,
            grant_valid_until=PH_AT + timedelta(seconds=1),
        ),
        row(
            "flagged",
            replace(PH, flagged=True),
            [replace(PH_LINE, domestic=True), line(20_000, "s", kind="storage")],
            out(0, flagged=100_000),
            out(0, flagged=20_000),
        ),
        row(
            "default-2024",
            replace(PH, last_default_on=date(2024, 1, 1)),
            PH_LINE,
            out(0, detail="credit-default", ineligible=100_000),
        ),
        row(
            "default-a-day-within-3-years",
            replace(PH, last_default_on=date(2023, 5, 21)),
            PH_LINE,
            out(0, detail="credit-default", ineligible=100_000),
        ),
        row(
            "default-older",
            replace(PH, last_default_on=date(2023, 5, 19)),
            PH_LINE,
            out(50_000, share=50_000),
        ),
        row("storage", PH, line(100_000, kind="storage"), out(0, excluded=100_000)),
        row("affiliated", PH, replace(PH_LINE, provider_affiliation="ph-group"), out(0, affiliated=100_000)),
        row(
            "subsidised-elsewhere",
            PH,
            replace(PH_LINE, earlier_subsidy_fen=5),
            out(0, earlier=5, no_stacking=99_995),
        ),
    ],
)
def test_pinghu_2026(case: Case, at: datetime | None) -> None:
    run(PINGHU_2026, case, at or PH_AT)


# --- rounding: ⌊ratio × eligible⌋, never above the ratio -------------------------------------------


@pytest.mark.parametrize(
    ("ratio_bp", "amount", "earlier", "subsidy"),
    [
        (300, 33, 0, 0),  # 3 % of 33 fen = 0.99 fen
        (300, 34, 0, 1),  # 1.02
        (3000, 33, 0, 9),  # 9.9
        (3333, 3, 0, 0),  # 0.9999
        (3334, 3, 0, 1),  # 1.0002
        (1, 9_999, 0, 0),
        (1, 10_000, 0, 1),
        (9_999, 1, 0, 0),
        (10_000, 1, 0, 1),
        (10_000, 33, 0, 33),
        (5_000, 33, 0, 16),
        (5_000, 35, 2, 16),  # of the 33 fen not paid before
    ],
)
def test_subsidy_rounds_down_to_the_fen(ratio_bp: int, amount: int, earlier: int, subsidy: int) -> None:
    programme = Programme(code="p", ratio_bp=ratio_bp, budget_fen=1, stacking=rules.Stacking.ORDERED)
    decision = rules.decide(
        programme, org("330482"), [line(amount, earlier_subsidy_fen=earlier)], room(), PH_AT
    )
    (decided,) = decision.lines
    assert decided.subsidy_fen == subsidy
    assert refused_by_reason(decided).get(Reason.TENANT_SHARE, 0) == amount - earlier - subsidy


# --- a programme's parameters ---------------------------------------------------------------------

VALID = Programme(
    code="p",
    ratio_bp=3000,
    budget_fen=yuan(1_000_000),
    min_claim_fen=yuan(5_000),
    starts_on=date(2025, 1, 1),
    ends_on=date(2025, 12, 31),
)
RANGE = "voucher.ratio-out-of-range"
BELOW_MIN = "voucher.cap-below-min-claim"


@pytest.mark.parametrize(
    ("changes", "found"),
    [
        pytest.param({}, [], id="valid"),
        pytest.param({"ratio_bp": 0}, [(RANGE, {"field": "ratio_bp", "value": 0})], id="ratio-0"),
        pytest.param({"ratio_bp": -1}, [(RANGE, {"field": "ratio_bp", "value": -1})], id="ratio-negative"),
        pytest.param(
            {"ratio_bp": 10_001}, [(RANGE, {"field": "ratio_bp", "value": 10_001})], id="ratio-10001"
        ),
        pytest.param({"ratio_bp": 10_000}, [], id="ratio-100pct"),
        pytest.param({"ratio_bp": 1}, [], id="ratio-1bp"),
        pytest.param(
            {"tiers": (Tier("t", 0),)}, [(RANGE, {"field": "tier t", "value": 0})], id="tier-ratio-0"
        ),
        pytest.param(
            {"tiers": (Tier("t", 10_001),)},
            [(RANGE, {"field": "tier t", "value": 10_001})],
            id="tier-ratio-high",
        ),
        pytest.param(
            {"cap_order_fen": yuan(1_000)},
            [(BELOW_MIN, {"field": "cap_order_fen"})],
            id="order-cap-below-min",
        ),
        pytest.param(
            {"cap_enterprise_year_fen": yuan(5_000) - 1},
            [(BELOW_MIN, {"field": "cap_enterprise_year_fen"})],
            id="year-cap-below-min",
        ),
        pytest.param({"cap_order_fen": yuan(5_000)}, [], id="order-cap-at-min"),
        pytest.param(
            {"tiers": (Tier("t", 3000, registry_tiers=frozenset({"leader"}), cap_enterprise_year_fen=1),)},
            [(BELOW_MIN, {"field": "tier t cap"})],
            id="tier-cap-below-min",
        ),
        pytest.param(
            {"cap_order_fen": 0}, [("voucher.cap-not-positive", {"field": "cap_order_fen"})], id="cap-0"
        ),
        pytest.param({"budget_fen": 0}, [("voucher.budget-not-positive", {})], id="budget-0"),
        pytest.param({"budget_fen": -100}, [("voucher.budget-not-positive", {})], id="budget-negative"),
        pytest.param(
            {"budget_fen": yuan(1_000)}, [(BELOW_MIN, {"field": "budget_fen"})], id="budget-below-min"
        ),
        pytest.param({"min_claim_fen": -1}, [("voucher.min-claim-negative", {})], id="min-claim-negative"),
        pytest.param(
            {"ends_on": date(2024, 12, 31)}, [("voucher.period-reversed", {})], id="period-reversed"
        ),
        pytest.param({"ends_on": date(2025, 1, 1)}, [], id="one-day-period"),
        pytest.param({"grant_validity_days": 0}, [("voucher.validity-not-positive", {})], id="validity-0"),
        pytest.param({"grant_validity_days": 1}, [], id="validity-1"),
        pytest.param(
            {"ratio_bp": 0, "budget_fen": 0},
            [(RANGE, {"field": "ratio_bp", "value": 0}), ("voucher.budget-not-positive", {})],
            id="two-problems",
        ),
    ],
)
def test_problems(changes: dict[str, Any], found: list[tuple[str, dict[str, object]]]) -> None:
    assert rules.problems(replace(VALID, **changes)) == found


def _period(start: date | None, end: date | None, stacking: str = "none", order: int = 0) -> Programme:
    return replace(VALID, starts_on=start, ends_on=end, stacking=rules.Stacking(stacking), stack_order=order)


H1 = (date(2025, 1, 1), date(2025, 6, 30))
H2 = (date(2025, 7, 1), date(2025, 12, 31))
YEAR = (date(2025, 1, 1), date(2025, 12, 31))


@pytest.mark.parametrize(
    ("a", "b", "coexist"),
    [
        pytest.param(_period(*YEAR), _period(*H2), False, id="overlap-no-stacking"),
        pytest.param(_period(*YEAR, "ordered", 1), _period(*H2), False, id="overlap-one-stacks"),
        pytest.param(_period(*YEAR, "ordered", 1), _period(*H2, "ordered", 2), True, id="overlap-ordered"),
        pytest.param(
            _period(*YEAR, "ordered", 1), _period(*H2, "ordered", 1), False, id="overlap-same-order"
        ),
        pytest.param(_period(*H1), _period(*H2), True, id="consecutive"),
        pytest.param(
            _period(*H1, "ordered", 1), _period(*H2, "ordered", 1), True, id="consecutive-same-order"
        ),
        pytest.param(_period(*H1), _period(H1[1], H2[1]), False, id="sharing-a-day"),
        pytest.param(_period(None, None), _period(*H2), False, id="open-ended"),
        pytest.param(_period(None, H1[1]), _period(H2[0], None), True, id="open-ended-apart"),
    ],
)
def test_may_coexist(a: Programme, b: Programme, coexist: bool) -> None:
    assert rules.may_coexist(a, b) is coexist
    assert rules.may_coexist(b, a) is coexist


# --- faults found by review, pinned ---------------------------------------------------------------


def test_a_programme_that_does_not_stack_closes_the_line_to_later_programmes() -> None:
    exclusive = Programme("exclusive", 5000, budget_fen=1)
    later = Programme("later", 10_000, budget_fen=1, stacking=rules.Stacking.ORDERED, stack_order=1)
    room = Headroom(grant_available_fen=PLENTY)
    tenant = Tenant(org_id=1, kind="enterprise", locality_code="330482")
    (_, first), (_, second) = rules.stack(
        [(exclusive, room), (later, room)], tenant, [line(100)], noon(2026, 6, 1)
    )
    assert first.subsidy_fen == 50 and second.subsidy_fen == 0
    assert second.refused() == {Reason.EARLIER_PROGRAMME: 50, Reason.NO_STACKING: 50}


@pytest.mark.parametrize(
    "headroom",
    [Headroom(grant_available_fen=-10), Headroom(grant_available_fen=10, enterprise_year_redeemed_fen=-1)],
)
def test_negative_headroom_is_a_bug_not_a_subsidy(headroom: Headroom) -> None:
    tenant = Tenant(org_id=1, kind="enterprise", locality_code="330482")
    with pytest.raises(ValueError, match="negative headroom"):
        rules.decide(Programme("p", 5000, budget_fen=1), tenant, [line(100)], headroom, noon(2026, 6, 1))


def test_a_bad_line_is_refused_even_when_the_whole_order_is() -> None:
    flagged = Tenant(org_id=1, kind="enterprise", locality_code="330482", flagged=True)
    with pytest.raises(ValueError, match="amount -5"):
        rules.decide(
            Programme("p", 5000, budget_fen=1),
            flagged,
            [line(-5)],
            Headroom(grant_available_fen=1),
            noon(2026, 6, 1),
        )
