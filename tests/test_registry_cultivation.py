"""The pure cultivation core (企业梯度培育): the ladder, the figures derived from an enterprise's facts, the
assessment against the shipped and custom criteria, the order of candidates, and the checks on criteria.

Properties over random enterprises and criteria: every criterion is reported exactly once unless its group
is met through another member; eligible means nothing missed and nothing unknown; raising a figure never
loses a met minimum; erasing a figure never makes an enterprise eligible."""

from __future__ import annotations

import calendar
import re
import string
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanwang.i18n import catalogue, t
from suanwang.registry import cultivation
from suanwang.registry.cultivation import (
    CRITERIA_MAX,
    TARGETS,
    THRESHOLD_MAX,
    Assessment,
    CriteriaError,
    Criterion,
    Facts,
    Metric,
    Outcome,
    age_months,
    assess,
    candidates,
    defaults,
    load_defaults,
    metric_values,
    next_tiers,
    parse_criteria,
    previous_tier,
)
from suanwang.registry.models import Tier

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AS_OF = date(2025, 6, 30)
YUAN = 100  # fen
WAN = 10_000 * YUAN  # 万元 in fen


def facts(name: str = "甲科技", tier: Tier | None = None, enterprise_id: int = 1, **figures: object) -> Facts:
    return Facts(enterprise_id=enterprise_id, name=name, tier=tier, **figures)


def metrics(outcomes: tuple[Outcome, ...]) -> list[str]:
    return [o.criterion.metric.value for o in outcomes]


# --- the ladder -----------------------------------------------------------------------------------


def test_ladder_goes_up_one_tier_at_a_time_and_forks_at_the_top():
    assert next_tiers(None) == (Tier.INNOVATIVE_SME,)
    assert next_tiers(Tier.INNOVATIVE_SME) == (Tier.SPECIALISED_SME,)
    assert next_tiers(Tier.SPECIALISED_SME) == (Tier.LITTLE_GIANT,)
    assert next_tiers(Tier.LITTLE_GIANT) == (Tier.SINGLE_CHAMPION, Tier.LEADER)
    for top in (Tier.SINGLE_CHAMPION, Tier.LEADER, Tier.MAJOR_PROJECT_LEAD_A, Tier.MAJOR_PROJECT_LEAD_B):
        assert next_tiers(top) == ()


def test_previous_tier_is_the_inverse_of_next_tiers():
    assert previous_tier(Tier.INNOVATIVE_SME) is None
    assert previous_tier(Tier.SPECIALISED_SME) is Tier.INNOVATIVE_SME
    assert previous_tier(Tier.LITTLE_GIANT) is Tier.SPECIALISED_SME
    assert previous_tier(Tier.SINGLE_CHAMPION) is Tier.LITTLE_GIANT
    assert previous_tier(Tier.LEADER) is Tier.LITTLE_GIANT
    for below in (None, *Tier):
        for target in next_tiers(below):
            assert previous_tier(target) == below
    assert set(TARGETS) == set(Tier) - {Tier.MAJOR_PROJECT_LEAD_A, Tier.MAJOR_PROJECT_LEAD_B}


@pytest.mark.parametrize("target", [Tier.MAJOR_PROJECT_LEAD_A, Tier.MAJOR_PROJECT_LEAD_B])
def test_major_project_leads_are_off_the_ladder(target):
    with pytest.raises(CriteriaError) as raised:
        previous_tier(target)
    assert raised.value.key == "registry.cultivation.not-on-ladder"
    assert raised.value.params == {"tier": target.value}
    with pytest.raises(CriteriaError):
        candidates([facts(tier=Tier.LITTLE_GIANT)], target, [Criterion(Metric.PATENTS, 1)], AS_OF)


