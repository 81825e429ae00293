"""Capacity roll-ups (pure): cards and PFLOPS grouped by any of provider, site, phase, region, ..."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from suanwang.units import pflops

DIMENSIONS = ("provider", "site", "phase", "region", "accelerator", "zone", "vendor", "domestic")


@dataclass(frozen=True, slots=True)
class PoolCapacity:
    pool_id: int
    provider: str
    site: str
    phase: str
    region: str
    accelerator: str
    zone: str
    vendor: str
    domestic: bool
    cards: int
    dense_tflops_per_card: Decimal
    # What node agents measured (agent/calibrate.py): the cards calibrated and their summed TFLOPS.
    verified_cards: int = 0
    verified_tflops: Decimal = Decimal(0)

    @property
    def pflops(self) -> Decimal:
        return pflops(self.cards, self.dense_tflops_per_card)


@dataclass(frozen=True, slots=True)
class CapacityRow:
    key: tuple[tuple[str, str], ...]
    pools: int
    cards: int
    pflops: Decimal
    verified_cards: int = 0
    verified_pflops: Decimal = Decimal(0)  # measured, on the verified cards only


def _label(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def roll_up(pools: Iterable[PoolCapacity], group_by: Sequence[str]) -> list[CapacityRow]:
    """One row per distinct combination of the `group_by` dimensions, sorted by key; no dims: one total."""
    unknown = [d for d in group_by if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s): {', '.join(unknown)}")
    groups: dict[tuple[tuple[str, str], ...], list[PoolCapacity]] = {}
    for pool in pools:
        key = tuple((dim, _label(getattr(pool, dim))) for dim in group_by)
        groups.setdefault(key, []).append(pool)
    return [
        CapacityRow(
            key=key,
            pools=len(members),
            cards=sum(p.cards for p in members),
            pflops=sum((p.pflops for p in members), Decimal(0)),
            verified_cards=sum(p.verified_cards for p in members),
            verified_pflops=sum((p.verified_tflops for p in members), Decimal(0)) / 1000,
        )
        for key, members in sorted(groups.items())
    ]
