"""The node's accelerators behind one interface: driver names → catalogue models, NVML read through a
stand-in of the pynvml module, a CPU-only node, and a recorded H200 node replayed."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from suanwang.agent.gpu import (
    CardInfo,
    CardSample,
    NoGpu,
    NvmlProbe,
    Probe,
    RecordedProbe,
    RecordingExhausted,
    catalog_model,
    probe_for_node,
)
from suanwang.catalog.catalog import models

RECORDING = Path(__file__).parent / "data" / "nvml_h200_recording.json"
# Read off a real H200 in a VM by bench/nvml_record.py (2026-11-27): idle, 10 s of bf16 matmuls, idle.
REAL_RECORDING = Path(__file__).parent / "data" / "nvml_h200_vm_recording.json"
MIB = 1024 * 1024

# --- driver names → catalogue models ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("nvml_name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("NVIDIA H100 SXM5 80GB", "H100-SXM"),
        ("NVIDIA H800", "H800"),
        ("NVIDIA H800 80GB HBM3", "H800"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H20", "H20"),
        ("NVIDIA A800-SXM4-80GB", "A800"),
        ("NVIDIA A800 80GB PCIe", "A800"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A100-PCIE-40GB", "A100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA A10", "A10"),
        ("Tesla V100-SXM2-32GB", "V100"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("Tesla P100-SXM2-16GB", "P100"),
        ("Tesla T4", "T4"),
        ("  nvidia   h200 ", "H200"),  # spacing and case as a driver or a person might give them
    ],
)
def test_driver_names_map_to_catalogue_models(nvml_name, model):
    assert catalog_model(nvml_name) == model


@pytest.mark.parametrize(
    "nvml_name",
    [
        "NVIDIA H100 PCIe",  # 756 dense TFLOPS, not the SXM card's 989
        "NVIDIA H100 NVL",
        "NVIDIA H800 PCIe",
        "NVIDIA H200 NVL",
        "Tesla V100-PCIE-32GB",
        "Tesla V100S-PCIE-32GB",
        "Tesla P100-PCIE-16GB",
        "NVIDIA L40",
        "NVIDIA A10G",
        "NVIDIA A100X",
        "NVIDIA GH200 480GB",
        "NVIDIA GeForce RTX 4090",
        "AMD Instinct MI300X",
        "",
    ],
)
def test_unknown_or_slower_variants_map_to_nothing(nvml_name):
    assert catalog_model(nvml_name) is None


def test_every_mapped_model_is_a_catalogue_model():
    from suanwang.agent import gpu

    mapped = {model for _, model in gpu._MODEL_PATTERNS}
    assert mapped <= set(models())


# --- NVML through a stand-in of pynvml -------------------------------------------------------------


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # pynvml's own name
    pass


def _unsupported(*_: Any) -> Any:
    raise NVMLError_NotSupported()


class FakeNvml:
    """What NvmlProbe calls of pynvml, answering for the cards given (each a dict of its readings)."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, cards: list[dict[str, Any]], *, init_error: bool = False) -> None:
        self.devices = cards
        self.init_error = init_error
        self.initialised = False
        self.shut_down = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise NVMLError("Driver Not Loaded")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.devices[index]

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.82.07"

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> Any:
        return handle["name"]

    def nvmlDeviceGetUUID(self, handle: dict[str, Any]) -> Any:
        return handle["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> Any:
        return SimpleNamespace(
            total=handle["total"], used=handle["used"], free=handle["total"] - handle["used"]
        )

    def nvmlDeviceGetMigMode(self, handle: dict[str, Any]) -> Any:
        return handle["mig"] if handle["mig"] is not None else _unsupported()

    def nvmlDeviceGetUtilizationRates(self, handle: dict[str, Any]) -> Any:
        return SimpleNamespace(gpu=handle["util"], memory=0) if handle["util"] is not None else _unsupported()

    def nvmlDeviceGetPowerUsage(self, handle: dict[str, Any]) -> Any:
        return handle["power"] if handle["power"] is not None else _unsupported()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: dict[str, Any]) -> Any:
        return handle["energy"] if handle["energy"] is not None else _unsupported()

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict[str, Any]) -> Any:
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in handle["pids"]]