# --- the figures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("founded_on", "as_of", "months"),
    [
        (date(2024, 1, 15), date(2024, 1, 15), 0),
        (date(2024, 1, 15), date(2024, 2, 14), 0),
        (date(2024, 1, 15), date(2024, 2, 15), 1),
        (date(2023, 12, 15), date(2024, 1, 15), 1),  # across the year end
        (date(2023, 1, 31), date(2023, 2, 27), 0),
        (date(2023, 1, 31), date(2023, 2, 28), 1),  # no 31 February: the month ends on its last day
        (date(2024, 1, 31), date(2024, 2, 28), 0),  # a leap year: the month ends on the 29th
        (date(2024, 1, 31), date(2024, 2, 29), 1),
        (date(2024, 1, 31), date(2024, 3, 30), 1),
        (date(2024, 1, 31), date(2024, 3, 31), 2),
        (date(2024, 3, 31), date(2024, 4, 29), 0),
        (date(2024, 3, 31), date(2024, 4, 30), 1),
        (date(2020, 2, 29), date(2021, 2, 27), 11),
        (date(2020, 2, 29), date(2021, 2, 28), 12),  # founded on a leap day
        (date(2020, 2, 29), date(2024, 2, 28), 47),
        (date(2020, 2, 29), date(2024, 2, 29), 48),
        (date(2015, 7, 1), date(2025, 6, 30), 119),
        (date(2015, 7, 1), date(2025, 7, 1), 120),
    ],
)
def test_age_in_whole_months(founded_on, as_of, months):
    assert age_months(founded_on, as_of) == months


def test_age_is_unknown_when_founded_after_the_assessment():
    assert age_months(date(2025, 7, 1), date(2025, 6, 30)) is None
    values = metric_values(facts(founded_on=date(2025, 7, 1)), AS_OF)
    assert values[Metric.AGE_MONTHS] is None


def test_rd_spend_is_derived_and_rounded_down():
    # 333 fen at 33.33%: 110.9889 fen, so 110.
    values = metric_values(facts(revenue_fen=333, rd_intensity_bp=3333), AS_OF)
    assert values[Metric.RD_SPEND_FEN] == 110
    spend = [Criterion(Metric.RD_SPEND_FEN, minimum=111)]
    assert not assess(
        facts(revenue_fen=333, rd_intensity_bp=3333), Tier.INNOVATIVE_SME, spend, AS_OF
    ).eligible
    spend = [Criterion(Metric.RD_SPEND_FEN, minimum=110)]
    assert assess(facts(revenue_fen=333, rd_intensity_bp=3333), Tier.INNOVATIVE_SME, spend, AS_OF).eligible
    assert metric_values(facts(revenue_fen=333), AS_OF)[Metric.RD_SPEND_FEN] is None
    assert metric_values(facts(rd_intensity_bp=300), AS_OF)[Metric.RD_SPEND_FEN] is None


@pytest.mark.parametrize(
    ("revenue", "previous", "growth"),
    [
        (150, 100, 5_000),
        (100, 100, 0),
        (99, 100, -100),
        (1, 3, -6_667),  # -6666.67 rounds down, away from a minimum of -6666
        (2, 3, -3_334),
        (4, 3, 3_333),
        (0, 5, -10_000),
        (100, 0, None),  # growth from nothing is not a figure
        (100, None, None),
        (None, 100, None),
    ],
)
def test_revenue_growth_in_basis_points(revenue, previous, growth):
    values = metric_values(facts(revenue_fen=revenue, previous_revenue_fen=previous), AS_OF)
    assert values[Metric.REVENUE_GROWTH_BP] == growth


def test_figures_known_and_unknown():
    known = metric_values(
        facts(
            revenue_fen=10 * WAN,
            previous_revenue_fen=8 * WAN,
            rd_intensity_bp=450,
            patents=3,
            employees=40,
            founded_on=date(2020, 1, 1),
            above_size=True,
        ),
        AS_OF,
    )
    assert known == {
        Metric.REVENUE_FEN: 10_000_000,
        Metric.RD_INTENSITY_BP: 450,
        Metric.RD_SPEND_FEN: 450_000,
        Metric.PATENTS: 3,
        Metric.EMPLOYEES: 40,
        Metric.AGE_MONTHS: 65,
        Metric.REVENUE_GROWTH_BP: 2_500,
        Metric.ABOVE_SIZE: 1,
    }
    assert metric_values(facts(above_size=False), AS_OF)[Metric.ABOVE_SIZE] == 0
    assert set(metric_values(facts(), AS_OF).values()) == {None}


# --- the shipped defaults -------------------------------------------------------------------------


def test_defaults_cover_every_target_tier():
    shipped = defaults()
    assert set(shipped) == set(TARGETS)
    assert all(shipped.values())
    for target in (Tier.INNOVATIVE_SME, Tier.SPECIALISED_SME, Tier.LITTLE_GIANT):  # SMEs only
        sme = [c for c in shipped[target] if c.group == "sme"]
        assert sme == [
            Criterion(Metric.EMPLOYEES, maximum=999, group="sme"),
            Criterion(Metric.REVENUE_FEN, maximum=40_000 * WAN - 1, group="sme"),
        ]
    shipped.clear()  # a copy: the shipped defaults stay
    assert set(defaults()) == set(TARGETS)


