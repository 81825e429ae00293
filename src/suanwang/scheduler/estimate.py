"""Heterogeneity-aware estimates (Gavel's idea): runtime, cost and finish time of a job on a pool.

Runtime on a pool = reference duration × (reference TFLOPS / pool TFLOPS) ÷ the pool's measured
throughput factor, with a per-job-type override of the ratio. Dense FP16 TFLOPS come from the catalogue;
node agents' calibrations adjust a pool where they exist (`throughput_factors`). Cost is rounded up to
whole fen once, here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeVar

from suanwang import catalog
from suanwang.scheduler.policy import Policy
from suanwang.scheduler.types import PoolState, QueuedJob

K = TypeVar("K")
# A calibration this far from the typical card is more likely a broken measurement than a card.
THROUGHPUT_MIN, THROUGHPUT_MAX = 0.25, 4.0


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
    return job.duration_s / (speedup(job, pool.accelerator, policy) * pool.throughput)


def throughput_factors(measured: Mapping[K, tuple[str, float]]) -> dict[K, float]:
    """Per calibrated pool (pool → its model and measured TFLOPS per card): how much faster or slower
    its cards run than their datasheet ratio says.

    Real cards rarely reach the datasheet peak (an H200 measured 70% of it), and the reference
    durations were not measured on our pools, so a pool's measured fraction of its datasheet counts
    against the typical fraction — the median over the calibrated pools: a pool as efficient as the
    typical one keeps its datasheet ratio (1), a power-capped or hot one is estimated slower, and
    pools without a calibration stay at 1. One calibrated pool alone is the typical one. Pools of a
    model the catalogue does not know are left out.
    """
    efficiency: dict[K, float] = {}
    for pool, (model, per_card) in measured.items():
        found = catalog.find(model)
        if found is not None and found.dense_fp16_tflops > 0 and math.isfinite(per_card) and per_card > 0:
            efficiency[pool] = per_card / float(found.dense_fp16_tflops)
    if not efficiency:
        return {}
    typical = statistics.median(efficiency.values())
    return {
        pool: min(max(value / typical, THROUGHPUT_MIN), THROUGHPUT_MAX) for pool, value in efficiency.items()
    }


def cost_fen(cards: int, runtime: float, price_fen_per_card_hour: int) -> int:
    """cards × hours × price, rounded up to a whole fen (the one rounding, in the platform's favour)."""
    return math.ceil(cards * runtime * price_fen_per_card_hour / 3600 - 1e-9)
