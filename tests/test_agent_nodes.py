"""Node agents' control plane: registration, heartbeats carrying assignments and state reports, the
agent backend the controller drives, output streaming, and a silent node's launches declared lost."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.config import Settings
from suanwang.controller import Controller
from suanwang.db.session import session_scope
from suanwang.jobs import snapshot
from suanwang.timeutil import utcnow
from tests import factories, jobs_world
from tests.helpers import assert_problem, statements_sent
from tests.jobs_world import PRICE_FROM, ExecWorld

pytestmark = pytest.mark.db

CARDS = [
    {"index": i, "uuid": f"GPU-{i:04d}", "model": "H800", "memory_mib": 81_559, "driver_version": "580.65"}
    for i in range(2)
]


class AgentWorld:
    def __init__(self, ew: ExecWorld) -> None:
        self.ew = ew
        self.site = factories.site(ew.regulator, ew.local_site["provider_id"], backend_kind="agent")
        self.pool = factories.pool(
            ew.regulator, self.site["id"], accelerator="H800", nodes=1, cards_per_node=2
        )
        ew.regulator.post(
            f"/pools/{self.pool['id']}/prices",
            {"price_fen_per_card_hour": 100, "effective_from": PRICE_FROM.isoformat()},
        )
        self.operator = ew.operator  # operates the provider of the local site, and so of this one

    def register(self, hostname: str = "gpu-node-1", cards: list[dict[str, Any]] = CARDS) -> dict[str, Any]:
        body = {"pool_id": self.pool["id"], "hostname": hostname, "cards": cards, "cpu_count": 64}
        return dict(self.operator.post("/agent/nodes", body, expect=200))

    def heartbeat(self, node_id: int, *reports: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.operator.post(f"/agent/nodes/{node_id}/heartbeat", {"reports": list(reports)}, expect=200)
        )

    def submit(self, cards: int = 1) -> dict[str, Any]:
        return self.ew.submit(cards=cards, accelerators=["H800"], command=["python3", "train.py"])


@pytest.fixture
def aw(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> AgentWorld:
    return AgentWorld(jobs_world.build(regulator, clock, settings, clean_engine))


def launch_of(aw: AgentWorld, job_id: int) -> str:
    return f"{aw.ew.regulator.get(f'/jobs/{job_id}')['id']}"


def test_a_node_registers_into_an_agent_pool_once(aw: AgentWorld) -> None:
    node = aw.register()
    assert node["card_count"] == 2 and node["alive"] and node["driver_version"] == "580.65"
    again = aw.register(cards=CARDS[:1])
    assert again["id"] == node["id"] and again["card_count"] == 1  # same pool and hostname: updated
    listed = aw.operator.get("/agent/nodes")
    assert [n["id"] for n in listed] == [node["id"]]


def test_listing_nodes_costs_the_same_queries_for_one_pool_or_three_and_shows_only_ones_own(
    aw: AgentWorld, clean_engine: Engine
) -> None:
    # Each node's pool and site were read on their own: the listing grew a query per pool.
    def listed(caller: Any) -> tuple[list[int], int]:
        with statements_sent(clean_engine, signing_in=False) as statements:
            nodes = caller.get("/agent/nodes")
        return [node["id"] for node in nodes], len(statements)

    first = aw.register("node-a")["id"]
    one_pool, queries_for_one = listed(aw.operator)
    more = []
    for n in range(2):
        pool = factories.pool(aw.ew.regulator, aw.site["id"], accelerator="H800", nodes=1, cards_per_node=2)
        body = {"pool_id": pool["id"], "hostname": f"node-{n}", "cards": CARDS}
        more.append(aw.operator.post("/agent/nodes", body, expect=200)["id"])
    three_pools, queries_for_three = listed(aw.operator)
    assert one_pool == [first] and three_pools == [first, *more]
    assert queries_for_three == queries_for_one
    assert listed(aw.ew.regulator)[0] == three_pools
    stranger = factories.provider(aw.ew.regulator)
    operator = factories.user(aw.ew.regulator, role="provider_operator", provider_id=stranger["id"])
    assert listed(aw.ew.regulator.as_(factories.token_for(aw.ew.regulator, operator["id"])))[0] == []


def test_registration_is_refused_outside_the_operators_scope_and_for_other_pools(aw: AgentWorld) -> None:
    body = {"pool_id": aw.pool["id"], "hostname": "n", "cards": CARDS}
    assert_problem(aw.ew.tenant.call("POST", "/agent/nodes", json=body), 403, "access.not-your-provider")
    local = {"pool_id": aw.ew.local_pool["id"], "hostname": "n", "cards": CARDS}
    answer = assert_problem(aw.operator.call("POST", "/agent/nodes", json=local), 422, "agent.not-agent-pool")
    assert "node agents" in answer["detail"]
    assert aw.operator.get("/agent/nodes") == []


def test_a_job_on_an_agent_pool_runs_through_heartbeats(aw: AgentWorld) -> None:
    node = aw.register()
    job = aw.submit(cards=2)
    aw.ew.cycle()  # the controller places it and assigns it to the node
    answer = aw.heartbeat(node["id"])
    [start] = answer["start"]
    assert start["card_indices"] == [0, 1] and start["command"] == ["python3", "train.py"]
    assert aw.heartbeat(node["id"])["start"] == [start]  # repeated until the agent reports it
    name = start["name"]
    began = "2026-01-01T00:00:00+00:00"
    assert aw.heartbeat(node["id"], {"name": name, "state": "running", "started_at": began})["start"] == []
    aw.ew.cycle()
    assert aw.ew.job(job["id"])["state"] == "running"
    aw.operator.call(
        "PUT", f"/agent/launches/{name}/logs", params={"offset": 0}, content=b"epoch 1\n", expect=200
    )
    aw.heartbeat(
        node["id"],
        {
            "name": name,
            "state": "succeeded",
            "started_at": began,
            "ended_at": "2026-01-01T00:10:00+00:00",
            "exit_code": 0,
        },
    )
    aw.ew.cycle()
    done = aw.ew.job(job["id"])
    assert done["state"] == "succeeded" and done["card_seconds"] == 2 * 600
    assert aw.ew.tenant.call("GET", f"/jobs/{job['id']}/logs").text == "epoch 1\n"


def test_output_pieces_resent_or_out_of_order(aw: AgentWorld) -> None:
    node = aw.register()
    aw.submit()
    aw.ew.cycle()
    name = aw.heartbeat(node["id"])["start"][0]["name"]

    def put(offset: int, data: bytes, expect: int = 200) -> Any:
        return aw.operator.call(
            "PUT", f"/agent/launches/{name}/logs", params={"offset": offset}, content=data, expect=expect
        )

    assert put(0, b"hello ").json() == {"length": 6}
    assert put(0, b"hello ").json() == {"length": 6}  # a resend changes nothing
    assert put(3, b"lo world\n").json() == {"length": 12}  # overlapping: only the new part is kept
    gap = assert_problem(put(20, b"x", expect=409), 409, "agent.log-gap")
    assert "Send from byte 12" in gap["detail"]
    assert (
        aw.ew.regulator.call("GET", f"/jobs/{aw.ew.tenant.get('/jobs')['items'][0]['id']}/logs").text
        == "hello world\n"
    )
    other = aw.ew.other.call("PUT", f"/agent/launches/{name}/logs", params={"offset": 12}, content=b"x")
    assert other.status_code in (403, 404)


def test_a_silent_node_loses_its_launches_and_the_job_is_requeued(aw: AgentWorld, settings: Settings) -> None:
    node = aw.register()
    job = aw.submit()
    aw.ew.cycle()
    name = aw.heartbeat(node["id"])["start"][0]["name"]
    aw.heartbeat(node["id"], {"name": name, "state": "running", "started_at": "2026-01-01T00:00:00+00:00"})
    # 2 s: long enough that a loaded machine still cycles within it after the heartbeat.
    impatient = Controller(settings.model_copy(update={"agent_lost_after_s": 2.0}), aw.ew.engine)
    try:
        aw.ew.cycle(impatient)
        assert aw.ew.job(job["id"])["state"] == "running"  # it heartbeated just now
        time.sleep(2.3)
        aw.ew.cycle(impatient)
        requeued = aw.ew.job(job["id"])
        assert requeued["state"] in ("queued", "placed") and requeued["attempt"] >= 1
        events = aw.ew.tenant.get(f"/jobs/{job['id']}/events")
        assert any(e["to_state"] == "lost" for e in events)
    finally:
        impatient.backends.close()
    late = aw.heartbeat(
        node["id"], {"name": name, "state": "running", "started_at": "2026-01-01T00:00:00+00:00"}
    )
    assert name in late["cancel"]  # the node came back: it must stop the launch given up on


def test_a_restarted_agent_that_no_longer_reports_a_launch_has_it_lost_and_requeued(aw: AgentWorld) -> None:
    node = aw.register()
    job = aw.submit()
    aw.ew.cycle()
    name = aw.heartbeat(node["id"])["start"][0]["name"]
    running = {"name": name, "state": "running", "started_at": "2026-01-01T00:00:00+00:00"}
    aw.heartbeat(node["id"], running)
    aw.ew.cycle()
    assert aw.ew.job(job["id"])["state"] == "running"
    # The agent restarts: it registers again and heartbeats without the launch (it stopped it).
    assert aw.register()["id"] == node["id"]
    answer = aw.heartbeat(node["id"])
    assert name not in [a["name"] for a in answer["start"]]  # not started again under the same name
    aw.ew.cycle()
    requeued = aw.ew.job(job["id"])
    assert requeued["state"] in ("queued", "placed") and requeued["attempt"] >= 1
    lost = [e for e in aw.ew.tenant.get(f"/jobs/{job['id']}/events") if e["to_state"] == "lost"]
    assert lost and "restarted" in json.dumps(lost)
    # A pending launch the agent never reported is simply sent again.
    aw.ew.cycle()
    again = aw.heartbeat(node["id"])["start"]
    assert [a["name"] for a in again] == [a["name"] for a in aw.heartbeat(node["id"])["start"]] != [name]


def test_cancel_reaches_the_node(aw: AgentWorld) -> None:
    node = aw.register()
    job = aw.submit()
    aw.ew.cycle()
    name = aw.heartbeat(node["id"])["start"][0]["name"]
    aw.heartbeat(node["id"], {"name": name, "state": "running", "started_at": "2026-01-01T00:00:00+00:00"})
    aw.ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    aw.ew.cycle()
    assert name in aw.heartbeat(node["id"], {"name": name, "state": "running"})["cancel"]
    aw.heartbeat(node["id"], {"name": name, "state": "cancelled", "ended_at": "2026-01-01T00:01:00+00:00"})
    aw.ew.cycle()
    assert aw.ew.job(job["id"])["state"] == "cancelled"


def test_calibration_puts_verified_pflops_beside_the_datasheet(aw: AgentWorld) -> None:
    node = aw.register()
    measured = [
        {"index": 0, "model": "H800", "dtype": "bf16", "n": 16384, "median_tflops": 701.5},
        {"index": 1, "model": "H800", "dtype": "bf16", "n": 16384, "median_tflops": 698.5},
    ]
    stored = aw.operator.post(f"/agent/nodes/{node['id']}/calibration", {"cards": measured}, expect=200)
    assert stored["calibration"]["cards"][0]["median_tflops"] == 701.5 and stored["calibrated_at"]
    report = aw.ew.regulator.get("/capacity", params={"group_by": "accelerator"})
    h800 = next(r for r in report["rows"] if r["key"]["accelerator"] == "H800")
    assert h800["verified_cards"] == 2 and h800["verified_pflops"] == 1.4  # (701.5 + 698.5) / 1000
    assert h800["pflops"] == pytest.approx(2 * 989.4 / 1000, abs=0.001)  # the datasheet, unchanged
    assert report["total"]["verified_pflops"] == 1.4
    again = [dict(measured[0], median_tflops=650.0)]
    aw.operator.post(f"/agent/nodes/{node['id']}/calibration", {"cards": again}, expect=200)
    after = aw.ew.regulator.get("/capacity", params={"group_by": "accelerator"})
    assert (
        next(r for r in after["rows"] if r["key"]["accelerator"] == "H800")["verified_cards"] == 1
    )  # the last one counts


def test_calibrations_set_the_schedulers_throughput_of_their_pools(aw: AgentWorld) -> None:
    # A second agent pool, of A800s. Its cards reach 96% of their datasheet, the H800s half of theirs:
    # against the typical card (73%) the H800 pool runs at 0.69 of its datasheet ratio, the A800 at 1.31.
    a800 = factories.pool(aw.ew.regulator, aw.site["id"], accelerator="A800", nodes=1, cards_per_node=1)
    aw.ew.regulator.post(
        f"/pools/{a800['id']}/prices",
        {"price_fen_per_card_hour": 80, "effective_from": PRICE_FROM.isoformat()},
    )
    h800_node = aw.register()
    a800_card = dict(CARDS[0], model="A800")
    a800_node = aw.operator.post(
        "/agent/nodes", {"pool_id": a800["id"], "hostname": "a800-node", "cards": [a800_card]}, expect=200
    )

    def throughputs() -> dict[int, float]:
        with session_scope(aw.ew.engine) as session:
            live = snapshot.live_pools(session, utcnow())
            return {pool_id: live[pool_id].throughput for pool_id in (aw.pool["id"], a800["id"])}

    assert throughputs() == {aw.pool["id"]: 1.0, a800["id"]: 1.0}  # nothing measured: the datasheet
    h800 = [
        {"index": i, "model": "H800", "dtype": "bf16", "n": 16384, "median_tflops": 494.7} for i in (0, 1)
    ]
    a800_measured = [{"index": 0, "model": "A800", "dtype": "bf16", "n": 16384, "median_tflops": 299.52}]
    aw.operator.post(f"/agent/nodes/{h800_node['id']}/calibration", {"cards": h800}, expect=200)
    assert throughputs() == {aw.pool["id"]: 1.0, a800["id"]: 1.0}  # one pool measured is the typical one
    aw.operator.post(f"/agent/nodes/{a800_node['id']}/calibration", {"cards": a800_measured}, expect=200)
    got = throughputs()
    assert got[aw.pool["id"]] == pytest.approx(0.5 / 0.73) and got[a800["id"]] == pytest.approx(0.96 / 0.73)


def test_a_calibration_of_cards_the_node_lacks_is_refused(aw: AgentWorld) -> None:
    node = aw.register()
    bad = [{"index": 7, "model": "H800", "dtype": "bf16", "n": 8192, "median_tflops": 700.0}]
    problem = assert_problem(
        aw.operator.call("POST", f"/agent/nodes/{node['id']}/calibration", json={"cards": bad}),
        422,
        "agent.calibration-unknown-card",
    )
    assert "no card 7" in problem["detail"]
    other = aw.ew.other.call("POST", f"/agent/nodes/{node['id']}/calibration", json={"cards": bad})
    assert other.status_code == 404
    assert aw.ew.regulator.get("/capacity")["total"]["verified_cards"] == 0


def test_the_region_overview_shows_verified_pflops(aw: AgentWorld, app: Any) -> None:
    from tests.web_support import Visitor

    node = aw.register()
    measured = [
        {"index": i, "model": "H800", "dtype": "bf16", "n": 16384, "median_tflops": 700.0} for i in (0, 1)
    ]
    page = Visitor(app, aw.ew.regulator.token).get("/region").text
    assert 'id="verified"' not in page  # nothing calibrated: no figure to show
    aw.operator.post(f"/agent/nodes/{node['id']}/calibration", {"cards": measured}, expect=200)
    page = Visitor(app, aw.ew.regulator.token).get("/region").text
    assert 'id="verified"' in page and "1.4 PFLOPS" in page and "on 2 calibrated cards" in page


def test_a_launch_cancelled_before_the_node_starts_it_ends_at_once(aw: AgentWorld) -> None:
    node = aw.register()
    job = aw.submit()
    aw.ew.cycle()
    name = aw.heartbeat(node["id"])["start"][0]["name"]  # handed out, but the node has not said so yet
    aw.ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    aw.ew.cycle()
    aw.ew.cycle()
    assert aw.ew.job(job["id"])["state"] == "cancelled"
    assert aw.heartbeat(node["id"])["start"] == []  # not handed out again
    late = aw.heartbeat(
        node["id"], {"name": name, "state": "running", "started_at": "2026-01-01T00:00:00+00:00"}
    )
    assert late["cancel"] == [name]  # the node had started it after all: it is told to stop
