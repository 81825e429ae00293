"""schedule(snapshot, policy) -> decisions, and quote(job, snapshot, policy): the pure scheduling core.

One cycle walks the queue once in the policy's order. Each job gets the pools that pass every hard
constraint (constraints.py), an estimate of runtime, cost and finish on each (estimate.py), and either
a placement, preemptions that make room for it, or a reason to wait. The algorithms share this
machinery and differ only where their anchors differ (see docs/scheduler.md):

- fifo: submit order; the first job that cannot start blocks every job behind it.
- backfill (Slurm-like): multifactor priority (priority class, age, fair share, size), pools tried in
  partition order, EASY backfill behind the highest-priority blocked job.
- cheapest (SkyPilot-like): submit order, cheapest feasible pool by estimated cost, failing over to the
  next cheapest; a job that fits nowhere waits without holding others back.
- suanwang: multifactor priority; per job the cheapest placement that meets its deadline, else the
  earliest finish within its max price (heterogeneity-aware); a guaranteed share of local pools for
  local SMEs that others borrow only preemptibly and SMEs reclaim; EASY backfill.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from suanwang.scheduler import constraints, estimate, fairshare
from suanwang.scheduler.policy import Algorithm, Policy
from suanwang.scheduler.types import (
    Classification,
    Decisions,
    Place,
    PoolState,
    Preempt,
    QueuedJob,
    Reason,
    RunningJob,
    Snapshot,
    TenantState,
    Wait,
)

INF = math.inf


@dataclass(frozen=True, slots=True)
class Option:
    """One way to run a job: a pool, when it can start, and what it would take and cost."""

    pool: PoolState
    start_s: float
    runtime_s: float
    end_s: float
    cost_fen: int
    borrowing: bool = False


# A way to start a job now, as a plain tuple: (cost in fen, end, pool id, pool, runtime, borrowing).
# A cycle over a long queue weighs tens of thousands of these; only the chosen one becomes an Option.
Start = tuple[int, float, str, PoolState, float, bool]
_by_cost = itemgetter(0, 1, 2)  # the cheapest, then the earliest end, then by pool id
_by_finish = itemgetter(1, 0, 2)  # the earliest end, then the cheapest, then by pool id


@dataclass(slots=True)
class _Reservation:
    """EASY backfill: the blocked head job holds `cards` of `pool_id` from `shadow_s` on."""

    pool_id: str
    shadow_s: float
    extra_cards: int  # cards free at shadow time beyond the head job's need: backfill may use them


class _Cycle:
    """The mutable working state of one scheduling cycle over an immutable snapshot."""

    def __init__(self, snapshot: Snapshot, policy: Policy) -> None:
        self.now = snapshot.now_s
        self.policy = policy
        self.pools = sorted(snapshot.pools, key=lambda p: p.id)
        self.pool_by_id = {p.id: p for p in self.pools}
        self.free = {p.id: (p.cards_free if p.healthy else 0) for p in self.pools}
        self.tenants = {t.id: t for t in snapshot.tenants}
        # Per pool, most recently started first: the order preemption picks victims in (least work lost).
        self.running_by_pool: dict[str, list[RunningJob]] = defaultdict(list)
        # The same order, only the jobs preemption may take: all preemptible ones, and the borrowers
        # among them (what an SME reclaims), so a search walks only candidates.
        self.preemptible_by_pool: dict[str, list[RunningJob]] = defaultdict(list)
        self.borrowers_by_pool: dict[str, list[RunningJob]] = defaultdict(list)
        for job in sorted(snapshot.running, key=lambda r: (-r.start_s, r.id)):
            self.running_by_pool[job.pool_id].append(job)
            if job.preemptible:
                self.preemptible_by_pool[job.pool_id].append(job)
                if job.borrowing:
                    self.borrowers_by_pool[job.pool_id].append(job)
        # Upper bounds on what preemption can free per pool, so most pools are ruled out at a glance.
        self.preemptible_cards: dict[str, int] = defaultdict(int)
        self.borrowed_cards: dict[str, int] = defaultdict(int)
        for job in snapshot.running:
            if job.preemptible:
                self.preemptible_cards[job.pool_id] += job.cards
                if job.borrowing:
                    self.borrowed_cards[job.pool_id] += job.cards
        self.places: list[Place] = []
        self.preempts: list[Preempt] = []
        self.waits: list[Wait] = []
        self.preempted: set[str] = set()
        # This cycle's placements per pool: (end, cards, a local SME's?).
        self.planned: dict[str, list[tuple[float, int, bool]]] = defaultdict(list)
        self._feasible: dict[tuple[object, ...], list[PoolState]] = {}
        self._shaped: dict[tuple[object, ...], list[PoolState]] = {}
        self.smallest_pool = min((p.cards_total for p in self.pools), default=0)
        self.by_tenant = any(p.tenants for p in self.pools)  # reserved pools: feasibility per tenant
        self._blockers: dict[tuple[object, ...], str] = {}
        self._violations: dict[tuple[object, ...], list[tuple[str | None, int]]] = {}
        self._sme_pools: dict[tuple[object, ...], list[PoolState]] = {}  # per shape
        # Per job shape, an upper bound on free + borrowed cards over its SME pools (see reclaimable()).
        self._reclaim_bound: dict[tuple[object, ...], int] = {}
        self._held_off: dict[tuple[object, ...], bool] = {}  # per (shape, cards): see held_off()
        self._by_accelerator: dict[tuple[object, ...], dict[tuple[str, float], PoolState]] = {}
        self._speed: dict[tuple[str | None, str], float] = {}
        # Local SME guarantee: cards of each local pool held for local SMEs, and what they use now.
        self.sme_reserved = {p.id: sme_reserved_cards(p, policy) for p in self.pools}
        # The fewest cards any pool keeps for others beyond the share: a gang no larger always fits one.
        self.least_room = min((p.cards_total - self.sme_reserved[p.id] for p in self.pools), default=0)
        self.sme_used: dict[str, int] = defaultdict(int)
        for job in snapshot.running:
            if self.tenant(job.tenant).local_sme:
                self.sme_used[job.pool_id] += job.cards
        # The SMEs' share is idle for others to borrow only while no local SME job waits for it.
        # Local SME jobs still queued in this cycle (not yet placed, not infeasible): while any is, their
        # idle share is not lent to non-preemptible work (Kueue lends only what its queue does not need).
        self.sme_pending = 0
        if any(self.sme_reserved.values()):
            self.sme_pending = sum(1 for job in snapshot.queued if self.tenant(job.tenant).local_sme)
        self._releases: dict[str, list[tuple[float, int, bool]]] = {}
        self._reasons: dict[tuple[object, ...], Reason] = {}
        self._capacity: dict[tuple[int, int], Reason] = {}
        self._index: constraints.PoolIndex | None = None

    # --- facts about jobs and pools --------------------------------------------------------------

    def tenant(self, tenant_id: str) -> TenantState:
        found = self.tenants.get(tenant_id)
        if found is None:
            found = TenantState(id=tenant_id)
            self.tenants[tenant_id] = found
        return found

    def shape(self, job: QueuedJob) -> tuple[object, ...]:
        return _shape(job, self.by_tenant)

    def feasible(self, job: QueuedJob) -> list[PoolState]:
        """Pools that pass every hard constraint for this job (cached per job shape, then per size)."""
        shape = self.shape(job)
        key = (shape, job.cards)
        pools = self._feasible.get(key)
        if pools is None:
            shaped = self.shaped(job, shape)
            # The size check left out above; most gangs fit every pool (then they share the list).
            fits_all = job.cards <= self.smallest_pool
            pools = shaped if fits_all else [p for p in shaped if job.cards <= p.cards_total]
            self._feasible[key] = pools
        return pools

    def shaped(self, job: QueuedJob, shape: tuple[object, ...]) -> list[PoolState]:
        """The pools that pass every hard constraint but size for the job's shape (cached per shape)."""
        found = self._shaped.get(shape)
        if found is None:
            if self._index is None:
                self._index = constraints.PoolIndex(self.pools)
            found = self._shaped[shape] = self._index.shaped(job)
        return found

    def reclaimable(self, job: QueuedJob) -> list[PoolState]:
        """The feasible pools with a share guaranteed to local SMEs where the free and borrowed cards
        could make room for the job.

        Placing only takes cards and reclaiming turns borrowed cards into free ones, so free + borrowed
        never grows on a pool (until a non-borrower is preempted, which forgets the bounds): once a
        shape's pools cannot hold n cards, a later job of that shape needing n or more skips the search.
        """
        shape, cards = self.shape(job), job.cards
        if cards > self._reclaim_bound.get(shape, cards):
            return []
        sme = self._sme_pools.get(shape)
        if sme is None:
            sme = self._sme_pools[shape] = [p for p in self.shaped(job, shape) if self.sme_reserved[p.id]]
        free, borrowed = self.free, self.borrowed_cards
        found = [p for p in sme if cards <= p.cards_total and free[p.id] + borrowed[p.id] >= cards]
        if not found:  # a larger gang fits a subset of these pools
            self._reclaim_bound[shape] = cards - 1
        return found

    def by_accelerator(self, job: QueuedJob, pools: list[PoolState]) -> dict[tuple[str, float], PoolState]:
        """One pool per speed class — accelerator model and measured throughput — among `pools`, the
        job's feasible pools (cached per shape, size)."""
        key = (self.shape(job), job.cards)
        found = self._by_accelerator.get(key)
        if found is None:
            found = self._by_accelerator[key] = {}
            for pool in pools:
                found.setdefault((pool.accelerator, pool.throughput), pool)
        return found

    def runtime(self, job: QueuedJob, pool: PoolState) -> float:
        if job.cards == 0:
            return job.duration_s
        key = (job.job_type, pool.accelerator)
        speed = self._speed.get(key)
        if speed is None:
            speed = estimate.speedup(job, pool.accelerator, self.policy)
            self._speed[key] = speed
        return job.duration_s / (speed * pool.throughput)

    def option(self, job: QueuedJob, pool: PoolState, start_s: float, borrowing: bool = False) -> Option:
        runtime = self.runtime(job, pool)
        cost = estimate.cost_fen(job.cards, runtime, pool.price_fen_per_card_hour)
        return Option(pool, start_s, runtime, start_s + runtime, cost, borrowing)

    # --- capacity --------------------------------------------------------------------------------

    def nonsme_room(self, pool: PoolState) -> int:
        """Cards of a pool that work other than local SMEs' may hold without borrowing."""
        reserved = self.sme_reserved[pool.id]
        if reserved == 0:
            return self.free[pool.id]
        nonsme_used = pool.cards_total - self.free[pool.id] - self.sme_used[pool.id]
        return max(0, min(self.free[pool.id], pool.cards_total - reserved - nonsme_used))

    def start_now(self, job: QueuedJob, pool: PoolState) -> Option | None:
        """An option to start on `pool` now, honouring the SME guarantee, or None."""
        if job.cards > self.free[pool.id]:
            return None  # the common answer, without startable()'s set-up (FIFO asks pool by pool)
        found = self.startable(job, [pool], None)
        return self.option_of(found[0]) if found else None

    def startable(
        self, job: QueuedJob, pools: list[PoolState], reservation: _Reservation | None
    ) -> list[Start]:
        """Every pool of `pools` where `job` can start now, honouring the SME guarantee, without
        taking cards the head's reservation needs at its shadow time: the hot loop of a cycle."""
        cards, now, free, reserved = job.cards, self.now, self.free, self.sme_reserved
        others = not self.tenant(job.tenant).local_sme  # its cards beyond the non-SME room borrow
        # Non-preemptible work borrows the SMEs' idle share only briefly and only while none waits.
        borrow_max = self.policy.sme_idle_borrow_max_s
        may_borrow_briefly = borrow_max > 0 and not self.sme_pending
        # Only on the reserved pool, and only a gang larger than the cards spare at its shadow time, can
        # delay the head: then it must end by the shadow time.
        held, shadow = (None, INF)
        if reservation is not None and cards > reservation.extra_cards:
            held, shadow = reservation.pool_id, reservation.shadow_s
        # Per speed class: the pools of one model and measured throughput share the estimate.
        runtimes: dict[tuple[str, float], float] = {}
        found: list[Start] = []
        for pool in [p for p in pools if free[p.id] >= cards]:  # a comprehension: most pools are full
            pool_id = pool.id
            speed_class = (pool.accelerator, pool.throughput)
            runtime = runtimes.get(speed_class)
            if runtime is None:
                runtime = runtimes[speed_class] = self.runtime(job, pool)
            borrowing = others and reserved[pool_id] > 0 and cards > self.nonsme_room(pool)
            if borrowing and not job.preemptible and not (may_borrow_briefly and runtime <= borrow_max):
                continue  # only preemptible work, or brief work while no SME waits, borrows their share
            end = now + runtime
            if pool_id == held and end > shadow:
                continue
            cost = estimate.cost_fen(cards, runtime, pool.price_fen_per_card_hour)
            found.append((cost, end, pool_id, pool, runtime, borrowing))
        return found

    def option_of(self, start: Start) -> Option:
        cost, end, _, pool, runtime, borrowing = start
        return Option(pool, self.now, runtime, end, cost, borrowing)

    def earliest_start(self, job: QueuedJob, pool: PoolState, until: float = INF) -> tuple[float, int]:
        """When `job.cards` will be free on `pool` (from running and planned ends), and cards free then;
        (INF, ...) if not by `until`.

        Work bound by the SME guarantee (non-preemptible, not a local SME's) also needs that much room
        beyond the SMEs' share: a local SME's job ending frees cards, but no room for it.
        """
        free = self.free[pool.id]
        reserved = self.sme_reserved[pool.id]
        if reserved and not job.preemptible and not self.tenant(job.tenant).local_sme:
            room = pool.cards_total - reserved - (pool.cards_total - free - self.sme_used[pool.id])
            if job.cards <= free and job.cards <= room:
                return self.now, free
            for end, cards, sme in self.releases(pool.id):
                if end > until:
                    break
                free += cards
                if not sme:
                    room += cards
                if free >= job.cards and room >= job.cards:
                    return max(end, self.now), free
            return INF, free
        if job.cards <= free:
            return self.now, free
        for end, cards, _ in self.releases(pool.id):
            if end > until:
                break
            free += cards
            if free >= job.cards:
                return max(end, self.now), free
        return INF, free

    def releases(self, pool_id: str) -> list[tuple[float, int, bool]]:
        """(expected end, cards, a local SME's?) of the pool's running and just-placed work, soonest
        first (cached)."""
        found = self._releases.get(pool_id)
        if found is None:
            found = sorted(
                [
                    (r.expected_end_s, r.cards, self.tenant(r.tenant).local_sme)
                    for r in self.running_by_pool[pool_id]
                    if r.id not in self.preempted
                ]
                + self.planned[pool_id]
            )
            self._releases[pool_id] = found
        return found

    def commit(self, job: QueuedJob, option: Option) -> None:
        pool = option.pool
        self._releases.pop(pool.id, None)
        self.free[pool.id] -= job.cards
        if self.tenant(job.tenant).local_sme:
            self.sme_used[pool.id] += job.cards
            if self.sme_pending:  # counted only where some pool holds a share
                self.sme_pending -= 1
        bisect.insort(self.planned[pool.id], (option.end_s, job.cards, self.tenant(job.tenant).local_sme))
        self.places.append(
            Place(
                job_id=job.id,
                pool_id=pool.id,
                cards=job.cards,
                est_runtime_s=option.runtime_s,
                est_cost_fen=option.cost_fen,
                est_end_s=option.end_s,
                borrowing=option.borrowing,
            )
        )

    def wait(self, job: QueuedJob, code: str, **params: object) -> None:
        key = (code, *params.items())
        reason = self._reasons.get(key)
        if reason is None:  # a long queue waits for a handful of reasons: share them (frozen)
            reason = self._reasons[key] = Reason(code, tuple(params.items()))
        self.waits.append(Wait(job.id, reason))

    def wait_for_capacity(self, job: QueuedJob, pools: int) -> None:
        """wait(job, "capacity", cards=job.cards, pools=pools): most of a long queue, so a direct cache."""
        reason = self._capacity.get((job.cards, pools))
        if reason is None:
            reason = self._capacity[(job.cards, pools)] = Reason(
                "capacity", (("cards", job.cards), ("pools", pools))
            )
        self.waits.append(Wait(job.id, reason))

    def preempt_for(
        self,
        job: QueuedJob,
        pools: Sequence[PoolState],
        candidates: dict[str, list[RunningJob]],
        victim: Callable[[RunningJob], bool],
        code: str,
    ) -> Option | None:
        """Free room for `job` by preempting the fewest victim cards on one pool; None if no pool can.

        `candidates`: per pool, the preemptible running jobs that may be victims, in running_by_pool's
        order (preemptible_by_pool, or borrowers_by_pool for an SME reclaim).
        """
        best: tuple[int, str, list[RunningJob]] | None = None
        for pool in pools:
            free = self.free[pool.id]
            nonsme_used = pool.cards_total - free - self.sme_used[pool.id]
            chosen: list[RunningJob] = []
            # Least work lost first: the most recently started victims go first (running_by_pool's order).
            for running in candidates[pool.id]:
                if self._fits(job, pool, free, nonsme_used):
                    break
                if running.id in self.preempted or not victim(running):
                    continue
                chosen.append(running)
                free += running.cards
                if not self.tenant(running.tenant).local_sme:
                    nonsme_used -= running.cards
            if chosen and self._fits(job, pool, free, nonsme_used):
                lost = sum(r.cards for r in chosen)
                if best is None or (lost, pool.id) < (best[0], best[1]):
                    best = (lost, pool.id, chosen)
        if best is None:
            return None
        pool = self.pool_by_id[best[1]]
        self._releases.pop(pool.id, None)
        for running in best[2]:
            self.preempted.add(running.id)
            self.free[pool.id] += running.cards
            self.preemptible_cards[pool.id] -= running.cards
            if running.borrowing:
                self.borrowed_cards[pool.id] -= running.cards
            else:
                self._reclaim_bound.clear()  # its cards now free: free + borrowed grew (reclaimable())
            if self.tenant(running.tenant).local_sme:
                self.sme_used[pool.id] -= running.cards
            self.preempts.append(Preempt(running.id, Reason(code, (("for_job", job.id), ("pool", pool.id)))))
        return self.start_now(job, pool)  # honours the SME guarantee and flags borrowing, as _fits checked

    def held_off(self, job: QueuedJob, pools: list[PoolState]) -> bool:
        """Is `job` bound by the SME guarantee (non-preemptible, not a local SME's) and larger than every
        one of its pools less the SMEs' share there, and never brief enough to borrow that share? Then
        it can never start: an infeasible wait, not a wait for capacity that never comes."""
        if job.cards <= self.least_room or job.preemptible or self.tenant(job.tenant).local_sme:
            return False  # the common answer: it fits some pool (any pool) less its share
        key = (self.shape(job), job.cards)
        too_big = self._held_off.get(key)
        if too_big is None:
            reserved = self.sme_reserved
            too_big = self._held_off[key] = all(job.cards > p.cards_total - reserved[p.id] for p in pools)
        if not too_big:
            return False
        borrow_max = self.policy.sme_idle_borrow_max_s
        return all(self.runtime(job, p) > borrow_max for p in pools)

    def _fits(self, job: QueuedJob, pool: PoolState, free: int, nonsme_used: int) -> bool:
        """Could `job` start with `free` cards free, others holding `nonsme_used` (the SME guarantee)?"""
        if job.cards > free:
            return False
        reserved = self.sme_reserved[pool.id]
        if reserved == 0 or job.preemptible or self.tenant(job.tenant).local_sme:
            return True
        return job.cards <= pool.cards_total - reserved - nonsme_used

    def decisions(self, started: float) -> Decisions:
        return Decisions(
            places=tuple(self.places),
            preempts=tuple(self.preempts),
            waits=tuple(self.waits),
            stats={"cycle_ms": (time.perf_counter() - started) * 1000, "queued": float(len(self.waits))},
        )