def specialised_sme_at_the_edges(**changes: object) -> Facts:
    """An innovative SME meeting every shipped criterion for 专精特新 exactly at its threshold."""
    base = facts(
        tier=Tier.INNOVATIVE_SME,
        revenue_fen=1_000 * WAN,  # 10 million yuan
        rd_intensity_bp=1_000,  # 10%: R&D spend of exactly 1 million yuan
        employees=200,
        founded_on=date(2023, 6, 30),  # 24 months on AS_OF
    )
    return replace(base, **changes)


def test_specialised_sme_met_exactly_at_the_shipped_thresholds():
    result = assess(
        specialised_sme_at_the_edges(), Tier.SPECIALISED_SME, defaults()[Tier.SPECIALISED_SME], AS_OF
    )
    assert result.eligible
    assert result.missed == () and result.unknown == ()
    # Both SME alternatives hold and are shown; all six criteria are met.
    assert metrics(result.met) == [
        "employees",
        "revenue_fen",
        "age_months",
        "rd_spend_fen",
        "rd_intensity_bp",
        "revenue_fen",
    ]
    spend = next(o for o in result.met if o.criterion.metric is Metric.RD_SPEND_FEN)
    assert spend.value == 100 * WAN


def test_specialised_sme_one_fen_short_misses_revenue_and_rd_spend():
    short = specialised_sme_at_the_edges(revenue_fen=1_000 * WAN - 1)
    result = assess(short, Tier.SPECIALISED_SME, defaults()[Tier.SPECIALISED_SME], AS_OF)
    assert not result.eligible
    assert metrics(result.missed) == ["rd_spend_fen", "revenue_fen"]
    assert [o.value for o in result.missed] == [99_999_999, 999_999_999]  # 999_999_999 × 10% rounded down


def test_specialised_sme_a_day_too_young():
    young = specialised_sme_at_the_edges(founded_on=date(2023, 7, 1))
    result = assess(young, Tier.SPECIALISED_SME, defaults()[Tier.SPECIALISED_SME], AS_OF)
    assert [(o.criterion.metric, o.value) for o in result.missed] == [(Metric.AGE_MONTHS, 23)]


def test_sme_group_met_by_revenue_when_employees_are_unknown():
    result = assess(
        specialised_sme_at_the_edges(employees=None),
        Tier.SPECIALISED_SME,
        defaults()[Tier.SPECIALISED_SME],
        AS_OF,
    )
    assert result.eligible
    assert Metric.EMPLOYEES not in [o.criterion.metric for o in result.met + result.missed + result.unknown]


def test_sme_group_missed_when_too_big_on_both_counts():
    big = specialised_sme_at_the_edges(employees=1_000, revenue_fen=40_000 * WAN)
    result = assess(big, Tier.SPECIALISED_SME, defaults()[Tier.SPECIALISED_SME], AS_OF)
    assert [(o.criterion.metric, o.value) for o in result.missed] == [
        (Metric.EMPLOYEES, 1_000),
        (Metric.REVENUE_FEN, 40_000 * WAN),
    ]
    assert not result.unknown


def test_sme_group_unknown_when_big_by_revenue_and_employees_unknown():
    big = specialised_sme_at_the_edges(employees=None, revenue_fen=50_000 * WAN)
    result = assess(big, Tier.SPECIALISED_SME, defaults()[Tier.SPECIALISED_SME], AS_OF)
    # The whole group is unknown: fewer than 1000 employees would still make it an SME.
    assert [(o.criterion.metric, o.value) for o in result.unknown] == [
        (Metric.EMPLOYEES, None),
        (Metric.REVENUE_FEN, 50_000 * WAN),
    ]
    assert not result.missed and not result.eligible


def test_little_giant_rd_rule_is_exact_at_the_band_edges():
    shipped = defaults()[Tier.LITTLE_GIANT]
    base = facts(
        tier=Tier.SPECIALISED_SME,
        revenue_fen=5_000 * WAN,
        previous_revenue_fen=4_000 * WAN,  # +25%
        rd_intensity_bp=600,  # 6% of 50 million yuan: 3 million
        patents=2,
        employees=300,
        founded_on=date(2022, 6, 30),
    )
    assert assess(base, Tier.LITTLE_GIANT, shipped, AS_OF).eligible
    below = assess(replace(base, rd_intensity_bp=599), Tier.LITTLE_GIANT, shipped, AS_OF)
    assert [(o.criterion.metric, o.value) for o in below.missed] == [(Metric.RD_SPEND_FEN, 2_995_000 * YUAN)]
    big = replace(base, revenue_fen=10_000 * WAN, previous_revenue_fen=9_000 * WAN, rd_intensity_bp=300)
    assert assess(big, Tier.LITTLE_GIANT, shipped, AS_OF).eligible
    flat = assess(replace(big, previous_revenue_fen=10_000 * WAN), Tier.LITTLE_GIANT, shipped, AS_OF)
    assert [(o.criterion.metric, o.value) for o in flat.missed] == [(Metric.REVENUE_GROWTH_BP, 0)]


