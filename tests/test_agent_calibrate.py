"""Calibration arithmetic with a fake clock and kernel: FLOPs of a matmul, TFLOPS, warm-up runs thrown
away, the median of the rest, the node's sum; the torch runner's CUDA path through a stand-in torch,
and a real numpy run where numpy is installed."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from suanwang.agent.calibrate import (
    CardCalibration,
    NodeCalibration,
    TorchRunner,
    calibrate,
    matmul_flops,
    measure,
    tflops,
    wall_timer,
)
from suanwang.agent.gpu import CardInfo, NoGpu, RecordedProbe

H200 = CardInfo(0, "GPU-0", "H200", 143771, False, "580.82.07")
A10 = CardInfo(1, "GPU-1", "A10", 23028, None, "580.82.07")


class ScriptedTimer:
    """Runs the work (so the kernel is really called) and says it took the next scripted time."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds = list(seconds)

    def __call__(self, work: Callable[[], None]) -> float:
        work()
        return self.seconds.pop(0)


class FakeRunner:
    dtype = "bf16"

    def __init__(self, n: int = 8192) -> None:
        self.n = n
        self.calls: list[tuple[int | None, int, int]] = []  # (device, n, iterations)
        self.released = 0

    def size_for(self, card: CardInfo | None) -> int:
        return self.n

    def kernel(self, device: int | None, n: int) -> Callable[[int], None]:
        return lambda iterations: self.calls.append((device, n, iterations))

    def timer(self, device: int | None) -> Callable[[Callable[[], None]], float]:
        raise AssertionError("the test's timer is used")

    def release(self) -> None:
        self.released += 1


def test_a_matmul_of_n_is_two_n_cubed_operations():
    assert matmul_flops(1) == 2
    assert matmul_flops(8192) == 2 * 8192**3 == 1_099_511_627_776
    with pytest.raises(ValueError):
        matmul_flops(0)


def test_tflops_is_operations_times_iterations_over_seconds():
    assert tflops(2 * 10**12, 10, 2.0) == 10.0
    assert tflops(matmul_flops(8192), 100, 0.125) == pytest.approx(879.609302, rel=1e-9)
    for seconds in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="positive"):
            tflops(1, 1, seconds)
    with pytest.raises(ValueError, match="iterations"):
        tflops(1, 0, 1.0)


def test_warm_up_runs_are_thrown_away_and_the_median_is_the_figure():
    n, iterations = 8192, 100
    flops = matmul_flops(n) * iterations
    # Two slow warm-up runs (clocks ramping up), then five runs, one slowed by a neighbour.
    timer = ScriptedTimer([5.0, 1.0, 0.125, 0.120, 0.500, 0.125, 0.130])
    runner = FakeRunner(n)
    node = calibrate(RecordedProbe([H200], [[]]), runner, timer, repeats=5, warmup=2, iterations=iterations)

    (card,) = node.cards
    expected = [flops / t / 1e12 for t in (0.125, 0.120, 0.500, 0.125, 0.130)]
    assert card.samples_tflops == pytest.approx(expected)
    assert card.median_tflops == pytest.approx(flops / 0.125 / 1e12)
    assert (card.index, card.model, card.dtype, card.n, card.repeats, card.iterations) == (
        0,
        "H200",
        "bf16",
        8192,
        5,
        100,
    )
    assert runner.calls == [(0, 8192, 100)] * 7  # every run multiplies, warm-ups too
    assert runner.released == 1


def test_the_node_figure_is_the_sum_of_its_cards_medians():
    timer = ScriptedTimer([9.0, 1.0, 2.0, 4.0, 9.0, 2.0, 4.0, 8.0])  # card 0, then card 1
    node = calibrate(
        RecordedProbe([H200, A10], [[], []]), FakeRunner(1000), timer, repeats=3, warmup=1, iterations=1
    )
    first, second = node.cards
    assert (first.index, second.index) == (0, 1)
    assert first.median_tflops == pytest.approx(2e9 / 2.0 / 1e12)
    assert second.median_tflops == pytest.approx(2e9 / 4.0 / 1e12)
    assert node.total_tflops == pytest.approx(first.median_tflops + second.median_tflops)


def test_an_even_number_of_repeats_takes_the_middle_two():
    timer = ScriptedTimer([1.0, 2.0, 4.0, 8.0])
    node = calibrate(RecordedProbe([H200], [[]]), FakeRunner(1000), timer, repeats=4, warmup=0, iterations=1)
    (card,) = node.cards
    assert card.samples_tflops == pytest.approx([2e-3, 1e-3, 0.5e-3, 0.25e-3])
    assert card.median_tflops == pytest.approx((1e-3 + 0.5e-3) / 2)


def test_a_node_figure_of_no_cards_is_zero():
    assert NodeCalibration(()).total_tflops == 0.0
    one = CardCalibration(None, "cpu", "fp32", 256, 2, 3, 0.25, (0.2, 0.25, 0.3))
    assert NodeCalibration((one, one)).total_tflops == 0.5


