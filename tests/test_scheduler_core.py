"""The scheduling core by hand: heterogeneity, cost and deadlines, hard constraints, the baselines'
orderings, quote(), and the small pure helpers (cost rounding, usage decay, policy loading)."""

from __future__ import annotations

import pytest

from suanwang.scheduler import (
    Algorithm,
    Classification,
    Decisions,
    Policy,
    PoolState,
    QueuedJob,
    RunningJob,
    Snapshot,
    TenantState,
    Zone,
    quote,
    schedule,
)
from suanwang.scheduler.estimate import cost_fen
from suanwang.scheduler.fairshare import decay, factors

NOW = 1_000_000.0
HOUR = 3600.0
V100_TFLOPS, H800_TFLOPS, A800_TFLOPS = 125.0, 989.4, 312.0  # dense FP16, from the catalogue


def pool(
    pool_id: str,
    accelerator: str = "A800",
    *,
    free: int = 8,
    total: int = 8,
    price: int = 1000,
    zone: Zone = Zone.PUBLIC,
    region: str = "pinghu",
    healthy: bool = True,
    local: bool = False,
) -> PoolState:
    return PoolState(
        pool_id, "prov", f"site-{pool_id}", region, zone, accelerator, total, free, 8, price, healthy, local
    )


def job(job_id: str = "j", cards: int = 8, duration_s: float = 10 * HOUR, **fields: object) -> QueuedJob:
    fields.setdefault("tenant", "t")
    fields.setdefault("submit_s", NOW - 60)
    return QueuedJob(id=job_id, cards=cards, duration_s=duration_s, **fields)  # type: ignore[arg-type]


def busy(pool_id: str, cards: int, end_s: float, job_id: str | None = None, **fields: object) -> RunningJob:
    return RunningJob(
        job_id or f"r-{pool_id}-{end_s:.0f}",
        str(fields.pop("tenant", "other")),
        pool_id,
        cards,
        NOW - HOUR,
        end_s,
        **fields,  # type: ignore[arg-type]
    )


def run(
    pools: tuple[PoolState, ...],
    queued: tuple[QueuedJob, ...],
    running: tuple[RunningJob, ...] = (),
    tenants: tuple[TenantState, ...] = (),
    **policy: object,
) -> Decisions:
    if "algorithm" in policy:
        policy["algorithm"] = Algorithm(str(policy["algorithm"]))
    return schedule(Snapshot(NOW, pools, queued, running, tenants), Policy(**policy))  # type: ignore[arg-type]


def placed(decisions: Decisions) -> dict[str, str]:
    return {p.job_id: p.pool_id for p in decisions.places}


def waits(decisions: Decisions) -> dict[str, tuple[str, dict[str, object]]]:
    return {w.job_id: (w.reason.code, dict(w.reason.params)) for w in decisions.waits}


# --- heterogeneity, cost and deadlines -------------------------------------------------------------


def test_runtime_on_a_pool_scales_the_reference_duration_by_throughput() -> None:
    pools = (pool("h800", "H800", price=100_000), pool("v100", "V100", price=100))
    decisions = run(pools, (job("on-h800", accelerators=frozenset({"H800"})), job("on-v100", cards=4)))
    by_job = {p.job_id: p for p in decisions.places}
    assert by_job["on-h800"].pool_id == "h800"
    assert by_job["on-h800"].est_runtime_s == pytest.approx(10 * HOUR * V100_TFLOPS / H800_TFLOPS)
    assert by_job["on-v100"].pool_id == "v100"
    assert by_job["on-v100"].est_runtime_s == pytest.approx(10 * HOUR)  # the reference accelerator
    assert by_job["on-v100"].est_cost_fen == 4 * 10 * 100
    assert by_job["on-v100"].est_end_s == pytest.approx(NOW + 10 * HOUR)


def test_suanwang_picks_the_lower_estimated_cost_not_the_lower_price() -> None:
    # H800 is 7.9× faster than V100: at 3000 fen/card-hour it costs 3000/7.9 ≈ 379 per reference hour.
    pools = (pool("h800", "H800", price=3000), pool("v100", "V100", price=500))
    assert placed(run(pools, (job(),))) == {"j": "h800"}
    # At 5000 fen/card-hour (≈ 632 per reference hour) the slow, cheap V100 costs less.
    pools = (pool("h800", "H800", price=5000), pool("v100", "V100", price=500))
    decisions = run(pools, (job(),))
    assert placed(decisions) == {"j": "v100"}
    assert decisions.places[0].est_cost_fen == 8 * 10 * 500


