"""A real local Ray cluster for tests: one head node run by the `ray` CLI as separate processes.

The head declares fake GPUs (`--num-gpus`), so a launch's cards are real Ray resource requests: Ray
queues a job that asks for more cards than are free, and hands out `CUDA_VISIBLE_DEVICES` indices.

Stopping is scoped to this cluster: `ray stop` would end every Ray on the machine (another test
session's included), so the helper ends the process tree of its own `ray start --block` instead.
Ray is required: a missing `ray` fails the test that asks for a cluster, it never skips.

Use `ray_cluster` (session fixture, yields the dashboard address) for an ordinary cluster, and
`start_ray_cluster()` for one a test may break, e.g. with `kill_head()`. Both return a cluster that
has already run one job, so a test's first submission does not wait for Ray's job agent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# The `ray` CLI of the interpreter running the tests: the cluster runs the same Ray as the venv.
RAY_CLI = Path(sys.executable).with_name("ray")
OBJECT_STORE_BYTES = 200_000_000  # Ray's default is 30% of RAM; tests move no objects
START_TIMEOUT_S = 120.0  # a cold start takes ~10 s; a loaded 2-core CI machine needs headroom
STOP_GRACE_S = 10.0
# The raylet answers SIGTERM by draining towards a GCS that is going down too, and lingers; tests
# need no graceful drain, so SIGKILL follows soon.
TERM_GRACE_S = 2.0
REAP_PAUSE_S = 1.5
WARMUP_JOB = "ray-support-warmup"  # not "sw-…": no launch name can collide with it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every process, read from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # Fields after the command name, which is in parentheses and may hold spaces:
        # state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.kill(pid, sig)


def _alive(pids: set[int]) -> set[int]:
    # A zombie still has a /proc entry; its state letter is Z.
    alive = set()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.add(pid)
    return alive


@dataclass
class RayCluster:
    process: subprocess.Popen[bytes]  # `ray start --head --block`, leader of its own session
    temp_dir: Path
    dashboard_port: int
    num_gpus: int
    log_path: Path

    @property
    def address(self) -> str:
        """The dashboard URL: what a site's connection JSON carries as `address`."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def processes(self) -> set[int]:
        """Every process of this cluster: the `ray start` tree and its session.

        Job entrypoints run in sessions of their own under the job supervisor, so the parent links
        find them; the session finds Ray workers whose parent already exited.
        """
        table = _process_table()
        root = self.process.pid
        found = {pid for pid, (_, session) in table.items() if session == root}
        found.add(root)
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        stack = list(found)
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def kill_head(self) -> None:
        """End the head abruptly (SIGKILL to every Ray process at once), as a lost machine would."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM to the whole cluster, SIGKILL to what is left after a grace period; then clean up."""
        self._end(signal.SIGTERM)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _end(self, first: signal.Signals) -> None:
        root = self.process.pid
        # Collect the tree before signalling: an entrypoint whose supervisor exits first is reparented
        # to init and would no longer be found under the cluster.
        pids = self.processes() - {root}
        _signal_all(pids, first)
        leftover = _wait_gone(pids, TERM_GRACE_S)
        _signal_all(leftover | (self.processes() - {root}), signal.SIGKILL)
        _wait_gone(pids, STOP_GRACE_S)
        # `ray start --block` ignores SIGTERM. It reaps its exited children once a second; give it that
        # second, so they do not stay as zombies under an init that may not reap them.
        time.sleep(REAP_PAUSE_S)
        self.process.kill()
        self.process.wait(timeout=STOP_GRACE_S)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    alive = _alive(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = _alive(alive)
    return alive


def start_ray_cluster(
    *, num_gpus: int = 4, num_cpus: int = 2, env: Mapping[str, str] | None = None
) -> RayCluster:
    """Start a head node and return once it has run a job; fail loudly when Ray is missing.

    `env`: Ray settings for the head, e.g. {"RAY_JOB_START_TIMEOUT_SECONDS": "5"}; the caller's own
    RAY_* variables are not passed on, so a developer's RAY_ADDRESS cannot redirect the cluster."""
    if not RAY_CLI.exists():
        pytest.fail(
            f"Ray is not installed in this environment ({RAY_CLI} is missing). "
            "To fix: .venv/bin/pip install -e '.[dev]' (the dev extra includes suanwang[ray])."
        )
    # Short: Ray puts Unix sockets under it, and socket paths are limited to 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="swray-", dir="/tmp"))
    log_path = temp_dir / "ray-start.log"
    dashboard_port = free_port()
    # Every port Ray would otherwise take at a fixed default is chosen free, so that two clusters
    # (two test sessions, or the fault test's own cluster) can run side by side.
    command = [
        str(RAY_CLI),
        "start",
        "--head",
        "--block",
        f"--port={free_port()}",
        f"--dashboard-port={dashboard_port}",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        "--min-worker-port=0",  # 0: workers bind random ports, not the shared 10002-19999 range
        "--max-worker-port=0",
        f"--num-cpus={num_cpus}",
        f"--num-gpus={num_gpus}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--temp-dir={temp_dir}",
        "--include-log-monitor=false",  # streams worker logs to drivers; jobs here have none
        "--disable-usage-stats",
    ]
    head_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | dict(env or {})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=head_env,
            start_new_session=True,  # its own session: the cluster is exactly what stop() ends
        )
    cluster = RayCluster(process, temp_dir, dashboard_port, num_gpus, log_path)
    try:
        _wait_ready(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_ready(cluster: RayCluster) -> None:
    """Wait until the cluster has run a job: the Jobs API answers before the head's job agent has
    registered, and a first submission then waits for it (seconds on a loaded machine)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    warmup = {"submission_id": WARMUP_JOB, "entrypoint": "true", "entrypoint_num_cpus": 0}
    submitted = False
    while time.monotonic() < deadline:
        if cluster.process.poll() is not None:
            pytest.fail(f"ray start exited with {cluster.process.returncode}:\n{cluster.log_tail()}")
        try:
            if not submitted:
                response = httpx.post(
                    f"{cluster.address}/api/jobs/", json=warmup, timeout=30.0, trust_env=False
                )
                # "already exists": an earlier try that timed out on our side did reach Ray.
                submitted = response.status_code == 200 or "already exists" in response.text
            else:
                job = httpx.get(f"{cluster.address}/api/jobs/{WARMUP_JOB}", timeout=5.0, trust_env=False)
                status = job.json().get("status") if job.status_code == 200 else None
                if status == "SUCCEEDED":
                    _wait_resources(cluster, deadline)
                    return
                if status in ("FAILED", "STOPPED"):
                    pytest.fail(f"Ray's warm-up job ended {status}: {job.json().get('message')}")
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"Ray did not run a job within {START_TIMEOUT_S:.0f} s:\n{cluster.log_tail()}")


def _wait_resources(cluster: RayCluster, deadline: float) -> None:
    """Wait until the cluster reports its GPUs: Ray's resource report lags its start by a second or
    two, and until then a controller would see a pool of 0 cards and place work elsewhere."""
    from suanwang.backends.ray import RayBackend

    backend = RayBackend(cluster.address)
    while time.monotonic() < deadline:
        if backend.capacity().cards_total >= cluster.num_gpus:
            return
        time.sleep(0.3)
    pytest.fail(f"Ray never reported its {cluster.num_gpus} GPUs:\n{cluster.log_tail()}")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray head with 2 CPUs and 4 fake GPUs for the whole session; yields its dashboard URL."""
    cluster = start_ray_cluster()
    try:
        yield cluster.address
    finally:
        cluster.stop()
