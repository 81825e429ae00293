"""Processes of a benchmark's server, read from Linux's /proc."""

from __future__ import annotations

from pathlib import Path


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes under its supervisor `pid` (Linux /proc): the children that
    multiprocessing spawned, not its resource tracker (a child too)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as listed:
            found += [int(child) for child in listed.read().split()]
    return [child for child in found if b"spawn_main" in command_line(child)]


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # it has just exited
        return b""