def test_throughput_override_per_job_type_changes_the_estimate() -> None:
    pools = (pool("a800", "A800", price=1000),)
    overrides = {"bert": {"A800": 0.5}}
    decisions = run(pools, (job(job_type="bert"),), throughput_overrides=overrides)
    expected = 10 * HOUR * V100_TFLOPS / (A800_TFLOPS * 0.5)
    assert decisions.places[0].est_runtime_s == pytest.approx(expected)


def test_deadline_takes_the_cheapest_pool_that_meets_it() -> None:
    pools = (
        pool("v100", "V100", price=400),  # 10 h: cheapest, misses a 5 h deadline
        pool("a800", "A800", price=1200),  # 4 h: meets it, costs 8 × 4 × 1200
        pool("h800", "H800", price=4000),  # 1.26 h: meets it, costs more
    )
    decisions = run(pools, (job(deadline_s=NOW + 5 * HOUR),))
    assert placed(decisions) == {"j": "a800"}
    # Without a deadline the cheapest wins, however slow.
    assert placed(run(pools, (job(),))) == {"j": "v100"}


def test_deadline_nobody_meets_takes_the_earliest_finish() -> None:
    pools = (
        pool("v100", "V100", price=400),
        pool("a800", "A800", price=1200),
        pool("h800", "H800", price=9000),
    )
    decisions = run(pools, (job(deadline_s=NOW + 0.5 * HOUR),))
    assert placed(decisions) == {"j": "h800"}


def test_max_price_excludes_pools_and_names_the_blocker() -> None:
    pools = (pool("cheap", "A800", price=900), pool("dear", "H800", price=2500))
    # The dear H800 would cost less in total, but its card-hour price is over the job's limit.
    assert placed(run(pools, (job(max_price_fen_per_card_hour=1000),))) == {"j": "cheap"}
    code, params = waits(run(pools, (job(max_price_fen_per_card_hour=800),)))["j"]
    assert code == "infeasible"
    assert params["blockers"] == "price×2"


# --- hard constraints ------------------------------------------------------------------------------


def test_government_work_runs_only_in_the_government_zone() -> None:
    pools = (
        pool("pub", "H800", price=100),
        pool("gov", "A800", price=3000, zone=Zone.GOVERNMENT),
    )
    for algorithm in Algorithm:
        decisions = run(pools, (job(classification=Classification.GOVERNMENT),), algorithm=algorithm)
        assert placed(decisions) == {"j": "gov"}, algorithm
    # Internal and public work may use either; cost decides.
    assert placed(run(pools, (job(classification=Classification.INTERNAL),))) == {"j": "pub"}


def test_government_work_with_no_government_pool_is_told_why() -> None:
    pools = (
        pool("pub-1", "H800"),
        pool("pub-2", "A800"),
        pool("gov-v100", "V100", zone=Zone.GOVERNMENT),  # in the zone, but not an allowed accelerator
    )
    gov_job = job(classification=Classification.GOVERNMENT, accelerators=frozenset({"H800", "A800"}))
    for algorithm in Algorithm:
        decisions = run(pools, (gov_job,), algorithm=algorithm)
        assert not decisions.places
        code, params = waits(decisions)["j"]
        assert code == "infeasible"
        assert params["blockers"] == "accelerator×1, government-zone×2"
        text = decisions.waits[0].reason.text()
        assert "government-zone×2" in text and "8 cards" in text


def test_unhealthy_pools_and_pools_too_small_get_nothing() -> None:
    pools = (pool("sick", "A800", healthy=False), pool("small", "A800", total=4, free=4))
    code, params = waits(run(pools, (job(cards=8),)))["j"]
    assert (code, params["blockers"]) == ("infeasible", "pool-unhealthy×1, size×1")
    assert placed(run(pools, (job(cards=4),))) == {"j": "small"}


def test_allowed_regions_restrict_the_pools() -> None:
    pools = (pool("near", "A800", price=2000), pool("west", "A800", price=500, region="zhongwei"))
    assert placed(run(pools, (job(),))) == {"j": "west"}
    assert placed(run(pools, (job(regions=frozenset({"pinghu"})),))) == {"j": "near"}


# --- the baselines' orderings ----------------------------------------------------------------------