# --- ordering --------------------------------------------------------------------------------------


def _submit_order(jobs: Sequence[QueuedJob]) -> list[QueuedJob]:
    return sorted(jobs, key=lambda j: (j.submit_s, j.id))


def _multifactor_order(cycle: _Cycle, jobs: Sequence[QueuedJob]) -> list[QueuedJob]:
    """Slurm's multifactor priority: priority class, age, fair share and size, weighted."""
    policy = cycle.policy
    for job in jobs:
        cycle.tenant(job.tenant)
    fair = fairshare.factors(cycle.tenants.values())
    largest = max((j.cards for j in jobs), default=1) or 1

    suanwang = policy.algorithm is Algorithm.SUANWANG
    sme_boost = policy.weight_local_sme if suanwang else 0.0
    small_weight = policy.weight_small_work if suanwang else 0.0
    log_work_max = math.log1p(max((j.cards * j.duration_s for j in jobs), default=0.0)) or 1.0

    # The terms that depend only on the tenant, once per tenant (the same values, added in the same order).
    fair_term = {t: policy.weight_fairshare * fair.get(t, 1.0) for t in cycle.tenants}
    boost = {t: sme_boost if sme_boost and s.local_sme else 0.0 for t, s in cycle.tenants.items()}
    now, max_age = cycle.now, policy.max_age_s
    w_priority, w_age, w_size = policy.weight_priority, policy.weight_age, policy.weight_size

    def key(job: QueuedJob) -> tuple[float, float, str]:
        age = min(max(now - job.submit_s, 0.0) / max_age, 1.0)
        score = (
            w_priority * job.priority
            + w_age * age
            + fair_term[job.tenant]
            + w_size * job.cards / largest
            + boost[job.tenant]
            + (small_weight * _smallness(job, log_work_max) if small_weight else 0.0)
        )
        return -score, job.submit_s, job.id

    return sorted(jobs, key=key)