def test_leader_needs_above_size():
    shipped = defaults()[Tier.LEADER]
    leader = facts(tier=Tier.LITTLE_GIANT, revenue_fen=200_000 * WAN, rd_intensity_bp=500, patents=12)
    assert assess(replace(leader, above_size=True), Tier.LEADER, shipped, AS_OF).eligible
    small = assess(replace(leader, above_size=False), Tier.LEADER, shipped, AS_OF)
    assert [(o.criterion.metric, o.value) for o in small.missed] == [(Metric.ABOVE_SIZE, 0)]
    unknown = assess(leader, Tier.LEADER, shipped, AS_OF)
    assert [(o.criterion.metric, o.value) for o in unknown.unknown] == [(Metric.ABOVE_SIZE, None)]


def test_a_new_enterprise_with_no_figures_is_unknown_on_everything():
    result = assess(facts(), Tier.INNOVATIVE_SME, defaults()[Tier.INNOVATIVE_SME], AS_OF)
    assert not result.eligible and not result.met and not result.missed
    assert len(result.unknown) == len(defaults()[Tier.INNOVATIVE_SME])


# --- custom criteria ------------------------------------------------------------------------------


def test_each_outcome_met_missed_and_unknown():
    criteria = [
        Criterion(Metric.PATENTS, minimum=3),
        Criterion(Metric.EMPLOYEES, maximum=100),
        Criterion(Metric.RD_INTENSITY_BP, minimum=300),
    ]
    result = assess(facts(patents=3, employees=101), Tier.INNOVATIVE_SME, criteria, AS_OF)
    assert result.met == (Outcome(criteria[0], 3),)
    assert result.missed == (Outcome(criteria[1], 101),)
    assert result.unknown == (Outcome(criteria[2], None),)
    assert not result.eligible


@pytest.mark.parametrize(("employees", "met"), [(9, False), (10, True), (50, True), (99, True), (100, False)])
def test_minimum_and_maximum_are_inclusive(employees, met):
    criteria = [Criterion(Metric.EMPLOYEES, minimum=10, maximum=99)]
    result = assess(facts(employees=employees), Tier.INNOVATIVE_SME, criteria, AS_OF)
    assert result.eligible is met
    assert len(result.met if met else result.missed) == 1


def test_groups_are_alternatives_and_independent_of_each_other():
    criteria = [
        Criterion(Metric.REVENUE_FEN, minimum=1_000 * WAN, group="size"),
        Criterion(Metric.EMPLOYEES, minimum=50, group="size"),
        Criterion(Metric.PATENTS, minimum=5, group="ip"),
        Criterion(Metric.RD_INTENSITY_BP, minimum=800, group="ip"),
    ]
    # size met by employees alone (revenue, short, is left out); ip missed on both.
    result = assess(
        facts(revenue_fen=10, employees=60, patents=1, rd_intensity_bp=100),
        Tier.INNOVATIVE_SME,
        criteria,
        AS_OF,
    )
    assert result.met == (Outcome(criteria[1], 60),)
    assert result.missed == (Outcome(criteria[2], 1), Outcome(criteria[3], 100))
    assert result.unknown == ()
    # Both alternatives of a group met: both are shown as met.
    result = assess(
        facts(revenue_fen=2_000 * WAN, employees=60, patents=9, rd_intensity_bp=100),
        Tier.INNOVATIVE_SME,
        criteria,
        AS_OF,
    )
    assert result.eligible
    assert result.met == (
        Outcome(criteria[0], 2_000 * WAN),
        Outcome(criteria[1], 60),
        Outcome(criteria[2], 9),
    )


def test_a_group_met_hides_an_unknown_alternative():
    criteria = [
        Criterion(Metric.PATENTS, minimum=1, group="g"),
        Criterion(Metric.EMPLOYEES, minimum=5, group="g"),
    ]
    result = assess(facts(patents=2), Tier.INNOVATIVE_SME, criteria, AS_OF)
    assert result.eligible and result.met == (Outcome(criteria[0], 2),) and not result.unknown