def h200(**readings: Any) -> dict[str, Any]:
    card = {
        "name": "NVIDIA H200",
        "uuid": "GPU-3f6c2a91-8d4e-b7a0-5c12-e9f04b7d2a63",
        "total": 143771 * MIB,
        "used": 121336 * MIB + 5,
        "mig": [0, 0],
        "util": 97,
        "power": 655_940,
        "energy": 61_491_514_034,
        "pids": [48213],
    }
    return card | readings


def test_nvml_cards_carry_the_catalogue_model_memory_mig_and_driver():
    nvml = FakeNvml(
        [
            h200(),
            # An older nvidia-ml-py answers bytes; a card without MIG refuses the MIG query.
            h200(name=b"NVIDIA L40S", uuid=b"GPU-0c1d", total=46068 * MIB, mig=None),
            h200(name="NVIDIA A100-SXM4-80GB", mig=[1, 1]),
            h200(name="NVIDIA H100 PCIe"),
        ]
    )
    cards = NvmlProbe(nvml).cards()

    assert nvml.initialised
    assert cards[0] == CardInfo(
        index=0,
        uuid="GPU-3f6c2a91-8d4e-b7a0-5c12-e9f04b7d2a63",
        model="H200",
        memory_mib=143771,
        mig_mode=False,
        driver_version="580.82.07",
    )
    assert (cards[1].model, cards[1].uuid, cards[1].memory_mib, cards[1].mig_mode) == (
        "L40S",
        "GPU-0c1d",
        46068,
        None,
    )
    assert (cards[2].model, cards[2].mig_mode) == ("A100", True)
    assert cards[3].model == "NVIDIA H100 PCIe"  # unknown to the catalogue: the raw name


def test_nvml_samples_read_each_card_with_unsupported_queries_as_none():
    nvml = FakeNvml([h200(), h200(util=None, power=None, energy=None, used=0)])
    ticks = iter([100.0, 100.25])
    probe = NvmlProbe(nvml, clock=lambda: next(ticks))

    first, second = probe.sample([0, 1])

    assert first == CardSample(
        index=0,
        at_s=100.0,
        utilization_pct=97,
        memory_used_mib=121336,
        power_mw=655_940,
        energy_mj=61_491_514_034,
    )
    assert second == CardSample(
        index=1, at_s=100.25, utilization_pct=None, memory_used_mib=0, power_mw=None, energy_mj=None
    )


def test_nvml_other_errors_are_not_swallowed():
    nvml = FakeNvml([h200()])

    def lost(_: Any) -> Any:
        raise NVMLError("GPU is lost")

    nvml.nvmlDeviceGetUtilizationRates = lost  # type: ignore[method-assign]
    with pytest.raises(NVMLError, match="lost"):
        NvmlProbe(nvml).sample([0])


def test_nvml_processes_and_close():
    nvml = FakeNvml([h200(pids=[7, 48213, 7]), h200(pids=[])])
    probe = NvmlProbe(nvml)
    assert probe.processes(0) == [7, 48213]
    assert probe.processes(1) == []
    probe.close()
    assert nvml.shut_down


# --- choosing the probe ----------------------------------------------------------------------------


def test_probe_for_node_without_pynvml_is_a_cpu_node(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    assert isinstance(probe_for_node(), NoGpu)


def test_probe_for_node_without_a_driver_is_a_cpu_node(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([h200()], init_error=True))
    assert isinstance(probe_for_node(), NoGpu)


def test_probe_for_node_with_no_devices_is_a_cpu_node_and_shuts_nvml_down(monkeypatch):
    nvml = FakeNvml([])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert isinstance(probe_for_node(), NoGpu)
    assert nvml.shut_down


def test_probe_for_node_with_cards_reads_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([h200(), h200()]))
    probe = probe_for_node()
    assert isinstance(probe, NvmlProbe)
    assert [c.model for c in probe.cards()] == ["H200", "H200"]


def test_no_gpu_has_no_cards_and_no_samples():
    probe: Probe = NoGpu()
    assert probe.cards() == []
    assert probe.sample([]) == []
    with pytest.raises(ValueError, match="no cards"):
        probe.sample([0])
    probe.close()


# --- a recorded H200 node --------------------------------------------------------------------------


