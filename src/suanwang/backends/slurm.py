"""A Slurm cluster as an execution backend, driven through Slurm's own client commands.

Each launch is one batch job (`sbatch`) named after the launch, so `find()` can recover it by name.
Live state comes from slurmctld (`squeue`); jobs slurmctld has already forgotten (it keeps ended jobs
for `MinJobAge`, 5 minutes by default) come from the accounting database (`sacct`).

The commands' parsable text output is read rather than `--json`: its columns have stayed the same
across Slurm releases, while the JSON schema changed with every one (22.05 to 24.x). Every command runs
with TZ=UTC, so the times it prints are UTC.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suanwang.backends.protocol import (
    BackendRejected,
    BackendUnavailable,
    Capacity,
    LaunchSpec,
    Observation,
    RemoteState,
)

DEFAULT_LOG_DIR = Path("var/slurm-logs")

# Slurm job states (squeue long names; sacct adds e.g. "CANCELLED by 0", cut at the first space).
_STATES: dict[str, RemoteState] = {
    **dict.fromkeys(
        ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"),
        RemoteState.PENDING,
    ),
    **dict.fromkeys(
        ("RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"),
        RemoteState.RUNNING,
    ),
    "COMPLETED": RemoteState.SUCCEEDED,
    **dict.fromkeys(
        ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"),
        RemoteState.FAILED,
    ),
    "CANCELLED": RemoteState.CANCELLED,
}

# What Slurm's clients print when they cannot reach slurmctld or slurmdbd (as opposed to a refusal).
_UNREACHABLE = (
    "unable to contact slurm controller",
    "connection refused",
    "socket timed out",
    "communication connection failure",
    "zero bytes were transmitted",
    "problem talking to the database",
    "slurmdbd not responding",
    "temporarily unable to accept job",
)

# Node states (scontrol, split at "+") in which a node takes no new jobs.
_UNUSABLE_NODE_STATES = frozenset(
    {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING", "INVALID_REG", "INVALID"}
    | {"FUTURE", "POWERED_DOWN", "POWERING_DOWN", "UNKNOWN", "MAINT", "REBOOT_ISSUED"}
)

_SQUEUE_FIELDS = (
    "JobID",
    "State",
    "exit_code",
    "StartTime",
    "EndTime",
    "tres-alloc",
    "tres-per-job",
    "Reason",
)
_SACCT_FIELDS = ("JobIDRaw", "State", "ExitCode", "Start", "End", "AllocTRES", "ReqTRES")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class _Job:
    """One job as squeue or sacct reports it, in the protocol's terms."""

    job_id: str
    name: str
    state: str
    exit_code: int | None
    started_at: datetime | None
    ended_at: datetime | None
    cards: int
    reason: str | None = None

    @property
    def remote_state(self) -> RemoteState:
        return _STATES.get(self.state.split(" ", 1)[0], RemoteState.LOST)

    def observation(self) -> Observation:
        state = self.remote_state
        message = None
        if state is RemoteState.PENDING and self.reason and self.reason != "None":
            message = self.reason
        elif state in (RemoteState.FAILED, RemoteState.CANCELLED, RemoteState.LOST):
            message = self.state
        return Observation(
            handle=self.job_id,
            state=state,
            started_at=self.started_at if state is not RemoteState.PENDING else None,
            ended_at=self.ended_at if state.terminal else None,
            exit_code=self.exit_code if state.terminal else None,
            cards=self.cards,
            message=message,
        )


