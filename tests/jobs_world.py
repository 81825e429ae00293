"""A small market that really runs work: a local site (this machine), a simulated site, a government
site, one tenant organisation with an admin, and a controller bound to the test database."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from suanwang.config import Settings
from suanwang.controller import Backends, Controller, CycleReport
from suanwang.timeutil import utcnow
from tests import factories

PRICE_FROM = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)  # the tests' pinned clock: rate cards start then


@dataclass
class ExecWorld:
    regulator: Any
    tenant: Any  # admin of org
    member: Any  # member of org
    other: Any  # admin of another organisation
    org: dict[str, Any]
    other_org: dict[str, Any]
    local_site: dict[str, Any]
    local_pool: dict[str, Any]
    sim_site: dict[str, Any]
    sim_pool: dict[str, Any]
    gov_pool: dict[str, Any]
    operator: Any  # operator of the local provider
    settings: Settings
    engine: Engine

    def controller(self, **kwargs: Any) -> Controller:
        return Controller(self.settings, self.engine, **kwargs)

    def cycle(self, controller: Controller | None = None) -> CycleReport:
        own = controller is None
        controller = controller or self.controller()
        try:
            assert controller.lock.acquire()
            return controller.cycle()
        finally:
            controller.lock.release()
            if own:
                controller.backends.close()

    def submit(self, api: Any | None = None, expect: int = 201, **spec: Any) -> dict[str, Any]:
        body = {"command": ["sh", "-c", "echo hi"], "cards": 0, "duration_estimate_s": 60} | spec
        return dict((api or self.tenant).post("/jobs", body, expect=expect))

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self.tenant.get(f"/jobs/{job_id}"))

    def run_until(
        self,
        job_id: int,
        done: Callable[[dict[str, Any]], bool],
        *,
        controller: Controller | None = None,
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        """Cycle the controller until `done(job)` or fail with the job's last state."""
        deadline = time.monotonic() + timeout_s
        controller = controller or self.controller()
        try:
            assert controller.lock.acquire()
            while True:
                controller.cycle()
                job = self.regulator.get(f"/jobs/{job_id}")
                if done(job):
                    return dict(job)
                if time.monotonic() > deadline:
                    raise AssertionError(f"job {job_id} never got there: {job}")
                time.sleep(0.1)
        finally:
            controller.lock.release()


def state_is(*states: str) -> Callable[[dict[str, Any]], bool]:
    return lambda job: job["state"] in states


def build(regulator: Any, clock: Any, settings: Settings, engine: Engine, local_cards: int = 2) -> ExecWorld:
    provider = factories.provider(regulator, region="zj-jiaxing-pinghu")
    local_site = factories.site(
        regulator,
        provider["id"],
        backend_kind="local",
        connection={"cards": local_cards},
        region="zj-jiaxing-pinghu",
    )
    local_pool = factories.pool(regulator, local_site["id"], accelerator="L40S", nodes=1, cards_per_node=2)
    sim_provider = factories.provider(regulator, region="gs-qingyang")
    sim_site = factories.site(
        regulator,
        sim_provider["id"],
        backend_kind="simulated",
        connection={"time_scale": 0.001},
        region="gs-qingyang",
    )
    sim_pool = factories.pool(regulator, sim_site["id"], accelerator="A800", nodes=2, cards_per_node=8)
    gov_provider = factories.provider(regulator, kind="government_data_centre", region="zj-jiaxing-pinghu")
    gov_site = factories.site(
        regulator,
        gov_provider["id"],
        backend_kind="simulated",
        connection={"time_scale": 0.001},
        region="zj-jiaxing-pinghu",
    )
    gov_pool = factories.pool(
        regulator, gov_site["id"], accelerator="ASCEND-910B", nodes=1, security_zone="government"
    )
    for pool, fen in ((local_pool, 450), (sim_pool, 450), (gov_pool, 500)):
        regulator.post(
            f"/pools/{pool['id']}/prices",
            {"price_fen_per_card_hour": fen, "effective_from": PRICE_FROM.isoformat()},
        )
    org = factories.org(regulator, name="Pinghu Vision SME")
    other_org = factories.org(regulator, name="Jiaxing Other")
    callers = {}
    for name, role, org_id in (
        ("tenant", "tenant_admin", org["id"]),
        ("member", "tenant_member", org["id"]),
        ("other", "tenant_admin", other_org["id"]),
    ):
        user = factories.user(regulator, role=role, org_id=org_id)
        callers[name] = regulator.as_(factories.token_for(regulator, user["id"]))
    op = factories.user(regulator, role="provider_operator", provider_id=provider["id"])
    callers["operator"] = regulator.as_(factories.token_for(regulator, op["id"]))
    clock.now = utcnow()  # from here on the API's clock is real time, like the backends'
    return ExecWorld(
        regulator=regulator,
        org=org,
        other_org=other_org,
        local_site=local_site,
        local_pool=local_pool,
        sim_site=sim_site,
        sim_pool=sim_pool,
        gov_pool=gov_pool,
        settings=settings,
        engine=engine,
        **callers,
    )


__all__ = ["Backends", "ExecWorld", "build", "state_is"]
