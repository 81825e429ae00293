"""Properties of the pure scheduling core over random snapshots, for every algorithm.

The snapshots are consistent the way the controller builds them: the cards running jobs hold on a pool
are exactly `cards_total - cards_free`. Times are whole seconds, so a reservation's rounded start is
its exact start.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from suanwang.i18n import catalogue, t
from suanwang.scheduler import (
    Algorithm,
    Classification,
    Decisions,
    Place,
    Policy,
    PoolState,
    QueuedJob,
    Reason,
    RunningJob,
    Snapshot,
    TenantState,
    Zone,
    estimate,
    schedule,
)
from suanwang.scheduler.constraints import violation
from suanwang.scheduler.core import sme_reserved_cards

ACCELERATORS = ("H800", "A800", "H100-SXM", "V100", "ASCEND-910B")
REGIONS = ("pinghu", "jiaxing", "guiyang", "zhongwei")
NOW_S = 1_000_000
ALGORITHMS = list(Algorithm)
PLACEHOLDER = re.compile(r"\{[^{}]*\}")

# Modest: the whole file runs in about half a minute on two cores. The targeted worlds are small and
# cheap, so they get more examples.
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TARGETED = settings(SETTINGS, max_examples=200)


# --- strategies ------------------------------------------------------------------------------------


@st.composite
def tenants_st(draw: st.DrawFn, local_world: bool = False) -> tuple[TenantState, ...]:
    count = draw(st.integers(1, 5))
    tenants = [
        TenantState(
            id=f"t{i}",
            weight=draw(st.sampled_from([0.5, 1.0, 2.0, 4.0])),
            local=draw(st.booleans()),
            sme=draw(st.booleans()),
            kind=draw(st.sampled_from(["enterprise", "government", "research", "university"])),
            # Whole card-seconds: sums are exact in any order, so shuffling cannot change a tie.
            usage_card_s=float(draw(st.integers(0, 10_000_000))),
        )
        for i in range(count)
    ]
    if local_world:  # always a local SME and someone else, to contend for the guaranteed share
        tenants += [TenantState("t-sme", local=True, sme=True), TenantState("t-other", local=True)]
    return tuple(tenants)


@st.composite
def pool_st(draw: st.DrawFn, index: int, busy: bool, local_world: bool = False) -> PoolState:
    cards_per_node = draw(st.sampled_from([1, 4, 8, 8, 16]))
    cards_total = cards_per_node * draw(st.integers(1, 6))
    # busy: at least one card in use on every pool (so a big enough job cannot start anywhere).
    cards_free = draw(st.integers(0, cards_total - 1 if busy else cards_total))
    return PoolState(
        id=f"p{index:02d}",
        provider=draw(st.sampled_from(["prov-a", "prov-b", "prov-c"])),
        site=f"site-{index % 3}",
        region=draw(st.sampled_from(REGIONS)),
        zone=draw(st.sampled_from(list(Zone))),
        accelerator=draw(st.sampled_from(ACCELERATORS)),
        cards_total=cards_total,
        cards_free=cards_free,
        cards_per_node=cards_per_node,
        price_fen_per_card_hour=draw(st.integers(100, 5000)),
        healthy=draw(st.sampled_from([True, True, True, True, False])),
        local=draw(st.sampled_from([True, True, True, False]) if local_world else st.booleans()),
        # Most pools uncalibrated; some measured slower or faster than their datasheet ratio.
        throughput=draw(st.sampled_from([1.0, 1.0, 1.0, 0.5, 0.8, 1.25, 2.0])),
    )


@st.composite
def running_st(
    draw: st.DrawFn, pools: tuple[PoolState, ...], tenants: tuple[TenantState, ...]
) -> tuple[RunningJob, ...]:
    """Running jobs that hold exactly the used cards of every pool."""
    jobs = []
    for pool in pools:
        used = pool.cards_total - pool.cards_free
        while used > 0:
            cards = draw(st.integers(1, used))
            used -= cards
            preemptible = draw(st.booleans())
            start = NOW_S - draw(st.integers(0, 200_000))
            jobs.append(
                RunningJob(
                    id=f"r{len(jobs)}",
                    tenant=draw(st.sampled_from(tenants)).id,
                    pool_id=pool.id,
                    cards=cards,
                    start_s=float(start),
                    # Some overrun their estimate: their end lies in the past, yet they still run.
                    expected_end_s=float(NOW_S + draw(st.integers(-100, 200_000))),
                    priority=draw(st.integers(0, 3)),
                    preemptible=preemptible,
                    borrowing=preemptible and pool.local and draw(st.booleans()),
                )
            )
    return tuple(jobs)


@st.composite
def queued_job_st(
    draw: st.DrawFn, job_id: str, tenants: tuple[TenantState, ...], max_priority: int = 3
) -> QueuedJob:
    # Unknown tenants happen (a job submitted before its tenant reached the snapshot): weight 1, no usage.
    tenant = draw(st.sampled_from([*(t.id for t in tenants), "t-unknown"]))
    return QueuedJob(
        id=job_id,
        tenant=tenant,
        cards=draw(st.one_of(st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 32))),
        duration_s=float(draw(st.integers(60, 100_000))),
        submit_s=float(NOW_S - draw(st.integers(0, 1_000_000))),
        cards_per_node=draw(st.sampled_from([None, None, None, 1, 2, 4, 8])),
        # Constraints are drawn sparingly, so that most jobs have somewhere to run.
        accelerators=draw(st.just(frozenset()) | st.frozensets(st.sampled_from(ACCELERATORS), max_size=3)),
        min_memory_gib=draw(st.sampled_from([0, 0, 0, 40, 64, 80])),
        deadline_s=draw(st.one_of(st.none(), st.integers(NOW_S, NOW_S + 200_000).map(float))),
        max_price_fen_per_card_hour=draw(st.none() | st.integers(100, 5000)),
        classification=draw(
            st.sampled_from([*Classification, Classification.PUBLIC, Classification.INTERNAL])
        ),
        regions=draw(st.just(frozenset()) | st.frozensets(st.sampled_from(REGIONS), max_size=2)),
        priority=draw(st.integers(0, max_priority)),
        preemptible=draw(st.booleans()),
        job_type=draw(st.sampled_from([None, None, "resnet50"])),
    )


@st.composite
def policy_st(draw: st.DrawFn, algorithm: Algorithm, local_world: bool = False) -> Policy:
    shares = [0.25, 0.5] if local_world else [0.0, 0.25, 0.25, 0.5]
    return Policy(
        algorithm=algorithm,
        sme_guaranteed_share=draw(st.sampled_from(shares)),
        # Sometimes the share is held on chosen pools only (and a whole pool may be the SMEs').
        sme_share_by_pool=draw(st.sampled_from([{}, {}, {"p00": 0.0, "p01": 1.0}, {"p02": 0.75}])),
        backfill_depth=draw(st.sampled_from([100_000, 100_000, 100_000, 3])),
        pool_order=tuple(draw(st.lists(st.sampled_from([f"p{i:02d}" for i in range(8)]), unique=True))),
        throughput_overrides={"resnet50": {"A800": 0.8, "V100": 1.0}},
        preempt_for_priority=draw(st.sampled_from([None, None, 2, 3] if not local_world else [None, 1, 2])),
    )


@st.composite
def snapshot_st(
    draw: st.DrawFn, *, busy: bool = False, max_queued: int = 12, local_world: bool = False
) -> Snapshot:
    """A consistent snapshot; `local_world`: mostly local pools, local SMEs and borrowers contending."""
    tenants = draw(tenants_st(local_world))
    pools = tuple(draw(pool_st(i, busy, local_world)) for i in range(draw(st.integers(1, 8))))
    # Some pools are reservations: only one tenant's work may use them (a hard constraint).
    pools = tuple(
        replace(pool, tenants=frozenset({draw(st.sampled_from(tenants)).id}))
        if tenants and draw(st.integers(0, 4)) == 0
        else pool
        for pool in pools
    )
    running = draw(running_st(pools, tenants))
    queued = tuple(draw(queued_job_st(f"q{i}", tenants)) for i in range(draw(st.integers(0, max_queued))))
    return Snapshot(now_s=float(NOW_S), pools=pools, queued=queued, running=running, tenants=tenants)


# --- the invariants every cycle keeps --------------------------------------------------------------


def local_sme(snapshot: Snapshot, tenant_id: str) -> bool:
    return any(t.id == tenant_id and t.local_sme for t in snapshot.tenants)


def assert_reason_renders(reason: Reason) -> None:
    """The reason's message exists in English and Chinese, and renders with every placeholder filled."""
    entry = catalogue().get(f"sched.{reason.code}")
    assert entry is not None, f"no message sched.{reason.code}"
    assert entry.get("en") and entry.get("zh"), f"sched.{reason.code} lacks en or zh"
    for text in (reason.text(), t(f"sched.{reason.code}", "zh", **dict(reason.params))):
        assert text.strip() and not PLACEHOLDER.search(text), f"unfilled placeholder in {reason}: {text}"


