"""The node's accelerators behind one small interface (`Probe`), so the agent is tested without a GPU.

`NvmlProbe` reads NVIDIA's management library through `nvidia-ml-py` (module `pynvml`), imported only
when a probe is made: importing this module never needs it. `NoGpu` is a CPU-only node and
`RecordedProbe` replays recorded values (tests, demos). NVML's per-process accounting is deliberately
not used: it is off on the providers' VMs, so a job's usage is metered from whole-card samples.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CardInfo:
    index: int  # NVML's index, the number CUDA_VISIBLE_DEVICES takes
    uuid: str
    model: str  # the catalogue's model key (e.g. "H100-SXM"), or the driver's raw name when unknown
    memory_mib: int
    mig_mode: bool | None  # None: the card has no MIG
    driver_version: str


@dataclass(frozen=True, slots=True)
class CardSample:
    index: int
    at_s: float  # monotonic seconds (time.monotonic on this node), never wall-clock time
    utilization_pct: int | None  # None: the driver cannot say (a MIG-enabled card refuses this query)
    memory_used_mib: int
    power_mw: int | None
    energy_mj: int | None  # the card's total-energy counter since the driver loaded; None: not supported


class Probe(Protocol):
    def cards(self) -> list[CardInfo]:
        """The node's cards, in index order."""
        ...

    def sample(self, indices: Sequence[int]) -> list[CardSample]:
        """One reading of each card in `indices`, in that order."""
        ...

    def processes(self, index: int) -> list[int]:
        """Pids of the compute processes on the card."""
        ...

    def close(self) -> None: ...


# --- driver names → catalogue models ---------------------------------------------------------------

# Matched against the name with its "NVIDIA "/"Tesla " prefix removed, upper-cased, spaces collapsed.
# Only forms whose dense FP16/BF16 throughput is the catalogue entry's are mapped: an H100 PCIe or NVL,
# a V100 PCIe or an H200 NVL computes less than the SXM card the catalogue lists, so it stays unknown
# (the agent reports the raw name) rather than be billed and scheduled as the faster card.
_MODEL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), model)
    for pattern, model in (
        (r"H100 80GB HBM3|H100[ -]SXM5?([ -].*)?", "H100-SXM"),
        (r"H800( 80GB HBM3|[ -]SXM5?([ -].*)?)?", "H800"),
        (r"H200( 141GB HBM3E|[ -]SXM5?([ -].*)?)?", "H200"),
        (r"H20", "H20"),
        # A100 and A800 PCIe cards have the SXM4 cards' 312 dense TFLOPS; memory is reported apart.
        (r"A800([ -].*)?", "A800"),
        (r"A100([ -].*)?", "A100"),
        (r"L40S", "L40S"),
        (r"A10", "A10"),
        (r"V100-SXM2(-.*)?", "V100"),
        (r"P100-SXM2(-.*)?", "P100"),
        (r"T4", "T4"),
    )
)


def catalog_model(nvml_name: str) -> str | None:
    """The accelerator catalogue's model for a driver's device name, or None when it is not known."""
    name = " ".join(nvml_name.split()).upper()
    for prefix in ("NVIDIA ", "TESLA "):
        name = name.removeprefix(prefix)
    for pattern, model in _MODEL_PATTERNS:
        if pattern.fullmatch(name):
            return model
    return None


