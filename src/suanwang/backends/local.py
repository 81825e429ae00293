"""`local`: launches as processes on this machine, each in its own process group.

Every launch lives in a folder `<root>/<name>/` (spec, output, start and result files) written by a
detached runner (`local_runner.py`), so launches outlive a controller restart and `find(name)` is a
folder lookup. Cards are device indices handed out through `CUDA_VISIBLE_DEVICES`; a machine without
GPUs has 0 cards and runs CPU work only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from suanwang.backends.local_runner import write_json
from suanwang.backends.protocol import (
    BackendRejected,
    Capacity,
    LaunchSpec,
    Observation,
    RemoteState,
)


def detect_gpus() -> int:
    """GPUs NVIDIA's driver shows on this machine (0 where there is no driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class LocalBackend:
    kind = "local"

    def __init__(self, root: Path | str, cards: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cards = detect_gpus() if cards is None else cards
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def from_connection(cls, connection: dict[str, Any], data_dir: Path) -> LocalBackend:
        root = connection.get("root") or Path(data_dir) / "launches" / "local"
        cards = connection.get("cards")
        return cls(root, cards=int(cards) if cards is not None else None)

    # --- protocol ---------------------------------------------------------------------------------

    def capacity(self) -> Capacity:
        used = sum(len(devices) for devices in self._devices_in_use().values())
        return Capacity(cards_total=self.cards, cards_free=max(0, self.cards - used))

    def submit(self, spec: LaunchSpec) -> str:
        if not spec.command:
            raise BackendRejected("empty command")
        with self._lock():
            folder = self.root / spec.name
            if folder.exists():
                raise BackendRejected(f"launch {spec.name} exists already")
            devices = self._allocate(spec.cards)
            folder.mkdir(parents=True)
            env = dict(spec.env) | {
                "CUDA_VISIBLE_DEVICES": ",".join(str(d) for d in devices),
                "SUANWANG_JOB_ID": str(spec.job_id),
                "SUANWANG_ATTEMPT": str(spec.attempt),
            }
            write_json(
                folder / "spec.json",
                {
                    "command": list(spec.command),
                    "env": env,
                    "workdir": spec.workdir,
                    "cards": spec.cards,
                    "devices": devices,
                },
            )
            with open(folder / "runner.log", "ab") as runner_log:
                runner = subprocess.Popen(
                    [sys.executable, "-m", "suanwang.backends.local_runner", str(folder)],
                    stdin=subprocess.DEVNULL,
                    stdout=runner_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # survives the controller; its own group for cancel
                )
            write_json(folder / "runner.json", {"pid": runner.pid})
            self._children[spec.name] = runner
        return spec.name

    def find(self, name: str) -> str | None:
        return name if (self.root / name / "runner.json").exists() else None

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        self._reap()
        return {handle: self._observe(handle) for handle in handles}

    def cancel(self, handle: str) -> None:
        folder = self.root / handle
        if (folder / "result.json").exists():
            return
        runner = _read(folder / "runner.json")
        if runner and _alive(runner.get("pid")):
            os.kill(runner["pid"], 15)

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        path = self.root / handle / "output.log"
        if not path.exists():
            return b""
        with open(path, "rb") as handle_file:
            if tail_bytes is not None:
                size = path.stat().st_size
                handle_file.seek(max(0, size - tail_bytes))
            return handle_file.read()

    def close(self) -> None:
        self._reap()

    # --- internals --------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One submit at a time across processes, so two launches never get the same device."""
        with open(self.root / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _devices_in_use(self) -> dict[str, list[int]]:
        in_use = {}
        for folder in self.root.iterdir():
            if not folder.is_dir() or (folder / "result.json").exists():
                continue
            spec = _read(folder / "spec.json")
            if (
                spec
                and spec.get("devices")
                and self._observe(folder.name).state
                in (
                    RemoteState.PENDING,
                    RemoteState.RUNNING,
                )
            ):
                in_use[folder.name] = list(spec["devices"])
        return in_use

    def _allocate(self, cards: int) -> list[int]:
        if cards == 0:
            return []
        busy = {d for devices in self._devices_in_use().values() for d in devices}
        free = [d for d in range(self.cards) if d not in busy]
        if len(free) < cards:
            raise BackendRejected(f"{cards} cards asked, {len(free)} of {self.cards} free on this machine")
        return free[:cards]

    def _reap(self) -> None:
        """Collect runners this process started, so they do not linger as zombies (and look alive)."""
        for name, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[name]

    def _observe(self, name: str) -> Observation:
        folder = self.root / name
        spec = _read(folder / "spec.json")
        if spec is None:
            return Observation(handle=name, state=RemoteState.LOST, message="no such launch")
        cards = int(spec.get("cards", 0))
        started = _read(folder / "started.json")
        result = _read(folder / "result.json")
        started_at = _time(started.get("started_at")) if started else None
        if result is not None:
            if result.get("cancelled"):
                state = RemoteState.CANCELLED
            else:
                state = RemoteState.SUCCEEDED if result["exit_code"] == 0 else RemoteState.FAILED
            return Observation(
                handle=name,
                state=state,
                started_at=started_at,
                ended_at=_time(result.get("ended_at")),
                exit_code=result.get("exit_code"),
                cards=cards,
            )
        runner = _read(folder / "runner.json")
        child = self._children.get(name)
        runner_alive = child.poll() is None if child is not None else _alive((runner or {}).get("pid"))
        if not runner_alive:
            # The runner writes its result before it exits: gone without one means it was killed.
            return Observation(
                handle=name,
                state=RemoteState.LOST,
                started_at=started_at,
                cards=cards,
                message="the local runner died without a result",
            )
        state = RemoteState.RUNNING if started else RemoteState.PENDING
        return Observation(handle=name, state=state, started_at=started_at, cards=cards)
