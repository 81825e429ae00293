"""The pool index answers exactly what violation(check_size=False) answers, for any pools and job shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from suanwang.scheduler.constraints import PoolIndex, violation
from suanwang.scheduler.types import Classification, PoolState, QueuedJob, Zone

ACCELERATORS = ["H800", "A800", "H100-SXM", "V100", "ASCEND-910B", "L40S"]
REGIONS = ["pinghu", "huzhou", "qingyang"]

pools_strategy = st.lists(
    st.builds(
        PoolState,
        id=st.uuids().map(str),
        provider=st.just("p"),
        site=st.just("s"),
        region=st.sampled_from(REGIONS),
        zone=st.sampled_from(list(Zone)),
        accelerator=st.sampled_from(ACCELERATORS),
        cards_total=st.just(16),
        cards_free=st.just(16),
        cards_per_node=st.sampled_from([4, 8]),
        price_fen_per_card_hour=st.integers(100, 2000),
        healthy=st.booleans(),
        local=st.booleans(),
        memory_gib=st.sampled_from([0, 24, 80]),
    ),
    max_size=30,
    unique_by=lambda p: p.id,
)

jobs_strategy = st.builds(
    QueuedJob,
    id=st.just("j"),
    tenant=st.just("t"),
    cards=st.integers(0, 32),
    duration_s=st.just(100.0),
    submit_s=st.just(0.0),
    cards_per_node=st.none() | st.sampled_from([2, 4, 8]),
    accelerators=st.frozensets(st.sampled_from([*ACCELERATORS, "T4"]), max_size=3),
    min_memory_gib=st.sampled_from([0, 0, 32, 64, 96]),
    max_price_fen_per_card_hour=st.none() | st.integers(100, 2000),
    classification=st.sampled_from(list(Classification)),
    regions=st.frozensets(st.sampled_from([*REGIONS, "elsewhere"]), max_size=2),
)


@settings(max_examples=300)
@given(pools_strategy, jobs_strategy)
def test_index_agrees_with_the_constraints(pools, job):
    pools = sorted(pools, key=lambda p: p.id)
    expected = [p for p in pools if violation(job, p, check_size=False) is None]
    assert PoolIndex(pools).shaped(job) == expected


@settings(max_examples=100)
@given(pools_strategy, st.lists(jobs_strategy, max_size=20))
def test_one_index_answers_every_shape_of_a_queue(pools, jobs):
    """The index caches what shapes share (zone, accelerators, regions): later answers stay exact."""
    pools = sorted(pools, key=lambda p: p.id)
    index = PoolIndex(pools)
    for job in jobs:
        expected = [p for p in pools if violation(job, p, check_size=False) is None]
        assert index.shaped(job) == expected
