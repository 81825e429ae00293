"""The node agent end to end: a real server on the test database, the controller cycling, and the agent
(NodeAgent) heartbeating over real HTTP — a CPU-only node and a node whose cards replay a recorded
H200 NVML session. The job runs as a real process with CUDA_VISIBLE_DEVICES set to its cards; its
output reaches the job's logs; its usage record carries what the agent measured."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from suanwang.agent.gpu import NoGpu, Probe, RecordedProbe
from suanwang.agent.node import ControlPlane, NodeAgent
from suanwang.agent.outbox import HttpSender
from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.metering.models import UsageRecord
from suanwang.tenants import service as tenants
from suanwang.timeutil import utcnow
from tests import factories, jobs_world
from tests.browser.harness import ServerThread
from tests.conftest import ADMIN_TOKEN, Api
from tests.jobs_world import PRICE_FROM, ExecWorld, state_is

pytestmark = pytest.mark.db
RECORDING = Path(__file__).parent / "data" / "nvml_h200_recording.json"


@pytest.fixture
def server(settings: Settings, clean_engine: Engine, tmp_path: Path) -> Iterator[tuple[str, ExecWorld]]:
    with session_scope(clean_engine) as session:
        tenants.ensure_regulator_token(session=session, secret=ADMIN_TOKEN, user_name="admin", now=utcnow())
    served = settings.model_copy(update={"serve_controller": False, "data_dir": tmp_path / "server"})
    thread = ServerThread(create_app(served, clean_engine))
    thread.start()
    http = httpx.Client(base_url=thread.origin, timeout=30)
    try:
        api = Api(http, ADMIN_TOKEN)  # type: ignore[arg-type]
        yield thread.origin, jobs_world.build(api, SimpleNamespace(now=None), served, clean_engine)
    finally:
        http.close()
        thread.stop()


def agent_pool(ew: ExecWorld, accelerator: str, cards: int) -> dict[str, Any]:
    site = factories.site(ew.regulator, ew.local_site["provider_id"], backend_kind="agent")
    pool = factories.pool(
        ew.regulator, site["id"], accelerator=accelerator, nodes=1, cards_per_node=max(cards, 1)
    )
    ew.regulator.post(
        f"/pools/{pool['id']}/prices",
        {"price_fen_per_card_hour": 100, "effective_from": PRICE_FROM.isoformat()},
    )
    return pool


def run_job(
    origin: str,
    ew: ExecWorld,
    pool: dict[str, Any],
    probe: Probe,
    tmp_path: Path,
    start: float = 0.0,
    **spec: Any,
) -> dict[str, Any]:
    token = str(ew.operator.token)
    ticks = iter(range(10_000))
    agent = NodeAgent(
        ControlPlane(origin, token),
        pool_id=pool["id"],
        probe=probe,
        directory=tmp_path / "agent",
        sender=HttpSender(origin, token),
        hostname="node-under-test",
        monotonic=lambda: start + next(ticks),  # one second per step, as the recording was sampled
    )
    agent.register()
    job = ew.submit(**spec)
    deadline = time.monotonic() + 30
    while True:
        ew.cycle()
        agent.step()
        found = ew.job(job["id"])
        if state_is("succeeded", "failed")(found) and not agent.runner.launches:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def usage_of(engine: Engine, job_id: int) -> UsageRecord:
    with session_scope(engine) as session:
        record = session.scalar(select(UsageRecord).where(UsageRecord.job_id == job_id))
        assert record is not None
        session.expunge(record)
        return record


def test_a_cpu_node_runs_a_job_and_meters_its_cpu_time(server: tuple[str, ExecWorld], tmp_path: Path) -> None:
    origin, ew = server
    pool = agent_pool(ew, "H800", 0)
    command = [
        "python3",
        "-c",
        "import sys; sum(range(3_000_000)); print('hello from the agent'); sys.exit(0)",
    ]
    job = run_job(origin, ew, pool, NoGpu(), tmp_path, cards=0, accelerators=["H800"], command=command)
    assert job["state"] == "succeeded" and job["pool_id"] == pool["id"]
    assert "hello from the agent" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs").text
    usage = usage_of(ew.engine, job["id"])
    assert usage.source == "event"  # the agent's usage event arrived before it reported the end
    assert usage.measured is not None and usage.measured["cpu_seconds"] is not None
    assert usage.measured["energy_j"] is None  # no cards: nothing to read energy from


def test_a_gpu_node_runs_on_its_cards_and_meters_energy(
    server: tuple[str, ExecWorld], tmp_path: Path
) -> None:
    origin, ew = server
    pool = agent_pool(ew, "H200", 2)
    probe = RecordedProbe.from_file(RECORDING)
    start = json.loads(RECORDING.read_text())["samples"][0][0]["at_s"]  # the recording's own clock
    command = ["sh", "-c", "echo cards=$CUDA_VISIBLE_DEVICES; sleep 1"]
    job = run_job(origin, ew, pool, probe, tmp_path, start, cards=2, accelerators=["H200"], command=command)
    assert job["state"] == "succeeded"
    assert "cards=0,1" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs").text
    node = ew.operator.get("/agent/nodes")[0]
    assert node["card_count"] == 2 and node["cards"][0]["model"] == "H200"
    usage = usage_of(ew.engine, job["id"])
    measured = usage.measured or {}
    assert measured["energy_j"] > 0 and measured["peak_memory_mib"] >= 571
    assert 0 <= measured["mean_utilization_pct"] <= 100
    assert usage.cards == 2 and usage.card_seconds == job["card_seconds"]


def test_an_agent_restart_stops_the_old_process_and_the_job_runs_again(
    server: tuple[str, ExecWorld], tmp_path: Path
) -> None:
    origin, ew = server
    pool = agent_pool(ew, "H800", 0)
    token = str(ew.operator.token)

    def agent() -> NodeAgent:
        return NodeAgent(
            ControlPlane(origin, token),
            pool_id=pool["id"],
            probe=NoGpu(),
            directory=tmp_path / "agent",
            sender=HttpSender(origin, token),
            hostname="restarting-node",
        )

    marker = tmp_path / "first-attempt-pid"
    # The first attempt writes its pid and sleeps; a later one finds the marker and ends at once.
    script = (
        f"import os, pathlib, time; m = pathlib.Path({str(marker)!r})\n"
        "if m.exists(): print('second attempt'); raise SystemExit(0)\n"
        "m.write_text(str(os.getpid())); time.sleep(120)\n"
    )
    job = ew.submit(cards=0, accelerators=["H800"], command=["python3", "-c", script])
    first = agent()
    first.register()
    deadline = time.monotonic() + 30
    while not marker.exists():
        ew.cycle()
        first.step()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.step()  # the control plane hears it is running
    ew.cycle()
    old_pid = int(marker.read_text())
    assert ew.job(job["id"])["state"] == "running"

    second = agent()  # the agent process died and came back: the first one is simply abandoned
    assert second.runner.left_behind and old_pid_gone(old_pid)
    deadline = time.monotonic() + 30
    while not state_is("succeeded", "failed")(found := ew.job(job["id"])) or second.runner.launches:
        ew.cycle()
        second.step()
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert found["state"] == "succeeded" and found["attempt"] >= 1
    assert "second attempt" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs").text
    events = ew.tenant.get(f"/jobs/{job['id']}/events")
    assert any(e["to_state"] == "lost" for e in events)


def old_pid_gone(pid: int) -> bool:
    """The abandoned launch's process ended (it was this test's grandchild, so init reaps it)."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}").exists() else ""
        if "State:\tZ" in status:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
