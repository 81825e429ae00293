"""suanwang's own parameters: small work first, local SMEs first, brief borrowing, faster pools."""

from __future__ import annotations

from dataclasses import replace

from suanwang.scheduler import (
    Policy,
    PoolState,
    QueuedJob,
    RunningJob,
    Snapshot,
    TenantState,
    Zone,
    schedule,
)

SME = TenantState("sme", local=True, sme=True)
OTHER = TenantState("other", local=True)


def pool(pool_id: str, accelerator: str, total: int, free: int, *, local: bool = False) -> PoolState:
    return PoolState(
        pool_id, "prov", "site", "pinghu", Zone.PUBLIC, accelerator, total, free, 8, 1000, local=local
    )


def placed(snapshot: Snapshot, policy: Policy) -> dict[str, str]:
    return {p.job_id: p.pool_id for p in schedule(snapshot, policy).places}


def test_small_work_goes_first_only_when_weighted():
    pools = (pool("a", "A800", 8, 8),)
    large = QueuedJob("large", "other", 8, 100_000, submit_s=0)
    small = QueuedJob("small", "other", 8, 1_000, submit_s=10)
    snapshot = Snapshot(20, pools, (large, small), (), (OTHER,))
    assert placed(snapshot, Policy()) == {"large": "a"}  # the earlier job, as fair share ties
    assert placed(snapshot, Policy(weight_small_work=50_000)) == {"small": "a"}


def test_local_sme_jobs_go_first_when_weighted():
    pools = (pool("a", "A800", 8, 8),)
    first = QueuedJob("first", "other", 8, 1_000, submit_s=0)
    sme = QueuedJob("sme-job", "sme", 8, 1_000, submit_s=10)
    snapshot = Snapshot(20, pools, (first, sme), (), (OTHER, SME))
    assert placed(snapshot, Policy(sme_guaranteed_share=0)) == {"first": "a"}
    assert placed(snapshot, Policy(sme_guaranteed_share=0, weight_local_sme=20_000)) == {"sme-job": "a"}


def test_brief_non_preemptible_work_borrows_the_idle_sme_share_only_while_no_sme_waits():
    pools = (pool("local", "A800", 8, 8, local=True),)  # 2 of 8 cards are the SMEs' (share 0.25)
    brief = QueuedJob("brief", "other", 8, 1_000, submit_s=0)  # 400 s on A800
    long = QueuedJob("long", "other", 8, 100_000, submit_s=0)
    policy = Policy(sme_guaranteed_share=0.25, sme_idle_borrow_max_s=3600)
    assert placed(Snapshot(0, pools, (brief,), (), (OTHER,)), Policy(sme_guaranteed_share=0.25)) == {}
    decisions = schedule(Snapshot(0, pools, (brief,), (), (OTHER,)), policy)
    assert [(p.job_id, p.borrowing) for p in decisions.places] == [("brief", True)]
    assert placed(Snapshot(0, pools, (long,), (), (OTHER,)), policy) == {}  # would hold it too long
    sme_waiting = QueuedJob("sme-big", "sme", 16, 1_000, submit_s=0)  # waits (too big), but it waits
    assert placed(Snapshot(0, pools, (brief, sme_waiting), (), (OTHER, SME)), policy) == {}


def test_waits_for_a_much_faster_pool_that_frees_soon():
    pools = (pool("h800", "H800", 8, 0), pool("h20", "H20", 8, 8))
    busy = (RunningJob("r", "x", "h800", 8, start_s=0, expected_end_s=600),)
    job = QueuedJob("j", "other", 8, 36_000, submit_s=0)  # H800: 4,548 s; H20: 30,405 s
    snapshot = Snapshot(0, pools, (job,), busy, (OTHER,))
    assert placed(snapshot, Policy()) == {"j": "h20"}
    decisions = schedule(snapshot, Policy(wait_for_faster_ratio=1.5))
    assert not decisions.places
    assert decisions.waits[0].reason.code == "faster-pool"
    assert dict(decisions.waits[0].reason.params)["pool"] == "h800"


def test_cost_tolerance_buys_an_earlier_finish_for_jobs_without_a_deadline():
    # H800: 4,548 s at 1,300 fen/h; A800: 14,423 s at 350 fen/h. Per job the A800 is cheaper (1,403 vs
    # 1,643 fen for one card, 17 % less), so suanwang takes it; a 30 % tolerance buys the H800.
    pools = (
        PoolState("h800", "p", "s", "r", Zone.PUBLIC, "H800", 8, 8, 8, 1300),
        PoolState("a800", "p", "s", "r", Zone.PUBLIC, "A800", 8, 8, 8, 350),
    )
    job = QueuedJob("j", "other", 1, 36_000, submit_s=0)
    snapshot = Snapshot(0, pools, (job,), (), (OTHER,))
    assert placed(snapshot, Policy()) == {"j": "a800"}
    assert placed(snapshot, Policy(cost_tolerance=0.1)) == {"j": "a800"}
    assert placed(snapshot, Policy(cost_tolerance=0.3)) == {"j": "h800"}
    with_deadline = QueuedJob("d", "other", 1, 36_000, submit_s=0, deadline_s=20_000)
    assert placed(Snapshot(0, pools, (with_deadline,), (), (OTHER,)), Policy(cost_tolerance=0.3)) == {
        "d": "a800"
    }


def test_policy_given_an_algorithm_name_runs_that_algorithm():
    pools = (pool("a", "A800", 8, 0),)
    busy = (RunningJob("r", "x", "a", 8, start_s=0, expected_end_s=100),)
    queued = (
        QueuedJob("head", "other", 8, 1000, submit_s=0),
        QueuedJob("next", "other", 8, 1000, submit_s=1),
    )
    decisions = schedule(Snapshot(5, pools, queued, busy, (OTHER,)), Policy(algorithm="fifo"))  # type: ignore[arg-type]
    assert [w.reason.code for w in decisions.waits] == ["capacity", "fifo-blocked"]


