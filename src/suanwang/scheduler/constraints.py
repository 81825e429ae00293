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