def test_fifo_head_of_line_blocks_the_rest() -> None:
    pools = (pool("p", "A800", free=4),)
    running = (busy("p", 4, NOW + HOUR),)
    queued = (
        job("big", cards=8, submit_s=NOW - 100),
        job("small", cards=1, duration_s=60, submit_s=NOW - 50),
    )
    decisions = run(pools, queued, running, algorithm=Algorithm.FIFO)
    assert not decisions.places
    assert waits(decisions) == {
        "big": ("capacity", {"cards": 8, "pools": 1}),
        "small": ("fifo-blocked", {"head": "big"}),
    }
    # Slurm-like backfill lets the small job through: it ends long before the big one can start.
    decisions = run(pools, queued, running, algorithm=Algorithm.BACKFILL)
    assert placed(decisions) == {"small": "p"}
    assert waits(decisions)["big"] == ("reserved", {"cards": 8, "pool": "p", "start_s": round(NOW + HOUR)})


def test_backfill_keeps_a_long_small_job_off_the_reserved_cards() -> None:
    pools = (pool("p", "V100", free=4),)
    running = (busy("p", 4, NOW + HOUR),)
    queued = (
        job("big", cards=8, submit_s=NOW - 100),
        job("long", cards=1, duration_s=2 * HOUR, submit_s=NOW),
    )
    for algorithm in (Algorithm.BACKFILL, Algorithm.SUANWANG):
        decisions = run(pools, queued, running, algorithm=algorithm)
        assert not decisions.places, algorithm
        assert waits(decisions)["long"][0] == "capacity"


def test_cheapest_fails_over_to_the_next_cheapest_pool() -> None:
    pools = (
        pool("cheapest", "A800", price=500, free=2),
        pool("next", "A800", price=700),
        pool("dearest", "A800", price=900),
    )
    decisions = run(pools, (job(cards=2, job_id="fits"), job(cards=4, job_id="over")), algorithm="cheapest")
    assert placed(decisions) == {"fits": "cheapest", "over": "next"}
    # A job that fits nowhere waits without holding back the jobs behind it.
    queued = (job("huge", cards=8, submit_s=NOW - 100), job("small", cards=1))
    full = (pool("a", "A800", free=4), pool("b", "A800", free=2))
    decisions = run(full, queued, algorithm="cheapest")
    assert placed(decisions) == {"small": "a"}  # equal cost and finish: the first pool by id
    assert waits(decisions)["huge"][0] == "capacity"


def test_slurm_like_tries_pools_in_partition_order() -> None:
    pools = (pool("a", "A800", price=500), pool("b", "H800", price=9000), pool("c", "A800", price=100))
    decisions = run(pools, (job(),), algorithm="backfill", pool_order=("b", "a"))
    assert placed(decisions) == {"j": "b"}
    decisions = run(pools, (job(),), algorithm="backfill")
    assert placed(decisions) == {"j": "a"}  # unlisted pools follow by id


@pytest.mark.parametrize("algorithm", [Algorithm.BACKFILL, Algorithm.SUANWANG])
def test_fair_share_puts_the_tenant_with_less_decayed_usage_first(algorithm: Algorithm) -> None:
    pools = (pool("p", "A800", free=8),)
    tenants = (TenantState("heavy", usage_card_s=1_000_000.0), TenantState("light", usage_card_s=10.0))
    # The heavy user's job is older, yet the light user's goes first (fair share outweighs a day's age).
    queued = (
        job("heavy-job", tenant="heavy", submit_s=NOW - 86_400),
        job("light-job", tenant="light", submit_s=NOW - 60),
    )
    decisions = run(pools, queued, tenants=tenants, algorithm=algorithm)
    assert placed(decisions) == {"light-job": "p"}
    assert waits(decisions)["heavy-job"][0] == "reserved"
    # With equal usage, age decides.
    even = (TenantState("heavy"), TenantState("light"))
    assert placed(run(pools, queued, tenants=even, algorithm=algorithm)) == {"heavy-job": "p"}


@pytest.mark.parametrize("algorithm", [Algorithm.BACKFILL, Algorithm.SUANWANG])
def test_priority_class_dominates_fair_share_and_age(algorithm: Algorithm) -> None:
    pools = (pool("p", "A800", free=8),)
    tenants = (TenantState("heavy", usage_card_s=1_000_000.0), TenantState("light"))
    queued = (
        job("light-old", tenant="light", submit_s=NOW - 30 * 86_400),
        job("heavy-urgent", tenant="heavy", submit_s=NOW, priority=1),
    )
    assert placed(run(pools, queued, tenants=tenants, algorithm=algorithm)) == {"heavy-urgent": "p"}


def test_fair_share_factor_halves_at_the_tenants_share() -> None:
    got = factors([TenantState("a", usage_card_s=50.0), TenantState("b", usage_card_s=50.0)])
    assert got == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}
    got = factors([TenantState("idle"), TenantState("busy", weight=3.0, usage_card_s=100.0)])
    assert got["idle"] == 1.0
    assert got["busy"] == pytest.approx(2 ** (-1 / 0.75))