def _smallness(job: QueuedJob, log_work_max: float) -> float:
    """1 for the smallest work in the queue, 0 for the largest, on a log scale of card-seconds."""
    return 1 - math.log1p(job.cards * job.duration_s) / log_work_max


# --- the algorithms --------------------------------------------------------------------------------


def _fifo(cycle: _Cycle, snapshot: Snapshot) -> None:
    blocked: Reason | None = None  # once the head cannot start, everything behind it waits for it
    for job in _submit_order(snapshot.queued):
        if blocked is not None:
            cycle.waits.append(Wait(job.id, blocked))
            continue
        pools = cycle.feasible(job)
        if not pools:
            cycle.wait(job, "infeasible", cards=job.cards, blockers=_blockers(cycle, job))
            continue
        option = next((o for p in pools if (o := cycle.start_now(job, p)) is not None), None)
        if option is None:
            blocked = Reason("fifo-blocked", (("head", job.id),))
            cycle.wait(job, "capacity", cards=job.cards, pools=len(pools))
            continue
        cycle.commit(job, option)


def _cheapest(cycle: _Cycle, snapshot: Snapshot) -> None:
    for job in _submit_order(snapshot.queued):
        pools = cycle.feasible(job)
        if not pools:
            cycle.wait(job, "infeasible", cards=job.cards, blockers=_blockers(cycle, job))
            continue
        starts = cycle.startable(job, pools, None)
        if not starts:
            cycle.wait(job, "capacity", cards=job.cards, pools=len(pools))
            continue
        cycle.commit(job, cycle.option_of(min(starts, key=_by_cost)))


