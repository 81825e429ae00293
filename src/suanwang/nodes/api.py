"""REST routes of node agents (a provider operator's token): /agent/nodes, heartbeats, output."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from suanwang.api.deps import CtxDep, get_settings
from suanwang.api.schemas import PROBLEM_RESPONSES
from suanwang.config import Settings
from suanwang.errors import PayloadTooLarge
from suanwang.fields import Id
from suanwang.nodes import service
from suanwang.nodes.models import Node
from suanwang.nodes.schemas import Assignment, Calibration, Heartbeat, HeartbeatRead, NodeRead, NodeRegister

SettingsDep = Annotated[Settings, Depends(get_settings)]
router = APIRouter(prefix="/agent", tags=["node agents"], responses=PROBLEM_RESPONSES)
MAX_LOG_CHUNK = 1024 * 1024


def _read(node: Node, settings: Settings, ctx: CtxDep) -> NodeRead:
    read = NodeRead.model_validate(node)
    read.alive = service.alive(node, ctx.now, settings.agent_lost_after_s)
    read.heartbeat_s = settings.agent_heartbeat_s
    return read


@router.post("/nodes", response_model=NodeRead)
def register_node(body: NodeRegister, ctx: CtxDep, settings: SettingsDep) -> NodeRead:
    """Register this node into its pool (an agent site), or update it: same pool and hostname."""
    node = service.register(ctx.session, principal=ctx.principal, data=body, now=ctx.now)
    read = _read(node, settings, ctx)
    ctx.session.commit()
    return read


@router.get("/nodes", response_model=list[NodeRead])
def list_nodes(ctx: CtxDep, settings: SettingsDep, pool_id: Id | None = None) -> list[NodeRead]:
    """Nodes of the pools you operate (the regulator: all), with whether each is alive."""
    return [
        _read(n, settings, ctx)
        for n in service.list_nodes(ctx.session, principal=ctx.principal, pool_id=pool_id)
    ]


@router.post("/nodes/{node_id}/calibration", response_model=NodeRead)
def calibration(node_id: Id, body: Calibration, ctx: CtxDep, settings: SettingsDep) -> NodeRead:
    """Report what `suanwang agent calibrate` measured on the node's cards: capacity reports then
    show verified PFLOPS beside the datasheet's."""
    node = service.calibrate(ctx.session, principal=ctx.principal, node_id=node_id, data=body, now=ctx.now)
    read = _read(node, settings, ctx)
    ctx.session.commit()
    return read


@router.post("/nodes/{node_id}/heartbeat", response_model=HeartbeatRead)
def heartbeat(node_id: Id, body: Heartbeat, ctx: CtxDep, settings: SettingsDep) -> HeartbeatRead:
    """Report the state of the node's launches; get what to start and what to stop."""
    start, cancel = service.heartbeat(
        ctx.session, principal=ctx.principal, node_id=node_id, data=body, now=ctx.now
    )
    answer = HeartbeatRead(
        start=[Assignment.model_validate(launch, from_attributes=True) for launch in start],
        cancel=cancel,
        heartbeat_s=settings.agent_heartbeat_s,
    )
    ctx.session.commit()
    return answer


async def log_chunk(request: Request) -> bytes:
    """The request body, refused past MAX_LOG_CHUNK before it is all read."""
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > MAX_LOG_CHUNK:
            raise PayloadTooLarge("agent.log-too-large", max=MAX_LOG_CHUNK)
    return bytes(data)


@router.put("/launches/{name}/logs")
def append_log(
    name: str,
    ctx: CtxDep,
    data: Annotated[bytes, Depends(log_chunk)],
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, int]:
    """Append a piece of the launch's output at `offset` (bytes); resending a piece is harmless."""
    length = service.append_log(ctx.session, principal=ctx.principal, name=name, offset=offset, data=data)
    ctx.session.commit()
    return {"length": length}
