"""Capacity roll-ups as pure functions: cards and dense PFLOPS = cards × TFLOPS / 1000, by any dimension."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanwang import catalog
from suanwang.supply.capacity import DIMENSIONS, PoolCapacity, roll_up
from suanwang.units import format_fen, pflops, yuan_to_fen

ACCELERATORS = catalog.accelerators()


@st.composite
def pool_capacities(draw: st.DrawFn, pool_id: int) -> PoolCapacity:
    accelerator = draw(st.sampled_from(ACCELERATORS))
    return PoolCapacity(
        pool_id=pool_id,
        provider=draw(st.sampled_from(["runze", "geely", "west-hub"])),
        site=draw(st.sampled_from(["phase-1", "phase-2", "edge"])),
        phase=draw(st.sampled_from(["planned", "built", "operational"])),
        region=draw(st.sampled_from(["pinghu", "ningxia"])),
        accelerator=accelerator.model,
        zone=draw(st.sampled_from(["public", "government"])),
        vendor=accelerator.vendor,
        domestic=accelerator.domestic,
        cards=draw(st.integers(min_value=1, max_value=50_000)),
        dense_tflops_per_card=accelerator.dense_fp16_tflops,
    )


@st.composite
def pool_lists(draw: st.DrawFn) -> list[PoolCapacity]:
    n = draw(st.integers(min_value=0, max_value=25))
    return [draw(pool_capacities(i + 1)) for i in range(n)]


dimension_lists = st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=4)


def label(value: object) -> str:
    """Row keys are strings: booleans as JSON spells them, everything else as given."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def key_of(pool: PoolCapacity, dims: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple((d, label(getattr(pool, d))) for d in dims)


@settings(max_examples=200)
@given(pool_lists(), dimension_lists)
def test_groups_add_up_to_the_total(pools, dims):
    rows = roll_up(pools, dims)
    assert sum(r.cards for r in rows) == sum(p.cards for p in pools)
    assert sum(r.pools for r in rows) == len(pools)
    exact = sum((Decimal(p.cards) * p.dense_tflops_per_card for p in pools), Decimal(0)) / 1000
    assert sum((r.pflops for r in rows), Decimal(0)) == exact


@settings(max_examples=200)
@given(pool_lists(), dimension_lists)
def test_each_row_is_exactly_its_members(pools, dims):
    rows = roll_up(pools, dims)
    keys = [r.key for r in rows]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert {key_of(p, dims) for p in pools} == set(keys)
    for row in rows:
        assert [d for d, _ in row.key] == list(dims)
        members = [p for p in pools if key_of(p, dims) == row.key]
        assert row.pools == len(members)
        assert row.cards == sum(p.cards for p in members)
        assert row.pflops == sum((p.cards * p.dense_tflops_per_card / 1000 for p in members), Decimal(0))


@settings(max_examples=100)
@given(pool_lists().filter(bool))
def test_no_dimensions_is_one_total_row(pools):
    (row,) = roll_up(pools, [])
    assert row.key == ()
    assert row.cards == sum(p.cards for p in pools)


def test_no_pools_no_rows():
    assert roll_up([], ["provider"]) == []
    assert roll_up([], []) == []


def test_unknown_dimension_is_refused():
    with pytest.raises(ValueError, match="colour"):
        roll_up([], ["provider", "colour"])


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10**7), st.sampled_from(ACCELERATORS))
def test_pflops_is_cards_times_dense_tflops_over_1000(cards, accelerator):
    value = pflops(cards, accelerator.dense_fp16_tflops)
    assert isinstance(value, Decimal)
    assert value * 1000 == cards * accelerator.dense_fp16_tflops


@pytest.mark.parametrize(
    ("model", "cards", "expected"),
    [
        ("H800", 16, Decimal("15.8304")),  # 2 nodes × 8 cards × 989.4 TFLOPS
        ("H100-SXM", 8, Decimal("7.9152")),
        ("A800", 1000, Decimal("312")),
        ("A100", 3, Decimal("0.936")),
    ],
)
def test_hand_computed_pflops(model, cards, expected):
    accelerator = catalog.find(model)
    assert accelerator is not None
    assert pflops(cards, accelerator.dense_fp16_tflops) == expected


def test_grouping_by_domestic_and_vendor():
    h800 = catalog.find("H800")
    ascend = catalog.find("ascend-910b")
    assert h800 is not None and ascend is not None
    assert not h800.domestic and ascend.domestic
    pools = [
        PoolCapacity(
            1,
            "a",
            "s",
            "operational",
            "pinghu",
            h800.model,
            "public",
            h800.vendor,
            False,
            16,
            h800.dense_fp16_tflops,
        ),
        PoolCapacity(
            2,
            "a",
            "s",
            "operational",
            "pinghu",
            ascend.model,
            "public",
            ascend.vendor,
            True,
            8,
            ascend.dense_fp16_tflops,
        ),
        PoolCapacity(
            3,
            "b",
            "s",
            "planned",
            "pinghu",
            h800.model,
            "government",
            h800.vendor,
            False,
            8,
            h800.dense_fp16_tflops,
        ),
    ]
    rows = {r.key: r for r in roll_up(pools, ["domestic"])}
    assert rows[(("domestic", "false"),)].cards == 24
    assert rows[(("domestic", "true"),)].cards == 8
    by_zone = {r.key: r for r in roll_up(pools, ["zone", "provider"])}
    assert by_zone[(("zone", "government"), ("provider", "b"))].pflops == Decimal("7.9152")


def test_catalogue_has_the_models_the_issue_names():
    models = set(catalog.models())
    for model in [
        "H100-SXM",
        "H800",
        "A800",
        "A100",
        "H20",
        "L40S",
        "A10",
        "V100",
        "P100",
        "T4",
        "ASCEND-910B",
    ]:
        assert model in models
    vendors = {a.vendor for a in ACCELERATORS}
    assert {"NVIDIA", "Huawei"} <= vendors
    assert any("Hygon" in a.vendor for a in ACCELERATORS)
    assert any("Cambricon" in a.vendor for a in ACCELERATORS)
    for a in ACCELERATORS:
        assert a.dense_fp16_tflops > 0 and a.memory_gib > 0 and a.source.strip()


def test_catalogue_lookup_is_case_insensitive_and_exact():
    assert catalog.find(" h800 ") is not None
    assert catalog.find("H80") is None
    assert catalog.find("") is None


def test_catalogue_parse_refuses_bad_entries():
    entry = 'model = "X1"\nvendor = "V"\nname = "X"\nmemory_gib = 8\nsource = "s"\ndomestic = true\n'
    assert catalog.catalog.parse(f'[[accelerator]]\n{entry}dense_fp16_tflops = "1.5"\n')[0].model == "X1"
    with pytest.raises(ValueError, match="positive"):
        catalog.catalog.parse(f'[[accelerator]]\n{entry}dense_fp16_tflops = "0"\n')
    with pytest.raises(ValueError, match="duplicate"):
        twice = f'[[accelerator]]\n{entry}dense_fp16_tflops = "1"\n'
        catalog.catalog.parse(twice + twice)


def test_money_helpers_never_use_floats():
    assert yuan_to_fen(12) == 1200
    with pytest.raises(TypeError):
        yuan_to_fen(12.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        yuan_to_fen(True)
    assert format_fen(123456) == "¥1,234.56"
    assert format_fen(-5) == "-¥0.05"
    assert format_fen(0) == "¥0.00"