def _pool_rank(policy: Policy) -> Callable[[PoolState], tuple[int, str]]:
    order = {pool_id: i for i, pool_id in enumerate(policy.pool_order)}
    return lambda p: (order.get(p.id, len(order)), p.id)


Chooser = Callable[[QueuedJob, list[Start]], Start]


def _backfilling(cycle: _Cycle, snapshot: Snapshot, choose: Chooser) -> None:
    """Walk the queue in multifactor order with EASY backfill; `choose` picks among the ways to start."""
    policy = cycle.policy
    suanwang = policy.algorithm is Algorithm.SUANWANG
    reservation: _Reservation | None = None
    ordered = _multifactor_order(cycle, snapshot.queued)
    max_free = max(cycle.free.values(), default=0)
    for depth, job in enumerate(ordered):
        if depth >= policy.backfill_depth:
            cycle.wait(job, "backfill-depth", depth=policy.backfill_depth)
            continue
        pools = cycle.feasible(job)
        if not pools:
            if cycle.sme_pending and cycle.tenant(job.tenant).local_sme:
                cycle.sme_pending -= 1  # it can never use the share: the share is idle for others
            cycle.wait(job, "infeasible", cards=job.cards, blockers=_blockers(cycle, job))
            continue
        chosen: Option | None = None
        if job.cards <= max_free:  # cheap test first: most of a long queue fails it
            starts = cycle.startable(job, pools, reservation)
            if starts:
                chosen = cycle.option_of(choose(job, starts))
        if chosen is None and suanwang:
            chosen = _make_room(cycle, job, pools, reservation)
        if (
            chosen is not None
            and suanwang
            and policy.wait_for_faster_ratio is not None
            and not cycle.tenant(job.tenant).local_sme  # their guarantee is a prompt start, not speed
        ):
            faster = _faster_later(cycle, job, pools, chosen, policy.wait_for_faster_ratio)
            if faster is not None:
                cycle.wait(job, "faster-pool", pool=faster.pool.id, start_s=round(faster.start_s))
                continue
        if chosen is not None:
            if (
                reservation is not None
                and chosen.pool.id == reservation.pool_id
                and chosen.end_s > reservation.shadow_s
            ):
                reservation.extra_cards -= job.cards
            cycle.commit(job, chosen)
            max_free = max(cycle.free.values(), default=0)
            continue
        if suanwang and cycle.held_off(job, pools):
            blockers = _blockers(cycle, job)
            share = f"sme-share×{len(pools)}"
            blockers = share if blockers == "no pools" else f"{blockers}, {share}"
            cycle.wait(job, "infeasible", cards=job.cards, blockers=blockers)
            continue
        if reservation is None:
            reservation = _reserve(cycle, job, pools, suanwang)
            if reservation is not None:
                cycle.wait(
                    job,
                    "reserved",
                    cards=job.cards,
                    pool=reservation.pool_id,
                    start_s=round(reservation.shadow_s),
                )
                continue
        cycle.wait_for_capacity(job, len(pools))