def assert_invariants(snapshot: Snapshot, policy: Policy, decisions: Decisions) -> None:
    pools = {p.id: p for p in snapshot.pools}
    queued = {j.id: j for j in snapshot.queued}
    running = {r.id: r for r in snapshot.running}

    # Every queued job exactly one decision: placed or waiting.
    decided = Counter([p.job_id for p in decisions.places] + [w.job_id for w in decisions.waits])
    assert decided == Counter(list(queued)), "every queued job gets exactly one decision"

    # Preemptions: real running jobs, preemptible, each once, only by suanwang, each for a placed job.
    preempted_ids = [p.job_id for p in decisions.preempts]
    assert len(preempted_ids) == len(set(preempted_ids)), "a job preempted twice"
    placed_on = {p.job_id: p.pool_id for p in decisions.places}
    if policy.algorithm is not Algorithm.SUANWANG:
        assert not decisions.preempts
    for preempt in decisions.preempts:
        victim = running[preempt.job_id]
        assert victim.preemptible, f"non-preemptible {victim.id} preempted"
        assert_reason_renders(preempt.reason)
        params = dict(preempt.reason.params)
        for_job = queued[str(params["for_job"])]
        assert params["pool"] == victim.pool_id
        assert placed_on.get(for_job.id) == victim.pool_id, "a preemption frees room for a placement there"
        if preempt.reason.code == "sme-reclaim":
            assert victim.borrowing, f"SME reclaim hit {victim.id}, which was not borrowing"
            assert pools[victim.pool_id].local
            assert local_sme(snapshot, for_job.tenant)
        else:
            assert preempt.reason.code == "priority"
            assert policy.preempt_for_priority is not None
            assert for_job.priority >= policy.preempt_for_priority
            assert victim.priority < for_job.priority

    # No pool over-allocated; no hard constraint broken; estimates consistent.
    freed: dict[str, int] = defaultdict(int)
    for preempt in decisions.preempts:
        freed[running[preempt.job_id].pool_id] += running[preempt.job_id].cards
    placed: dict[str, int] = defaultdict(int)
    for place in decisions.places:
        job, pool = queued[place.job_id], pools[place.pool_id]
        assert violation(job, pool) is None, f"{job.id} on {pool.id}: {violation(job, pool)}"
        assert place.cards == job.cards
        assert place.est_runtime_s > 0 and place.est_cost_fen >= 0
        assert place.est_end_s == pytest.approx(snapshot.now_s + place.est_runtime_s)
        assert place.est_runtime_s == pytest.approx(estimate.runtime_s(job, pool, policy))
        if place.borrowing:
            assert job.preemptible and not local_sme(snapshot, job.tenant), "only preemptible work borrows"
        placed[pool.id] += job.cards
    for pool_id, cards in placed.items():
        limit = pools[pool_id].cards_free + freed[pool_id]
        assert cards <= limit, f"{pool_id} over-allocated: {cards} placed, {limit} available"

    # Every wait explains itself in both languages, with nothing left unfilled.
    for wait in decisions.waits:
        assert_reason_renders(wait.reason)
        if policy.algorithm is not Algorithm.FIFO:
            assert wait.reason.code != "fifo-blocked"


