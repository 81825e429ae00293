"""Record a real node's cards through the agent's NVML adapter, idle and under load, as a replayable file.

    PYTHONPATH=src python3 bench/nvml_record.py [--seconds 20] [--load 10] > recording.json

Needs `nvidia-ml-py` (and PyTorch for the load) on a machine with an NVIDIA card; it uses only the
adapter (`suanwang.agent.gpu`, standard library alone), so no other project dependency is needed. The
output is `RecordedProbe.from_file`'s format, plus what the driver answered raw (the types and shapes
the adapter has to cope with) and what ran, so tests can replay a real card rather than a made-up one.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from suanwang.agent.gpu import NvmlProbe

LOAD = (
    "import time, torch\n"
    "a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)\n"
    "end = time.time() + {seconds}\n"
    "while time.time() < end:\n"
    "    (a @ a).sum().item()\n"
)


def raw_answers(nvml: Any, index: int) -> dict[str, str]:
    """What the driver answers for the queries the adapter makes, as Python reprs (or the error)."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    queries = {
        "nvmlSystemGetDriverVersion": nvml.nvmlSystemGetDriverVersion,
        "nvmlDeviceGetName": lambda: nvml.nvmlDeviceGetName(handle),
        "nvmlDeviceGetMigMode": lambda: nvml.nvmlDeviceGetMigMode(handle),
        "nvmlDeviceGetMemoryInfo.total": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total,
        "nvmlDeviceGetUtilizationRates": lambda: (lambda r: (r.gpu, r.memory))(
            nvml.nvmlDeviceGetUtilizationRates(handle)
        ),
        "nvmlDeviceGetPowerUsage": lambda: nvml.nvmlDeviceGetPowerUsage(handle),
        "nvmlDeviceGetEnforcedPowerLimit": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle),
        "nvmlDeviceGetTotalEnergyConsumption": lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle),
        "nvmlDeviceGetAccountingMode": lambda: nvml.nvmlDeviceGetAccountingMode(handle),
    }
    answers = {}
    for name, query in queries.items():
        try:
            answers[name] = repr(query())
        except Exception as error:  # recording what the driver refuses is the point
            answers[name] = f"{type(error).__name__}: {error}"
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to sample")
    parser.add_argument("--load", type=float, default=10.0, help="seconds of bf16 matmuls on card 0")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args()

    nvml = importlib.import_module("pynvml")
    probe = NvmlProbe(nvml)
    cards = probe.cards()
    if not cards:
        raise SystemExit("no NVIDIA card on this machine")
    indices = [card.index for card in cards]
    samples: list[list[dict[str, Any]]] = [[] for _ in cards]
    processes: dict[int, list[int]] = {}
    load: subprocess.Popen[bytes] | None = None
    idle_s = (args.seconds - args.load) / 2
    started = time.monotonic()
    load_started = load_ended = None
    while (elapsed := time.monotonic() - started) < args.seconds:
        if load is None and elapsed >= idle_s:
            env = os.environ | {"CUDA_VISIBLE_DEVICES": str(indices[0])}
            code = LOAD.format(seconds=args.load)
            load = subprocess.Popen([sys.executable, "-c", code], env=env)
            load_started = round(elapsed, 3)
        for number, sample in enumerate(probe.sample(indices)):
            samples[number].append(dataclasses.asdict(sample))
        if load is not None and load.poll() is None and elapsed >= idle_s + args.load / 2:
            processes.setdefault(indices[0], probe.processes(indices[0]))
        if load is not None and load_ended is None and load.poll() is not None:
            load_ended = round(elapsed, 3)
        time.sleep(args.every)
    if load is not None:
        load.wait(timeout=60)
    raw = {str(index): raw_answers(nvml, index) for index in indices}
    probe.close()
    names = ", ".join(sorted({card.model for card in cards}))
    json.dump(
        {
            "description": (
                f"Recorded by bench/nvml_record.py on {datetime.now(UTC):%Y-%m-%d} from {len(cards)} real "
                f"card(s) ({names}, driver {cards[0].driver_version}): samples every {args.every} s for "
                f"{args.seconds} s; bf16 8192x8192 matmuls on card {indices[0]} from about "
                f"{load_started} s to {load_ended} s after the first sample; the load's pid as NVML "
                "listed it mid-load under processes."
            ),
            "cards": [dataclasses.asdict(card) for card in cards],
            "samples": samples,
            "processes": {str(index): pids for index, pids in processes.items()},
            "load_pid": None if load is None else load.pid,
            "raw": raw,
        },
        sys.stdout,
        indent=1,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