def test_the_sme_share_can_be_held_on_chosen_pools_only():
    # Two local pools, 8 cards each; a non-SME 8-card job fits only where no share is held.
    pools = (pool("fast", "H800", 8, 8, local=True), pool("slow", "A800", 8, 8, local=True))
    job = QueuedJob("j", "other", 8, 100_000, submit_s=0)
    snapshot = Snapshot(0, pools, (job,), (), (OTHER,))
    assert placed(snapshot, Policy(sme_guaranteed_share=0.25)) == {}  # 2 of 8 held on both
    on_slow = Policy(sme_guaranteed_share=0.0, sme_share_by_pool={"slow": 0.5})
    assert placed(snapshot, on_slow) == {"j": "fast"}
    on_fast = Policy(sme_guaranteed_share=0.0, sme_share_by_pool={"fast": 0.5})
    assert placed(snapshot, on_fast) == {"j": "slow"}
    # The override holds its share as the default does: a large job is kept to the rest of the pool.
    busy_fast = (RunningJob("r", "x", "fast", 8, start_s=0, expected_end_s=50_000),)
    fast_busy = (pool("fast", "H800", 8, 0, local=True), pools[1])
    assert placed(Snapshot(0, fast_busy, (job,), busy_fast, (OTHER,)), on_slow) == {}


def test_a_reservation_waits_for_room_beyond_the_sme_share_not_for_any_free_cards():
    # 8 cards, 2 held for SMEs. Others hold 4, an SME holds 4 (ending first, at 100). A non-SME 6-card
    # job needs 6 cards AND 6 of room beyond the share: the SME's end frees cards but no room; the
    # others' end at 5,000 does.
    pools = (pool("loc", "A800", 8, 0, local=True),)
    running = (
        RunningJob("sme-run", "sme", "loc", 4, start_s=0, expected_end_s=100),
        RunningJob("other-run", "other", "loc", 4, start_s=0, expected_end_s=5_000),
    )
    head = QueuedJob("head", "other", 6, 10_000, submit_s=0)
    decisions = schedule(Snapshot(10, pools, (head,), running, (OTHER, SME)), Policy())
    reason = decisions.waits[0].reason
    assert reason.code == "reserved"
    assert dict(reason.params)["start_s"] == 5_000


def test_work_the_share_keeps_off_every_pool_waits_as_infeasible_unless_it_may_borrow_briefly():
    pools = (pool("loc", "A800", 8, 8, local=True),)  # 2 of 8 held for SMEs
    big = QueuedJob("big", "other", 8, 100_000, submit_s=0)  # 40,000 s on A800
    decisions = schedule(Snapshot(0, pools, (big,), (), (OTHER,)), Policy())
    assert decisions.waits[0].reason.code == "infeasible"
    assert dict(decisions.waits[0].reason.params)["blockers"] == "sme-share×1"
    # Preemptible, it borrows the share instead; brief enough to borrow, it waits for capacity.
    assert placed(Snapshot(0, pools, (replace(big, preemptible=True),), (), (OTHER,)), Policy()) == {
        "big": "loc"
    }
    sme_waits = (QueuedJob("sme-job", "sme", 8, 1_000, submit_s=0),)
    busy = (RunningJob("r", "sme", "loc", 8, start_s=0, expected_end_s=500),)
    long_borrow = Policy(sme_idle_borrow_max_s=50_000)
    snapshot = Snapshot(0, (pool("loc", "A800", 8, 0, local=True),), (big, *sme_waits), busy, (OTHER, SME))
    assert {w.job_id: w.reason.code for w in schedule(snapshot, long_borrow).waits}["big"] != "infeasible"


def test_a_placed_or_infeasible_sme_job_no_longer_keeps_others_from_borrowing_briefly():
    pools = (pool("local", "A800", 8, 8, local=True), pool("other", "A800", 8, 8))
    brief = QueuedJob("brief", "other", 8, 1_000, submit_s=10)  # 400 s: may borrow, if no SME waits
    sme_job = QueuedJob("sme-job", "sme", 8, 1_000, submit_s=0)  # goes first, takes "other" or "local"
    policy = Policy(sme_guaranteed_share=0.25, sme_idle_borrow_max_s=3600)
    got = placed(Snapshot(20, pools, (sme_job, brief), (), (OTHER, SME)), policy)
    assert set(got) == {"sme-job", "brief"} and got["sme-job"] != got["brief"]
    never = QueuedJob("sme-never", "sme", 16, 1_000, submit_s=0)  # fits no pool: it never needs the share
    assert placed(Snapshot(20, pools[:1], (never, brief), (), (OTHER, SME)), policy) == {"brief": "local"}


def test_local_sme_jobs_start_now_rather_than_wait_for_a_faster_pool():
    pools = (pool("h800", "H800", 8, 0), pool("h20", "H20", 8, 8))
    busy = (RunningJob("r", "x", "h800", 8, start_s=0, expected_end_s=600),)
    sme_job = QueuedJob("j", "sme", 8, 36_000, submit_s=0)
    other_job = replace(sme_job, tenant="other")
    policy = Policy(wait_for_faster_ratio=1.5, sme_guaranteed_share=0)
    assert placed(Snapshot(0, pools, (other_job,), busy, (OTHER, SME)), policy) == {}
    assert placed(Snapshot(0, pools, (sme_job,), busy, (OTHER, SME)), policy) == {"j": "h20"}
