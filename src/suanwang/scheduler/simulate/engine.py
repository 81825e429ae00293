"""Discrete-event replay of a trace through the scheduler's pure core.

Events: job arrivals, completions, injected job failures, pool outages and restores. All events at one
timestamp are applied together, then `schedule(snapshot, policy)` runs once and its decisions are
applied: preemptions first (the job goes back to the queue with attempt + 1 and restarts from scratch),
then placements (the job starts now; its actual runtime is `estimate.runtime_s`, times an optional noise
factor). Every decision is checked against the invariants; a broken one is counted, never fatal, so
the metrics can report it (it must stay 0).
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from suanwang.scheduler import constraints, estimate, schedule
from suanwang.scheduler.policy import Policy
from suanwang.scheduler.simulate.scenario import Fault, Scenario
from suanwang.scheduler.types import Decisions, PoolState, QueuedJob, RunningJob, Snapshot, TenantState

ScheduleFn = Callable[[Snapshot, Policy], Decisions]

# Event kinds; at one timestamp they apply in this order (all before the one schedule() call).
_FINISH, _FAIL, _RESTORE, _OUTAGE, _ARRIVE, _TICK = range(6)

# Outcomes of an attempt.
FINISHED, PREEMPTED, FAILED, OUTAGE = "finished", "preempted", "failed", "outage"


@dataclass(frozen=True, slots=True)
class Attempt:
    pool_id: str
    cards: int
    start_s: float
    end_s: float
    price_fen_per_card_hour: int
    outcome: str  # finished | preempted | failed | outage

    @property
    def card_s(self) -> float:
        return self.cards * (self.end_s - self.start_s)


@dataclass(slots=True)
class JobRecord:
    job: QueuedJob  # as submitted (attempt 0)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].outcome == FINISHED

    @property
    def first_start_s(self) -> float | None:
        return self.attempts[0].start_s if self.attempts else None

    @property
    def end_s(self) -> float | None:
        return self.attempts[-1].end_s if self.finished else None


@dataclass(frozen=True, slots=True)
class SimResult:
    scenario: Scenario
    policy: Policy
    jobs: tuple[JobRecord, ...]  # in trace order
    cycle_ms: tuple[float, ...]  # wall time of every schedule() call
    violations: dict[str, int]  # broken invariant -> count (all must be 0)
    violation_examples: tuple[str, ...]
    start_s: float  # first submit
    end_s: float  # last job event (a finish, failure, stop or submit)
    pool_down_s: dict[str, float]  # unhealthy seconds inside [start_s, end_s]
    preemptions: int
    failures: int
    outage_requeues: int
    wall_s: float

    @property
    def constraint_violations(self) -> int:
        return sum(self.violations.values())


@dataclass(slots=True)
class _Running:
    state: RunningJob
    job: QueuedJob
    token: int  # which event belongs to this attempt (older events of the job are stale)


def simulate(
    scenario: Scenario,
    jobs: Iterable[QueuedJob],
    policy: Policy,
    *,
    faults: Iterable[Fault] = (),
    failure_rate: float = 0.0,
    runtime_noise: float = 0.0,
    seed: int = 0,
    cycle_s: float = 0.0,
    schedule_fn: ScheduleFn | None = None,
) -> SimResult:
    """Replay `jobs` on the scenario's pools under `policy`.

    faults: pool outages on top of the scenario's own [[faults]]. failure_rate: probability that an
    attempt fails at a uniformly drawn point of its runtime (the job is requeued). runtime_noise: actual
    runtime = estimate × U(1 - noise, 1 + noise). cycle_s: at most one schedule() call per cycle_s of
    simulated time (0: at every event time). schedule_fn: defaults to `suanwang.scheduler.schedule`.
    """
    if not 0 <= failure_rate < 1:
        raise ValueError(f"failure_rate must be in [0, 1), got {failure_rate}")
    if not 0 <= runtime_noise < 1:
        raise ValueError(f"runtime_noise must be in [0, 1), got {runtime_noise}")
    if policy.reference_accelerator != scenario.reference_accelerator:
        raise ValueError(
            f"policy reference accelerator {policy.reference_accelerator!r} differs from the scenario's "
            f"{scenario.reference_accelerator!r} (build the policy with scenario.policy())"
        )
    engine = _Engine(scenario, policy, schedule_fn or schedule, failure_rate, runtime_noise, seed, cycle_s)
    # A run allocates millions of short-lived objects (snapshots, decisions, reasons); the collector's
    # full passes over everything that already lives (modules, the trace) then cost up to ~40 % of the
    # run. Freezing those objects for the run keeps them out of the passes; nothing leaks by it.
    gc.freeze()
    try:
        return engine.run(list(jobs), (*scenario.faults, *faults))
    finally:
        gc.unfreeze()


class _Engine:
    def __init__(
        self,
        scenario: Scenario,
        policy: Policy,
        schedule_fn: ScheduleFn,
        failure_rate: float,
        runtime_noise: float,
        seed: int,
        cycle_s: float,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.schedule_fn = schedule_fn
        self.failure_rate = failure_rate
        self.runtime_noise = runtime_noise
        self.rng = random.Random(seed)
        self.cycle_s = cycle_s
        self.pools: dict[str, PoolState] = {p.id: p for p in scenario.pools}
        self.pool_tuple: tuple[PoolState, ...] | None = None  # cached until a pool changes
        self.outages: dict[str, int] = dict.fromkeys(self.pools, 0)  # overlapping outages per pool
        self.queued: dict[str, QueuedJob] = {}
        self.queued_tuple: tuple[QueuedJob, ...] | None = None
        self.running: dict[str, _Running] = {}
        self.running_tuple: tuple[RunningJob, ...] | None = None
        self.records: dict[str, JobRecord] = {}
        self.tokens: dict[str, int] = {}
        self.tenants: dict[str, TenantState] = {t.id: t for t in scenario.tenants}
        self.usage: dict[str, float] = dict.fromkeys(self.tenants, 0.0)
        self.tenant_cards: dict[str, int] = dict.fromkeys(self.tenants, 0)
        self.usage_at = 0.0
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.cycle_ms: list[float] = []
        self.violations: dict[str, int] = {}
        self.examples: list[str] = []
        self.preemptions = self.failures = self.outage_requeues = 0
        self.last_cycle_s = -math.inf
        self.tick_pending = False
        self.relook_at = -math.inf

    # --- events ----------------------------------------------------------------------------------

    def push(self, at: float, kind: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, payload))

    def run(self, jobs: list[QueuedJob], faults: tuple[Fault, ...]) -> SimResult:
        wall = time.perf_counter()
        for job in jobs:
            if job.id in self.records:
                raise ValueError(f"duplicate job id {job.id!r}")
            self.records[job.id] = JobRecord(job)
            if job.tenant not in self.tenants:  # a scenario without [[tenants]]: defaults
                self.tenants[job.tenant] = TenantState(job.tenant)
                self.usage[job.tenant] = 0.0
                self.tenant_cards[job.tenant] = 0
            self.push(job.submit_s, _ARRIVE, job)
        for fault in faults:
            if fault.pool_id not in self.pools:
                raise ValueError(f"fault names unknown pool {fault.pool_id!r}")
            if not fault.end_s > fault.start_s:
                raise ValueError(f"fault on {fault.pool_id!r}: end_s must be after start_s")
            self.push(fault.start_s, _OUTAGE, fault.pool_id)
            self.push(fault.end_s, _RESTORE, fault.pool_id)
        start = min((job.submit_s for job in jobs), default=0.0)
        self.usage_at = start
        while self.heap:
            now = self.heap[0][0]
            self.advance_usage(now)
            while self.heap and self.heap[0][0] == now:
                _, kind, _, payload = heapq.heappop(self.heap)
                self.handle(now, kind, payload)
            if self.queued and self.may_schedule(now):
                self.cycle(now)
        # The makespan ends with the last job event, not with a restore after all work is done.
        end = max(
            (a.end_s for r in self.records.values() for a in r.attempts),
            default=start,
        )
        end = max(end, max((job.submit_s for job in jobs), default=start))
        return SimResult(
            scenario=self.scenario,
            policy=self.policy,
            jobs=tuple(self.records.values()),
            cycle_ms=tuple(self.cycle_ms),
            violations=dict(self.violations),
            violation_examples=tuple(self.examples),
            start_s=start,
            end_s=end,
            pool_down_s=_down_time(faults, self.scenario, start, end),
            preemptions=self.preemptions,
            failures=self.failures,
            outage_requeues=self.outage_requeues,
            wall_s=time.perf_counter() - wall,
        )

    def handle(self, now: float, kind: int, payload: object) -> None:
        if kind == _ARRIVE:
            assert isinstance(payload, QueuedJob)
            self.enqueue(payload)
        elif kind in (_FINISH, _FAIL):
            job_id, token = payload  # type: ignore[misc]
            if self.tokens.get(job_id) != token or job_id not in self.running:
                return  # the attempt was stopped earlier (preempted, outage)
            if kind == _FAIL:
                self.failures += 1
                self.stop(job_id, now, FAILED, requeue=True)
            else:
                self.stop(job_id, now, FINISHED, requeue=False)
        elif kind == _OUTAGE:
            pool_id = str(payload)
            self.outages[pool_id] += 1
            for job_id in [j for j, r in self.running.items() if r.state.pool_id == pool_id]:
                self.outage_requeues += 1
                self.stop(job_id, now, OUTAGE, requeue=True)
            self.set_pool(pool_id, healthy=False)
        elif kind == _RESTORE:
            pool_id = str(payload)
            self.outages[pool_id] -= 1
            if self.outages[pool_id] == 0:
                self.set_pool(pool_id, healthy=self.scenario.pool(pool_id).healthy)
        elif kind == _TICK:
            self.tick_pending = False

    def may_schedule(self, now: float) -> bool:
        """With cycle_s, run at most once per cycle: otherwise ask again when the cycle is over."""
        if self.cycle_s <= 0 or now >= self.last_cycle_s + self.cycle_s:
            return True
        if not self.tick_pending:
            self.tick_pending = True
            self.push(self.last_cycle_s + self.cycle_s, _TICK, None)
        return False

    # --- one scheduling cycle --------------------------------------------------------------------

    def snapshot(self, now: float) -> Snapshot:
        if self.pool_tuple is None:
            self.pool_tuple = tuple(self.pools.values())
        if self.queued_tuple is None:
            self.queued_tuple = tuple(self.queued.values())
        if self.running_tuple is None:
            self.running_tuple = tuple(r.state for r in self.running.values())
        usage = self.usage
        # Built directly: dataclasses.replace costs several times more, on every cycle.
        tenants = tuple(
            TenantState(t.id, t.weight, t.local, t.sme, t.kind, usage[t.id]) for t in self.tenants.values()
        )
        return Snapshot(now, self.pool_tuple, self.queued_tuple, self.running_tuple, tenants)

    def cycle(self, now: float) -> None:
        snapshot = self.snapshot(now)
        began = time.perf_counter()
        decisions = self.schedule_fn(snapshot, self.policy)
        self.cycle_ms.append((time.perf_counter() - began) * 1000)
        self.last_cycle_s = now
        preempted_before = self.preemptions
        self.apply(now, decisions)
        if (
            self.preemptions > preempted_before
            and self.queued
            and not self.tick_pending
            and self.relook_at != now
        ):
            # Cards freed by preemption but left unused get one more look at this instant (only one).
            self.relook_at = now
            self.tick_pending = True
            self.push(now, _TICK, None)

    def apply(self, now: float, decisions: Decisions) -> None:
        for preempt in decisions.preempts:
            if preempt.job_id not in self.running:
                self.violate("preempt-not-running", f"t={now:g}: preempt of {preempt.job_id!r}, not running")
                continue
            self.preemptions += 1
            self.stop(preempt.job_id, now, PREEMPTED, requeue=True)
        for place in decisions.places:
            job = self.queued.get(place.job_id)
            pool = self.pools.get(place.pool_id)
            if job is None or pool is None:
                what = "job not queued" if job is None else "unknown pool"
                self.violate(
                    "place-invalid", f"t={now:g}: place {place.job_id!r} on {place.pool_id!r}: {what}"
                )
                continue
            broken = constraints.violation(job, pool)
            if broken is not None:
                self.violate(broken, f"t={now:g}: {job.id!r} on {pool.id!r} breaks {broken}")
            if place.cards != job.cards:
                self.violate("cards-mismatch", f"t={now:g}: {job.id!r} placed with {place.cards} cards")
            if job.cards > pool.cards_free:
                self.violate("over-allocation", f"t={now:g}: {job.id!r} needs {job.cards} on {pool.id!r}")
                continue  # cannot run: the cards are not there
            if not pool.healthy:
                continue  # counted above as pool-unhealthy; nothing runs on a pool that is down
            self.start(now, job, pool, place.borrowing)

    def violate(self, kind: str, example: str) -> None:
        self.violations[kind] = self.violations.get(kind, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(example)

    # --- state changes ---------------------------------------------------------------------------

    def enqueue(self, job: QueuedJob) -> None:
        self.queued[job.id] = job
        self.queued_tuple = None

    def start(self, now: float, job: QueuedJob, pool: PoolState, borrowing: bool) -> None:
        del self.queued[job.id]
        self.queued_tuple = None
        expected = estimate.runtime_s(job, pool, self.policy)
        actual = expected
        if self.runtime_noise:
            actual *= self.rng.uniform(1 - self.runtime_noise, 1 + self.runtime_noise)
        token = self.tokens.get(job.id, 0) + 1
        self.tokens[job.id] = token
        if self.failure_rate and self.rng.random() < self.failure_rate:
            self.push(now + self.rng.random() * actual, _FAIL, (job.id, token))
        else:
            self.push(now + actual, _FINISH, (job.id, token))
        state = RunningJob(
            id=job.id,
            tenant=job.tenant,
            pool_id=pool.id,
            cards=job.cards,
            start_s=now,
            expected_end_s=now + expected,
            priority=job.priority,
            preemptible=job.preemptible,
            borrowing=borrowing,
        )
        self.running[job.id] = _Running(state, job, token)
        self.running_tuple = None
        self.tenant_cards[job.tenant] += job.cards
        self.set_pool(pool.id, cards_free=pool.cards_free - job.cards)

    def stop(self, job_id: str, now: float, outcome: str, *, requeue: bool) -> None:
        run = self.running.pop(job_id)
        self.running_tuple = None
        state = run.state
        pool = self.pools[state.pool_id]
        self.records[job_id].attempts.append(
            Attempt(state.pool_id, state.cards, state.start_s, now, pool.price_fen_per_card_hour, outcome)
        )
        self.tenant_cards[state.tenant] -= state.cards
        self.set_pool(pool.id, cards_free=pool.cards_free + state.cards)
        if requeue:  # restart from scratch on the next placement
            self.enqueue(replace(run.job, attempt=run.job.attempt + 1))

    def set_pool(self, pool_id: str, **changes: object) -> None:
        self.pools[pool_id] = replace(self.pools[pool_id], **changes)  # type: ignore[arg-type]
        self.pool_tuple = None

    def advance_usage(self, now: float) -> None:
        """Decay every tenant's usage to `now` and add what its running cards used meanwhile.

        Between events a tenant's running cards c are constant, so the decayed accrual over dt is
        c × ∫₀^dt 2^(-s/h) ds = c × h/ln 2 × (1 - 2^(-dt/h)).
        """
        elapsed = now - self.usage_at
        if elapsed <= 0:
            return
        self.usage_at = now
        half_life = self.policy.fairshare_half_life_s
        if half_life <= 0:
            return  # no memory: usage stays 0
        factor = math.pow(0.5, elapsed / half_life)
        accrual = half_life / math.log(2) * (1 - factor)
        for tenant, usage in self.usage.items():
            self.usage[tenant] = usage * factor + self.tenant_cards[tenant] * accrual


def _down_time(faults: tuple[Fault, ...], scenario: Scenario, start: float, end: float) -> dict[str, float]:
    """Seconds each pool was unhealthy inside [start, end] (overlapping outages merged)."""
    down: dict[str, float] = {}
    for pool in scenario.pools:
        if not pool.healthy:
            down[pool.id] = max(end - start, 0.0)
            continue
        spans = sorted((max(f.start_s, start), min(f.end_s, end)) for f in faults if f.pool_id == pool.id)
        total, reach = 0.0, start
        for lo, hi in spans:
            lo = max(lo, reach)
            if hi > lo:
                total += hi - lo
                reach = hi
        down[pool.id] = total
    return down
