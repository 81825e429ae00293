"""The controller against what happens while it works (found by bench/bench_load.py under load): a
tenant's cancel between the controller's snapshot and its dispatch, a cancel deciding on a stale read
while the controller places the job, and one job whose settlement fails among others that end."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from suanwang import controller as controller_module
from suanwang.config import Settings
from suanwang.db.session import session_factory, session_scope
from suanwang.jobs import service
from suanwang.jobs.models import Job, JobEvent, Launch
from suanwang.ledger import store as ledger
from suanwang.settlement import service as settlement
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Role
from suanwang.timeutil import utcnow
from tests import jobs_world
from tests.jobs_world import ExecWorld, state_is

pytestmark = pytest.mark.db


@pytest.fixture
def ew(regulator: Any, clock: Any, settings: Settings, clean_engine: Engine) -> ExecWorld:
    return jobs_world.build(regulator, clock, settings, clean_engine)


REGULATOR = Principal(user_id=1, name="admin", role=Role.REGULATOR)


def cancel_now(engine: Engine, job_id: int, errors: list[BaseException] | None = None) -> None:
    try:
        with session_scope(engine) as session:
            service.cancel(session=session, principal=REGULATOR, job_id=job_id, now=utcnow())
    except BaseException as exc:  # a thread's error would vanish: hand it to the test
        if errors is None:
            raise
        errors.append(exc)


def history(engine: Engine, job_id: int) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        return [(e.from_state.value if e.from_state else "", e.to_state.value) for e in events]


def assert_money_sound(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert ledger.check_invariants(session) == []


def test_a_cancel_during_dispatch_waits_for_it_and_then_stops_the_launch(
    ew: ExecWorld, monkeypatch: Any
) -> None:
    job = ew.submit(cards=1, accelerators=["A800"], duration_estimate_s=600)
    record = controller_module.Controller._record_launch
    cancels: list[threading.Thread] = []
    errors: list[BaseException] = []

    def record_then_cancel(self: Any, *args: Any, **kwargs: Any) -> Any:
        # The tenant cancels while the controller has read the job and is recording its launch.
        cancels.append(threading.Thread(target=cancel_now, args=(ew.engine, job["id"], errors)))
        cancels[-1].start()
        cancels[-1].join(timeout=0.5)  # it must wait for the controller, not slip in before its commit
        return record(self, *args, **kwargs)

    monkeypatch.setattr(controller_module.Controller, "_record_launch", record_then_cancel)
    report = ew.cycle()
    cancels[0].join(timeout=30)
    assert report.placed == 1 and not cancels[0].is_alive() and errors == []
    monkeypatch.undo()
    assert ew.job(job["id"])["state"] in ("placed", "running")  # placed first: the cancel asks to stop it
    done = ew.run_until(job["id"], state_is("cancelled"))
    assert done["state"] == "cancelled"
    states = [to for _, to in history(ew.engine, job["id"])]
    assert states[-1] == "cancelled" and states.count("cancelled") == 1 and "placed" in states
    assert_money_sound(ew.engine)


def test_a_job_cancelled_after_the_snapshot_is_not_placed(ew: ExecWorld, monkeypatch: Any) -> None:
    job = ew.submit(cards=1, accelerators=["A800"], duration_estimate_s=60)
    build = controller_module.snapshot.build

    def then_cancel(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        cancel_now(ew.engine, job["id"])  # committed between the snapshot and the dispatch
        return built

    monkeypatch.setattr(controller_module.snapshot, "build", then_cancel)
    report = ew.cycle()
    assert report.placed == 0
    assert ew.job(job["id"])["state"] == "cancelled"
    assert history(ew.engine, job["id"])[-1] == ("queued", "cancelled")
    with session_scope(ew.engine) as session:
        assert session.scalars(select(Launch).where(Launch.job_id == job["id"])).all() == []
    assert_money_sound(ew.engine)


def test_a_cancel_that_read_the_job_before_it_was_placed_asks_the_controller_to_stop_it(
    ew: ExecWorld,
) -> None:
    job = ew.submit(cards=1, accelerators=["A800"], duration_estimate_s=600)
    stale = session_factory(ew.engine)()
    try:
        read = stale.get_one(Job, job["id"])  # the cancel's first read (kept: the session holds it weakly)
        assert read.state.value == "queued"
        ew.cycle()  # the controller places it meanwhile
        assert ew.job(job["id"])["state"] in ("placed", "running")
        cancelled = service.cancel(session=stale, principal=REGULATOR, job_id=job["id"], now=utcnow())
        stale.commit()
        # Not moved to cancelled over the placement: the controller stops the launch, then records it.
        assert cancelled.state.value in ("placed", "running") and cancelled.cancel_requested_at is not None
    finally:
        stale.close()
    done = ew.run_until(job["id"], state_is("cancelled"))
    assert done["state"] == "cancelled"
    states = [to for _, to in history(ew.engine, job["id"])]
    assert states.index("cancelled") == len(states) - 1 and states.count("cancelled") == 1
    assert_money_sound(ew.engine)


def test_a_job_whose_settlement_fails_does_not_hold_up_the_others(ew: ExecWorld, monkeypatch: Any) -> None:
    jobs = [ew.submit(cards=1, accelerators=["A800"], duration_estimate_s=60) for _ in range(3)]
    controller = ew.controller()
    assert controller.lock.acquire()
    try:
        controller.cycle()  # placed
        broken = jobs[1]["id"]
        settle = settlement.settle_job

        def failing(session: Any, job: Job, now: Any) -> None:
            if job.id == broken:
                raise RuntimeError("the ledger refused this one")
            settle(session, job, now)

        monkeypatch.setattr(settlement, "settle_job", failing)
        for _ in range(100):  # the simulated runs end within moments
            controller.cycle()
            states = {j["id"]: ew.job(j["id"])["state"] for j in jobs}
            if states[jobs[0]["id"]] == states[jobs[2]["id"]] == "succeeded":
                break
        assert states[broken] in ("placed", "running"), states  # its end is retried, not lost
        monkeypatch.setattr(settlement, "settle_job", settle)
        for _ in range(20):
            controller.cycle()
            if ew.job(broken)["state"] == "succeeded":
                break
        assert ew.job(broken)["state"] == "succeeded"
    finally:
        controller.lock.release()
        controller.backends.close()
    assert_money_sound(ew.engine)
