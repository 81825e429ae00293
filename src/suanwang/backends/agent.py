"""The backend of agent sites: launches are rows the node agents pull by heartbeat.

`submit` assigns the launch to a live node of its pool with enough free cards (lowest card indices
first); the agent starts it on its next heartbeat and reports back; `poll` reads those reports. A node
that has not heartbeated for `lost_after_s` has its launches declared LOST, so the controller requeues
their jobs; if the node comes back, its next heartbeat tells it to stop them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from suanwang.audit.capture import controller_actor
from suanwang.backends.protocol import (
    BackendRejected,
    BackendUnavailable,
    Capacity,
    LaunchSpec,
    Observation,
    RemoteState,
)
from suanwang.db.session import session_factory
from suanwang.jobs.models import Launch
from suanwang.nodes import service as nodes
from suanwang.nodes.models import Node, NodeLaunch
from suanwang.supply.models import Pool
from suanwang.timeutil import utcnow

STATES = {
    "pending": RemoteState.PENDING,
    "running": RemoteState.RUNNING,
    "succeeded": RemoteState.SUCCEEDED,
    "failed": RemoteState.FAILED,
    "cancelled": RemoteState.CANCELLED,
    "lost": RemoteState.LOST,
}


class AgentBackend:
    kind = "agent"

    def __init__(self, engine: Engine, site_id: int, *, lost_after_s: float) -> None:
        self._sessions = session_factory(engine, actor=controller_actor())
        self.site_id = site_id
        self.lost_after_s = lost_after_s

    def _live_nodes(self, session: Session, pool_id: int | None = None) -> list[Node]:
        cutoff = utcnow() - timedelta(seconds=self.lost_after_s)
        stmt = (
            select(Node)
            .join(Pool, Pool.id == Node.pool_id)
            .where(Pool.site_id == self.site_id, Node.last_heartbeat_at >= cutoff)
        )
        if pool_id is not None:
            stmt = stmt.where(Node.pool_id == pool_id)
        return list(session.scalars(stmt.order_by(Node.id)))

    def capacity(self) -> Capacity:
        with self._sessions() as session:
            live = self._live_nodes(session)
            used = nodes.active_cards(session, [n.id for n in live])
            total = sum(n.card_count for n in live)
            free = sum(n.card_count - len(used[n.id]) for n in live)
            return Capacity(cards_total=total, cards_free=max(free, 0), healthy=bool(live))

    def submit(self, spec: LaunchSpec) -> str:
        with self._sessions() as session:
            if session.scalar(select(NodeLaunch.id).where(NodeLaunch.name == spec.name)) is not None:
                return spec.name  # sent before a crash: the same launch, not a second one
            pool_id = session.scalar(select(Launch.pool_id).where(Launch.name == spec.name))
            if pool_id is None:
                raise BackendRejected(f"no launch named {spec.name} was recorded")
            if spec.nodes > 1:
                raise BackendRejected("agent sites run a job on one node; ask for at most one node's cards")
            live = self._live_nodes(session, pool_id)
            if not live:
                raise BackendUnavailable("no node agent of this pool has heartbeated recently")
            used = nodes.active_cards(session, [n.id for n in live])
            for node in live:
                free = [i for i in range(node.card_count) if i not in used[node.id]]
                if len(free) >= spec.cards:
                    session.add(
                        NodeLaunch(
                            name=spec.name,
                            node_id=node.id,
                            command=list(spec.command),
                            env=dict(spec.env),
                            workdir=spec.workdir,
                            cards=spec.cards,
                            card_indices=free[: spec.cards],
                            time_limit_s=spec.time_limit_s,
                            state="pending",
                            assigned_at=utcnow(),
                        )
                    )
                    session.commit()
                    return spec.name
            raise BackendRejected(f"no live node of this pool has {spec.cards} free cards")

    def find(self, name: str) -> str | None:
        with self._sessions() as session:
            found = session.scalar(select(NodeLaunch.name).where(NodeLaunch.name == name))
            return found

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        now = utcnow()
        with self._sessions() as session:
            rows = {
                launch.name: launch
                for launch in session.scalars(select(NodeLaunch).where(NodeLaunch.name.in_(list(handles))))
            }
            beats = dict(
                session.execute(
                    select(Node.id, Node.last_heartbeat_at).where(
                        Node.id.in_({launch.node_id for launch in rows.values()})
                    )
                ).all()
            )
            seen: dict[str, Observation] = {}
            for handle in handles:
                launch = rows.get(handle)
                if launch is None:
                    seen[handle] = Observation(
                        handle=handle, state=RemoteState.LOST, message="never assigned"
                    )
                    continue
                silent = beats[launch.node_id] < now - timedelta(seconds=self.lost_after_s)
                if launch.state in ("pending", "running") and silent:
                    launch.state = "lost"  # its node's next heartbeat, if any, is told to stop it
                    launch.message = f"the node stopped heartbeating for {self.lost_after_s:.0f} s"
                seen[handle] = Observation(
                    handle=handle,
                    state=STATES[launch.state],
                    started_at=launch.started_at,
                    ended_at=launch.ended_at,
                    exit_code=launch.exit_code,
                    cards=launch.cards,
                    message=launch.message,
                )
            session.commit()
            return seen

    def cancel(self, handle: str) -> None:
        with self._sessions() as session:
            launch = session.scalar(select(NodeLaunch).where(NodeLaunch.name == handle))
            if launch is None or launch.state not in ("pending", "running"):
                return
            launch.cancel_requested = True
            if launch.state == "pending":  # not started as far as we know: it ends here; if the node
                launch.state = "cancelled"  # did start it, its next report is answered with a cancel
                launch.ended_at = utcnow()
            session.commit()

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        with self._sessions() as session:
            return nodes.read_log(session, handle, tail_bytes)

    def close(self) -> None:
        pass
