"""explain(job, snapshot, policy): a reason a tenant can act on, computed on demand (not every cycle).

"8×H800 in one pool needed; the earliest, pool p1, frees at 14:20; allowing A800 would start now at
¥X" — what it needs, when it could start as asked, and what change would start it sooner.
"""

from __future__ import annotations

from dataclasses import replace

from suanwang.scheduler.core import Option, quote
from suanwang.scheduler.policy import Policy
from suanwang.scheduler.types import QueuedJob, Reason, Snapshot


def explain(job: QueuedJob, snapshot: Snapshot, policy: Policy) -> Reason:
    options = quote(job, snapshot, policy)
    wanted = "/".join(sorted(job.accelerators)) or "any accelerator"
    if not options:
        return Reason("explain-never", (("cards", job.cards), ("accelerators", wanted)))
    earliest = min(options, key=lambda o: (o.start_s, o.cost_fen, o.pool.id))
    params: list[tuple[str, object]] = [
        ("cards", job.cards),
        ("accelerators", wanted),
        ("pool", earliest.pool.id),
        ("start_s", round(earliest.start_s)),
        ("cost_fen", earliest.cost_fen),
    ]
    if earliest.start_s <= snapshot.now_s:
        return Reason("explain-now", tuple(params))
    alternative = _sooner(job, snapshot, policy)
    if alternative is None:
        return Reason("explain-wait", tuple(params))
    change, option = alternative
    params += [
        ("change", change),
        ("alt_pool", option.pool.id),
        ("alt_accelerator", option.pool.accelerator),
        ("alt_cost_fen", option.cost_fen),
    ]
    return Reason("explain-wait-or", tuple(params))


def _sooner(job: QueuedJob, snapshot: Snapshot, policy: Policy) -> tuple[str, Option] | None:
    """The first relaxation that lets the job start now: any accelerator, then no price cap."""
    relaxations = []
    if job.accelerators:
        relaxations.append(("accelerators", replace(job, accelerators=frozenset())))
    if job.max_price_fen_per_card_hour is not None:
        relaxations.append(("max_price", replace(job, max_price_fen_per_card_hour=None)))
    for change, relaxed in relaxations:
        now = [o for o in quote(relaxed, snapshot, policy) if o.start_s <= snapshot.now_s]
        if now:
            return change, now[0]
    return None
