"""Scenario TOML: the pools, tenants, policy parameters and injected outages a simulation runs on.

Minimal form (issue 3, item 6): top-level `reference_accelerator`; `[[pools]]` with id, provider, site,
region, zone, accelerator, cards, cards_per_node, price_fen_per_card_hour, local; `[[tenants]]` with id,
kind, local, sme, weight; an optional `[policy]` table for `Policy.from_dict`. Extensions (all optional):
top-level `name`, `description`; pool `healthy`, `memory_gib`, `name`; tenant `name`,
`default_classification`, `default_preemptible`; `[[faults]]` with pool, start_s, end_s (a pool outage).
docs/simulator.md.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from suanwang import catalog
from suanwang.scheduler.policy import Algorithm, Policy
from suanwang.scheduler.types import Classification, PoolState, TenantState, Zone

# Scenarios shipped as package data, by the name the CLI accepts instead of a path.
SHIPPED = {"pinghu-dev": "pinghu_dev.toml"}

TENANT_KINDS = ("enterprise", "government", "research", "university")
POOL_KEYS = {
    "id",
    "provider",
    "site",
    "region",
    "zone",
    "accelerator",
    "cards",
    "cards_per_node",
    "price_fen_per_card_hour",
    "local",
}
POOL_EXTRA_KEYS = {"healthy", "memory_gib", "name"}
TENANT_KEYS = {"id", "kind", "local", "sme", "weight"}
TENANT_EXTRA_KEYS = {"name", "default_classification", "default_preemptible"}
FAULT_KEYS = {"pool", "start_s", "end_s"}
TOP_KEYS = {"reference_accelerator", "pools", "tenants", "policy", "faults", "name", "description"}


@dataclass(frozen=True, slots=True)
class Fault:
    """A pool outage: unhealthy in [start_s, end_s); its running jobs go back to the queue."""

    pool_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Scenario:
    reference_accelerator: str
    pools: tuple[PoolState, ...]
    tenants: tuple[TenantState, ...] = ()
    policy_table: dict[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    # Classification given to a tenant's jobs whose trace row names none.
    default_classification: dict[str, Classification] = field(default_factory=dict)
    # Preemptible flag given to a tenant's jobs whose trace row leaves it empty.
    default_preemptible: dict[str, bool] = field(default_factory=dict)
    name: str = "scenario"

    def pool(self, pool_id: str) -> PoolState:
        return next(p for p in self.pools if p.id == pool_id)

    def tenant_ids(self) -> frozenset[str]:
        return frozenset(t.id for t in self.tenants)

    def policy(self, algorithm: Algorithm | str | None = None) -> Policy:
        """The scenario's [policy] table with its reference accelerator, optionally another algorithm."""
        overrides: dict[str, Any] = {"reference_accelerator": self.reference_accelerator}
        if algorithm is not None:
            overrides["algorithm"] = Algorithm(algorithm)
        return Policy.from_dict(self.policy_table, **overrides)


def load_scenario(source: str | Path) -> Scenario:
    """Load a scenario from a TOML file, or a shipped one by name (e.g. 'pinghu-dev')."""
    path = Path(source)
    if path.is_file():
        return parse_scenario(path.read_text(encoding="utf-8"), source=str(path))
    if str(source) in SHIPPED:
        text = shipped_path(str(source)).read_text(encoding="utf-8")
        return parse_scenario(text, source=str(source))
    raise ValueError(f"no scenario file {str(source)!r} (shipped scenarios: {', '.join(sorted(SHIPPED))})")


def shipped_path(name: str) -> Any:
    """The package resource of a shipped scenario (a Traversable; read it with read_text)."""
    return resources.files("suanwang.scheduler.simulate").joinpath("scenarios", SHIPPED[name])