def test_criteria_on_the_same_metric_are_each_judged():
    criteria = [Criterion(Metric.PATENTS, minimum=2), Criterion(Metric.PATENTS, maximum=4)]
    assert assess(facts(patents=3), Tier.INNOVATIVE_SME, criteria, AS_OF).eligible
    result = assess(facts(patents=5), Tier.INNOVATIVE_SME, criteria, AS_OF)
    assert result.met == (Outcome(criteria[0], 5),) and result.missed == (Outcome(criteria[1], 5),)


def test_assessment_as_json():
    criteria = [Criterion(Metric.PATENTS, minimum=1), Criterion(Metric.ABOVE_SIZE, minimum=1, group="s")]
    result = assess(
        facts("乙算力", enterprise_id=7, patents=0, above_size=True), Tier.INNOVATIVE_SME, criteria, AS_OF
    )
    assert result.as_json() == {
        "enterprise_id": 7,
        "name": "乙算力",
        "target": "innovative_sme",
        "as_of": "2025-06-30",
        "eligible": False,
        "met": [{"metric": "above_size", "minimum": 1, "maximum": None, "group": "s", "value": 1}],
        "missed": [{"metric": "patents", "minimum": 1, "maximum": None, "group": None, "value": 0}],
        "unknown": [],
    }


# --- candidates -----------------------------------------------------------------------------------


def test_candidates_are_on_the_tier_below_and_ordered_closest_first():
    criteria = [
        Criterion(Metric.PATENTS, minimum=2),
        Criterion(Metric.EMPLOYEES, minimum=10),
        Criterion(Metric.RD_INTENSITY_BP, minimum=300),
    ]
    on = Tier.SPECIALISED_SME
    everyone = [
        facts("丁", on, 1, patents=0, employees=0, rd_intensity_bp=0),  # 3 missed
        facts("B", on, 2, patents=2, employees=5),  # 1 missed, 1 unknown
        facts("C", on, 3, patents=1, employees=10, rd_intensity_bp=300),  # 1 missed
        facts("A", on, 4, patents=2, employees=10, rd_intensity_bp=300),  # eligible
        facts("D", on, 5, patents=5, employees=50, rd_intensity_bp=900),  # eligible
        facts("E", on, 6),  # 3 unknown
        facts("C", on, 0, patents=1, employees=10, rd_intensity_bp=300),  # same name: by id
        facts("Z", Tier.INNOVATIVE_SME, 8, patents=9, employees=99, rd_intensity_bp=999),  # too low a tier
        facts("Y", Tier.LEADER, 9, patents=9, employees=99, rd_intensity_bp=999),
        facts("X", None, 10, patents=9, employees=99, rd_intensity_bp=999),
    ]
    found = candidates(everyone, Tier.LITTLE_GIANT, criteria, AS_OF)
    assert [(a.name, a.enterprise_id) for a in found] == [
        ("A", 4),
        ("D", 5),
        ("E", 6),  # nothing missed, so far: all unknown
        ("C", 0),
        ("C", 3),
        ("B", 2),
        ("丁", 1),
    ]
    assert [a.eligible for a in found] == [True, True, False, False, False, False, False]
    assert all(a.target is Tier.LITTLE_GIANT and a.as_of == AS_OF for a in found)


def test_candidates_for_innovative_sme_are_enterprises_with_no_tier():
    everyone = [facts("A", None, 1, patents=1), facts("B", Tier.INNOVATIVE_SME, 2, patents=1)]
    found = candidates(everyone, Tier.INNOVATIVE_SME, [Criterion(Metric.PATENTS, minimum=1)], AS_OF)
    assert [a.enterprise_id for a in found] == [1]


def test_candidates_for_single_champion_and_leader_are_little_giants():
    everyone = [facts("A", Tier.LITTLE_GIANT, 1), facts("B", Tier.SINGLE_CHAMPION, 2)]
    for target in (Tier.SINGLE_CHAMPION, Tier.LEADER):
        found = candidates(everyone, target, defaults()[target], AS_OF)
        assert [a.enterprise_id for a in found] == [1]


# --- checking criteria ----------------------------------------------------------------------------


