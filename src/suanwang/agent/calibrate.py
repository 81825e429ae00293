"""Calibration: each card's measured dense FP16/BF16 matrix-multiply throughput, in TFLOPS.

The catalogue's figures are datasheet peaks; a measured figure is kept beside them (never instead), so
a provider's cards that run hot, power-capped or in a slow slot show up. The arithmetic here is pure;
the kernel comes from a `Runner` (torch on CUDA, numpy on the CPU) and its timing from a `Timer`, both
injectable so the arithmetic is tested with a fake clock.
"""

from __future__ import annotations

import importlib
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from suanwang.agent.gpu import CardInfo, Probe

# Runs `work` to completion (the device synchronised) and returns the seconds it took.
Timer = Callable[[Callable[[], None]], float]
# Runs `iterations` n×n×n matrix multiplies (they may be queued; the timer waits for them).
Kernel = Callable[[int], None]

CPU_MODEL = "cpu"
MAX_REPEATS = 100  # a limit on everything: a mistyped repeat count must not hold a card for hours


def matmul_flops(n: int) -> int:
    """Floating-point operations of one n×n by n×n multiply: n³ multiply-adds, two operations each."""
    if n <= 0:
        raise ValueError(f"matrix size must be positive (got {n})")
    return 2 * n**3


def tflops(flops: int, iterations: int, seconds: float) -> float:
    """Throughput of `iterations` runs of `flops` operations in `seconds`, in 10¹² operations a second."""
    if iterations <= 0:
        raise ValueError(f"iterations must be positive (got {iterations})")
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"a timed run must take a positive, finite time (got {seconds} s)")
    return flops * iterations / seconds / 1e12


