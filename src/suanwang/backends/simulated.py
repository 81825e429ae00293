"""`simulated`: for demo pools with no hardware here — launches "run" for their estimated runtime.

Each launch is a small JSON file under `<root>/`, so a restarted controller sees the same launches.
Runtime is the scheduler's estimate × `time_scale` (0.01: an hour of work passes in 36 s), so the demo
region shows work flowing. A launch whose command's first word is `false` fails with exit code 1:
the demo can show failures without a random number in the loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from suanwang.backends.local_runner import write_json
from suanwang.backends.protocol import BackendRejected, Capacity, LaunchSpec, Observation, RemoteState
from suanwang.timeutil import utcnow

DEFAULT_RUNTIME_S = 60.0


class SimulatedBackend:
    kind = "simulated"

    def __init__(
        self,
        root: Path | str,
        cards: int,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cards = cards
        self.time_scale = time_scale
        self.clock = clock
        # The controller is the only writer: records are read from disk once, then kept here; `_open`
        # holds the launches not yet ended, so capacity does not rescan every launch ever made.
        self._cache: dict[str, dict[str, Any]] = {r["name"]: r for r in self._records()}
        self._open = {name for name, r in self._cache.items() if not self._state(r)[0].terminal}

    @classmethod
    def from_connection(cls, connection: dict[str, Any], data_dir: Path, cards: int) -> SimulatedBackend:
        root = connection.get("root") or Path(data_dir) / "launches" / "simulated"
        return cls(root, cards, time_scale=float(connection.get("time_scale", 1.0)))

    def capacity(self) -> Capacity:
        used = 0
        for name in list(self._open):
            record = self._cache[name]
            if self._state(record)[0] is RemoteState.RUNNING:
                used += int(record["cards"])
            else:
                self._open.discard(name)
        return Capacity(cards_total=self.cards, cards_free=max(0, self.cards - used))

    def submit(self, spec: LaunchSpec) -> str:
        path = self.root / f"{spec.name}.json"
        if path.exists():
            raise BackendRejected(f"launch {spec.name} exists already")
        runtime = (spec.est_runtime_s or DEFAULT_RUNTIME_S) * self.time_scale
        if spec.time_limit_s is not None:
            runtime = min(runtime, spec.time_limit_s * self.time_scale)
        now = self.clock()
        record = {
            "name": spec.name,
            "cards": spec.cards,
            "started_at": now.isoformat(),
            "runtime_s": runtime,
            "fails": bool(spec.command) and spec.command[0] == "false",
            "cancelled_at": None,
        }
        write_json(path, record)
        self._cache[spec.name] = record
        self._open.add(spec.name)
        return spec.name

    def find(self, name: str) -> str | None:
        return name if (self.root / f"{name}.json").exists() else None

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        return {handle: self._observe(handle) for handle in handles}

    def cancel(self, handle: str) -> None:
        path = self.root / f"{handle}.json"
        record = self._read(path)
        if record is None or self._state(record)[0].terminal:
            return
        record["cancelled_at"] = self.clock().isoformat()
        write_json(path, record)
        self._cache[handle] = record

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        record = self._read(self.root / f"{handle}.json")
        if record is None:
            return b""
        state, ended = self._state(record)
        text = (
            f"[simulated] {handle}: {record['cards']} cards from {record['started_at']}, "
            f"runtime {record['runtime_s']:.0f} s (scaled)\n"
        )
        if ended is not None:
            text += f"[simulated] {state.value} at {ended.isoformat()}\n"
        data = text.encode()
        return data[-tail_bytes:] if tail_bytes is not None else data

    def close(self) -> None:
        pass

    # --- internals --------------------------------------------------------------------------------

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data

    def _records(self) -> list[dict[str, Any]]:
        return [r for p in self.root.glob("*.json") if (r := self._read(p)) is not None]

    def _state(self, record: dict[str, Any]) -> tuple[RemoteState, datetime | None]:
        started = datetime.fromisoformat(record["started_at"])
        end = started + timedelta(seconds=float(record["runtime_s"]))
        cancelled = record.get("cancelled_at")
        if cancelled is not None and datetime.fromisoformat(cancelled) < end:
            return RemoteState.CANCELLED, datetime.fromisoformat(cancelled)
        if self.clock() < end:
            return RemoteState.RUNNING, None
        return (RemoteState.FAILED if record.get("fails") else RemoteState.SUCCEEDED), end

    def _observe(self, handle: str) -> Observation:
        record = self._cache.get(handle) or self._read(self.root / f"{handle}.json")
        if record is None:
            return Observation(handle=handle, state=RemoteState.LOST, message="no such launch")
        state, ended = self._state(record)
        exit_code = None if ended is None else (1 if state is RemoteState.FAILED else 0)
        if state is RemoteState.CANCELLED:
            exit_code = None
        return Observation(
            handle=handle,
            state=state,
            started_at=datetime.fromisoformat(record["started_at"]),
            ended_at=ended,
            exit_code=exit_code,
            cards=int(record["cards"]),
        )