def _not_delaying(
    cycle: _Cycle, reservation: _Reservation | None, job: QueuedJob, pools: list[PoolState]
) -> list[PoolState]:
    """Pools where preempting to start `job` now cannot delay the head's reservation: as for a plain
    start (_Cycle.startable), on the reserved pool it must end by the shadow time or fit in the extra
    cards."""
    if reservation is None:
        return pools
    return [
        p
        for p in pools
        if p.id != reservation.pool_id
        or job.cards <= reservation.extra_cards
        or cycle.now + cycle.runtime(job, p) <= reservation.shadow_s
    ]


def _reserve(cycle: _Cycle, job: QueuedJob, pools: list[PoolState], by_finish: bool) -> _Reservation | None:
    """The head job's reservation: the pool where it can start earliest (suanwang: finish earliest)."""
    best: tuple[float, float, str, int] | None = None
    rank = _pool_rank(cycle.policy)
    bound = not job.preemptible and not cycle.tenant(job.tenant).local_sme
    for pool in sorted(pools, key=rank):
        if bound and job.cards > pool.cards_total - cycle.sme_reserved[pool.id]:
            continue  # it may never hold the local SMEs' guaranteed share: it can never start here
        start, free_then = cycle.earliest_start(job, pool)
        if start == INF:
            continue
        finish = start + cycle.runtime(job, pool)
        key = (finish if by_finish else start, start, pool.id, free_then)
        if best is None or key[:2] < best[:2]:
            best = key
    if best is None:
        return None
    return _Reservation(pool_id=best[2], shadow_s=best[1], extra_cards=best[3] - job.cards)


