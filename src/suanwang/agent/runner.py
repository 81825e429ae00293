"""The agent's launches on this node: each in its own process group, with CUDA_VISIBLE_DEVICES set to
its cards, its output in a file the agent streams to the control plane, and its CPU time from wait4.

Each running launch also has a pid file beside its output. An agent that died (or was restarted)
cannot wait for processes it did not start, so a runner taking over the directory first stops the
process groups its earlier life left running: their cards are free again, and the control plane,
which no longer hears of those launches, declares them lost and requeues their jobs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
log = logging.getLogger(__name__)


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, /proc/PID/stat field 22), so a pid reused by
    another process is told apart; None where there is no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may itself hold spaces or ")".
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # there, but not ours to signal
    return True


def stop_left_behind(pid: int, ticks: int | None, grace_s: float = GRACE_S) -> bool:
    """Stop the process group `pid` led, if it is still the one recorded (leader started at `ticks`),
    or its leader is gone but members remain (Linux does not reuse a pid still naming a group).
    SIGTERM, then SIGKILL after `grace_s`. True if a group was stopped."""
    now_ticks = start_ticks(pid)
    if now_ticks is not None and now_ticks != ticks:
        return False  # the pid belongs to another process now
    if not _group_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


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
        self.left_behind = self._stop_left_behind()

    def _pid_path(self, name: str) -> Path:
        return self.directory / f"{name}.pid"

    def _stop_left_behind(self) -> list[str]:
        """Stop what an earlier agent on this directory left running; the launches it stopped."""
        stopped = []
        for pid_file in sorted(self.directory.glob("*.pid")):
            name = pid_file.stem
            try:
                recorded = json.loads(pid_file.read_text())
                pid, ticks = int(recorded["pid"]), recorded.get("start_ticks")
            except (OSError, ValueError, KeyError, TypeError):
                pid = None  # torn or foreign: nothing trustworthy to stop
            if pid is not None and stop_left_behind(pid, ticks):
                log.warning("stopped launch %s (process group %d), left by an earlier agent", name, pid)
                stopped.append(name)
            pid_file.unlink(missing_ok=True)
        for output in self.directory.glob("*.log"):  # an earlier life's: the control plane gave up on them
            output.unlink(missing_ok=True)
        return stopped

    def _record_pid(self, name: str, pid: int) -> None:
        path = self._pid_path(name)
        partial = path.with_suffix(".pid.partial")
        partial.write_text(json.dumps({"pid": pid, "start_ticks": start_ticks(pid)}))
        os.replace(partial, path)  # whole or absent: a crash never leaves half a record

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
        with open(log_path, "ab") as output:
            try:
                launch.process = subprocess.Popen(
                    assignment["command"],
                    cwd=assignment.get("workdir") or None,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a cancel reaches its children too
                )
            except OSError as exc:
                output.write(f"cannot start {assignment['command'][0]}: {exc}\n".encode())
                launch.ended_at, launch.exit_code, launch.message = now, 127, str(exc)
        if launch.process is not None:
            self._record_pid(name, launch.process.pid)
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
            self._pid_path(launch.name).unlink(missing_ok=True)
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
        with open(launch.log_path, "rb") as output:
            output.seek(launch.log_sent)
            return output.read(limit)

    def forget(self, name: str) -> None:
        """The control plane has the launch's end and all its output: drop it and its file."""
        launch = self.launches.pop(name, None)
        if launch is not None:
            with contextlib.suppress(FileNotFoundError):
                launch.log_path.unlink()

    def stop_all(self, monotonic: float) -> None:
        for name in list(self.launches):
            self.cancel(name, monotonic)