class SlurmBackend:
    kind = "slurm"

    def __init__(
        self,
        partition: str = "gpu",
        log_dir: Path | str = DEFAULT_LOG_DIR,
        bin_dir: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.partition = partition
        # Absolute: slurmd opens the output file relative to the job's working directory.
        self.log_dir = Path(log_dir).resolve()
        self.bin_dir = bin_dir
        self.timeout_s = timeout_s

    @classmethod
    def from_connection(cls, connection: Mapping[str, Any], data_dir: Path) -> SlurmBackend:
        """A backend from a site's `connection` JSON; a relative `log_dir` is taken under `data_dir`."""
        log_dir = Path(connection.get("log_dir") or "slurm-logs")
        return cls(
            partition=str(connection.get("partition") or "gpu"),
            log_dir=log_dir if log_dir.is_absolute() else Path(data_dir) / log_dir,
            bin_dir=connection.get("bin_dir") or None,
            timeout_s=float(connection.get("timeout_s") or 10.0),
        )

    # ------------------------------------------------------------------------------------ protocol

    def capacity(self) -> Capacity:
        # An unknown partition fails here too: the pool cannot be used, as when Slurm is down.
        partition = self._run("scontrol", "-o", "show", "partition", self.partition)
        partition_up = _field(partition.stdout, "State") == "UP"
        total = free = 0
        healthy = False
        for line in self._run("scontrol", "-o", "show", "node").stdout.splitlines():
            if self.partition not in (_field(line, "Partitions") or "").split(","):
                continue
            cards = _gpu_count(_field(line, "CfgTRES"))
            total += cards
            if partition_up and _node_usable(_field(line, "State")):
                healthy = True
                free += max(0, cards - _gpu_count(_field(line, "AllocTRES")))
        return Capacity(cards_total=total, cards_free=free, healthy=healthy)

    def submit(self, spec: LaunchSpec) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "--parsable",
            f"--job-name={spec.name}",
            f"--partition={self.partition}",
            f"--nodes={spec.nodes}",
            f"--output={self.log_dir / '%j.log'}",  # stdout and stderr together; see logs()
            f"--chdir={spec.workdir or self.log_dir}",
            # The job's environment is sbatch's, which _env() keeps minimal, plus spec.env from the script.
            "--export=ALL",
        ]
        if spec.cards:
            args.append(f"--gpus={spec.cards}")
        if spec.time_limit_s:
            args.append(f"--time={max(1, math.ceil(spec.time_limit_s / 60))}")
        result = self._run("sbatch", *args, stdin=_batch_script(spec), refusal=BackendRejected)
        job_id = result.stdout.strip().split(";", 1)[0]  # "id" or "id;cluster"
        if not job_id.isdigit():
            raise BackendUnavailable(f"sbatch answered {result.stdout.strip()!r} instead of a job id")
        return job_id

    def find(self, name: str) -> str | None:
        # slurmctld first: it knows jobs that accounting may not have recorded yet. A failure of either
        # raises rather than returning None, since None makes the controller send the launch again.
        jobs = self._squeue("--name", name) or self._sacct("--name", name, "--starttime", "1970-01-01")
        matching = [job for job in jobs if job.name == name]
        if not matching:
            return None
        # Prefer a launch still alive, then the latest one.
        best = max(matching, key=lambda job: (not job.remote_state.terminal, int(job.job_id)))
        return best.job_id

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        ids = sorted({h for h in handles if h.isdigit()}, key=int)
        jobs: dict[str, _Job] = {}
        if ids:
            jobs = {job.job_id: job for job in self._squeue("--jobs", ",".join(ids))}
            forgotten = [i for i in ids if i not in jobs]
            if forgotten:
                jobs |= {job.job_id: job for job in self._sacct("--jobs", ",".join(forgotten))}
        return {
            h: jobs[h].observation()
            if h in jobs
            else Observation(handle=h, state=RemoteState.LOST, message="unknown to Slurm")
            for h in handles
        }

    def cancel(self, handle: str) -> None:
        if handle.isdigit():  # scancel is quiet about ended or purged jobs, so this is idempotent
            self._run("scancel", handle)

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        if not handle.isdigit():
            return b""
        path = self.log_dir / f"{handle}.log"
        try:
            with path.open("rb") as f:
                if tail_bytes is not None:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(0, size - tail_bytes))
                return f.read()
        except FileNotFoundError:  # not started yet: slurmd creates the file when the job starts
            return b""

    def close(self) -> None:
        """Nothing to release: every call is a short-lived client process."""

    # ------------------------------------------------------------------------------------- helpers

    def _squeue(self, *selection: str) -> list[_Job]:
        fmt = ",".join(f"{name}:|" for name in (*_SQUEUE_FIELDS, "Name"))
        result = self._run(
            "squeue",
            "--noheader",
            "--states=all",
            f"--Format={fmt}",
            *selection,
            ok_errors=(
                "invalid job id",  # squeue --jobs=<one purged id> fails instead of printing nothing
            ),
        )
        return [_squeue_job(line) for line in result.stdout.splitlines() if line.strip()]

    def _sacct(self, *selection: str) -> list[_Job]:
        fields = ",".join((*_SACCT_FIELDS, "JobName"))
        result = self._run(
            "sacct", "--allocations", "--parsable2", "--noheader", f"--format={fields}", *selection
        )
        return [_sacct_job(line) for line in result.stdout.splitlines() if line.strip()]

    def _run(
        self,
        program: str,
        *args: str,
        stdin: str | None = None,
        refusal: type[BackendRejected | BackendUnavailable] = BackendUnavailable,
        ok_errors: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client; an unreachable daemon raises BackendUnavailable, other errors `refusal`."""
        argv = [str(Path(self.bin_dir) / program) if self.bin_dir else program, *args]
        try:
            result = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailable(f"{program} did not answer within {self.timeout_s:g} s") from exc
        except OSError as exc:  # the client is not installed where we look
            raise BackendUnavailable(f"cannot run {program}: {exc}") from exc
        if result.returncode == 0:
            return result
        error = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
        lowered = error.lower()
        if any(text in lowered for text in ok_errors):
            return subprocess.CompletedProcess(argv, 0, "", result.stderr)
        if any(text in lowered for text in _UNREACHABLE):
            raise BackendUnavailable(f"{program}: {error}")
        raise refusal(f"{program}: {error}")


# ---------------------------------------------------------------------------------------- parsing


def _env() -> dict[str, str]:
    """The clients' environment, which sbatch also hands to the job: nothing of the caller's secrets."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",  # times printed by squeue and sacct are then UTC
        "SLURM_TIME_FORMAT": "standard",
    }
    for name in ("HOME", "SLURM_CONF"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _batch_script(spec: LaunchSpec) -> str:
    if not spec.command:
        raise BackendRejected("the launch has no command")
    bad = [name for name in spec.env if not _ENV_NAME.fullmatch(name)]
    if bad:
        raise BackendRejected(f"invalid environment variable names: {', '.join(sorted(bad))}")
    lines = ["#!/bin/sh", f"# suanwang launch {spec.name}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in spec.env.items()]
    # exec: the job's exit status is the command's own.
    lines.append("exec " + shlex.join(spec.command))
    return "\n".join(lines) + "\n"


def _split(line: str, count: int) -> list[str]:
    """Split a '|'-separated row whose last column (the job name) may itself contain '|'."""
    parts = line.split("|", count - 1)
    if len(parts) != count:
        raise BackendUnavailable(f"cannot read Slurm's output line {line!r}")
    return parts


def _squeue_job(line: str) -> _Job:
    job_id, state, status, start, end, alloc, per_job, reason, name = _split(line, len(_SQUEUE_FIELDS) + 1)
    return _Job(
        job_id=job_id.strip(),
        name=name.removesuffix("|"),  # squeue ends the row with the field suffix
        state=state.strip(),
        exit_code=_wait_status(status.strip()),
        started_at=_time(start),
        ended_at=_time(end),
        cards=_gpu_count(alloc) or _gpu_count(per_job),
        reason=reason.strip() or None,
    )


def _sacct_job(line: str) -> _Job:
    job_id, state, exit_code, start, end, alloc, req, name = _split(line, len(_SACCT_FIELDS) + 1)
    return _Job(
        job_id=job_id,
        name=name,
        state=state,
        exit_code=_exit_pair(exit_code),
        started_at=_time(start),
        ended_at=_time(end),
        cards=_gpu_count(alloc) or _gpu_count(req),
    )


def _shell_status(code: int, signal: int) -> int:
    """One number as a shell reports it: the exit code, or 128 + the signal that killed the job."""
    return 128 + signal if signal else code


def _wait_status(text: str) -> int | None:
    """squeue's exit_code is the raw wait status: exit code in the high byte, signal in the low bits."""
    if not text.isdigit():
        return None
    status = int(text)
    return _shell_status((status >> 8) & 0xFF, status & 0x7F)


def _exit_pair(text: str) -> int | None:
    """sacct's ExitCode is "code:signal"."""
    code, _, signal = text.partition(":")
    if not code.isdigit():
        return None
    return _shell_status(int(code), int(signal) if signal.isdigit() else 0)


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except ValueError:  # "Unknown", "None", "N/A" before a job starts or ends
        return None


def _gpu_count(tres: str | None) -> int:
    """GPUs in a TRES list: "cpu=1,gres/gpu=2" (alloc, sacct), "gres:gpu:2" or "gres/gpu:a100:2" (request)."""
    typed = 0
    for item in (tres or "").split(","):
        key, _, value = item.rpartition("=") if "=" in item else item.rpartition(":")
        key = key.removeprefix("gres/").removeprefix("gres:")
        if not value.isdigit():
            continue
        if key == "gpu":
            return int(value)  # the untyped total, when Slurm gives one
        if key.startswith("gpu:") and not typed:
            typed = int(value)
    return typed


def _field(line: str, key: str) -> str | None:
    """One `Key=value` of an `scontrol -o show` line (values with spaces are not needed here)."""
    match = re.search(rf"(?:^|\s){re.escape(key)}=(\S*)", line)
    return match.group(1) if match else None


def _node_usable(state: str | None) -> bool:
    flags = {flag.rstrip("*") for flag in (state or "UNKNOWN").split("+")}
    return not flags & _UNUSABLE_NODE_STATES
