"""Node agents' side of the control plane: register a node, take its heartbeat (state reports in,
assignments and cancellations out), and keep the output it streams. Every call is idempotent: an agent
may resend anything after a timeout."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.db.query import get_or_404
from suanwang.errors import Conflict, Invalid, NotFound
from suanwang.nodes.models import Node, NodeLaunch, NodeLogChunk
from suanwang.nodes.schemas import Calibration, Heartbeat, LaunchReport, NodeRegister
from suanwang.supply.models import BackendKind, Pool, Site
from suanwang.tenants.access import Principal, require_operates

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "lost"})
_NONE = SimpleNamespace(state="")  # a report of a launch this node does not have
ACTIVE = ("pending", "running")


def alive(node: Node, now: datetime, lost_after_s: float) -> bool:
    return node.last_heartbeat_at >= now - timedelta(seconds=lost_after_s)


def register(session: Session, *, principal: Principal, data: NodeRegister, now: datetime) -> Node:
    """Add the node to its pool, or update what it reports about itself (same pool and hostname)."""
    pool = get_or_404(session, Pool, data.pool_id, what="pool")
    require_operates(principal, pool.site.provider_id)
    if pool.retired or pool.site.backend_kind is not BackendKind.AGENT:
        raise Invalid("agent.not-agent-pool", pool=pool.code, kind=pool.site.backend_kind.value)
    cards = [card.model_dump() for card in data.cards]
    node = session.scalar(select(Node).where(Node.pool_id == pool.id, Node.hostname == data.hostname))
    if node is None:
        node = Node(pool_id=pool.id, hostname=data.hostname, registered_at=now)
        session.add(node)
    node.cards = cards
    node.card_count = len(cards)
    node.cpu_count = data.cpu_count
    node.driver_version = next((c["driver_version"] for c in cards if c.get("driver_version")), None)
    node.agent_version = data.agent_version
    node.last_heartbeat_at = now
    session.flush()
    return node


def get_node(session: Session, *, principal: Principal, node_id: int) -> Node:
    node = session.get(Node, node_id)
    if node is None or not principal.operates(session.get_one(Pool, node.pool_id).site.provider_id):
        raise NotFound("not-found", what="node", id=node_id)
    return node


def list_nodes(session: Session, *, principal: Principal, pool_id: int | None = None) -> list[Node]:
    """The nodes the principal operates, in one query with each node's provider (one per pool before)."""
    stmt = (
        select(Node, Site.provider_id).join(Pool, Pool.id == Node.pool_id).join(Site, Site.id == Pool.site_id)
    )
    if pool_id is not None:
        stmt = stmt.where(Node.pool_id == pool_id)
    return [
        node
        for node, provider_id in session.execute(stmt.order_by(Node.id))
        if principal.operates(provider_id)
    ]


def calibrate(
    session: Session, *, principal: Principal, node_id: int, data: Calibration, now: datetime
) -> Node:
    """Keep what the node's cards measured beside the datasheet (the last calibration counts)."""
    node = get_node(session, principal=principal, node_id=node_id)
    indices = {c["index"] for c in node.cards}
    unknown = [c.index for c in data.cards if c.index is not None and c.index not in indices]
    if unknown:
        raise Invalid(
            "agent.calibration-unknown-card", cards=", ".join(map(str, unknown)), node=node.hostname
        )
    node.calibration = {"cards": [c.model_dump() for c in data.cards]}
    node.calibrated_at = now
    session.flush()
    return node


def measured_by_pool(session: Session) -> dict[int, tuple[int, Decimal]]:
    """Per pool: how many cards their node agents calibrated, and the TFLOPS those cards measured
    (the CPU figure of a node without cards is not compute the pool sells)."""
    measured: dict[int, tuple[int, Decimal]] = {}
    for pool_id, calibration in session.execute(
        select(Node.pool_id, Node.calibration).where(Node.calibration.is_not(None))
    ):
        cards = [c for c in calibration["cards"] if c.get("index") is not None]
        count, total = measured.get(pool_id, (0, Decimal(0)))
        tflops = sum((Decimal(str(c["median_tflops"])) for c in cards), Decimal(0))
        measured[pool_id] = (count + len(cards), total + tflops)
    return measured


