"""Which backend serves a site: built from the site's backend kind and its private connection settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from suanwang.backends.local import LocalBackend
from suanwang.backends.protocol import Backend
from suanwang.backends.simulated import SimulatedBackend

if TYPE_CHECKING:
    from suanwang.supply.models import Site


def make_backend(
    kind: str,
    connection: dict[str, Any],
    *,
    data_dir: Path,
    site_code: str,
    cards: int,
    agents: AgentSites | None = None,
    site_id: int | None = None,
) -> Backend:
    """A backend for one site. `cards` is the registered size (what a simulated site pretends to have);
    agent sites need the database their agents report to (`agents`) and the site's id."""
    connection = dict(connection or {})
    if kind == "agent":
        if agents is None or site_id is None:
            raise ValueError("an agent site's backend needs the database its node agents report to")
        from suanwang.backends.agent import AgentBackend

        return AgentBackend(agents.engine, site_id, lost_after_s=agents.lost_after_s)
    launches = Path(data_dir) / "launches" / site_code
    if kind == "local":
        connection.setdefault("root", str(launches))
        return LocalBackend.from_connection(connection, Path(data_dir))
    if kind == "simulated":
        connection.setdefault("root", str(launches))
        return SimulatedBackend.from_connection(connection, Path(data_dir), cards)
    if kind == "slurm":
        from suanwang.backends.slurm import SlurmBackend

        connection.setdefault("log_dir", str(launches))
        return SlurmBackend.from_connection(connection, Path(data_dir))
    if kind == "ray":
        from suanwang.backends.ray import RayBackend

        return RayBackend.from_connection(connection, Path(data_dir))
    raise ValueError(f"no backend for site kind {kind!r}")


@dataclass(frozen=True, slots=True)
class AgentSites:
    """Where agent sites' node agents report (the control plane's database) and when a node is lost."""

    engine: Engine
    lost_after_s: float


def backend_for_site(site: Site, *, data_dir: Path, cards: int, agents: AgentSites | None = None) -> Backend:
    """The backend of a stored site, from its kind and connection settings."""
    return make_backend(
        site.backend_kind.value,
        site.connection,
        data_dir=data_dir,
        site_code=site.code,
        cards=cards,
        agents=agents,
        site_id=site.id,
    )
