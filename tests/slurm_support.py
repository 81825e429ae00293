"""A real one-node Slurm cluster for tests, brought up by `scripts/slurm/ensure.sh`.

The cluster declares 4 fake GPUs as GRES in partition `gpu`, so a launch's cards are real Slurm
requests (`--gpus=N`). Slurm is required: when the script cannot bring the cluster up (not root, no
apt, a daemon that will not start) the tests that ask for it fail with the script's output; they
never skip. The script is quick when the cluster is already up, so every session runs it.

Use `slurm_cluster` (session fixture) before talking to Slurm, `slurm_backend` for a backend whose
logs go to the test's tmp dir, `unique_spec()` for launch names that no earlier run has used (the
accounting database keeps every job), and `controller_down()` to stop slurmctld for a while.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from suanwang.backends.protocol import LaunchSpec, Observation
from suanwang.backends.slurm import SlurmBackend

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts" / "slurm"
ENSURE = SCRIPTS / "ensure.sh"
CTL = SCRIPTS / "ctl.sh"
PARTITION = "gpu"
FAKE_GPUS = 4
ENSURE_TIMEOUT_S = 600  # a fresh machine installs the packages first

# Launch job ids unique across runs: the accounting database remembers every earlier name.
_job_ids = itertools.count(int(time.time() * 1000) % 10**12)


@dataclass(frozen=True)
class SlurmCluster:
    partition: str
    gpus: int


def ensure_slurm() -> SlurmCluster:
    """Run ensure.sh; fail the calling test with its output when the cluster cannot be brought up."""
    if os.geteuid() != 0:
        pytest.fail(f"the Slurm tests need root: {ENSURE} installs packages and starts daemons")
    try:
        result = subprocess.run(
            [str(ENSURE)], capture_output=True, text=True, timeout=ENSURE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{ENSURE} did not finish within {ENSURE_TIMEOUT_S} s: {exc.stdout!r} {exc.stderr!r}")
    if result.returncode != 0:
        pytest.fail(f"{ENSURE} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return SlurmCluster(partition=PARTITION, gpus=FAKE_GPUS)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    return ensure_slurm()


@pytest.fixture
def slurm_backend(slurm_cluster: SlurmCluster, tmp_path: Path) -> Iterator[SlurmBackend]:
    backend = SlurmBackend(partition=slurm_cluster.partition, log_dir=tmp_path / "slurm-logs")
    yield backend
    backend.close()


def unique_spec(*command: str, cards: int = 0, **kwargs: Any) -> LaunchSpec:
    return LaunchSpec(job_id=next(_job_ids), attempt=1, command=tuple(command), cards=cards, **kwargs)


def shell(script: str, *, cards: int = 0, **kwargs: Any) -> LaunchSpec:
    return unique_spec("sh", "-c", script, cards=cards, **kwargs)


def wait_for(
    backend: SlurmBackend,
    handle: str,
    done: Callable[[Observation], bool],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.2,
) -> Observation:
    """Poll until `done(observation)`; fail with the last observation after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        observation = backend.poll([handle])[handle]
        if done(observation):
            return observation
        if time.monotonic() > deadline:
            pytest.fail(f"job {handle} did not get there within {timeout_s} s; last seen: {observation}")
        time.sleep(interval_s)


def wait_terminal(backend: SlurmBackend, handle: str, *, timeout_s: float = 30.0) -> Observation:
    return wait_for(backend, handle, lambda o: o.state.terminal, timeout_s=timeout_s)


def ctl(command: str) -> None:
    result = subprocess.run([str(CTL), command], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.fail(f"{CTL} {command} failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def controller_down() -> Iterator[None]:
    """Stop slurmctld (jobs keep running under slurmd) and start it again, whatever happens inside."""
    ctl("stop-ctld")
    try:
        yield
    finally:
        ctl("start-ctld")
