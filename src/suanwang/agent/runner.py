"""The agent's launches on this node: each in its own process group, with CUDA_VISIBLE_DEVICES set to
its cards, its output in a file the agent streams to the control plane, and its CPU time from wait4."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long


@dataclass
class Running:
    name: str
    cards: list[int]
    process: subprocess.Popen[bytes] | None
    log_path: Path
    started_at: datetime
    time_limit_s: int | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    cpu_seconds: int | None = None
    cancelled: bool = False
    message: str | None = None
    kill_at: float | None = None  # monotonic time to send SIGKILL, once SIGTERM was sent
    log_sent: int = 0  # bytes of output the control plane has
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        if self.ended_at is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "succeeded" if self.exit_code == 0 else "failed"


class Runner:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.launches: dict[str, Running] = {}

    def start(self, assignment: dict[str, Any], now: datetime) -> Running:
        """Start an assigned launch (once: a repeated assignment returns the one already running)."""
        name = assignment["name"]
        if name in self.launches:
            return self.launches[name]
        cards = list(assignment.get("card_indices") or [])
        log_path = self.directory / f"{name}.log"
        env = os.environ.copy() | dict(assignment.get("env") or {})
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in cards)
        env["SUANWANG_LAUNCH"] = name
        launch = Running(
            name=name,
            cards=cards,
            process=None,
            log_path=log_path,
            started_at=now,
            time_limit_s=assignment.get("time_limit_s"),
        )
        with open(log_path, "ab") as log:
            try:
                launch.process = subprocess.Popen(
                    assignment["command"],
                    cwd=assignment.get("workdir") or None,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a cancel reaches its children too
                )
            except OSError as exc:
                log.write(f"cannot start {assignment['command'][0]}: {exc}\n".encode())
                launch.ended_at, launch.exit_code, launch.message = now, 127, str(exc)
        self.launches[name] = launch
        return launch

    def poll(self, now: datetime, monotonic: float) -> list[Running]:
        """Reap what ended (exit code and CPU time), enforce time limits and kills; the launches that
        ended in this call."""
        ended = []
        for launch in self.launches.values():
            if launch.ended_at is not None or launch.process is None:
                continue
            limit = launch.time_limit_s
            over = limit is not None and (now - launch.started_at).total_seconds() > limit
            if over and not launch.cancelled and launch.kill_at is None:
                launch.message = f"killed after its time limit of {limit} s"
                self._signal(launch, signal.SIGTERM, monotonic)
            if launch.kill_at is not None and monotonic >= launch.kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(launch.process.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(launch.process.pid, os.WNOHANG)
            if pid == 0:
                continue
            launch.ended_at = datetime.now(UTC)
            launch.exit_code = os.waitstatus_to_exitcode(status)
            launch.cpu_seconds = round(usage.ru_utime + usage.ru_stime)
            launch.process.returncode = launch.exit_code  # Popen must not wait for it again
            ended.append(launch)
        return ended

    def cancel(self, name: str, monotonic: float) -> None:
        launch = self.launches.get(name)
        if launch is None or launch.ended_at is not None:
            return
        launch.cancelled = True
        self._signal(launch, signal.SIGTERM, monotonic)

    def _signal(self, launch: Running, signum: int, monotonic: float) -> None:
        if launch.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launch.process.pid, signum)
        launch.kill_at = monotonic + GRACE_S

    def new_output(self, launch: Running, limit: int) -> bytes:
        """Output the control plane does not have yet (at most `limit` bytes)."""
        with open(launch.log_path, "rb") as log:
            log.seek(launch.log_sent)
            return log.read(limit)

    def forget(self, name: str) -> None:
        """The control plane has the launch's end and all its output: drop it and its file."""
        launch = self.launches.pop(name, None)
        if launch is not None:
            with contextlib.suppress(FileNotFoundError):
                launch.log_path.unlink()

    def stop_all(self, monotonic: float) -> None:
        for name in list(self.launches):
            self.cancel(name, monotonic)
