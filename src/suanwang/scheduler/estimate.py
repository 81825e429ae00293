"""Heterogeneity-aware estimates (Gavel's idea): runtime, cost and finish time of a job on a pool.

Runtime on a pool = reference duration × (reference TFLOPS / pool TFLOPS) × per-job-type override.
Dense FP16 TFLOPS come from the catalogue; a job type may override the ratio (measured throughputs).
Cost is rounded up to whole fen once, here.
"""

from __future__ import annotations

import math
from functools import lru_cache

from suanwang import catalog
from suanwang.scheduler.policy import Policy
from suanwang.scheduler.types import PoolState, QueuedJob


@lru_cache(maxsize=256)
def tflops(model: str) -> float:
    found = catalog.find(model)
    if found is None:
        raise ValueError(f"unknown accelerator {model!r}")
    return float(found.dense_fp16_tflops)


@lru_cache(maxsize=256)
def memory_gib(model: str) -> int:
    found = catalog.find(model)
    return found.memory_gib if found is not None else 0


def speedup(job: QueuedJob, accelerator: str, policy: Policy) -> float:
    """How many times faster than on the reference accelerator."""
    ratio = tflops(accelerator) / tflops(policy.reference_accelerator)
    if job.job_type is not None:
        override = policy.throughput_overrides.get(job.job_type, {}).get(accelerator)
        if override is not None:
            ratio *= override
    return ratio


def runtime_s(job: QueuedJob, pool: PoolState, policy: Policy) -> float:
    if job.cards == 0:
        return job.duration_s  # CPU work does not speed up with the pool's accelerator
    return job.duration_s / speedup(job, pool.accelerator, policy)


def cost_fen(cards: int, runtime: float, price_fen_per_card_hour: int) -> int:
    """cards × hours × price, rounded up to a whole fen (the one rounding, in the platform's favour)."""
    return math.ceil(cards * runtime * price_fen_per_card_hour / 3600 - 1e-9)
