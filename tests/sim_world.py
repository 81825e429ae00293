"""Small hand-made simulation worlds shared by the simulator tests."""

from __future__ import annotations

from pathlib import Path

from suanwang.scheduler.simulate import Scenario
from suanwang.scheduler.types import PoolState, QueuedJob, Zone

# The development trace lies in shared/ beside the checkout (as in CI); tests fail, not skip, without it.
GAVEL_DIR = Path(__file__).resolve().parents[2] / "shared/data/traces/gavel_philly_msr"
GAVEL_CSV = GAVEL_DIR / "gavel_msr_seed0.csv"


def pool(
    pool_id: str, cards: int, *, price: int = 3600, accelerator: str = "V100", **kw: object
) -> PoolState:
    return PoolState(
        id=pool_id,
        provider="prov",
        site=f"site-{pool_id}",
        region="r1",
        zone=kw.pop("zone", Zone.PUBLIC),  # type: ignore[arg-type]
        accelerator=accelerator,
        cards_total=cards,
        cards_free=cards,
        cards_per_node=min(cards, 8),
        price_fen_per_card_hour=price,
        **kw,  # type: ignore[arg-type]
    )


def job(
    job_id: str, submit: float, cards: int, duration: float, tenant: str = "t", **kw: object
) -> QueuedJob:
    return QueuedJob(id=job_id, tenant=tenant, cards=cards, duration_s=duration, submit_s=submit, **kw)  # type: ignore[arg-type]


TWO_POOLS = Scenario(reference_accelerator="V100", pools=(pool("p1", 4), pool("p2", 2, price=1000)))
FIVE_JOBS = (
    job("j1", 0, 4, 100),
    job("j2", 0, 2, 50),
    job("j3", 10, 2, 30),
    job("j4", 20, 1, 10),
    job("j5", 30, 4, 20),
)