def _make_room(
    cycle: _Cycle, job: QueuedJob, pools: list[PoolState], reservation: _Reservation | None
) -> Option | None:
    """suanwang's preemption: local SMEs reclaim their guaranteed share; urgent work displaces lower.

    Never on the head's reserved pool where it would delay the head (see _not_delaying).
    """
    if cycle.tenant(job.tenant).local_sme:
        # Only pools where the borrowers' cards could make room at all (most of a long queue has none).
        local = cycle.reclaimable(job)
        if local:
            local = _not_delaying(cycle, reservation, job, local)
            borrowers = cycle.borrowers_by_pool
            option = cycle.preempt_for(job, local, borrowers, lambda r: r.borrowing, "sme-reclaim")
            if option is not None:
                return option
    threshold = cycle.policy.preempt_for_priority
    if threshold is not None and job.priority >= threshold:
        free, preemptible, cards = cycle.free, cycle.preemptible_cards, job.cards
        some = [p for p in pools if free[p.id] + preemptible[p.id] >= cards]
        if some:
            some = _not_delaying(cycle, reservation, job, some)
            lower = cycle.preemptible_by_pool
            return cycle.preempt_for(job, some, lower, lambda r: r.priority < job.priority, "priority")
    return None


def _faster_later(
    cycle: _Cycle, job: QueuedJob, pools: list[PoolState], now: Option, ratio: float
) -> Option | None:
    """A busy pool where the job would finish so much sooner that waiting for it beats starting now."""
    best: Option | None = None
    # Per accelerator model first (a handful per job, not a check per pool): most jobs have none fast
    # enough to be worth waiting for, whenever it frees.
    by_model = cycle.by_accelerator(job, pools)
    fast = {speed for speed, sample in by_model.items() if cycle.runtime(job, sample) * ratio < now.runtime_s}
    if not fast:
        return None
    for pool in pools:
        if pool.id == now.pool.id or (pool.accelerator, pool.throughput) not in fast:
            continue
        runtime = cycle.runtime(job, pool)
        # The latest start that could still qualify (with a second to spare; the exact test follows).
        horizon = cycle.now + (now.end_s - cycle.now) / ratio - runtime + 1.0
        start, _ = cycle.earliest_start(job, pool, horizon)
        if start == INF or start <= cycle.now:
            continue
        end = start + runtime
        if (now.end_s - cycle.now) > ratio * (end - cycle.now) and (best is None or end < best.end_s):
            best = cycle.option(job, pool, start)
    return best