def decision_key(decisions: Decisions) -> tuple[object, ...]:
    return decisions.places, decisions.preempts, decisions.waits


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@SETTINGS
@given(data=st.data())
def test_every_cycle_keeps_the_invariants(algorithm: Algorithm, data: st.DataObject) -> None:
    local_world = data.draw(st.booleans())
    snapshot = data.draw(snapshot_st(local_world=local_world))
    policy = data.draw(policy_st(algorithm, local_world))
    assert_invariants(snapshot, policy, schedule(snapshot, policy))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@SETTINGS
@given(data=st.data(), rng=st.randoms(use_true_random=False))
def test_same_snapshot_in_any_order_gives_the_same_decisions(
    algorithm: Algorithm, data: st.DataObject, rng: random.Random
) -> None:
    local_world = data.draw(st.booleans())
    snapshot = data.draw(snapshot_st(max_queued=16, local_world=local_world))
    policy = data.draw(policy_st(algorithm, local_world))
    first = schedule(snapshot, policy)
    assert decision_key(schedule(snapshot, policy)) == decision_key(first)

    def shuffled(items: tuple[object, ...]) -> tuple[object, ...]:
        items_list = list(items)
        rng.shuffle(items_list)
        return tuple(items_list)

    reordered = replace(
        snapshot,
        pools=shuffled(snapshot.pools),
        queued=shuffled(snapshot.queued),
        running=shuffled(snapshot.running),
        tenants=shuffled(snapshot.tenants),
    )
    assert decision_key(schedule(reordered, policy)) == decision_key(first)