def test_a_node_without_cards_calibrates_its_cpu():
    runner = FakeRunner(256)
    node = calibrate(NoGpu(), runner, ScriptedTimer([1.0, 1.0]), repeats=1, warmup=1, iterations=3)
    assert [(c.index, c.model) for c in node.cards] == [(None, "cpu")]
    assert runner.calls == [(None, 256, 3)] * 2


def test_the_runner_is_released_even_when_a_run_fails():
    runner = FakeRunner()
    with pytest.raises(ValueError, match="positive"):
        calibrate(RecordedProbe([H200], [[]]), runner, ScriptedTimer([0.0]), repeats=1, warmup=0)
    assert runner.released == 1


@pytest.mark.parametrize(("repeats", "warmup"), [(0, 0), (101, 0), (1, -1), (1, 101)])
def test_repeat_counts_have_limits(repeats, warmup):
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda _: None, ScriptedTimer([1.0]), n=1, iterations=1, repeats=repeats, warmup=warmup)


def test_the_wall_timer_times_the_work():
    ran = []
    assert wall_timer(lambda: ran.append(1)) >= 0.0
    assert ran == [1]


# --- torch, through a stand-in ---------------------------------------------------------------------


class FakeTorch:
    """What TorchRunner calls of torch: tensors are tags, matmuls are counted, events say 250 ms."""

    bfloat16, float16 = "bfloat16", "float16"

    def __init__(self) -> None:
        self.matmuls = 0
        self.log: list[str] = []
        torch = self

        class Event:
            def __init__(self, enable_timing: bool = False) -> None:
                assert enable_timing

            def record(self) -> None:
                torch.log.append("record")

            def synchronize(self) -> None:
                torch.log.append("event-synchronize")

            def elapsed_time(self, end: Any) -> float:
                return 250.0

        class Device:
            def __init__(self, index: int) -> None:
                torch.log.append(f"device {index}")

            def __enter__(self) -> None:
                return None

            def __exit__(self, *_: Any) -> None:
                return None

        self.cuda = SimpleNamespace(
            Event=Event,
            device=Device,
            synchronize=lambda: self.log.append("synchronize"),
            is_available=lambda: True,
            empty_cache=lambda: self.log.append("empty-cache"),
        )

    def randn(self, *shape: int, device: str, dtype: str) -> tuple[Any, ...]:
        return ("randn", shape, device, dtype)

    def empty(self, *shape: int, device: str, dtype: str) -> tuple[Any, ...]:
        return ("empty", shape, device, dtype)

    def matmul(self, a: Any, b: Any, *, out: Any) -> None:
        assert a[2] == b[2] == out[2] == "cuda:3" and a[3] == "bfloat16"
        self.matmuls += 1
        self.log.append("matmul")


def test_torch_runner_times_bf16_matmuls_with_cuda_events(monkeypatch):
    torch = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    runner = TorchRunner()
    card = CardInfo(3, "GPU-3", "H200", 143771, False, "580.82.07")

    assert runner.size_for(card) == 16384
    assert runner.size_for(CardInfo(0, "GPU-0", "T4", 15360, None, "580.82.07")) == 8192
    node = calibrate(RecordedProbe([card], [[]]), runner, repeats=2, warmup=1, iterations=4)

    (result,) = node.cards
    assert torch.matmuls == 3 * 4
    assert result.samples_tflops == pytest.approx([matmul_flops(16384) * 4 / 0.25 / 1e12] * 2)
    # Each run: wait for what was queued, record, multiply, record, wait for the end event.
    one_run = ["device 3", "synchronize", "record", "matmul", "matmul", "matmul", "matmul", "record"]
    assert torch.log[: len(one_run) + 1] == [*one_run, "event-synchronize"]
    assert torch.log[-1] == "empty-cache"


def test_torch_runner_takes_only_half_precision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", FakeTorch())
    with pytest.raises(ValueError, match="bf16 or fp16"):
        TorchRunner("fp32")


# --- numpy, for real where installed ---------------------------------------------------------------


def test_numpy_runner_measures_a_positive_finite_cpu_figure():
    pytest.importorskip("numpy")
    from suanwang.agent.calibrate import NumpyRunner

    node = calibrate(NoGpu(), NumpyRunner(), repeats=3, warmup=1, iterations=2, n=256)
    (cpu,) = node.cards
    assert (cpu.index, cpu.model, cpu.dtype, cpu.n) == (None, "cpu", "fp32", 256)
    assert math.isfinite(cpu.median_tflops) and cpu.median_tflops > 0


def test_the_cli_calibrates_a_cpu_only_node(cli_run) -> None:
    """`suanwang agent calibrate` on this machine (no GPU): numpy's float32 matmul, a positive figure."""
    import json

    code, out, err = cli_run("agent", "calibrate", "--repeats", "2", "--size", "256", "--json")
    assert code == 0, err
    result = json.loads(out)
    [card] = result["cards"]
    assert card["model"] == "cpu" and card["n"] == 256 and card["median_tflops"] > 0
    assert result["total_tflops"] == card["median_tflops"]
