"""Hard constraints: never broken, whatever the policy. Checked by the scheduler, the simulator and,
again, by the controller at dispatch.

A gang runs whole inside one pool, and a pool lies inside one site, so multi-node work never spans
sites. Cards are accounted per pool; which nodes a gang lands on is the backend's placement.
"""

from __future__ import annotations

from suanwang.scheduler.estimate import memory_gib
from suanwang.scheduler.types import Classification, PoolState, QueuedJob, Zone


def violation(job: QueuedJob, pool: PoolState, *, check_size: bool = True) -> str | None:
    """The first hard constraint that forbids `job` on `pool` at any time, or None.

    `check_size=False` leaves out the gang size, so one answer serves every job of the same shape.
    """
    if not pool.healthy:
        return "pool-unhealthy"
    if pool.tenants and job.tenant not in pool.tenants:
        return "reserved"
    if job.classification is Classification.GOVERNMENT and pool.zone is not Zone.GOVERNMENT:
        return "government-zone"
    if job.accelerators and pool.accelerator not in job.accelerators:
        return "accelerator"
    if job.min_memory_gib and (pool.memory_gib or memory_gib(pool.accelerator)) < job.min_memory_gib:
        return "memory"
    if job.regions and pool.region not in job.regions:
        return "region"
    if (
        job.max_price_fen_per_card_hour is not None
        and pool.price_fen_per_card_hour > job.max_price_fen_per_card_hour
    ):
        return "price"
    if check_size and job.cards > pool.cards_total:
        return "size"
    if job.cards_per_node is not None and job.cards_per_node > pool.cards_per_node:
        return "node-size"
    return None


class PoolIndex:
    """The pools that pass every hard constraint but size for a job shape, by set operations on
    per-attribute indexes instead of testing every pool (what `violation(check_size=False)` says, fast:
    a long queue has hundreds of shapes and a region hundreds of pools)."""

    def __init__(self, pools: list[PoolState]) -> None:
        self.pools = pools  # in the order results are returned
        # Reserved capacity (pools only some tenants may use) is kept out of the shared indexes and
        # added per tenant: few pools, and shapes stay shared between tenants.
        self.reserved = [i for i, p in enumerate(pools) if p.healthy and p.tenants]
        healthy = [i for i, p in enumerate(pools) if p.healthy and not p.tenants]
        self.healthy = frozenset(healthy)
        self.government = frozenset(i for i in healthy if pools[i].zone is Zone.GOVERNMENT)
        self.by_accelerator: dict[str, set[int]] = {}
        self.by_region: dict[str, set[int]] = {}
        for i in healthy:
            self.by_accelerator.setdefault(pools[i].accelerator, set()).add(i)
            self.by_region.setdefault(pools[i].region, set()).add(i)
        # Many shapes differ only in price, node size or memory: the set operations once per rest.
        self._zoned: dict[tuple[bool, frozenset[str], frozenset[str]], list[PoolState]] = {}

    def shaped(self, job: QueuedJob) -> list[PoolState]:
        pools = self.zoned(job)
        if self.reserved:
            pools = self._with_reserved(job, pools)
        max_price, per_node, memory = job.max_price_fen_per_card_hour, job.cards_per_node, job.min_memory_gib
        if max_price is None and per_node is None and not memory:
            return list(pools)
        return [
            p
            for p in pools
            if (max_price is None or p.price_fen_per_card_hour <= max_price)
            and (per_node is None or per_node <= p.cards_per_node)
            and (not memory or (p.memory_gib or memory_gib(p.accelerator)) >= memory)
        ]

    def zoned(self, job: QueuedJob) -> list[PoolState]:
        """The healthy pools in the job's zone, accelerators and regions (cached; do not modify)."""
        government = job.classification is Classification.GOVERNMENT
        key = (government, job.accelerators, job.regions)
        found = self._zoned.get(key)
        if found is None:
            keep = set(self.government if government else self.healthy)
            if job.accelerators:
                keep &= set().union(*(self.by_accelerator.get(a, set()) for a in job.accelerators))
            if job.regions:
                keep &= set().union(*(self.by_region.get(r, set()) for r in job.regions))
            found = self._zoned[key] = [self.pools[i] for i in sorted(keep)]
        return found

    def _with_reserved(self, job: QueuedJob, pools: list[PoolState]) -> list[PoolState]:
        """`pools` plus the reserved pools this job's tenant may use, in snapshot order."""
        mine = {
            i
            for i in self.reserved
            if job.tenant in self.pools[i].tenants and violation(job, self.pools[i], check_size=False) is None
        }
        if not mine:
            return pools
        position = {id(p): i for i, p in enumerate(self.pools)}
        merged = sorted([*(position[id(p)] for p in pools), *mine])
        return [self.pools[i] for i in merged]