# --- liveness --------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@SETTINGS
@given(data=st.data())
def test_a_lone_job_with_a_feasible_free_pool_is_placed(algorithm: Algorithm, data: st.DataObject) -> None:
    snapshot = data.draw(snapshot_st(max_queued=0))
    policy = data.draw(policy_st(algorithm))
    # Make one pool healthy with free cards, then a job that pool can run now.
    index = data.draw(st.integers(0, len(snapshot.pools) - 1))
    target = snapshot.pools[index]
    if not target.healthy or target.cards_free == 0:
        # Freeing cards means dropping the running jobs there: keep the snapshot consistent.
        target = replace(target, healthy=True, cards_free=target.cards_total)
        running = tuple(r for r in snapshot.running if r.pool_id != target.id)
    else:
        running = snapshot.running
    pools = tuple(target if p.id == target.id else p for p in snapshot.pools)
    job = data.draw(queued_job_st("lone", snapshot.tenants))
    job = replace(
        job,
        cards=data.draw(st.integers(0, target.cards_free)),
        cards_per_node=data.draw(st.sampled_from([None, target.cards_per_node])),
        accelerators=job.accelerators | {target.accelerator} if job.accelerators else job.accelerators,
        regions=job.regions | {target.region} if job.regions else job.regions,
        min_memory_gib=0,
        max_price_fen_per_card_hour=None
        if job.max_price_fen_per_card_hour is None
        else max(job.max_price_fen_per_card_hour, target.price_fen_per_card_hour),
        classification=Classification.GOVERNMENT
        if job.classification is Classification.GOVERNMENT and target.zone is Zone.GOVERNMENT
        else data.draw(st.sampled_from([Classification.PUBLIC, Classification.INTERNAL])),
    )
    tenants = snapshot.tenants
    if algorithm is Algorithm.SUANWANG and target.local and not job.preemptible:
        # The SME guarantee may keep others' non-preemptible work off a local pool: a local SME's job.
        tenants = (*tenants, TenantState(id="sme", local=True, sme=True))
        job = replace(job, tenant="sme")
    if target.tenants:  # a reservation: the lone job is its tenant's
        target = replace(target, tenants=frozenset({job.tenant}))
        pools = tuple(target if p.id == target.id else p for p in pools)
    assert violation(job, target) is None
    snapshot = replace(snapshot, pools=pools, running=running, queued=(job,), tenants=tenants)

    decisions = schedule(snapshot, policy)
    assert [p.job_id for p in decisions.places] == ["lone"], decisions.waits
    assert_invariants(snapshot, policy, decisions)


