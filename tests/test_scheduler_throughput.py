"""Measured throughput in the estimates: node agents' calibrations against the datasheet ratios."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanwang.scheduler import PoolState, QueuedJob, Zone, estimate
from suanwang.scheduler.policy import Policy

MODELS = ("H800", "A800", "H200", "H100-SXM", "V100")
DATASHEET = {model: estimate.tflops(model) for model in MODELS}

# pool → (model, measured TFLOPS per card); a measurement is a fraction of the datasheet figure.
measured_st = st.dictionaries(
    st.integers(1, 50),
    st.tuples(st.sampled_from(MODELS), st.floats(0.05, 1.5)).map(lambda m: (m[0], DATASHEET[m[0]] * m[1])),
    min_size=1,
    max_size=12,
)


def pool(accelerator: str = "H800", throughput: float = 1.0) -> PoolState:
    return PoolState(
        id="p1",
        provider="a",
        site="s",
        region="pinghu",
        zone=Zone.PUBLIC,
        accelerator=accelerator,
        cards_total=8,
        cards_free=8,
        cards_per_node=8,
        price_fen_per_card_hour=1000,
        throughput=throughput,
    )


def test_a_pool_slower_than_the_typical_card_is_estimated_slower():
    # The H800 pool reaches half its datasheet, the A800 pool 96%: the typical card (median of the
    # two) reaches 73%, so the H800 pool runs at 0.69 of its datasheet ratio and the A800 at 1.31.
    factors = estimate.throughput_factors({1: ("H800", 0.5 * 989.4), 2: ("A800", 0.96 * 312)})
    assert factors[1] == pytest.approx(0.5 / 0.73) and factors[2] == pytest.approx(0.96 / 0.73)
    job = QueuedJob(id="j", tenant="t", cards=8, duration_s=3600, submit_s=0)
    policy = Policy()
    before = estimate.runtime_s(job, pool("H800"), policy)
    after = estimate.runtime_s(job, pool("H800", factors[1]), policy)
    assert after == pytest.approx(before / factors[1]) and after > before
    cpu = QueuedJob(id="c", tenant="t", cards=0, duration_s=3600, submit_s=0)
    assert estimate.runtime_s(cpu, pool("H800", 0.5), policy) == 3600  # CPU work ignores the cards


def test_one_calibrated_pool_is_the_typical_one_and_unknown_or_broken_figures_are_left_out():
    assert estimate.throughput_factors({7: ("H200", 691.4)}) == {7: 1.0}
    assert estimate.throughput_factors({}) == {}
    left_out = {1: ("NVIDIA GH200 480GB", 900.0), 2: ("H800", 0.0), 3: ("H800", float("nan"))}
    assert estimate.throughput_factors(left_out) == {}


def test_a_wild_measurement_is_clamped():
    factors = estimate.throughput_factors(
        {1: ("H800", 700.0), 2: ("H800", 690.0), 3: ("H800", 1.0), 4: ("H800", 9_000_000.0)}
    )
    assert factors[3] == estimate.THROUGHPUT_MIN and factors[4] == estimate.THROUGHPUT_MAX


@given(measured_st)
def test_factors_are_bounded_and_the_median_pool_keeps_its_datasheet_ratio(measured):
    factors = estimate.throughput_factors(measured)
    assert factors.keys() == measured.keys()
    assert all(estimate.THROUGHPUT_MIN <= f <= estimate.THROUGHPUT_MAX for f in factors.values())
    ranked = sorted(factors.values())
    if len(ranked) % 2 == 1:
        assert ranked[len(ranked) // 2] == pytest.approx(1.0)


@given(measured_st, st.floats(0.1, 10))
def test_factors_do_not_depend_on_how_fast_every_card_is_at_once(measured, scale):
    # Cards that all reach a tenth of their datasheet (or all of it) compare as the datasheet says:
    # only a pool's speed relative to the others moves its estimates.
    scaled = {pool: (model, tflops * scale) for pool, (model, tflops) in measured.items()}
    expected = estimate.throughput_factors(measured)
    got = estimate.throughput_factors(scaled)
    for key, factor in expected.items():
        if estimate.THROUGHPUT_MIN < factor < estimate.THROUGHPUT_MAX:
            assert got[key] == pytest.approx(factor)


@given(measured_st, st.data())
def test_a_pool_that_measures_faster_is_never_estimated_slower(measured, data):
    pool_id = data.draw(st.sampled_from(sorted(measured)))
    model, tflops = measured[pool_id]
    faster = measured | {pool_id: (model, tflops * data.draw(st.floats(1.0, 3.0)))}
    assert (
        estimate.throughput_factors(faster)[pool_id] >= estimate.throughput_factors(measured)[pool_id] - 1e-12
    )
