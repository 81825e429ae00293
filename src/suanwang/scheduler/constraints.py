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
        healthy = [i for i, p in enumerate(pools) if p.healthy]
        self.healthy = frozenset(healthy)
        self.government = frozenset(i for i in healthy if pools[i].zone is Zone.GOVERNMENT)
        self.by_accelerator: dict[str, set[int]] = {}
        self.by_region: dict[str, set[int]] = {}
        for i in healthy:
            self.by_accelerator.setdefault(pools[i].accelerator, set()).add(i)
            self.by_region.setdefault(pools[i].region, set()).add(i)

    def shaped(self, job: QueuedJob) -> list[PoolState]:
        keep = set(self.government if job.classification is Classification.GOVERNMENT else self.healthy)
        if job.accelerators:
            keep &= set().union(*(self.by_accelerator.get(a, set()) for a in job.accelerators))
        if job.regions:
            keep &= set().union(*(self.by_region.get(r, set()) for r in job.regions))
        pools = self.pools
        max_price, per_node, memory = job.max_price_fen_per_card_hour, job.cards_per_node, job.min_memory_gib
        return [
            pools[i]
            for i in sorted(keep)
            if (max_price is None or pools[i].price_fen_per_card_hour <= max_price)
            and (per_node is None or per_node <= pools[i].cards_per_node)
            and (not memory or (pools[i].memory_gib or memory_gib(pools[i].accelerator)) >= memory)
        ]