# --- the local SMEs' guaranteed share --------------------------------------------------------------

SME_TENANTS = (TenantState("sme", local=True, sme=True), TenantState("big", local=True))


def test_others_borrow_the_smes_share_only_preemptibly() -> None:
    local = (pool("loc", "A800", local=True),)  # 25 % of 8 cards: 2 kept for local SMEs
    decisions = run(local, (job(tenant="big", cards=8),), tenants=SME_TENANTS)
    assert not decisions.places
    decisions = run(local, (job(tenant="big", cards=6),), tenants=SME_TENANTS)
    assert [(p.pool_id, p.borrowing) for p in decisions.places] == [("loc", False)]
    decisions = run(local, (job(tenant="big", cards=8, preemptible=True),), tenants=SME_TENANTS)
    assert [(p.pool_id, p.borrowing) for p in decisions.places] == [("loc", True)]
    # The baselines know nothing of the guarantee.
    assert placed(run(local, (job(tenant="big", cards=8),), tenants=SME_TENANTS, algorithm="backfill"))


def test_a_local_sme_reclaims_from_borrowers_only() -> None:
    local = (pool("loc", "A800", free=0, local=True),)
    running = (
        busy("loc", 6, NOW + HOUR, "keeper", tenant="big", preemptible=True),
        busy("loc", 2, NOW + HOUR, "borrower", tenant="big", preemptible=True, borrowing=True),
    )
    decisions = run(local, (job(tenant="sme", cards=2),), running, SME_TENANTS)
    assert placed(decisions) == {"j": "loc"}
    assert [(p.job_id, p.reason.code) for p in decisions.preempts] == [("borrower", "sme-reclaim")]
    # Someone else's job does not reclaim anything.
    decisions = run(local, (job(tenant="big", cards=2),), running, SME_TENANTS)
    assert not decisions.places and not decisions.preempts


def test_a_reservation_never_holds_a_pool_for_a_job_the_guarantee_keeps_off_it() -> None:
    """Regression: a non-SME job bigger than the pool less the SMEs' share can never start there;
    reserving the pool for it left the whole idle pool to nobody, cycle after cycle."""
    local = (pool("loc", "A800", local=True),)
    queued = (job("head", tenant="big", cards=8, priority=3), job("small", tenant="big", cards=2))
    decisions = run(local, queued, tenants=SME_TENANTS)
    assert placed(decisions) == {"small": "loc"}
    # It can never start there (non-preemptible, too long to borrow): an infeasible wait that says why.
    assert waits(decisions)["head"] == ("infeasible", {"cards": 8, "blockers": "sme-share×1"})


def test_preempting_for_priority_keeps_the_smes_share() -> None:
    """Regression: priority preemption used to hand an urgent non-SME job the SMEs' guaranteed share
    (and a preemptible one the share without marking it borrowing, so it could not be reclaimed)."""
    local = (pool("loc", "A800", free=2, local=True),)
    running = (busy("loc", 6, NOW + HOUR, "low", tenant="big", preemptible=True),)
    urgent = job("urgent", tenant="big", cards=8, priority=3)
    decisions = run(local, (urgent,), running, SME_TENANTS, preempt_for_priority=3)
    assert not decisions.places and not decisions.preempts
    # Within what others may hold, it preempts as before.
    within = job("urgent", tenant="big", cards=6, priority=3)
    decisions = run(local, (within,), running, SME_TENANTS, preempt_for_priority=3)
    assert placed(decisions) == {"urgent": "loc"}
    assert [(p.job_id, p.reason.code) for p in decisions.preempts] == [("low", "priority")]
    # A preemptible urgent job may take the share, but only as a borrower the SMEs can reclaim.
    borrower = job("urgent", tenant="big", cards=8, priority=3, preemptible=True)
    decisions = run(local, (borrower,), running, SME_TENANTS, preempt_for_priority=3)
    assert [(p.job_id, p.borrowing) for p in decisions.places] == [("urgent", True)]


