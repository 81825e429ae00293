"""`suanwang demo` end to end: a real server process on loopback, real HTTP, the printed token works."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "suanwang.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def demo_server(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUANWANG_")}
    env |= {"SUANWANG_DATA_DIR": str(tmp_path), "SUANWANG_PORT": str(port)}
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "suanwang.cli.main", "demo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"demo exited early:\n{log.read()}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("demo server did not answer /healthz within 60 s")
        log.seek(0)
        token = re.search(r"Regulator token: (\S+)", log.read())
        assert token, "demo must print a regulator token"
        yield base, token.group(1), env
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_demo_serves_the_region_and_its_token_works(demo_server):
    base, token, env = demo_server
    home = httpx.get(base + "/", headers={"Accept-Language": "zh-CN"})
    assert home.status_code == 200 and "润泽长三角·平湖国际信息港" in home.text and "已投运" in home.text
    assert httpx.get(base + "/docs").status_code == 200
    assert httpx.get(base + "/api/v1/pools").status_code == 401
    # The CLI against the running server, over HTTP, with the printed token.
    result = cli("--url", base, "--token", token, "--json", "capacity", "--by", "phase", env=env)
    assert result.returncode == 0, result.stderr
    phases = {row["key"]["phase"]: row["cards"] for row in json.loads(result.stdout)["rows"]}
    assert phases == {"built": 25264, "operational": 38609, "planned": 331704}
    wrong = cli("--url", base, "--token", "sw_not_a_token", "whoami", env=env)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ") and wrong.stderr.count("\n") == 1


def test_the_demo_runs_jobs_sandbox_commands_really_and_tenants_keep_submitting(demo_server):
    base, token, _ = demo_server
    auth = {"Authorization": f"Bearer {token}"}
    orgs = httpx.get(base + "/api/v1/orgs", headers=auth).json()["items"]
    body = {
        "command": ["python3", "-c", "print('sandbox says', 6 * 7)"],
        "cards": 0,
        "duration_estimate_s": 5,
        "regions": ["pinghu-sandbox"],
        "org_id": orgs[0]["id"],
    }
    job = httpx.post(base + "/api/v1/jobs", json=body, headers=auth).json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = httpx.get(base + f"/api/v1/jobs/{job['id']}", headers=auth).json()
        if job["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert job["state"] == "succeeded", job
    logs = httpx.get(base + f"/api/v1/jobs/{job['id']}/logs", headers=auth).text
    assert "sandbox says 42" in logs
    # The demo workload submits work of its own as the demo tenants.
    others = httpx.get(base + "/api/v1/jobs", headers=auth, params={"limit": 100}).json()
    assert any(j["id"] != job["id"] for j in others["items"])