def parse_scenario(text: str, *, source: str = "scenario") -> Scenario:
    """Parse and validate scenario TOML; any problem is a ValueError naming the pool/tenant/key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _build(data)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def _build(data: dict[str, Any]) -> Scenario:
    _no_unknown(data, TOP_KEYS, "scenario")
    reference = _accelerator(data.get("reference_accelerator"), "reference_accelerator")
    raw_pools = _table_list(data, "pools")
    if not raw_pools:
        raise ValueError("a scenario needs at least one [[pools]] entry")
    pools = tuple(_pool(raw, i) for i, raw in enumerate(raw_pools, start=1))
    _no_duplicates([p.id for p in pools], "pool")
    raw_tenants = _table_list(data, "tenants")
    tenants_and_defaults = [_tenant(raw, i) for i, raw in enumerate(raw_tenants, start=1)]
    tenants = tuple(t for t, _ in tenants_and_defaults)
    _no_duplicates([t.id for t in tenants], "tenant")
    defaults = {t.id: c for t, c in tenants_and_defaults if c is not None}
    preemptible = {
        t.id: _bool(raw, "default_preemptible", f"tenant {t.id!r}")
        for t, raw in zip(tenants, raw_tenants, strict=True)
        if "default_preemptible" in raw
    }
    policy_table = data.get("policy", {})
    if not isinstance(policy_table, dict):
        raise ValueError("[policy] must be a table")
    declared = policy_table.get("reference_accelerator")
    if declared is not None and _accelerator(declared, "[policy] reference_accelerator") != reference:
        raise ValueError(
            f"[policy] reference_accelerator {declared!r} differs from the top-level {reference!r}"
        )
    try:
        Policy.from_dict(policy_table, reference_accelerator=reference)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"[policy]: {exc}") from exc
    pool_ids = {p.id for p in pools}
    faults = tuple(_fault(raw, i, pool_ids) for i, raw in enumerate(_table_list(data, "faults"), start=1))
    return Scenario(
        reference_accelerator=reference,
        pools=pools,
        tenants=tenants,
        policy_table=dict(policy_table),
        faults=faults,
        default_classification=defaults,
        default_preemptible=preemptible,
        name=str(data.get("name", "scenario")),
    )


def _pool(raw: Any, index: int) -> PoolState:
    if not isinstance(raw, dict):
        raise ValueError(f"[[pools]] entry {index} must be a table")
    pool_id = _text(raw, "id", f"[[pools]] entry {index}")
    what = f"pool {pool_id!r}"
    _required(raw, POOL_KEYS, what)
    _no_unknown(raw, POOL_KEYS | POOL_EXTRA_KEYS, what)
    try:
        zone = Zone(str(raw["zone"]))
    except ValueError:
        raise ValueError(f"{what}: zone must be 'public' or 'government', got {raw['zone']!r}") from None
    cards = _positive_int(raw, "cards", what)
    cards_per_node = _positive_int(raw, "cards_per_node", what)
    price = raw["price_fen_per_card_hour"]
    if not _is_int(price) or price < 0:
        raise ValueError(f"{what}: price_fen_per_card_hour must be a non-negative integer, got {price!r}")
    memory = raw.get("memory_gib", 0)
    if not _is_int(memory) or memory < 0:
        raise ValueError(f"{what}: memory_gib must be a non-negative integer, got {memory!r}")
    return PoolState(
        id=pool_id,
        provider=_text(raw, "provider", what),
        site=_text(raw, "site", what),
        region=_text(raw, "region", what),
        zone=zone,
        accelerator=_accelerator(raw["accelerator"], f"{what}: accelerator"),
        cards_total=cards,
        cards_free=cards,
        cards_per_node=cards_per_node,
        price_fen_per_card_hour=price,
        healthy=_bool(raw, "healthy", what, default=True),
        local=_bool(raw, "local", what),
        memory_gib=memory,
    )


def _tenant(raw: Any, index: int) -> tuple[TenantState, Classification | None]:
    if not isinstance(raw, dict):
        raise ValueError(f"[[tenants]] entry {index} must be a table")
    tenant_id = _text(raw, "id", f"[[tenants]] entry {index}")
    what = f"tenant {tenant_id!r}"
    _required(raw, TENANT_KEYS, what)
    _no_unknown(raw, TENANT_KEYS | TENANT_EXTRA_KEYS, what)
    kind = raw["kind"]
    if kind not in TENANT_KINDS:
        raise ValueError(f"{what}: kind must be one of {', '.join(TENANT_KINDS)}, got {kind!r}")
    weight = raw["weight"]
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not math.isfinite(weight)
        or weight <= 0
    ):
        raise ValueError(f"{what}: weight must be a positive number, got {weight!r}")
    default: Classification | None = None
    if "default_classification" in raw:
        try:
            default = Classification(raw["default_classification"])
        except ValueError:
            choices = ", ".join(c.value for c in Classification)
            got = raw["default_classification"]
            problem = f"default_classification must be one of {choices}, got {got!r}"
            raise ValueError(f"{what}: {problem}") from None
    tenant = TenantState(
        id=tenant_id,
        weight=float(weight),
        local=_bool(raw, "local", what),
        sme=_bool(raw, "sme", what),
        kind=kind,
    )
    return tenant, default


def _fault(raw: Any, index: int, pool_ids: set[str]) -> Fault:
    what = f"[[faults]] entry {index}"
    if not isinstance(raw, dict):
        raise ValueError(f"{what} must be a table")
    _required(raw, FAULT_KEYS, what)
    _no_unknown(raw, FAULT_KEYS, what)
    pool_id = _text(raw, "pool", what)
    if pool_id not in pool_ids:
        raise ValueError(f"{what}: unknown pool {pool_id!r}")
    start, end = raw["start_s"], raw["end_s"]
    for key, value in (("start_s", start), ("end_s", end)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{what} (pool {pool_id!r}): {key} must be a non-negative number, got {value!r}")
    if end <= start:
        raise ValueError(f"{what} (pool {pool_id!r}): end_s must be after start_s")
    return Fault(pool_id, float(start), float(end))


# --- small validators ----------------------------------------------------------------------------


def _table_list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} must be an array of tables ([[{key}]])")
    return value


def _accelerator(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must name a catalogue accelerator, got {value!r}")
    found = catalog.find(value)
    if found is None:
        raise ValueError(f"{what}: unknown accelerator {value!r} (catalogue: {', '.join(catalog.models())})")
    return found.model


def _text(raw: dict[str, Any], key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def _positive_int(raw: dict[str, Any], key: str, what: str) -> int:
    value = raw[key]
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{what}: {key} must be a positive integer, got {value!r}")
    return int(value)


def _bool(raw: dict[str, Any], key: str, what: str, *, default: bool = False) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{what}: {key} must be true or false, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _required(raw: dict[str, Any], keys: set[str], what: str) -> None:
    missing = sorted(keys - set(raw))
    if missing:
        raise ValueError(f"{what}: missing {', '.join(missing)}")


def _no_unknown(raw: dict[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {', '.join(unknown)}")


def _no_duplicates(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"duplicate {what} id {item!r}")
        seen.add(item)