def _suanwang_choice(job: QueuedJob, starts: list[Start], cost_tolerance: float = 0.0) -> Start:
    """Cheapest placement that meets the deadline; else the earliest finish (all within max price).

    Without a deadline: the earliest finish among those within `cost_tolerance` of the cheapest.
    """
    if job.deadline_s is not None:
        meeting = [s for s in starts if s[1] <= job.deadline_s]  # (cost, end, ...): end by the deadline
        if not meeting:
            return min(starts, key=_by_finish)
        starts = meeting
    cheapest = min(starts, key=_by_cost)
    if job.deadline_s is not None or cost_tolerance <= 0:
        return cheapest
    affordable = [s for s in starts if s[0] <= cheapest[0] * (1 + cost_tolerance)]
    return min(affordable, key=_by_finish)


def _blockers(cycle: _Cycle, job: QueuedJob) -> str:
    """Which hard constraints rule out which pools, e.g. 'accelerator×5, size×2' (for the reason)."""
    shape = cycle.shape(job)
    key = (shape, job.cards)
    found = cycle._blockers.get(key)
    if found is None:
        # Per shape, each pool's first violation but size, and its size: violation() checks the size
        # after the others but before the node size.
        sized = cycle._violations.get(shape)
        if sized is None:
            sized = [(constraints.violation(job, p, check_size=False), p.cards_total) for p in cycle.pools]
            cycle._violations[shape] = sized
        counts: dict[str, int] = defaultdict(int)
        for why, total in sized:
            if job.cards > total and why in (None, "node-size"):
                why = "size"
            if why is not None:
                counts[why] += 1
        found = ", ".join(f"{why}×{n}" for why, n in sorted(counts.items())) or "no pools"
        cycle._blockers[key] = found
    return found