# --- EASY backfill ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadCase:
    snapshot: Snapshot
    head: QueuedJob


@st.composite
def blocked_head_st(draw: st.DrawFn, local_world: bool) -> HeadCase:
    """A busy snapshot whose highest-priority job fits some pool but can start on none."""
    snapshot = draw(snapshot_st(busy=True, max_queued=14, local_world=local_world))
    healthy = [p for p in snapshot.pools if p.healthy and not p.tenants]  # reservations are not its
    assume(healthy)
    cards = max(p.cards_free for p in healthy) + 1  # busy: some pool has cards_total >= this
    head = QueuedJob(
        id="head",
        tenant="t-head",  # not a local SME: nothing is preempted for it
        cards=cards,
        duration_s=float(draw(st.integers(60, 100_000))),
        submit_s=float(NOW_S - draw(st.integers(0, 1_000_000))),
        priority=3,
        preemptible=draw(st.booleans()),
    )
    # Everyone else is of a lower priority class, so the head is first in line.
    queued = tuple(replace(j, priority=min(j.priority, 2)) for j in snapshot.queued)
    return HeadCase(replace(snapshot, queued=(head, *queued)), head)


def free_cards_at(snapshot: Snapshot, decisions: Decisions, pool_id: str, at_s: float) -> int:
    """Cards free on a pool at `at_s`: running work ends at its expected end, this cycle's at est_end_s."""
    pool = next(p for p in snapshot.pools if p.id == pool_id)
    preempted = {p.job_id for p in decisions.preempts}
    free = pool.cards_free
    for job in snapshot.running:
        if job.pool_id == pool_id and (job.id in preempted or job.expected_end_s <= at_s):
            free += job.cards
    for place in decisions.places:
        if place.pool_id == pool_id and place.est_end_s > at_s:
            free -= place.cards
    return free


