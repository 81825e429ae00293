"""Runs one local launch and records what happened, so the controller may restart meanwhile.

`python -m suanwang.backends.local_runner DIR` reads DIR/spec.json, starts the command in its own
process group with stdout and stderr into DIR/output.log, writes DIR/started.json, waits, and
writes DIR/result.json (exit code, times, whether it was cancelled) atomically. SIGTERM to the runner
cancels: the command's whole group gets SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRACE_S = 5.0


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: readers see the old file or the whole new one, never half."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def run(directory: Path) -> int:
    spec = json.loads((directory / "spec.json").read_text())
    env = os.environ.copy() | spec["env"]
    cancelled = False
    with open(directory / "output.log", "ab") as log:
        try:
            child = subprocess.Popen(
                spec["command"],
                cwd=spec.get("workdir") or None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: cancel reaches its children too
            )
        except OSError as exc:
            log.write(f"cannot start {spec['command'][0]}: {exc}\n".encode())
            write_json(directory / "started.json", {"pid": None, "started_at": _now()})
            write_json(directory / "result.json", {"exit_code": 127, "ended_at": _now(), "cancelled": False})
            return 0

        def stop(_signum: int, _frame: Any) -> None:
            nonlocal cancelled
            cancelled = True
            _kill_group(child.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        write_json(directory / "started.json", {"pid": child.pid, "started_at": _now()})
        deadline: float | None = None
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancelled and deadline is None:
                deadline = time.monotonic() + GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                _kill_group(child.pid, signal.SIGKILL)
        # The command is gone; make sure nothing it started lingers holding its cards.
        _kill_group(child.pid, signal.SIGKILL)
    if code < 0:  # killed by a signal: report it the way shells and Slurm do
        code = 128 - code
    write_json(directory / "result.json", {"exit_code": code, "ended_at": _now(), "cancelled": cancelled})
    return 0


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
