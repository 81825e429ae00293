"""What one cycle caches to stay fast over a long queue never changes a decision: feasibility and
blockers shared by jobs of one shape, and the bound that lets local SMEs' jobs skip a reclaim search
their shape's pools cannot serve."""

from __future__ import annotations

from suanwang.scheduler import Classification, Zone
from tests.test_scheduler_core import HOUR, NOW, SME_TENANTS, busy, job, placed, pool, run, waits


def test_a_reclaim_that_failed_is_tried_again_once_a_preemption_freed_cards() -> None:
    """A local SME job that cannot reclaim enough cards makes later jobs of its shape skip the search,
    until preempting a non-borrower frees cards there: then a job of the same shape and size reclaims."""
    pools = (
        pool("local", "A800", free=0, total=16, local=True),  # 4 cards held for local SMEs
        pool("soon", "A800", free=0, total=16),  # frees first: the head's reservation goes here
    )
    running = (
        busy("local", 4, NOW + 100_000, "steady", tenant="big"),
        # A borrower of priority 2, which preempting for priority 2 does not take:
        busy(
            "local", 6, NOW + 50_000, "borrower", tenant="big", priority=2, preemptible=True, borrowing=True
        ),
        busy("local", 6, NOW + 50_000, "low", tenant="big", preemptible=True, priority=1),
        busy("soon", 16, NOW + 10, "ending", tenant="big"),
    )
    queued = (
        # 0 free + 6 borrowed < 8, and preempting for priority frees only "low": it cannot start.
        job("first-sme", tenant="sme", cards=8, priority=2, submit_s=NOW - 300),
        # Preempts "low" (6 cards) for its 2: 4 cards are left free on "local".
        job("urgent", tenant="big", cards=2, priority=2, preemptible=True, submit_s=NOW - 200),
        # The same shape and size as the first: now 4 free + 6 borrowed are enough.
        job("second-sme", tenant="sme", cards=8, submit_s=NOW - 100),
    )
    decisions = run(pools, queued, running, SME_TENANTS, preempt_for_priority=2)
    assert waits(decisions)["first-sme"] == ("reserved", {"cards": 8, "pool": "soon", "start_s": NOW + 10})
    assert placed(decisions) == {"urgent": "local", "second-sme": "local"}
    assert [(p.job_id, p.reason.code) for p in decisions.preempts] == [
        ("low", "priority"),
        ("borrower", "sme-reclaim"),
    ]


def test_a_smaller_job_of_a_shape_still_reclaims_after_a_larger_one_could_not() -> None:
    local = (pool("local", "A800", free=0, total=16, local=True),)
    running = (
        busy("local", 12, NOW + HOUR, "steady", tenant="big"),
        busy("local", 4, NOW + HOUR, "borrower", tenant="big", preemptible=True, borrowing=True),
    )
    queued = (
        job("large-sme", tenant="sme", cards=8, submit_s=NOW - 200),
        job("small-sme", tenant="sme", cards=4, submit_s=NOW - 100),
    )
    decisions = run(local, queued, running, SME_TENANTS)
    assert placed(decisions) == {"small-sme": "local"}
    assert [p.job_id for p in decisions.preempts] == ["borrower"]


def test_jobs_of_one_shape_get_the_pools_and_blockers_of_their_own_size() -> None:
    pools = (pool("small", "A800", total=8, price=900), pool("large", "A800", total=32, free=32))
    queued = (
        job("fits-both", cards=8, submit_s=NOW - 300),
        job("fits-large", cards=16, submit_s=NOW - 200),
        job("fits-none", cards=64, submit_s=NOW - 100),
    )
    decisions = run(pools, queued, algorithm="cheapest")
    assert placed(decisions) == {"fits-both": "small", "fits-large": "large"}
    assert waits(decisions)["fits-none"] == ("infeasible", {"cards": 64, "blockers": "size×2"})


def test_public_and_internal_work_share_feasibility_but_government_work_does_not() -> None:
    pools = (pool("public", "A800"), pool("gov", "A800", zone=Zone.GOVERNMENT))
    queued = tuple(
        job(c.value, cards=8, classification=c, submit_s=NOW - 10 + i)
        for i, c in enumerate((Classification.PUBLIC, Classification.INTERNAL, Classification.GOVERNMENT))
    )
    decisions = run(pools, queued, algorithm="fifo")
    assert placed(decisions) == {"public": "gov", "internal": "public"}
    assert waits(decisions)["government"][0] == "capacity"