def assert_head_keeps_its_reservation(case: HeadCase, policy: Policy, decisions: Decisions) -> None:
    """The head's Wait is 'reserved' (pool, start_s) and this cycle's placements leave it its cards then."""
    assert_invariants(case.snapshot, policy, decisions)
    suanwang = policy.algorithm is Algorithm.SUANWANG
    waits = {w.job_id: w.reason for w in decisions.waits}
    if "head" not in waits:  # it made room by preempting lower-priority preemptible work
        assert suanwang and decisions.preempts and decisions.places[0].job_id == "head"
        return
    reason = waits["head"]
    if reason.code in ("capacity", "infeasible"):
        # Only where the SME guarantee keeps it off every pool big enough: then nothing is held for it.
        # It says so ("infeasible", sme-share) unless it could still borrow the share briefly.
        assert suanwang and not case.head.preemptible, reason
        if reason.code == "infeasible":
            assert "sme-share" in str(dict(reason.params)["blockers"]), reason
        else:
            assert policy.sme_idle_borrow_max_s > 0, reason
        for pool in case.snapshot.pools:
            if (
                pool.healthy and pool.cards_total >= case.head.cards and not pool.tenants
            ):  # not its reservations
                reserved = sme_reserved_cards(pool, policy)
                assert case.head.cards > pool.cards_total - reserved, f"{pool.id} could take the head later"
        return
    assert reason.code == "reserved", reason
    params = dict(reason.params)
    pool_id, start_s = str(params["pool"]), float(str(params["start_s"]))
    assert start_s >= case.snapshot.now_s
    assert [w for w in decisions.waits if w.reason.code == "reserved"] == [decisions.waits[0]]
    free = free_cards_at(case.snapshot, decisions, pool_id, start_s)
    assert free >= case.head.cards, (
        f"{free} of the head's {case.head.cards} cards left on {pool_id} at {start_s}"
    )
    if suanwang and not case.head.preemptible:
        # The head is not a local SME's: on a local pool it may never hold the SMEs' guaranteed share,
        # so a reservation there for more than the rest would hold the pool for a job that never starts.
        pool = next(p for p in case.snapshot.pools if p.id == pool_id)
        reserved = sme_reserved_cards(pool, policy)
        assert case.head.cards <= pool.cards_total - reserved, (
            f"{pool_id} reserved for a job it can never start"
        )


@pytest.mark.parametrize("algorithm", [Algorithm.BACKFILL, Algorithm.SUANWANG])
@SETTINGS
@given(data=st.data())
def test_backfill_never_delays_the_head_jobs_reservation(algorithm: Algorithm, data: st.DataObject) -> None:
    local_world = data.draw(st.booleans())
    case = data.draw(blocked_head_st(local_world))
    policy = replace(data.draw(policy_st(algorithm, local_world)), backfill_depth=100_000)
    policy = replace(policy, preempt_for_priority=data.draw(st.sampled_from([None, 1, 2])))
    assert_head_keeps_its_reservation(case, policy, schedule(case.snapshot, policy))


LOCAL_TENANTS = (TenantState("t-sme", local=True, sme=True), TenantState("t-other", local=True))


@st.composite
def busy_local_pools_st(draw: st.DrawFn) -> tuple[tuple[PoolState, ...], tuple[RunningJob, ...]]:
    """1-3 busy, healthy local A800 pools, their preemptible running work borrowing the SMEs' share."""
    pools = tuple(
        replace(draw(pool_st(i, busy=True)), healthy=True, local=True, zone=Zone.PUBLIC, accelerator="A800")
        for i in range(draw(st.integers(1, 3)))
    )
    running = tuple(replace(r, borrowing=r.preemptible) for r in draw(running_st(pools, LOCAL_TENANTS)))
    return pools, running


@st.composite
def contending_jobs_st(draw: st.DrawFn, max_priority: int, max_cards: int = 16) -> tuple[QueuedJob, ...]:
    """Jobs of a local SME and of another local tenant, unconstrained, that may preempt to start."""
    return tuple(
        QueuedJob(
            f"q{i}",
            draw(st.sampled_from(["t-sme", "t-other"])),
            draw(st.integers(1, max_cards)),
            float(draw(st.integers(1_000, 600_000))),
            float(NOW_S - i),
            priority=draw(st.integers(0, max_priority)),
            preemptible=draw(st.booleans()),
        )
        for i in range(draw(st.integers(1, 8)))
    )


@st.composite
def contended_local_st(draw: st.DrawFn) -> HeadCase:
    """Busy local pools with preemptible borrowers, a blocked head, and local SMEs' and urgent jobs
    behind it that may preempt to start: the preemption paths meet the reservation."""
    pools, running = draw(busy_local_pools_st())
    # Too big to start now even by preempting everything preemptible, but not too big for every pool.
    cards = 1 + max(
        p.cards_free + sum(r.cards for r in running if r.pool_id == p.id and r.preemptible) for p in pools
    )
    assume(any(p.cards_total >= cards for p in pools))
    head = QueuedJob("head", "t-other", cards, 3600.0, NOW_S - 7200.0, priority=3, preemptible=True)
    behind = draw(contending_jobs_st(max_priority=2))
    return HeadCase(Snapshot(float(NOW_S), pools, (head, *behind), running, LOCAL_TENANTS), head)