def test_reclaiming_never_delays_the_head_jobs_reservation() -> None:
    """Regression: an SME job made room by preempting a borrower that would have ended before the head's
    reserved start, then ran past it on the head's cards."""
    local = (pool("loc", "A800", free=0, local=True),)
    running = (
        busy("loc", 4, NOW + 100, "borrower", tenant="big", preemptible=True, borrowing=True),
        busy("loc", 4, NOW + 10_000, "steady", tenant="big"),
    )
    head = job("head", tenant="big", cards=6, priority=3)
    long_sme = job("sme-long", tenant="sme", cards=4, duration_s=30_000)
    decisions = run(local, (head, long_sme), running, SME_TENANTS)
    assert waits(decisions)["head"] == (
        "reserved",
        {"cards": 6, "pool": "loc", "start_s": round(NOW + 10_000)},
    )
    assert not decisions.places and not decisions.preempts
    # A short SME job that ends before the head's start may still reclaim.
    short_sme = job("sme-short", tenant="sme", cards=4, duration_s=1_000)
    decisions = run(local, (head, short_sme), running, SME_TENANTS)
    assert placed(decisions) == {"sme-short": "loc"}
    assert [p.job_id for p in decisions.preempts] == ["borrower"]


# --- quote -----------------------------------------------------------------------------------------


def test_quote_ranks_pools_by_cost_and_gives_a_busy_pools_earliest_start() -> None:
    pools = (
        pool("busy-cheap", "V100", price=300, free=0),
        pool("a800", "A800", price=1200),
        pool("h800", "H800", price=4000),
        pool("pub-only", "H800", price=10, zone=Zone.PUBLIC, region="zhongwei"),
    )
    running = (busy("busy-cheap", 4, NOW + 2 * HOUR), busy("busy-cheap", 4, NOW + 5 * HOUR))
    snapshot = Snapshot(NOW, pools, (), running)
    table = quote(job(regions=frozenset({"pinghu"})), snapshot, Policy())
    assert [o.pool.id for o in table] == ["busy-cheap", "a800", "h800"]  # by estimated cost
    by_pool = {o.pool.id: o for o in table}
    assert by_pool["busy-cheap"].start_s == NOW + 5 * HOUR  # all 8 cards free once both jobs end
    assert by_pool["busy-cheap"].end_s == NOW + 15 * HOUR
    assert by_pool["a800"].start_s == NOW
    assert [o.cost_fen for o in table] == sorted(o.cost_fen for o in table)
    assert by_pool["h800"].cost_fen == cost_fen(8, 10 * HOUR * V100_TFLOPS / H800_TFLOPS, 4000)
    # A deadline puts the pools that meet it first.
    table = quote(job(regions=frozenset({"pinghu"}), deadline_s=NOW + 5 * HOUR), snapshot, Policy())
    assert [o.pool.id for o in table] == ["a800", "h800", "busy-cheap"]


def test_quote_of_an_infeasible_job_is_empty() -> None:
    snapshot = Snapshot(NOW, (pool("pub", "H800"),), ())
    assert quote(job(classification=Classification.GOVERNMENT), snapshot, Policy()) == []


# --- small pure helpers ----------------------------------------------------------------------------


def test_cost_is_rounded_up_once_for_the_whole_gang() -> None:
    assert cost_fen(3, 1200.0, 1) == 1  # 3 × 1/3 h × 1 fen: one fen, not one per card
    assert cost_fen(1, 3600.0, 100) == 100  # exact: no fen added by float error
    assert cost_fen(1, 0.1 * 3 * 3600, 10) == 3  # 1080.0000000000002 s: 3.0000000000000004 fen → 3
    assert cost_fen(1, 1.0, 1) == 1  # any use at all costs at least a fen
    assert cost_fen(2, 1800.0, 333) == 333
    assert cost_fen(1, 1800.0, 333) == 167  # 166.5 rounds up
    assert cost_fen(0, 3600.0, 1000) == 0


def test_usage_decays_with_the_half_life() -> None:
    week = 7 * 86_400.0
    assert decay(1000.0, week, week) == pytest.approx(500.0)
    assert decay(1000.0, 2 * week, week) == pytest.approx(250.0)
    assert decay(1000.0, 0.0, week) == 1000.0
    assert decay(1000.0, -week, week) == 1000.0  # a clock step backwards never inflates usage
    assert decay(1000.0, week, 0.0) == 0.0  # no half-life: no memory


def test_policy_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown policy parameter\(s\): backfil_depth, half_life"):
        Policy.from_dict({"backfil_depth": 10, "half_life": 3, "algorithm": "fifo"})
    policy = Policy.from_dict(
        {"algorithm": "backfill", "pool_order": ["b", "a"], "sme_guaranteed_share": 0.5}
    )
    assert policy.algorithm is Algorithm.BACKFILL
    assert policy.pool_order == ("b", "a")
    assert policy.sme_guaranteed_share == 0.5
    with pytest.raises(ValueError):
        Policy.from_dict({"algorithm": "round-robin"})
