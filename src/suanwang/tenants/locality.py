"""Whether an organisation is local to the region the platform serves (GB/T 2260 division codes)."""

from __future__ import annotations


def division_prefix(region_code: str) -> str:
    """'330482' -> '330482' (a county), '330400' -> '3304' (a prefecture), '330000' -> '33' (a province)."""
    prefix = region_code
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    return prefix


def is_local(locality_code: str, region_code: str) -> bool:
    return locality_code.startswith(division_prefix(region_code))
