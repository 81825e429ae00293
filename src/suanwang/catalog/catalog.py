"""The accelerator catalogue, loaded from accelerators.toml (data, not code)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Accelerator:
    model: str
    vendor: str
    name: str
    memory_gib: int
    dense_fp16_tflops: Decimal
    domestic: bool
    source: str


def parse(text: str) -> tuple[Accelerator, ...]:
    """Parse catalogue TOML; a malformed entry raises ValueError naming it."""
    entries = tomllib.loads(text).get("accelerator", [])
    seen: set[str] = set()
    result: list[Accelerator] = []
    for entry in entries:
        model = str(entry.get("model", "")).strip().upper()
        if not model or model in seen:
            raise ValueError(f"catalogue entry with missing or duplicate model: {entry!r}")
        tflops = Decimal(str(entry["dense_fp16_tflops"]))
        if tflops <= 0 or int(entry["memory_gib"]) <= 0:
            raise ValueError(f"catalogue entry {model}: TFLOPS and memory must be positive")
        seen.add(model)
        result.append(
            Accelerator(
                model=model,
                vendor=str(entry["vendor"]),
                name=str(entry["name"]),
                memory_gib=int(entry["memory_gib"]),
                dense_fp16_tflops=tflops,
                domestic=bool(entry["domestic"]),
                source=str(entry["source"]),
            )
        )
    return tuple(result)


@lru_cache
def accelerators() -> tuple[Accelerator, ...]:
    text = resources.files("suanwang.catalog").joinpath("accelerators.toml").read_text(encoding="utf-8")
    return parse(text)


def find(model: str) -> Accelerator | None:
    """Case-insensitive lookup by model key."""
    key = model.strip().upper()
    return next((a for a in accelerators() if a.model == key), None)


def models() -> list[str]:
    return [a.model for a in accelerators()]
