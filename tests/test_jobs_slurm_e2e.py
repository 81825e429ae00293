"""End to end on the real Slurm cluster (scripts/slurm/ensure.sh): submit through the API, the controller
runs it with sbatch (GPUs as GRES), and observes it with squeue/sacct."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from suanwang.backends.slurm import SlurmBackend
from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.jobs.models import Launch
from tests import factories, jobs_world
from tests.jobs_world import PRICE_FROM, ExecWorld, state_is
from tests.slurm_support import SlurmCluster, ctl

pytestmark = pytest.mark.db
SLURM_REGION = "slurm-lab"


def _slurm_pool(ew: ExecWorld, cluster: SlurmCluster) -> dict[str, Any]:
    """A Slurm site with the cluster's GPUs, cheaper than every other pool, so the scheduler prefers it."""
    provider = factories.provider(ew.regulator, region=SLURM_REGION)
    site = factories.site(
        ew.regulator,
        provider["id"],
        backend_kind="slurm",
        connection={"partition": cluster.partition, "timeout_s": 5},
    )
    pool = factories.pool(ew.regulator, site["id"], accelerator="A800", nodes=1, cards_per_node=cluster.gpus)
    price = {"price_fen_per_card_hour": 100, "effective_from": PRICE_FROM.isoformat()}
    ew.regulator.post(f"/pools/{pool['id']}/prices", price)
    return pool


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def test_a_command_runs_on_slurm_with_output_times_and_card_seconds(
    ew: ExecWorld, slurm_cluster: SlurmCluster
) -> None:
    pool = _slurm_pool(ew, slurm_cluster)
    job = ew.submit(command=["sh", "-c", "echo slurm says hi; sleep 2"], cards=2, regions=[SLURM_REGION])
    done = ew.run_until(job["id"], state_is("succeeded", "failed", "cancelled"), timeout_s=90)
    assert done["state"] == "succeeded" and done["pool_id"] == pool["id"], done
    assert done["started_at"] <= done["ended_at"] and done["exit_code"] == 0
    assert done["card_seconds"] >= 2 * 1  # 2 GPUs × ≥ 1 s as sacct reports them (whole seconds)
    assert "slurm says hi" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs", expect=200).text


def test_a_failing_command_on_slurm_ends_failed_with_its_exit_code(
    ew: ExecWorld, slurm_cluster: SlurmCluster
) -> None:
    _slurm_pool(ew, slurm_cluster)
    job = ew.submit(command=["sh", "-c", "exit 3"], cards=1, regions=[SLURM_REGION])
    done = ew.run_until(job["id"], state_is("succeeded", "failed", "cancelled"), timeout_s=90)
    assert (done["state"], done["exit_code"]) == ("failed", 3)


def test_cancel_stops_a_running_slurm_job(ew: ExecWorld, slurm_cluster: SlurmCluster) -> None:
    _slurm_pool(ew, slurm_cluster)
    job = ew.submit(command=["sleep", "120"], cards=1, regions=[SLURM_REGION])
    ew.run_until(job["id"], state_is("running"), timeout_s=90)
    ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    done = ew.run_until(job["id"], state_is("cancelled", "failed", "succeeded"), timeout_s=90)
    assert done["state"] == "cancelled"


def test_killing_slurmctld_mid_job_requeues_it_elsewhere_and_the_old_run_is_stopped(
    ew: ExecWorld, slurm_cluster: SlurmCluster
) -> None:
    ew = replace(ew, settings=ew.settings.model_copy(update={"lost_after_s": 1.0}))
    pool = _slurm_pool(ew, slurm_cluster)
    job = ew.submit(command=["sleep", "120"], cards=1, accelerators=["A800"], duration_estimate_s=600)
    controller = ew.controller()
    running = ew.run_until(job["id"], state_is("running"), controller=controller, timeout_s=90)
    assert running["pool_id"] == pool["id"]
    with session_scope(ew.engine) as session:
        handle = session.scalars(select(Launch.handle).where(Launch.job_id == job["id"])).one()
    ctl("stop-ctld")  # SIGTERM: a kill -9 within Slurm's 5 s state-save window loses the job (see docs)
    try:
        done = ew.run_until(job["id"], state_is("succeeded", "failed"), controller=controller, timeout_s=120)
        assert done["state"] == "succeeded" and done["pool_id"] == ew.sim_pool["id"] and done["attempt"] == 2
        assert ew.regulator.get(f"/pools/{pool['id']}")["healthy"] is False
    finally:
        ctl("start-ctld")
    # Slurm is back: the pool is healthy again and the abandoned first run is cancelled there.
    backend = SlurmBackend(partition=slurm_cluster.partition)
    assert controller.lock.acquire()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            controller.cycle()
            if backend.poll([handle])[handle].state.terminal:
                break
            time.sleep(0.5)
    finally:
        controller.lock.release()
    assert backend.poll([handle])[handle].state.terminal
    assert ew.regulator.get(f"/pools/{pool['id']}")["healthy"] is True
