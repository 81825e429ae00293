"""The controller against real local processes and simulated sites: cancel, kill, faults, restarts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from suanwang.backends.protocol import Backend, BackendUnavailable, LaunchSpec, Observation
from suanwang.config import Settings
from suanwang.controller import Backends
from suanwang.db.session import session_scope
from suanwang.metering.models import UsageRecord
from suanwang.scheduler import Decisions, Place, Preempt, Reason, Snapshot
from suanwang.supply.models import Site
from tests import jobs_world
from tests.jobs_world import ExecWorld, state_is

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


def _launch_dirs(ew: ExecWorld) -> list[Path]:
    root = Path(ew.settings.data_dir) / "launches" / ew.local_site["code"]
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def _name(ew: ExecWorld, job_id: int, attempt: int) -> str:
    """The launch name the controller recorded (it starts with this database's instance id)."""
    from suanwang.jobs.models import Launch

    with session_scope(ew.engine) as session:
        return session.scalars(
            select(Launch.name).where(Launch.job_id == job_id, Launch.attempt == attempt)
        ).one()


def _pid_of(folder: Path) -> int:
    import json

    for _ in range(100):
        started = folder / "started.json"
        if started.exists():
            return int(json.loads(started.read_text())["pid"])
        time.sleep(0.05)
    raise AssertionError("the command never started")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cancel_stops_a_running_process(ew: ExecWorld) -> None:
    job = ew.submit(command=["sleep", "60"], regions=[ew.local_site["region"]])
    ew.run_until(job["id"], state_is("running"))
    pid = _pid_of(_launch_dirs(ew)[0])
    cancelled = ew.tenant.post(f"/jobs/{job['id']}/cancel", expect=200)
    assert cancelled["state"] == "running" and cancelled["cancel_requested_at"]
    done = ew.run_until(job["id"], state_is("cancelled", "failed", "succeeded"))
    assert done["state"] == "cancelled"
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
    causes = [e["cause"] for e in ew.tenant.get(f"/jobs/{job['id']}/events")]
    assert causes[-2:] == ["cancel-requested", "cancelled"]


def test_a_process_killed_on_the_node_is_failed_with_its_exit_status(ew: ExecWorld) -> None:
    job = ew.submit(command=["sleep", "60"], regions=[ew.local_site["region"]])
    ew.run_until(job["id"], state_is("running"))
    os.killpg(_pid_of(_launch_dirs(ew)[0]), signal.SIGKILL)
    done = ew.run_until(job["id"], state_is("failed", "succeeded", "cancelled"))
    assert (done["state"], done["exit_code"]) == ("failed", 128 + signal.SIGKILL)


def test_usage_is_recorded_once_per_launch(ew: ExecWorld) -> None:
    job = ew.submit(command=["true"], regions=[ew.local_site["region"]], cards=1)
    done = ew.run_until(job["id"], state_is("succeeded"))
    ew.cycle()  # observing again adds nothing
    with session_scope(ew.engine) as session:
        rows = list(session.scalars(select(UsageRecord)))
    assert len(rows) == 1
    assert rows[0].job_id == job["id"] and rows[0].cards == 1 and rows[0].source == "local"
    assert rows[0].card_seconds == done["card_seconds"]


def test_simulated_sites_run_for_the_estimated_time_scaled(ew: ExecWorld) -> None:
    job = ew.submit(cards=8, accelerators=["A800"], duration_estimate_s=2000)
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert done["state"] == "succeeded" and done["pool_id"] == ew.sim_pool["id"]
    # 2000 s on V100 is 800 s on A800; at time scale 0.001 that is 0.8 s of 8 cards.
    assert 0 < done["card_seconds"] <= 8 * 5


def test_government_work_runs_only_in_the_government_zone(ew: ExecWorld) -> None:
    job = ew.submit(classification="government", cards=1)
    done = ew.run_until(job["id"], state_is("succeeded", "failed"))
    assert done["pool_id"] == ew.gov_pool["id"]


def test_dispatch_refuses_a_government_job_on_a_public_pool_whatever_the_scheduler_says(
    ew: ExecWorld,
) -> None:
    job = ew.submit(classification="government", cards=0)

    def wrong(snapshot: Snapshot, policy: Any) -> Decisions:
        return Decisions(
            places=(Place(str(job["id"]), str(ew.local_pool["id"]), 0, 10.0, 0, snapshot.now_s + 10),)
        )

    report = ew.cycle(ew.controller(decide=wrong))
    assert report.refused == 1 and report.placed == 0
    after = ew.job(job["id"])
    assert after["state"] == "queued" and after["reason_code"] == "dispatch-refused"
    assert _launch_dirs(ew) == []


class Flaky:
    """Wraps a backend; `down` makes it silent, `crash_before` / `crash_after` interrupt submit."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.down = False
        self.crash_before = False
        self.crash_after = False
        self.submits: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("connection refused (test)")

    def capacity(self) -> Any:
        self._check()
        return self.inner.capacity()

    def submit(self, spec: LaunchSpec) -> str:
        self._check()
        if self.crash_before:
            raise KeyboardInterrupt("controller killed before the send")
        handle = self.inner.submit(spec)
        self.submits.append(spec.name)
        if self.crash_after:
            raise KeyboardInterrupt("controller killed after the send")
        return handle

    def find(self, name: str) -> str | None:
        self._check()
        return self.inner.find(name)

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        self._check()
        return self.inner.poll(handles)

    def cancel(self, handle: str) -> None:
        self._check()
        self.inner.cancel(handle)

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        self._check()
        return self.inner.logs(handle, tail_bytes=tail_bytes)

    def close(self) -> None:
        self.inner.close()


def _flaky_backends(ew: ExecWorld) -> tuple[Backends, dict[int, Flaky]]:
    wrapped: dict[int, Flaky] = {}
    plain = Backends(ew.settings.data_dir)

    def factory(site: Site, cards: int) -> Backend:
        if site.id not in wrapped:
            wrapped[site.id] = Flaky(plain._make(site, cards))
        return wrapped[site.id]

    return Backends(ew.settings.data_dir, factory=factory), wrapped


@pytest.mark.parametrize("crash", ["crash_before", "crash_after"])
def test_a_controller_restart_mid_dispatch_never_runs_a_job_twice(ew: ExecWorld, crash: str) -> None:
    job = ew.submit(command=["sh", "-c", "echo once"], regions=[ew.local_site["region"]])
    backends, wrapped = _flaky_backends(ew)
    first = ew.controller(backends=backends)
    first.cycle_observe_only = True
    assert first.lock.acquire()
    first.cycle()  # builds the backends (nothing to send yet? the job is sent in this cycle)
    # The job was dispatched in that cycle; replay the crash on a fresh job instead.
    first.lock.release()
    second_job = ew.submit(command=["sh", "-c", "echo once"], regions=[ew.local_site["region"]])
    setattr(wrapped[ew.local_site["id"]], crash, True)
    assert first.lock.acquire()
    with pytest.raises(KeyboardInterrupt):
        first.cycle()
    first.lock.release()
    setattr(wrapped[ew.local_site["id"]], crash, False)
    # A new controller process: fresh backends, same database and launch folders.
    done = ew.run_until(second_job["id"], state_is("succeeded", "failed"))
    assert done["state"] == "succeeded" and done["attempt"] == 1
    names = [p.name for p in _launch_dirs(ew)]
    first_launch = _name(ew, second_job["id"], 1)
    assert names.count(first_launch) == 1
    assert not any(n.endswith(f"-{second_job['id']}-2") for n in names)
    assert ew.run_until(job["id"], state_is("succeeded"))["attempt"] == 1


def test_a_silent_backend_makes_its_pool_unhealthy_and_its_work_is_requeued_elsewhere(
    ew: ExecWorld,
) -> None:
    settings = ew.settings.model_copy(update={"lost_after_s": 0.0})
    ew = replace(ew, settings=settings)
    backends, wrapped = _flaky_backends(ew)
    controller = ew.controller(backends=backends)
    # A long job on the simulated A800 site: it runs there until the site goes silent.
    job = ew.submit(
        command=["sleep", "60"], cards=1, duration_estimate_s=10_000, accelerators=["A800", "L40S"]
    )
    placed = ew.run_until(job["id"], state_is("running"), controller=controller)
    first_pool = placed["pool_id"]
    site_id = ew.sim_site["id"] if first_pool == ew.sim_pool["id"] else ew.local_site["id"]
    wrapped[site_id].down = True
    requeued = ew.run_until(job["id"], lambda j: j["attempt"] >= 2, controller=controller)
    assert requeued["pool_id"] != first_pool
    pool = ew.regulator.get(f"/pools/{first_pool}")
    assert pool["healthy"] is False
    causes = [e["cause"] for e in ew.tenant.get(f"/jobs/{job['id']}/events")]
    assert "lost" in causes and "requeued" in causes
    # The site comes back: its pool is healthy again and the abandoned launch is stopped there.
    wrapped[site_id].down = False
    inner = wrapped[site_id].inner
    old = _name(ew, job["id"], 1)
    assert controller.lock.acquire()
    for _ in range(100):
        controller.cycle()
        if inner.poll([old])[old].state.terminal:
            break
        time.sleep(0.1)
    controller.lock.release()
    assert ew.regulator.get(f"/pools/{first_pool}")["healthy"] is True
    assert inner.poll([old])[old].state.terminal


def test_lost_work_fails_after_max_attempts(ew: ExecWorld) -> None:
    settings = ew.settings.model_copy(update={"lost_after_s": 0.0, "max_attempts": 2})
    ew = replace(ew, settings=settings)
    backends, wrapped = _flaky_backends(ew)
    controller = ew.controller(backends=backends)
    job = ew.submit(cards=1, accelerators=["A800"], duration_estimate_s=100_000)
    ew.run_until(job["id"], state_is("running"), controller=controller)
    wrapped[ew.sim_site["id"]].down = True
    assert controller.lock.acquire()
    controller.cycle()  # lost → requeued with backoff
    wrapped[ew.sim_site["id"]].down = False
    with session_scope(ew.engine) as session:
        from suanwang.jobs.models import Job

        stored = session.get_one(Job, job["id"])
        stored.not_before = None  # skip the backoff wait
    ew.run_until(job["id"], lambda j: j["attempt"] == 2 and j["state"] == "running", controller=controller)
    wrapped[ew.sim_site["id"]].down = True
    controller.cycle()
    controller.lock.release()
    assert ew.job(job["id"])["state"] == "failed"
    assert ew.tenant.get(f"/jobs/{job['id']}/events")[-1]["cause"] == "attempts-exhausted"


def test_preemption_stops_the_launch_and_requeues_without_counting_an_attempt_against_it(
    ew: ExecWorld,
) -> None:
    job = ew.submit(command=["sleep", "60"], regions=[ew.local_site["region"]], preemptible=True)
    ew.run_until(job["id"], state_is("running"))
    ew.submit(command=["true"])  # the scheduler is asked only while work waits

    def preempt(snapshot: Snapshot, policy: Any) -> Decisions:
        running = [r for r in snapshot.running if r.id == str(job["id"])]
        return Decisions(
            preempts=tuple(
                Preempt(r.id, Reason("sme-reclaim", (("for_job", "x"), ("pool", "p")))) for r in running
            )
        )

    controller = ew.controller(decide=preempt)
    assert controller.lock.acquire()
    for _ in range(50):
        controller.cycle()
        if ew.job(job["id"])["state"] == "queued":
            break
        time.sleep(0.1)
    controller.lock.release()
    after = ew.job(job["id"])
    assert after["state"] == "queued" and after["not_before"] is None
    causes = [e["cause"] for e in ew.tenant.get(f"/jobs/{job['id']}/events")]
    assert causes[-2:] == ["preempted", "requeued"]


def test_one_leader_at_a_time(ew: ExecWorld) -> None:
    first, second = ew.controller(), ew.controller()
    assert first.lock.acquire()
    assert first.lock.acquire()  # still held: re-confirming is not a second lock
    assert not second.lock.acquire()
    first.lock.release()
    assert second.lock.acquire()
    second.lock.release()


def test_usage_counts(ew: ExecWorld) -> None:
    with session_scope(ew.engine) as session:
        assert session.scalar(select(func.count()).select_from(UsageRecord)) == 0


def test_dispatch_refuses_another_tenants_job_on_reserved_cards_whatever_the_scheduler_says(
    ew: ExecWorld,
) -> None:
    window = {"starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"}
    reservation = ew.tenant.post("/reservations", {"pool_id": ew.sim_pool["id"], "cards": 8} | window)
    job = ew.submit(api=ew.other, cards=1, accelerators=["A800"])
    reserved_pool = f"{ew.sim_pool['id']}~r{reservation['id']}"

    def wrong(snapshot: Snapshot, policy: Any) -> Decisions:
        return Decisions(places=(Place(str(job["id"]), reserved_pool, 1, 10.0, 1, snapshot.now_s + 10),))

    report = ew.cycle(ew.controller(decide=wrong))
    assert report.refused == 1 and report.placed == 0
    after = ew.other.get(f"/jobs/{job['id']}")
    assert after["state"] == "queued" and after["reason_code"] == "dispatch-refused"


def test_the_controller_runs_the_shipped_policy_and_a_policy_file_overrides_it(tmp_path: Path) -> None:
    from suanwang.jobs.service import policy_for
    from suanwang.scheduler import Policy

    shipped = policy_for(Settings(data_dir=tmp_path))
    assert shipped == Policy.shipped() and shipped.wait_for_faster_ratio == 3.0
    assert shipped.sme_idle_borrow_max_s == 21_600.0
    path = tmp_path / "policy.toml"
    path.write_text("[policy]\nsme_guaranteed_share = 0.1\nwait_for_faster_ratio = 5\n")
    custom = policy_for(Settings(data_dir=tmp_path, policy_file=path))
    assert (custom.sme_guaranteed_share, custom.wait_for_faster_ratio) == (0.1, 5.0)
    assert custom.weight_small_work == shipped.weight_small_work
    path2 = tmp_path / "bad.toml"
    path2.write_text("[policy]\nno_such_knob = 1\n")
    with pytest.raises(ValueError, match="no_such_knob"):
        policy_for(Settings(data_dir=tmp_path, policy_file=path2))


def test_a_backend_that_answers_unhealthy_takes_its_pool_out_and_back(ew: ExecWorld) -> None:
    from suanwang.backends.protocol import Capacity

    backends, wrapped = _flaky_backends(ew)
    controller = ew.controller(backends=backends)
    ew.cycle(controller)
    flaky = wrapped[ew.sim_site["id"]]
    real_capacity = flaky.inner.capacity
    flaky.inner.capacity = lambda: Capacity(cards_total=16, cards_free=16, healthy=False)  # type: ignore[method-assign]
    ew.cycle(controller)
    pool = ew.regulator.get(f"/pools/{ew.sim_pool['id']}")
    assert pool["healthy"] is False and pool["health_message"]
    flaky.inner.capacity = real_capacity  # type: ignore[method-assign]
    ew.cycle(controller)
    pool = ew.regulator.get(f"/pools/{ew.sim_pool['id']}")
    assert pool["healthy"] is True and pool["health_message"] is None
