"""End to end on the local backend: submit through the API, the controller runs it as a real process."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from suanwang.config import Settings
from tests import jobs_world
from tests.jobs_world import ExecWorld, state_is

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def test_a_command_runs_and_its_output_usage_and_history_are_recorded(ew: ExecWorld) -> None:
    job = ew.submit(
        command=["sh", "-c", "echo hello from $SUANWANG_JOB_ID; sleep 0.3"],
        cards=0,
        regions=[ew.local_site["region"]],
    )
    assert job["state"] == "queued"
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    assert done["exit_code"] == 0
    assert done["started_at"] and done["ended_at"] and done["started_at"] <= done["ended_at"]
    assert done["pool_id"] == ew.local_pool["id"]
    logs = ew.tenant.call("GET", f"/jobs/{job['id']}/logs", expect=200).text
    assert f"hello from {job['id']}" in logs
    events = ew.tenant.get(f"/jobs/{job['id']}/events")
    assert [e["to_state"] for e in events] == ["submitted", "queued", "placed", "running", "succeeded"]
    assert all(e["text"] for e in events)


def test_a_failing_command_ends_failed_with_its_exit_code(ew: ExecWorld) -> None:
    job = ew.submit(command=["sh", "-c", "echo oops >&2; exit 3"], regions=[ew.local_site["region"]])
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert (done["state"], done["exit_code"]) == ("failed", 3)
    assert "oops" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs", expect=200).text


def test_cards_are_metered_and_visible_devices_set(ew: ExecWorld) -> None:
    job = ew.submit(
        command=["sh", "-c", "echo devices=$CUDA_VISIBLE_DEVICES; sleep 1"],
        cards=2,
        accelerators=["L40S"],
    )
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    assert "devices=0,1" in ew.tenant.call("GET", f"/jobs/{job['id']}/logs", expect=200).text
    assert done["card_seconds"] >= 2  # 2 cards × ≥ 1 s
    assert done["card_seconds"] <= 2 * 30