def test_parse_criteria_reads_what_as_json_writes():
    criteria = [
        {"metric": "revenue_fen", "minimum": 1_000_000_000},
        {"metric": "employees", "maximum": 999, "group": "sme"},
        {"metric": "rd_intensity_bp", "minimum": 300, "maximum": 300},
        {"metric": "above_size", "minimum": True},
        {"metric": "above_size", "maximum": 0},
    ]
    parsed = parse_criteria(criteria)
    assert parsed == (
        Criterion(Metric.REVENUE_FEN, minimum=1_000_000_000),
        Criterion(Metric.EMPLOYEES, maximum=999, group="sme"),
        Criterion(Metric.RD_INTENSITY_BP, minimum=300, maximum=300),
        Criterion(Metric.ABOVE_SIZE, minimum=1),
        Criterion(Metric.ABOVE_SIZE, maximum=0),
    )
    assert parse_criteria([c.as_json() for c in parsed]) == parsed


GOOD = {"metric": "patents", "minimum": 1}


@pytest.mark.parametrize(
    ("data", "key", "params"),
    [
        (GOOD, "criteria-not-a-list", {}),
        ("patents >= 1", "criteria-not-a-list", {}),
        ([], "criteria-empty", {}),
        (
            [GOOD] * (CRITERIA_MAX + 1),
            "criteria-too-many",
            {"count": CRITERIA_MAX + 1, "limit": CRITERIA_MAX},
        ),
        ([GOOD, 5], "criterion-not-a-table", {"number": 2}),
        (
            [GOOD, {"metric": "patents", "minimun": 1}],
            "criterion-unknown-field",
            {"number": 2, "field": "minimun"},
        ),
        (
            [{"metric": "profit_fen", "minimum": 1}],
            "criterion-unknown-metric",
            {"number": 1, "metric": "profit_fen"},
        ),
        ([{"minimum": 1}], "criterion-unknown-metric", {"number": 1, "metric": "None"}),
        (
            [{"metric": "patents", "minimum": 1.5}],
            "criterion-not-integer",
            {"field": "minimum", "value": "1.5"},
        ),
        (
            [{"metric": "patents", "maximum": "5"}],
            "criterion-not-integer",
            {"field": "maximum", "value": "'5'"},
        ),
        (
            [{"metric": "patents", "minimum": True}],
            "criterion-not-integer",
            {"field": "minimum", "value": "True"},
        ),
        (
            [{"metric": "patents", "minimum": -1}],
            "criterion-out-of-range",
            {"value": -1, "limit": THRESHOLD_MAX},
        ),
        ([{"metric": "revenue_fen", "minimum": 2**63}], "criterion-out-of-range", {"value": 2**63}),
        (
            [{"metric": "above_size", "minimum": 2}],
            "criterion-not-boolean",
            {"field": "minimum", "value": "2"},
        ),
        ([{"metric": "above_size", "maximum": "no"}], "criterion-not-boolean", {"value": "'no'"}),
        ([{"metric": "patents", "group": "g"}], "criterion-no-threshold", {"number": 1, "metric": "patents"}),
        (
            [{"metric": "patents", "minimum": 5, "maximum": 4}],
            "criterion-reversed",
            {"minimum": 5, "maximum": 4},
        ),
        ([{**GOOD, "group": ""}], "criterion-bad-group", {"value": "''"}),
        ([{**GOOD, "group": "  "}], "criterion-bad-group", {"value": "'  '"}),
        ([{**GOOD, "group": 3}], "criterion-bad-group", {"value": "3"}),
        ([{**GOOD, "group": "g" * 41}], "criterion-bad-group", {"limit": 40}),
    ],
)
def test_parse_criteria_refuses_bad_criteria_with_a_clear_message(data, key, params):
    with pytest.raises(CriteriaError) as raised:
        parse_criteria(data)
    error = raised.value
    assert error.key == f"registry.cultivation.{key}"
    assert params.items() <= error.params.items()
    for lang in ("en", "zh"):  # the message exists and every placeholder is given
        text = t(error.key, lang, **error.params)
        assert "{" not in text, text


def test_defaults_refuse_a_tier_off_the_ladder():
    with pytest.raises(CriteriaError) as raised:
        load_defaults('[[major_project_lead_a]]\nmetric = "patents"\nminimum = 1\n')
    assert raised.value.key == "registry.cultivation.criteria-unknown-tier"
    assert raised.value.params["tier"] == "major_project_lead_a"
    with pytest.raises(CriteriaError) as raised:
        load_defaults('[[leader]]\nmetric = "patents"\nminimun = 1\n')
    assert raised.value.key == "registry.cultivation.criterion-unknown-field"