def sme_reserved_cards(pool: PoolState, policy: Policy) -> int:
    """Cards of `pool` guaranteed to local SMEs: suanwang only, local pools only, the pool's share
    (`sme_share_by_pool`, else `sme_guaranteed_share`) of its cards, rounded down."""
    if policy.algorithm is not Algorithm.SUANWANG or not pool.local:
        return 0
    return int(pool.cards_total * policy.sme_share_by_pool.get(pool.id, policy.sme_guaranteed_share))


def _shape(job: QueuedJob, by_tenant: bool = False) -> tuple[object, ...]:
    """What the hard constraints look at, but the gang size: jobs of one shape share feasibility.

    With reserved pools in the snapshot the tenant matters too (`by_tenant`).
    """
    return (
        job.classification is Classification.GOVERNMENT,  # public and internal work run alike
        job.accelerators,
        job.min_memory_gib,
        job.regions,
        job.max_price_fen_per_card_hour,
        job.cards_per_node,
        job.tenant if by_tenant else None,
    )


def schedule(snapshot: Snapshot, policy: Policy) -> Decisions:
    """Decide, for one moment, which queued jobs start where, which running jobs yield, and why others wait.

    Pure and deterministic: the same snapshot and policy always give the same decisions.
    """
    started = time.perf_counter()
    cycle = _Cycle(snapshot, policy)
    if policy.algorithm is Algorithm.FIFO:
        _fifo(cycle, snapshot)
    elif policy.algorithm is Algorithm.CHEAPEST:
        _cheapest(cycle, snapshot)
    elif policy.algorithm is Algorithm.BACKFILL:
        rank = _pool_rank(policy)
        _backfilling(cycle, snapshot, lambda job, starts: min(starts, key=lambda s: rank(s[3])))
    else:
        tolerance = policy.cost_tolerance
        _backfilling(cycle, snapshot, lambda job, starts: _suanwang_choice(job, starts, tolerance))
    return cycle.decisions(started)


def quote(job: QueuedJob, snapshot: Snapshot, policy: Policy) -> list[Option]:
    """Every pool that could run `job`, ranked as the policy would choose: start, runtime, finish, cost.

    The SkyPilot-style table a tenant sees before submitting. Pools that cannot start it now are
    listed with their earliest start from running work's expected ends.
    """
    cycle = _Cycle(snapshot, policy)
    options = []
    for pool in cycle.feasible(job):
        now = cycle.start_now(job, pool)
        if now is not None:
            options.append(now)
            continue
        start, _ = cycle.earliest_start(job, pool)
        if start != INF:
            options.append(cycle.option(job, pool, start))
    deadline = job.deadline_s
    if deadline is not None:
        return sorted(options, key=lambda o: (o.end_s > deadline, o.cost_fen, o.end_s, o.pool.id))
    return sorted(options, key=lambda o: (o.cost_fen, o.end_s, o.pool.id))
