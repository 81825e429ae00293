"""explain(): a waiting job's reason says what it needs, when it can start, and what would start it now."""

from __future__ import annotations

from suanwang.i18n import t
from suanwang.scheduler import (
    Policy,
    PoolState,
    QueuedJob,
    RunningJob,
    Snapshot,
    Zone,
    explain,
)


def pool(pool_id: str, accelerator: str, free: int, price: int, total: int = 8) -> PoolState:
    return PoolState(pool_id, "prov", "site", "pinghu", Zone.PUBLIC, accelerator, total, free, 8, price)


BUSY_H800 = (RunningJob("r1", "other", "h800", 8, start_s=0, expected_end_s=5000),)


def test_waiting_job_is_told_when_and_what_would_start_it_now():
    pools = (pool("h800", "H800", 0, 1200), pool("a800", "A800", 8, 650))
    job = QueuedJob("j", "t", 8, 36_000, 0, accelerators=frozenset({"H800"}))
    reason = explain(job, Snapshot(100, pools, (job,), BUSY_H800), Policy())
    params = dict(reason.params)
    assert reason.code == "explain-wait-or"
    assert (params["pool"], params["start_s"]) == ("h800", 5000)
    assert (params["change"], params["alt_pool"], params["alt_accelerator"]) == (
        "accelerators",
        "a800",
        "A800",
    )
    # 36,000 s on V100 = 36,000 × 125 / 312 s on A800; 8 cards × that × 650 fen/h, rounded up.
    assert params["alt_cost_fen"] == 20834
    assert "Relaxing accelerators would start it now on pool a800" in reason.text()
    assert "a800" in t("sched.explain-wait-or", "zh", **params)


def test_price_cap_is_the_relaxation_when_only_it_blocks():
    pools = (pool("h800", "H800", 0, 1200), pool("h100", "H100-SXM", 8, 1300))
    job = QueuedJob("j", "t", 8, 3600, 0, max_price_fen_per_card_hour=1250)
    reason = explain(job, Snapshot(0, pools, (job,), BUSY_H800), Policy())
    assert reason.code == "explain-wait-or"
    assert dict(reason.params)["change"] == "max_price"


def test_job_that_can_start_now_says_where_and_job_that_never_can_says_so():
    pools = (pool("a800", "A800", 8, 650),)
    now_job = QueuedJob("j", "t", 8, 3600, 0)
    assert explain(now_job, Snapshot(0, pools, (now_job,)), Policy()).code == "explain-now"
    never = QueuedJob("k", "t", 16, 3600, 0)
    reason = explain(never, Snapshot(0, pools, (never,)), Policy())
    assert reason.code == "explain-never" and "16×any accelerator" in reason.text()
