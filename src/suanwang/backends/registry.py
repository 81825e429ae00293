"""Which backend serves a site: built from the site's backend kind and its private connection settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from suanwang.backends.local import LocalBackend
from suanwang.backends.protocol import Backend
from suanwang.backends.simulated import SimulatedBackend

if TYPE_CHECKING:
    from suanwang.supply.models import Site


def make_backend(
    kind: str, connection: dict[str, Any], *, data_dir: Path, site_code: str, cards: int
) -> Backend:
    """A backend for one site. `cards` is the registered size (what a simulated site pretends to have)."""
    connection = dict(connection or {})
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
    raise ValueError(f"no backend for site kind {kind!r} (agent sites are served by node agents)")


def backend_for_site(site: Site, *, data_dir: Path, cards: int) -> Backend:
    """The backend of a stored site, from its kind and connection settings."""
    return make_backend(
        site.backend_kind.value, site.connection, data_dir=data_dir, site_code=site.code, cards=cards
    )