def test_the_recording_is_shaped_like_two_h200s_on_driver_580():
    probe = RecordedProbe.from_file(RECORDING)
    cards = probe.cards()
    assert [(c.index, c.model, c.memory_mib, c.mig_mode) for c in cards] == [
        (0, "H200", 143771, False),
        (1, "H200", 143771, False),
    ]
    assert {c.driver_version.split(".")[0] for c in cards} == {"580"}
    assert probe.processes(0) == [48213]

    recorded = json.loads(RECORDING.read_text())["samples"]
    for card, samples in zip(cards, recorded, strict=True):
        for before, after in itertools.pairwise(samples):
            dt = after["at_s"] - before["at_s"]
            assert dt > 0
            assert 0 <= after["utilization_pct"] <= 100
            assert 0 <= after["memory_used_mib"] <= card.memory_mib
            assert after["power_mw"] <= 700_000  # the H200 SXM's power limit
            # The counter grows by about the mean power over the interval (mW × s = mJ), never back.
            expected_mj = (before["power_mw"] + after["power_mw"]) / 2 * dt
            assert after["energy_mj"] - before["energy_mj"] == pytest.approx(expected_mj, rel=0.01)


def test_the_recording_replays_in_order_then_says_it_is_exhausted():
    probe = RecordedProbe.from_file(RECORDING)
    first = probe.sample([0, 1])
    second = probe.sample([1])  # card 0 was not asked for: it stays where it was
    third = probe.sample([0])
    assert [s.index for s in first] == [0, 1]
    assert second[0].at_s > first[1].at_s
    assert third[0].at_s > first[0].at_s and third[0].index == 0
    for _ in range(59):
        probe.sample([0])
    with pytest.raises(RecordingExhausted):
        probe.sample([0])
    with pytest.raises(ValueError, match="no card 5"):
        probe.sample([5])


def test_a_recording_must_hold_each_cards_own_samples():
    card = CardInfo(0, "GPU-0", "H200", 143771, False, "580.82.07")
    other = CardSample(1, 0.0, 0, 0, None, None)
    with pytest.raises(ValueError, match="another card"):
        RecordedProbe([card], [[other]])
    with pytest.raises(ValueError, match="1 cards but 0"):
        RecordedProbe([card], [])


# --- a real H200, as NVML answered in a VM ---------------------------------------------------------


def test_a_real_h200_as_the_adapter_read_it():
    data = json.loads(REAL_RECORDING.read_text())
    probe = RecordedProbe.from_file(REAL_RECORDING)
    [card] = probe.cards()
    assert (card.model, card.memory_mib, card.mig_mode) == ("H200", 143771, False)
    assert card.driver_version.startswith("580.") and card.uuid.startswith("GPU-")
    raw = data["raw"]["0"]
    # What the adapter relies on: names come as str, MIG mode as [current, pending], the energy counter
    # is supported, and per-process accounting is off (so the meter must not depend on it).
    assert raw["nvmlDeviceGetName"] == "'NVIDIA H200'"
    assert catalog_model(eval(raw["nvmlDeviceGetName"])) == "H200"
    assert raw["nvmlDeviceGetMigMode"] == "[0, 0]"
    assert raw["nvmlDeviceGetAccountingMode"] == "0"
    assert int(raw["nvmlDeviceGetTotalEnergyConsumption"]) > 0
    # The load's process showed up under its own pid: the VM's NVML sees the same pid namespace.
    assert probe.processes(0) == [data["load_pid"]]

    samples = data["samples"][0]
    limit_mw = int(raw["nvmlDeviceGetEnforcedPowerLimit"])
    for before, after in itertools.pairwise(samples):
        assert after["at_s"] > before["at_s"]
        assert after["energy_mj"] >= before["energy_mj"]
        assert 0 <= after["utilization_pct"] <= 100 and after["power_mw"] <= limit_mw
    busy = [x for x in samples if x["utilization_pct"] > 0]
    assert len(busy) >= 15 and max(x["utilization_pct"] for x in busy) >= 95
    assert max(x["power_mw"] for x in busy) > 5 * min(x["power_mw"] for x in samples)  # idle vs matmuls
    # Over the whole recording the counter grew by the trapezoid of the power readings, within 2%
    # (the counter ticks at its own pace, so single half-second intervals differ by up to a fifth).
    integral_mj = sum(
        (a["power_mw"] + b["power_mw"]) / 2 * (b["at_s"] - a["at_s"]) for a, b in itertools.pairwise(samples)
    )
    assert samples[-1]["energy_mj"] - samples[0]["energy_mj"] == pytest.approx(integral_mj, rel=0.02)