def test_every_message_key_of_the_module_is_in_the_catalogue():
    text = Path(cultivation.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'"(registry\.cultivation\.[a-z.-]+)"', text))
    assert len(used) >= 12
    known = catalogue()
    assert used <= known.keys(), used - known.keys()
    for metric in Metric:
        assert f"registry.cultivation.metric.{metric.value}" in known
    for label in ("met", "missed", "unknown"):
        assert f"registry.cultivation.outcome.{label}" in known


# --- properties -----------------------------------------------------------------------------------

RANGES = {  # thresholds and figures drawn from one range per metric, so criteria are met and missed
    Metric.REVENUE_FEN: (0, 20_000 * WAN),
    Metric.RD_INTENSITY_BP: (0, 2_000),
    Metric.RD_SPEND_FEN: (0, 1_000 * WAN),
    Metric.PATENTS: (0, 12),
    Metric.EMPLOYEES: (0, 2_000),
    Metric.AGE_MONTHS: (0, 200),
    Metric.REVENUE_GROWTH_BP: (0, 5_000),
    Metric.ABOVE_SIZE: (0, 1),
}
TIERS = (None, *Tier)
days = st.integers(0, 20 * 366).map(lambda d: date(2008, 1, 1) + timedelta(days=d))


def maybe(strategy: st.SearchStrategy[int]) -> st.SearchStrategy[int | None]:
    return st.none() | strategy


@st.composite
def enterprises(draw: st.DrawFn, enterprise_id: int = 1) -> Facts:
    return Facts(
        enterprise_id=enterprise_id,
        name=draw(st.text(string.ascii_uppercase, min_size=1, max_size=2)),
        tier=draw(st.sampled_from(TIERS)),
        revenue_fen=draw(maybe(st.integers(*RANGES[Metric.REVENUE_FEN]))),
        previous_revenue_fen=draw(maybe(st.integers(*RANGES[Metric.REVENUE_FEN]))),
        rd_intensity_bp=draw(maybe(st.integers(*RANGES[Metric.RD_INTENSITY_BP]))),
        patents=draw(maybe(st.integers(*RANGES[Metric.PATENTS]))),
        employees=draw(maybe(st.integers(*RANGES[Metric.EMPLOYEES]))),
        founded_on=draw(st.none() | days),
        above_size=draw(st.none() | st.booleans()),
    )


@st.composite
def criteria_lists(draw: st.DrawFn, minimum_only: bool = False) -> list[Criterion]:
    found = []
    for _ in range(draw(st.integers(1, 8))):
        metric = draw(st.sampled_from(list(Metric)))
        low, high = RANGES[metric]
        first, second = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2)))
        shape = "min" if minimum_only else draw(st.sampled_from(["min", "max", "both"]))
        minimum = first if shape in ("min", "both") else None
        maximum = second if shape in ("max", "both") else None
        found.append(Criterion(metric, minimum, maximum, draw(st.sampled_from([None, "a", "b"]))))
    return found


def group_met(result: Assessment, group: str | None) -> bool:
    return group is not None and any(o.criterion.group == group for o in result.met)


@PROPERTIES
@given(enterprises(), criteria_lists(), days)
def test_every_criterion_reported_once_unless_its_group_is_met(enterprise, criteria, as_of):
    result = assess(enterprise, Tier.INNOVATIVE_SME, criteria, as_of)
    values = metric_values(enterprise, as_of)
    reported = Counter(o.criterion for o in result.met + result.missed + result.unknown)
    expected = Counter(
        c
        for c in criteria
        if not group_met(result, c.group) or (values[c.metric] is not None and c.holds(values[c.metric]))
    )
    assert reported == expected
    for outcome in result.met + result.missed + result.unknown:
        assert outcome.value == values[outcome.criterion.metric]
    for outcome in result.met:
        assert outcome.value is not None and outcome.criterion.holds(outcome.value)


@PROPERTIES
@given(enterprises(), criteria_lists(), days)
def test_eligible_iff_nothing_missed_or_unknown_and_every_requirement_holds(enterprise, criteria, as_of):
    result = assess(enterprise, Tier.INNOVATIVE_SME, criteria, as_of)
    assert result.eligible == (not result.missed and not result.unknown)
    values = metric_values(enterprise, as_of)

    def holds(c: Criterion) -> bool:
        value = values[c.metric]
        return value is not None and c.holds(value)

    plain = all(holds(c) for c in criteria if c.group is None)
    groups = {c.group for c in criteria if c.group is not None}
    alternatives = all(any(holds(c) for c in criteria if c.group == g) for g in groups)
    assert result.eligible == (plain and alternatives)


