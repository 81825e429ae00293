"""`suanwang agent run`: the platform's presence on a provider's node.

It registers the node (its cards as the GPU probe sees them) into a pool of an agent site, then every
heartbeat: samples its cards, reaps ended launches, sends their output and usage (usage first, so the
usage record carries what the agent measured), reports their states, and starts or stops what the
control plane answers. Usage events go through a disk outbox: an unreachable control plane loses none
and a resent one is a duplicate the server ignores.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from suanwang import __version__
from suanwang.agent.calibrate import NodeCalibration
from suanwang.agent.gpu import Probe
from suanwang.agent.meter import JobMeter, usage_event
from suanwang.agent.outbox import HttpSender, Outbox
from suanwang.agent.runner import Runner, Running

log = logging.getLogger(__name__)
LOG_PIECE = 256 * 1024  # bytes of output per request


class ControlPlaneError(Exception):
    """The control plane answered with an error the agent cannot fix by retrying."""


class ControlPlane:
    """The agent's calls to the REST API, with the provider operator's token."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0, transport: Any = None) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 500:
            response.raise_for_status()  # an HTTPError: retried on the next heartbeat
        if response.status_code >= 400:
            raise ControlPlaneError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/agent/nodes", json=body))

    def heartbeat(self, node_id: int, reports: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._call("POST", f"/agent/nodes/{node_id}/heartbeat", json={"reports": reports}))

    def calibration(self, node_id: int, cards: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._call("POST", f"/agent/nodes/{node_id}/calibration", json={"cards": cards}))

    def put_log(self, name: str, offset: int, data: bytes) -> int:
        answer = self._call("PUT", f"/agent/launches/{name}/logs", params={"offset": offset}, content=data)
        return int(answer["length"])

    def close(self) -> None:
        self.http.close()


class NodeAgent:
    def __init__(
        self,
        control: ControlPlane,
        *,
        pool_id: int,
        probe: Probe,
        directory: Path,
        sender: Callable[[list[dict[str, Any]]], Any],
        hostname: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.control = control
        self.pool_id = pool_id
        self.probe = probe
        self.hostname = hostname or socket.gethostname()
        self.runner = Runner(directory / "launches")
        self.outbox = Outbox(directory / "outbox", sender)
        self.meters: dict[str, JobMeter] = {}
        self.clock = clock
        self.monotonic = monotonic
        self.node_id: int | None = None
        self.heartbeat_s = 2.0

    def register(self) -> dict[str, Any]:
        cards = [asdict(card) for card in self.probe.cards()]  # exactly the fields the API takes
        node = self.control.register(
            {
                "pool_id": self.pool_id,
                "hostname": self.hostname,
                "cards": cards,
                "cpu_count": os.cpu_count() or 0,
                "agent_version": __version__,
            }
        )
        self.node_id = int(node["id"])
        self.heartbeat_s = float(node.get("heartbeat_s") or self.heartbeat_s)
        return node

    def report_calibration(self, result: NodeCalibration) -> dict[str, Any]:
        """Send what `calibrate` measured, so capacity reports show this node's verified PFLOPS."""
        if self.node_id is None:
            self.register()
        assert self.node_id is not None
        cards = [
            {"index": c.index, "model": c.model, "dtype": c.dtype, "n": c.n, "median_tflops": c.median_tflops}
            for c in result.cards
        ]
        return self.control.calibration(self.node_id, cards)

    def step(self) -> None:
        """One heartbeat round (see the module docstring for the order, and why)."""
        if self.node_id is None:
            self.register()
        assert self.node_id is not None
        now, tick = self.clock(), self.monotonic()
        self._sample(tick)
        for launch in self.runner.poll(now, tick):
            meter = self.meters.pop(launch.name, None)
            event = usage_event(
                node_id=self.node_id,
                launch=launch.name,
                started_at=launch.started_at,
                ended_at=launch.ended_at or now,
                usage=(meter or JobMeter(cards=launch.cards, started_at_s=tick)).finish(
                    tick, cpu_seconds=launch.cpu_seconds
                ),
            )
            self.outbox.put(event)
        self._ship_output()
        self.outbox.flush()
        reports = [self._report(launch) for launch in self.runner.launches.values()]
        answer = self.control.heartbeat(self.node_id, reports)
        self.heartbeat_s = float(answer.get("heartbeat_s") or self.heartbeat_s)
        for launch in list(self.runner.launches.values()):
            if launch.ended_at is not None and launch.log_sent >= launch.log_path.stat().st_size:
                self.runner.forget(launch.name)  # its end is reported and all its output is there
        for name in answer["cancel"]:
            self.runner.cancel(name, tick)
        for assignment in answer["start"]:
            if assignment["name"] not in self.runner.launches:
                started = self.runner.start(assignment, self.clock())
                self.meters[started.name] = JobMeter(cards=started.cards, started_at_s=self.monotonic())

    def _sample(self, tick: float) -> None:
        running = [launch for launch in self.runner.launches.values() if launch.ended_at is None]
        indices = sorted({i for launch in running for i in launch.cards})
        if not indices:
            return
        samples = {s.index: s for s in self.probe.sample(indices)}
        for launch in running:
            meter = self.meters.get(launch.name)
            if meter is not None:
                meter.add([samples[i] for i in launch.cards if i in samples])

    def _ship_output(self) -> None:
        for launch in self.runner.launches.values():
            while piece := self.runner.new_output(launch, LOG_PIECE):
                launch.log_sent = self.control.put_log(launch.name, launch.log_sent, piece)

    @staticmethod
    def _report(launch: Running) -> dict[str, Any]:
        report: dict[str, Any] = {"name": launch.name, "state": launch.state}
        report["started_at"] = launch.started_at.isoformat()
        if launch.ended_at is not None:
            report |= {"ended_at": launch.ended_at.isoformat(), "exit_code": launch.exit_code}
        if launch.message:
            report["message"] = launch.message[:2000]
        return report

    def run(self, stop: threading.Event) -> None:
        """Heartbeat until `stop`; an unreachable control plane is retried, the work keeps running."""
        while not stop.is_set():
            try:
                self.step()
            except (httpx.HTTPError, OSError) as exc:
                log.warning("control plane unreachable, retrying: %s", exc)
            stop.wait(self.heartbeat_s)
        self.runner.stop_all(self.monotonic())


def make_agent(
    url: str, token: str, pool_id: int, directory: Path, probe: Probe, hostname: str | None = None
) -> NodeAgent:
    return NodeAgent(
        ControlPlane(url, token),
        pool_id=pool_id,
        probe=probe,
        directory=directory,
        sender=HttpSender(url, token),
        hostname=hostname,
    )