def heartbeat(
    session: Session, *, principal: Principal, node_id: int, data: Heartbeat, now: datetime
) -> tuple[list[NodeLaunch], list[str]]:
    """Take the node's reports; answer what it should start and what it should stop."""
    node = get_node(session, principal=principal, node_id=node_id)
    node.last_heartbeat_at = now
    launches = {
        launch.name: launch
        for launch in session.scalars(
            select(NodeLaunch).where(
                NodeLaunch.node_id == node.id, NodeLaunch.name.in_([r.name for r in data.reports])
            )
        )
    }
    for report in data.reports:
        if (launch := launches.get(report.name)) is not None:
            _apply(launch, report)
    mine = list(
        session.scalars(select(NodeLaunch).where(NodeLaunch.node_id == node.id, NodeLaunch.state.in_(ACTIVE)))
    )
    reported = {r.name for r in data.reports}
    # The agent reports every launch it runs until their end is acknowledged: one it said was running
    # and now leaves out, it no longer knows (it restarted, and stopped what its last life left behind).
    for launch in mine:
        if launch.state == "running" and launch.name not in reported:
            launch.state, launch.ended_at = "lost", now
            launch.message = "the node's agent restarted and no longer runs it"
    mine = [launch for launch in mine if launch.state in ACTIVE]
    start = [n for n in mine if n.state == "pending" and n.name not in reported and not n.cancel_requested]
    cancel = [n.name for n in mine if n.cancel_requested]
    # Ended here but still running there (given up on while the node was silent, or cancelled before
    # the node said it had started it): the node must stop it.
    cancel += [
        r.name for r in data.reports if r.state == "running" and launches.get(r.name, _NONE).state in TERMINAL
    ]
    session.flush()
    return start, cancel


def _apply(launch: NodeLaunch, report: LaunchReport) -> None:
    """Forward only: a late or repeated report never moves a launch back."""
    if launch.state in TERMINAL:
        return
    launch.started_at = launch.started_at or report.started_at
    launch.state = report.state
    if report.state in TERMINAL:
        launch.ended_at = report.ended_at or launch.started_at
        launch.exit_code = report.exit_code
        launch.message = report.message


def append_log(session: Session, *, principal: Principal, name: str, offset: int, data: bytes) -> int:
    """Append output at `offset`; a resent piece is skipped, a gap is refused. Returns the new length."""
    launch = session.scalar(select(NodeLaunch).where(NodeLaunch.name == name))
    try:
        if launch is None:
            raise NotFound("not-found", what="launch", id=name)
        get_node(session, principal=principal, node_id=launch.node_id)
    except NotFound:
        # Another provider's launch answers exactly as one that does not exist (nor names its node).
        raise NotFound("not-found", what="launch", id=name) from None
    if offset > launch.log_bytes:
        raise Conflict("agent.log-gap", name=name, offset=offset, expected=launch.log_bytes)
    fresh = data[launch.log_bytes - offset :]
    if fresh:
        session.add(NodeLogChunk(launch_name=name, offset=launch.log_bytes, data=fresh))
        launch.log_bytes += len(fresh)
    session.flush()
    return launch.log_bytes


def read_log(session: Session, name: str, tail_bytes: int | None = None) -> bytes:
    """A launch's output so far (the last `tail_bytes` if given)."""
    stmt = select(NodeLogChunk.data).where(NodeLogChunk.launch_name == name).order_by(NodeLogChunk.offset)
    data = b"".join(session.scalars(stmt))
    return data if tail_bytes is None else data[-tail_bytes:]


def active_cards(session: Session, node_ids: Sequence[int]) -> dict[int, set[int]]:
    """The card indices in use on each node (its pending and running launches)."""
    used: dict[int, set[int]] = {node_id: set() for node_id in node_ids}
    if not node_ids:
        return used
    rows = session.execute(
        select(NodeLaunch.node_id, NodeLaunch.card_indices).where(
            NodeLaunch.node_id.in_(list(node_ids)), NodeLaunch.state.in_(ACTIVE)
        )
    )
    for node_id, indices in rows:
        used[node_id].update(indices)
    return used