@TARGETED
@given(case=contended_local_st(), share=st.sampled_from([0.25, 0.5]), threshold=st.sampled_from([None, 1, 2]))
def test_preempting_to_start_never_delays_the_head_jobs_reservation(
    case: HeadCase, share: float, threshold: int | None
) -> None:
    policy = Policy(sme_guaranteed_share=share, preempt_for_priority=threshold)
    decisions = schedule(case.snapshot, policy)
    assert_head_keeps_its_reservation(case, policy, decisions)
    assert_sme_share_kept(case.snapshot, policy, decisions)


def test_backfill_check_catches_a_delaying_placement() -> None:
    """The reservation check above is not vacuous: a job running past the shadow time on the reserved
    pool with the head's cards is caught."""
    pool = PoolState("p0", "a", "s", "pinghu", Zone.PUBLIC, "A800", 8, 4, 8, 1000)
    running = (RunningJob("r0", "t0", "p0", 4, NOW_S - 10.0, NOW_S + 100.0),)
    head = QueuedJob("head", "t0", 8, 1000.0, NOW_S - 5.0, priority=3)
    snapshot = Snapshot(float(NOW_S), (pool,), (head,), running)
    decisions = schedule(snapshot, Policy(algorithm=Algorithm.BACKFILL))
    assert free_cards_at(snapshot, decisions, "p0", NOW_S + 100.0) == 8
    rogue = Decisions(places=(*decisions.places, _place("late", "p0", 4, NOW_S + 500.0)))
    assert free_cards_at(snapshot, rogue, "p0", NOW_S + 100.0) == 4


def _place(job_id: str, pool_id: str, cards: int, end_s: float) -> Place:
    return Place(job_id, pool_id, cards, end_s - NOW_S, 0, end_s)


# --- the local SMEs' guaranteed share ----------------------------------------------------------------


def nonsme_held(snapshot: Snapshot, decisions: Decisions, pool_id: str) -> int:
    """Cards of a pool that work other than local SMEs' holds after the cycle without borrowing."""
    preempted = {p.job_id for p in decisions.preempts}
    queued = {j.id: j for j in snapshot.queued}
    held = sum(
        r.cards
        for r in snapshot.running
        if r.pool_id == pool_id
        and r.id not in preempted
        and not r.borrowing
        and not local_sme(snapshot, r.tenant)
    )
    held += sum(
        p.cards
        for p in decisions.places
        if p.pool_id == pool_id and not p.borrowing and not local_sme(snapshot, queued[p.job_id].tenant)
    )
    return held


def assert_sme_share_kept(snapshot: Snapshot, policy: Policy, decisions: Decisions) -> None:
    """On a local pool, work placed this cycle other than local SMEs' and not borrowing leaves the SMEs'
    guaranteed share: others then hold (without borrowing) at most cards_total - reserved."""
    queued = {j.id: j for j in snapshot.queued}
    for pool in snapshot.pools:
        reserved = sme_reserved_cards(pool, policy)
        if not pool.local or reserved == 0:
            continue
        took = [
            p.job_id
            for p in decisions.places
            if p.pool_id == pool.id
            and p.cards > 0
            and not p.borrowing
            and not local_sme(snapshot, queued[p.job_id].tenant)
        ]
        if took:
            held = nonsme_held(snapshot, decisions, pool.id)
            assert held <= pool.cards_total - reserved, (
                f"{took} left others holding {held} of {pool.id}'s {pool.cards_total} cards; "
                f"{reserved} are guaranteed to local SMEs (preempts: {decisions.preempts})"
            )