# --- NVML ------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """NVML strings: bytes from older nvidia-ml-py releases, str from newer ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlProbe:
    """The node's NVIDIA cards through NVML. `nvml` is the pynvml module (a stand-in in tests)."""

    def __init__(self, nvml: Any = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._nvml: Any = importlib.import_module("pynvml") if nvml is None else nvml
        self._clock = clock
        self._nvml.nvmlInit()
        self._handles: dict[int, Any] = {}

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._nvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def _optional(self, query: Callable[[Any], Any], handle: Any) -> Any:
        """The query's answer, or None where the card does not support it."""
        try:
            return query(handle)
        except self._nvml.NVMLError_NotSupported:
            return None

    def device_count(self) -> int:
        return int(self._nvml.nvmlDeviceGetCount())

    def cards(self) -> list[CardInfo]:
        nvml = self._nvml
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        found = []
        for index in range(self.device_count()):
            handle = self._handle(index)
            name = _text(nvml.nvmlDeviceGetName(handle))
            mig = self._optional(nvml.nvmlDeviceGetMigMode, handle)
            found.append(
                CardInfo(
                    index=index,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    model=catalog_model(name) or name,
                    memory_mib=int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // MIB,
                    # nvmlDeviceGetMigMode answers [current, pending]; what runs now is the current mode.
                    mig_mode=None if mig is None else int(mig[0]) == int(nvml.NVML_DEVICE_MIG_ENABLE),
                    driver_version=driver,
                )
            )
        return found

    def sample(self, indices: Sequence[int]) -> list[CardSample]:
        nvml = self._nvml
        samples = []
        for index in indices:
            handle = self._handle(index)
            rates = self._optional(nvml.nvmlDeviceGetUtilizationRates, handle)
            power = self._optional(nvml.nvmlDeviceGetPowerUsage, handle)
            energy = self._optional(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            samples.append(
                CardSample(
                    index=index,
                    at_s=self._clock(),
                    utilization_pct=None if rates is None else int(rates.gpu),
                    memory_used_mib=int(nvml.nvmlDeviceGetMemoryInfo(handle).used) // MIB,
                    power_mw=None if power is None else int(power),
                    energy_mj=None if energy is None else int(energy),
                )
            )
        return samples

    def processes(self, index: int) -> list[int]:
        running = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle(index))
        return sorted({int(process.pid) for process in running})

    def close(self) -> None:
        self._handles.clear()
        self._nvml.nvmlShutdown()


# --- no GPU, recorded ------------------------------------------------------------------------------


class NoGpu:
    """A CPU-only node: no cards, so nothing to sample."""

    def cards(self) -> list[CardInfo]:
        return []

    def sample(self, indices: Sequence[int]) -> list[CardSample]:
        if indices:
            raise ValueError(f"this node has no cards (asked for {list(indices)})")
        return []

    def processes(self, index: int) -> list[int]:
        raise ValueError(f"this node has no card {index}")

    def close(self) -> None:
        pass


class RecordingExhausted(LookupError):
    """A recorded card has no more samples to replay."""


class RecordedProbe:
    """Replays a recording: each `sample()` returns the next recorded sample of every card asked for."""

    def __init__(
        self,
        cards: Sequence[CardInfo],
        samples: Sequence[Sequence[CardSample]],
        processes: Mapping[int, Sequence[int]] | None = None,
    ) -> None:
        if len(samples) != len(cards):
            raise ValueError(f"{len(cards)} cards but {len(samples)} sample sequences")
        self._cards = list(cards)
        self._next: dict[int, Iterator[CardSample]] = {}
        for card, recorded in zip(cards, samples, strict=True):
            if any(s.index != card.index for s in recorded):
                raise ValueError(f"card {card.index}'s recording holds another card's samples")
            self._next[card.index] = iter(list(recorded))
        self._processes = {index: list(pids) for index, pids in (processes or {}).items()}

    @classmethod
    def from_file(cls, path: str | Path) -> RecordedProbe:
        """A recording saved as JSON: {"cards": [CardInfo...], "samples": [[CardSample...] per card]}."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            [CardInfo(**card) for card in data["cards"]],
            [[CardSample(**sample) for sample in recorded] for recorded in data["samples"]],
            {int(index): pids for index, pids in data.get("processes", {}).items()},
        )

    def cards(self) -> list[CardInfo]:
        return list(self._cards)

    def sample(self, indices: Sequence[int]) -> list[CardSample]:
        samples = []
        for index in indices:
            if index not in self._next:
                raise ValueError(f"no card {index} in the recording")
            sample = next(self._next[index], None)
            if sample is None:
                raise RecordingExhausted(f"card {index}'s recording has no more samples")
            samples.append(sample)
        return samples

    def processes(self, index: int) -> list[int]:
        return list(self._processes.get(index, []))

    def close(self) -> None:
        pass


def probe_for_node() -> Probe:
    """NVML when its library loads and shows at least one card; otherwise a CPU-only node."""
    try:
        nvml: Any = importlib.import_module("pynvml")
    except ImportError:
        return NoGpu()
    try:
        probe = NvmlProbe(nvml)
    except nvml.NVMLError:  # no driver, or libnvidia-ml missing (NVMLError_LibraryNotFound)
        return NoGpu()
    try:
        count = probe.device_count()
    except nvml.NVMLError:
        count = 0
    if count == 0:
        probe.close()
        return NoGpu()
    return probe