def wall_timer(work: Callable[[], None]) -> float:
    """Seconds of `work` by the monotonic performance counter (right for synchronous CPU work)."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


class Runner(Protocol):
    dtype: str  # "bf16", "fp16", "fp32"

    def size_for(self, card: CardInfo | None) -> int:
        """The matrix size n to measure this card (None: the CPU) with."""
        ...

    def kernel(self, device: int | None, n: int) -> Kernel:
        """Operands of size n placed on the device (None: the CPU), ready to multiply."""
        ...

    def timer(self, device: int | None) -> Timer:
        """How to time work on this device (a CUDA device needs its own events and a synchronise)."""
        ...

    def release(self) -> None:
        """Free the operands of the last kernel."""
        ...


@dataclass(frozen=True, slots=True)
class CardCalibration:
    index: int | None  # None: the CPU of a node without cards
    model: str
    dtype: str
    n: int
    iterations: int  # multiplies per timed run
    repeats: int
    median_tflops: float
    samples_tflops: tuple[float, ...]  # each timed run, warm-up runs left out


@dataclass(frozen=True, slots=True)
class NodeCalibration:
    cards: tuple[CardCalibration, ...]

    @property
    def total_tflops(self) -> float:
        """The node's throughput: the sum of its cards' medians."""
        return sum(card.median_tflops for card in self.cards)


def measure(
    kernel: Kernel, timer: Timer, *, n: int, iterations: int, repeats: int, warmup: int
) -> list[float]:
    """TFLOPS of each of `repeats` timed runs, after `warmup` runs that are thrown away (clocks ramping
    up, kernels being chosen and caches filled would otherwise count as slowness)."""
    if not 1 <= repeats <= MAX_REPEATS or not 0 <= warmup <= MAX_REPEATS:
        raise ValueError(f"repeats must be 1–{MAX_REPEATS} and warmup 0–{MAX_REPEATS}")
    flops = matmul_flops(n)
    samples = []
    for run in range(warmup + repeats):
        seconds = timer(lambda: kernel(iterations))
        if run >= warmup:
            samples.append(tflops(flops, iterations, seconds))
    return samples


def calibrate(
    probe: Probe,
    runner: Runner,
    timer: Timer | None = None,
    *,
    repeats: int = 5,
    warmup: int = 2,
    iterations: int = 10,
    n: int | None = None,
) -> NodeCalibration:
    """Measure every card of the node in turn (the CPU where it has none); the median of each card's
    runs is its figure, so one run slowed by a neighbour does not move it."""
    cards: Sequence[CardInfo | None] = probe.cards() or [None]
    results = []
    for card in cards:
        device = None if card is None else card.index
        size = runner.size_for(card) if n is None else n
        try:
            kernel = runner.kernel(device, size)
            samples = measure(
                kernel,
                timer or runner.timer(device),
                n=size,
                iterations=iterations,
                repeats=repeats,
                warmup=warmup,
            )
        finally:
            runner.release()
        results.append(
            CardCalibration(
                index=device,
                model=CPU_MODEL if card is None else card.model,
                dtype=runner.dtype,
                n=size,
                iterations=iterations,
                repeats=repeats,
                median_tflops=statistics.median(samples),
                samples_tflops=tuple(samples),
            )
        )
    return NodeCalibration(tuple(results))


# --- runners ---------------------------------------------------------------------------------------


class TorchRunner:
    """Dense BF16 (or FP16) matmul on a CUDA card through torch, imported only when a runner is made."""

    def __init__(self, dtype: str = "bf16") -> None:
        if dtype not in ("bf16", "fp16"):
            raise ValueError(f"dtype must be bf16 or fp16 (got {dtype})")
        self.dtype = dtype
        self._torch: Any = importlib.import_module("torch")
        self._operands: tuple[Any, ...] = ()

    def size_for(self, card: CardInfo | None) -> int:
        # Three n×n 2-byte matrices: 1.5 GiB at 16384, which keeps the tensor cores busy on a large card
        # without crowding whatever else the card holds; 8192 still reaches near-peak on smaller cards.
        if card is None:
            return 2048
        return 16384 if card.memory_mib >= 40 * 1024 else 8192

    def kernel(self, device: int | None, n: int) -> Kernel:
        torch = self._torch
        where = "cpu" if device is None else f"cuda:{device}"
        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        a = torch.randn(n, n, device=where, dtype=dtype)
        b = torch.randn(n, n, device=where, dtype=dtype)
        out = torch.empty(n, n, device=where, dtype=dtype)
        self._operands = (a, b, out)

        def run(iterations: int) -> None:
            for _ in range(iterations):
                torch.matmul(a, b, out=out)

        return run

    def timer(self, device: int | None) -> Timer:
        if device is None:
            return wall_timer
        torch = self._torch

        def cuda_timer(work: Callable[[], None]) -> float:
            # Events on the card's stream time the kernels themselves, not the Python that queued them.
            with torch.cuda.device(device):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                work()
                end.record()
                end.synchronize()
                return float(start.elapsed_time(end)) / 1000.0

        return cuda_timer

    def release(self) -> None:
        self._operands = ()
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


class NumpyRunner:
    """Float32 matmul on the CPU through numpy (BLAS), so a node without cards has a figure too."""

    dtype = "fp32"

    def __init__(self) -> None:
        self._numpy: Any = importlib.import_module("numpy")
        self._operands: tuple[Any, ...] = ()

    def size_for(self, card: CardInfo | None) -> int:
        if card is not None:
            raise ValueError("numpy runs on the CPU only; use TorchRunner for a card")
        return 2048

    def kernel(self, device: int | None, n: int) -> Kernel:
        if device is not None:
            raise ValueError("numpy runs on the CPU only; use TorchRunner for a card")
        numpy = self._numpy
        rng = numpy.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=numpy.float32)
        b = rng.standard_normal((n, n), dtype=numpy.float32)
        out = numpy.empty((n, n), dtype=numpy.float32)
        self._operands = (a, b, out)

        def run(iterations: int) -> None:
            for _ in range(iterations):
                numpy.matmul(a, b, out=out)

        return run

    def timer(self, device: int | None) -> Timer:
        return wall_timer

    def release(self) -> None:
        self._operands = ()