@SETTINGS
@given(data=st.data())
def test_others_never_take_the_smes_unused_guaranteed_share(data: st.DataObject) -> None:
    snapshot = data.draw(snapshot_st(max_queued=14, local_world=True))
    policy = data.draw(policy_st(Algorithm.SUANWANG, local_world=True))
    decisions = schedule(snapshot, policy)
    assert_invariants(snapshot, policy, decisions)
    assert_sme_share_kept(snapshot, policy, decisions)


@TARGETED
@given(
    world=busy_local_pools_st(),
    data=st.data(),
    share=st.sampled_from([0.25, 0.5]),
    threshold=st.sampled_from([1, 2, 3]),
)
def test_preempting_for_priority_never_takes_the_smes_share(
    world: tuple[tuple[PoolState, ...], tuple[RunningJob, ...]],
    data: st.DataObject,
    share: float,
    threshold: int,
) -> None:
    pools, running = world
    queued = data.draw(contending_jobs_st(max_priority=3, max_cards=max(p.cards_total for p in pools)))
    snapshot = Snapshot(float(NOW_S), pools, queued, running, LOCAL_TENANTS)
    policy = Policy(sme_guaranteed_share=share, preempt_for_priority=threshold)
    decisions = schedule(snapshot, policy)
    assert_invariants(snapshot, policy, decisions)
    assert_sme_share_kept(snapshot, policy, decisions)


@TARGETED
@given(data=st.data())
def test_a_local_sme_reclaims_its_share_from_preemptible_borrowers(data: st.DataObject) -> None:
    share = data.draw(st.sampled_from([0.25, 0.5]))
    cards_per_node = data.draw(st.sampled_from([1, 4, 8]))
    total = cards_per_node * data.draw(st.integers(1, 4))
    reserved = int(total * share)
    assume(reserved > 0)
    borrowed = data.draw(st.integers(1, reserved))
    others = data.draw(st.integers(0, total - borrowed))
    free = total - borrowed - others
    local = PoolState("p-local", "a", "s", "pinghu", Zone.PUBLIC, "A800", total, free, cards_per_node, 900)
    local = replace(local, local=True)
    full = PoolState("p-full", "b", "s2", "pinghu", Zone.PUBLIC, "A800", 8, 0, 8, 100)
    tenants = (TenantState("sme", local=True, sme=True), TenantState("big", local=False, usage_card_s=9e6))
    running: list[RunningJob] = [RunningJob("r-full", "big", "p-full", 8, NOW_S - 100.0, NOW_S + 9000.0)]
    left = borrowed
    while left:
        cards = data.draw(st.integers(1, left))
        left -= cards
        running.append(
            RunningJob(f"b{left}", "big", "p-local", cards, NOW_S - 50.0, NOW_S + 5000.0, 0, True, True)
        )
    if others:
        running.append(RunningJob("other", "big", "p-local", others, NOW_S - 60.0, NOW_S + 7000.0, 0, True))
    cards = data.draw(st.integers(free + 1, free + borrowed))
    job = QueuedJob("sme-job", "sme", cards, 3600.0, NOW_S - 1.0, accelerators=frozenset({"A800"}))
    snapshot = Snapshot(float(NOW_S), (local, full), (job,), tuple(running), tenants)
    policy = Policy(sme_guaranteed_share=share)

    decisions = schedule(snapshot, policy)
    assert_invariants(snapshot, policy, decisions)
    assert [(p.job_id, p.pool_id) for p in decisions.places] == [("sme-job", "p-local")]
    victims = {p.job_id for p in decisions.preempts}
    assert victims and all(v.startswith("b") for v in victims), victims
    assert {p.reason.code for p in decisions.preempts} == {"sme-reclaim"}
    assert free + sum(r.cards for r in running if r.id in victims) >= cards
