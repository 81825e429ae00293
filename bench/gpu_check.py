"""The node agent's GPU check (run by bench/gpu_check.sh; also runs as is on a CPU-only machine).

Starts a control plane on loopback (embedded SQLite in a scratch directory), registers an agent site,
pool and tenant through the REST API, starts the node agent on this machine, calibrates its cards and
reports the result, runs one real job (a few seconds of matrix multiplies: PyTorch on the GPU, numpy on
a CPU-only node), and prints one table: card model, measured vs datasheet TFLOPS, the job's
card-seconds, energy and utilization as the usage record has them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from suanwang.agent import calibrate as bench
from suanwang.agent.gpu import catalog_model, probe_for_node
from suanwang.agent.node import make_agent
from suanwang.catalog import catalog
from suanwang.tenants.credit_code import complete

ADMIN = "sw_gpu_check_admin_token_0123456789abcdef"
GPU_JOB = (
    "import time, torch\n"
    "a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)\n"
    "start = time.time()\n"
    "while time.time() - start < 6:\n"
    "    (a @ a).sum().item()\n"
    "print('matmul job done on', torch.cuda.get_device_name(0))\n"
)
CPU_JOB = (
    "import time, numpy\n"
    "a = numpy.random.rand(512, 512).astype(numpy.float32)\n"
    "start = time.time()\n"
    "while time.time() - start < 3:\n"
    "    a @ a\n"
    "print('matmul job done on the CPU')\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(240):
        if server.poll() is not None:
            raise SystemExit(f"the control plane exited ({server.returncode})")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit("the control plane did not start in 60 s")


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def __call__(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(method, path, json=body, params=params or None)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


def setup(api: Api, model: str, cards: int) -> tuple[int, str, str]:
    """An agent site and pool of this machine's cards, a local SME with funds; the pool's id and the
    operator's and the tenant's tokens."""
    provider = api(
        "POST",
        "/providers",
        {"code": "gpu-check", "name": "GPU check", "kind": "edge_centre", "region": "lo"},
    )
    site = api(
        "POST",
        "/sites",
        {
            "provider_id": provider["id"],
            "code": "this-node",
            "name": "this node",
            "phase": "operational",
            "backend_kind": "agent",
            "region": "lo",
        },
    )
    pool = api(
        "POST",
        "/pools",
        {
            "site_id": site["id"],
            "code": "this-node-cards",
            "name": "this node",
            "accelerator": model,
            "nodes": 1,
            "cards_per_node": max(cards, 1),
        },
    )
    api(
        "POST",
        f"/pools/{pool['id']}/prices",
        {"price_fen_per_card_hour": 100, "effective_from": "2025-01-01T00:00:00+00:00"},
    )
    org = api(
        "POST",
        "/orgs",
        {
            "credit_code": complete("91330482GPUCHECK1"),
            "name": "GPU check tenant",
            "kind": "enterprise",
            "is_sme": True,
        },
    )
    api("POST", f"/orgs/{org['id']}/top-ups", {"amount_fen": 10_000_000, "reason": "gpu check"})
    operator = api(
        "POST",
        "/users",
        {"name": "gpu-check-ops", "role": "provider_operator", "provider_id": provider["id"]},
    )
    tenant = api("POST", "/users", {"name": "gpu-check-tenant", "role": "tenant_admin", "org_id": org["id"]})
    tokens = [
        api("POST", "/tokens", {"name": "gpu-check", "user_id": u["id"]})["token"] for u in (operator, tenant)
    ]
    return int(pool["id"]), tokens[0], tokens[1]


JOB_FIGURES = ("energy_j", "mean_utilization_pct", "peak_utilization_pct", "peak_memory_mib", "cpu_seconds")
HEADS = [
    "card",
    "model",
    "datasheet TFLOPS",
    "measured TFLOPS",
    "job card-seconds",
    "energy J",
    "mean util %",
    "peak util %",
    "peak memory MiB",
    "CPU s",
]


def report(job: Any, state: Any, usage: list[Any], logs: str, calibration: Any, datasheet: Any) -> None:
    """The table for docs/benchmarks.md, then the raw figures as JSON."""
    measured = (usage[0].get("measured") or {}) if usage else {}
    last = logs.strip().splitlines()[-1] if logs.strip() else "(no output)"
    print(f"job {job['id']}: {state['state']} · {last}")
    print("| " + " | ".join(HEADS) + " |")
    print("|" + "|".join("--:" for _ in HEADS) + "|")
    for number, card in enumerate(calibration.cards):
        sheet = datasheet.dense_fp16_tflops if datasheet and card.index is not None else None
        job_cells = [usage[0]["card_seconds"] if usage else None, *(measured.get(k) for k in JOB_FIGURES)]
        cells = [
            "cpu" if card.index is None else card.index,
            card.model,
            sheet,
            f"{card.median_tflops:.1f} ({card.dtype})",
            *(job_cells if number == 0 else [None] * len(job_cells)),
        ]
        print("| " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    summary = {"job": state["state"], "usage": usage, "node_tflops": calibration.total_tflops}
    print(json.dumps(summary, default=str))


def main() -> int:
    probe = probe_for_node()
    cards = probe.cards()
    model = (catalog_model(cards[0].model) if cards else None) or ("H100-SXM" if cards else "L40S")
    datasheet = catalog.find(model)
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "SUANWANG_DATA_DIR": scratch,
            "SUANWANG_ADMIN_TOKEN": ADMIN,
            "SUANWANG_CONTROLLER_INTERVAL_S": "0.5",
            "SUANWANG_AGENT_HEARTBEAT_S": "0.5",
        }
        env.pop("SUANWANG_DATABASE_URL", None)
        suanwang = str(Path(sys.executable).with_name("suanwang"))
        server = subprocess.Popen(
            [suanwang, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_up(url, server)
            admin = Api(url, ADMIN)
            pool_id, operator_token, tenant_token = setup(admin, model, len(cards))
            agent = make_agent(
                url, operator_token, pool_id, Path(scratch) / "agent", probe, hostname=socket.gethostname()
            )
            agent.register()
            runner: bench.Runner = bench.TorchRunner() if cards else bench.NumpyRunner()
            calibration = bench.calibrate(probe, runner, repeats=5)
            agent.report_calibration(calibration)
            stop = threading.Event()
            thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
            thread.start()
            tenant = Api(url, tenant_token)
            job = tenant(
                "POST",
                "/jobs",
                {
                    "name": "gpu-check",
                    "command": [sys.executable, "-c", GPU_JOB if cards else CPU_JOB],
                    "cards": 1 if cards else 0,
                    "accelerators": [model],
                    "duration_estimate_s": 60,
                },
            )
            deadline = time.monotonic() + 180
            while (state := tenant("GET", f"/jobs/{job['id']}"))["state"] not in (
                "succeeded",
                "failed",
                "cancelled",
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the job did not finish in 180 s: {state}")
                time.sleep(0.5)
            time.sleep(1.0)  # the agent acknowledges the end on its next heartbeat
            stop.set()
            thread.join(timeout=30)
            usage = tenant("GET", "/usage", job_id=job["id"])["items"]
            logs = httpx.get(
                f"{url}/api/v1/jobs/{job['id']}/logs", headers={"Authorization": f"Bearer {tenant_token}"}
            ).text
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(job, state, usage, logs, calibration, datasheet)
    return 0 if state["state"] == "succeeded" and usage else 1


if __name__ == "__main__":
    sys.exit(main())
