"""The agent's runner across a restart: a new runner on the same directory stops the process groups
an earlier agent left running (and only those), so their cards are free and nothing runs twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from suanwang.agent.runner import Runner, start_ticks, stop_left_behind

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
# A launch that ignores SIGTERM and has a child of its own, so only SIGKILL to the whole group ends it.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); print('up', flush=True); "
    "time.sleep(120)",
]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_restarted_runner_stops_what_the_last_one_left_running(tmp_path: Path) -> None:
    first = Runner(tmp_path)
    launch = first.start({"name": "sw-abc-1-0", "command": STUBBORN, "card_indices": [0]}, NOW)
    assert launch.process is not None
    pgid = launch.process.pid
    wait_for(lambda: b"up" in launch.log_path.read_bytes())
    recorded = json.loads((tmp_path / "sw-abc-1-0.pid").read_text())
    assert recorded == {"pid": pgid, "start_ticks": start_ticks(pgid)}

    # The agent dies without stopping anything; a new one takes over its directory.
    second = Runner(tmp_path)
    launch.process.wait(timeout=10)  # the old leader, reaped here only because this test started it
    wait_for(lambda: not group_alive(pgid))  # its child too: the whole group got SIGKILL
    assert second.left_behind == ["sw-abc-1-0"] and second.launches == {}
    assert list(tmp_path.iterdir()) == []  # pid file and output of the earlier life are gone


def test_a_launch_that_ended_leaves_no_pid_file(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    runner.start({"name": "quick", "command": ["true"]}, NOW)
    wait_for(lambda: bool(runner.poll(NOW, 0.0)) or runner.launches["quick"].ended_at is not None)
    assert not (tmp_path / "quick.pid").exists()
    assert Runner(tmp_path).left_behind == []


def test_a_pid_now_naming_another_process_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ticks = start_ticks(other.pid)
        assert ticks is not None
        # Recorded for an earlier process that had the same pid: another start time.
        (tmp_path / "old.pid").write_text(json.dumps({"pid": other.pid, "start_ticks": ticks - 1}))
        (tmp_path / "torn.pid").write_text('{"pid": ')
        runner = Runner(tmp_path)
        assert runner.left_behind == [] and other.poll() is None
        assert not (tmp_path / "old.pid").exists() and not (tmp_path / "torn.pid").exists()
        assert stop_left_behind(other.pid, ticks, grace_s=0.1) and other.wait(timeout=10) != 0
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("name", ["odd) 1 2 (name", "a(b)c"])
def test_start_ticks_reads_past_a_command_name_with_parentheses(tmp_path: Path, name: str) -> None:
    program = tmp_path / name
    program.symlink_to(shutil.which("sleep") or "/bin/sleep")  # the process's name is the link's
    process = subprocess.Popen([str(program), "30"])
    try:
        wait_for(lambda: Path(f"/proc/{process.pid}/comm").read_text().strip() == name)
        ticks = start_ticks(process.pid)
        assert ticks is not None and ticks >= start_ticks(os.getpid())  # type: ignore[operator]
    finally:
        process.kill()
        process.wait()
    assert start_ticks(process.pid) is None  # reaped: no such process
