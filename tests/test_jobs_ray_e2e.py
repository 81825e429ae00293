"""End to end on a real local Ray cluster: submit through the API, the controller runs it as a Ray job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.config import Settings
from tests import factories, jobs_world
from tests.jobs_world import PRICE_FROM, ExecWorld, state_is
from tests.ray_support import RayCluster, start_ray_cluster

pytestmark = pytest.mark.db
RAY_REGION = "ray-lab"


def _ray_pool(ew: ExecWorld, address: str) -> dict[str, Any]:
    """A Ray site with 4 cards, cheaper than every other pool, so the scheduler prefers it."""
    provider = factories.provider(ew.regulator, region=RAY_REGION)
    site = factories.site(ew.regulator, provider["id"], backend_kind="ray", connection={"address": address})
    pool = factories.pool(ew.regulator, site["id"], accelerator="A800", nodes=1, cards_per_node=4)
    ew.regulator.post(
        f"/pools/{pool['id']}/prices",
        {"price_fen_per_card_hour": 100, "effective_from": PRICE_FROM.isoformat()},
    )
    return pool


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def test_a_command_runs_on_ray_with_output_times_and_card_seconds(ew: ExecWorld, ray_cluster: str) -> None:
    pool = _ray_pool(ew, ray_cluster)
    job = ew.submit(command=["sh", "-c", "echo ray says hi; sleep 1"], cards=2, regions=[RAY_REGION])
    done = ew.run_until(job["id"], state_is("succeeded", "failed", "cancelled"), timeout_s=90)
    assert done["state"] == "succeeded" and done["pool_id"] == pool["id"], done
    assert done["started_at"] <= done["ended_at"] and done["exit_code"] == 0
    assert done["card_seconds"] >= 2  # 2 cards × ≥ 1 s
    assert "ray says hi" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs", expect=200).text


def test_a_failing_command_on_ray_ends_failed_with_its_exit_code(ew: ExecWorld, ray_cluster: str) -> None:
    _ray_pool(ew, ray_cluster)
    job = ew.submit(command=["sh", "-c", "exit 3"], cards=1, regions=[RAY_REGION])
    done = ew.run_until(job["id"], state_is("succeeded", "failed", "cancelled"), timeout_s=90)
    assert (done["state"], done["exit_code"]) == ("failed", 3)


def test_cancel_stops_a_running_ray_job(ew: ExecWorld, ray_cluster: str) -> None:
    _ray_pool(ew, ray_cluster)
    job = ew.submit(command=["sleep", "120"], cards=1, regions=[RAY_REGION])
    ew.run_until(job["id"], state_is("running"), timeout_s=90)
    ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    done = ew.run_until(job["id"], state_is("cancelled", "failed", "succeeded"), timeout_s=90)
    assert done["state"] == "cancelled"


@pytest.fixture
def doomed_cluster() -> Iterator[RayCluster]:
    cluster = start_ray_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_killing_the_ray_head_mid_job_requeues_it_and_it_finishes_elsewhere(
    ew: ExecWorld, doomed_cluster: RayCluster
) -> None:
    ew = replace(ew, settings=ew.settings.model_copy(update={"lost_after_s": 1.0}))
    pool = _ray_pool(ew, doomed_cluster.address)
    # A800 on Ray first (cheapest); the simulated A800 pool is where it can go when Ray is gone.
    job = ew.submit(command=["sleep", "120"], cards=1, accelerators=["A800"], duration_estimate_s=600)
    controller = ew.controller()
    running = ew.run_until(job["id"], state_is("running"), controller=controller, timeout_s=90)
    assert running["pool_id"] == pool["id"]
    doomed_cluster.kill_head()
    done = ew.run_until(job["id"], state_is("succeeded", "failed"), controller=controller, timeout_s=120)
    assert done["state"] == "succeeded" and done["pool_id"] == ew.sim_pool["id"] and done["attempt"] == 2
    assert ew.regulator.get(f"/pools/{pool['id']}")["healthy"] is False
    causes = [e["cause"] for e in ew.tenant.get(f"/jobs/{job['id']}/events")]
    assert causes.count("lost") == 1 and "requeued" in causes