@PROPERTIES
@given(
    enterprises(),
    criteria_lists(minimum_only=True),
    days,
    st.lists(st.integers(0, 5_000 * WAN), min_size=4, max_size=4),
    st.integers(0, 3_000),
)
def test_raising_a_figure_never_loses_a_met_minimum(enterprise, criteria, as_of, more, earlier_days):
    def plus(value: int | None, extra: int) -> int | None:
        return None if value is None else value + extra

    raised = replace(
        enterprise,
        revenue_fen=plus(enterprise.revenue_fen, more[0]),
        rd_intensity_bp=plus(enterprise.rd_intensity_bp, more[1] % 1_000),
        patents=plus(enterprise.patents, more[2] % 10),
        employees=plus(enterprise.employees, more[3] % 500),
        founded_on=None if enterprise.founded_on is None else enterprise.founded_on - timedelta(earlier_days),
        above_size=None if enterprise.above_size is None else True,
    )
    before = assess(enterprise, Tier.INNOVATIVE_SME, criteria, as_of)
    after = assess(raised, Tier.INNOVATIVE_SME, criteria, as_of)
    assert Counter(o.criterion for o in before.met) <= Counter(o.criterion for o in after.met)
    assert not before.eligible or after.eligible
    assert len(after.missed) + len(after.unknown) <= len(before.missed) + len(before.unknown)


@PROPERTIES
@given(
    enterprises(),
    criteria_lists(),
    days,
    st.sampled_from(["revenue_fen", "previous_revenue_fen", "rd_intensity_bp", "patents", "employees"]),
)
def test_erasing_a_figure_never_makes_an_enterprise_eligible(enterprise, criteria, as_of, field):
    before = assess(enterprise, Tier.INNOVATIVE_SME, criteria, as_of)
    after = assess(replace(enterprise, **{field: None}), Tier.INNOVATIVE_SME, criteria, as_of)
    assert before.eligible or not after.eligible


@PROPERTIES
@given(
    st.lists(st.integers(1, 10**6), max_size=12, unique=True).flatmap(
        lambda ids: st.tuples(*(enterprises(i) for i in ids))
    ),
    criteria_lists(),
    st.sampled_from(TARGETS),
    days,
)
def test_candidates_are_the_tier_below_assessed_and_sorted(everyone, criteria, target, as_of):
    found = candidates(everyone, target, criteria, as_of)
    below = previous_tier(target)
    assert sorted(a.enterprise_id for a in found) == sorted(
        e.enterprise_id for e in everyone if e.tier == below
    )
    by_id = {e.enterprise_id: e for e in everyone}
    for result in found:
        assert result == assess(by_id[result.enterprise_id], target, criteria, as_of)
    keys = [(not a.eligible, len(a.missed), len(a.unknown), a.name, a.enterprise_id) for a in found]
    assert keys == sorted(keys)


@PROPERTIES
@given(criteria_lists())
def test_criteria_survive_a_round_trip_through_json(criteria):
    assert parse_criteria([c.as_json() for c in criteria]) == tuple(criteria)


def add_months(day: date, months: int) -> date:
    """`months` after `day`, on the last day of the month where that month is shorter."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@PROPERTIES
@given(days, st.integers(0, 3 * 366))
def test_age_is_the_most_whole_months_that_fit(founded_on, elapsed_days):
    as_of = founded_on + timedelta(days=elapsed_days)
    months = age_months(founded_on, as_of)
    assert months is not None and months >= 0
    assert add_months(founded_on, months) <= as_of < add_months(founded_on, months + 1)
    later = age_months(founded_on, as_of + timedelta(days=1))
    assert later is not None and months <= later <= months + 1


@PROPERTIES
@given(st.integers(0, 10**14), st.integers(0, 10_000), st.integers(1, 10**14))
def test_derived_figures_round_down_by_less_than_one(revenue, intensity, previous):
    values = metric_values(
        facts(revenue_fen=revenue, rd_intensity_bp=intensity, previous_revenue_fen=previous), AS_OF
    )
    spend, growth = values[Metric.RD_SPEND_FEN], values[Metric.REVENUE_GROWTH_BP]
    assert spend is not None and growth is not None
    exact_spend = Fraction(revenue * intensity, 10_000)
    exact_growth = Fraction((revenue - previous) * 10_000, previous)
    assert spend <= exact_spend < spend + 1
    assert growth <= exact_growth < growth + 1
