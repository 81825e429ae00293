"""The load benchmark with kill -9: API workers and the controller die at random moments and come back.

    python bench/bench_chaos.py [--minutes 3] [--submit-rate 10] [--database URL] [--seed 1]
                                [--controller apart|inside] [--workers 2] [--kill-every 8,20]
                                [--patience-s 120] [--controller-interval 1] [--drain-s 120]

bench/bench_load.py's load (submissions from six tenants, usage ingestion, cancels, reads, the
controller's settlements) on a fresh PostgreSQL database with the demo region, against
`--workers` uvicorn workers and the controller either in its own `suanwang controller` process
(`apart`, the default) or inside every API worker (`inside`: one leads, by the advisory lock). Every
`--kill-every` seconds (uniform between the two, seeded) one of these is SIGKILLed:

- `controller`: the controller process (apart only), started again at once;
- `worker`: one uvicorn worker (uvicorn's supervisor starts a new one; inside, it may be the leader);
- `api`: the whole server, supervisor and workers, started again at once;
- `both`: the whole server and the controller at the same moment (apart only).

Clients behave as careful clients do: a submission without an answer (the connection broke) or with a
5xx is sent again with the same Idempotency-Key every 0.5 s for at most `--patience-s`. When the load
ends, the killing stops, the queue drains, and every invariant of the load benchmark is checked in the
database; exact, since every submission was answered: each answered key is exactly one job, no job
beyond them, and no job ran twice on the simulated backend. Prints the load benchmark's tables and the
kills; writes bench/results/chaos.json; exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_load import (
    add_arguments,
    issue_tokens,
    prepare,
    report,
    run_load,
    start_server,
    stop_server,
)
from bench_submit import free_port
from processes import workers_of

RESULTS = Path(__file__).resolve().parent / "results" / "chaos.json"
TARGETS = {"apart": ("controller", "worker", "api", "both"), "inside": ("worker", "api")}
WEIGHTS = {"controller": 3, "worker": 2, "api": 2, "both": 1}
RESTART_PAUSE_S = (0.0, 1.0)  # a supervisor's pause before it starts a killed process again


def sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.kill(pid, signal.SIGKILL)


@dataclass
class Cluster:
    """The platform's processes on loopback: uvicorn (supervisor and workers) on a fixed port, and the
    controller in a process of its own unless it runs inside the workers."""

    env: dict[str, str]
    data_dir: Path
    interval_s: float
    workers: int = 2
    inside: bool = False
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    controller: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> list[Path]:
        return [self.data_dir / "server.log", self.data_dir / "controller.log"]

    def start(self) -> None:
        self.start_api()
        if not self.inside:
            self.start_controller()

    def start_api(self) -> None:
        self.api, _ = start_server(
            self.env,
            self.interval_s,
            self.logs[0],
            port=self.port,
            workers=self.workers,
            controller=self.inside,
        )

    def start_controller(self) -> None:
        env = self.env | {"SUANWANG_CONTROLLER_INTERVAL_S": str(self.interval_s)}
        with open(self.logs[1], "ab") as log:
            self.controller = subprocess.Popen(
                [sys.executable, "-m", "suanwang.cli.main", "controller"], env=env, stdout=log, stderr=log
            )

    def api_workers(self) -> list[int]:
        assert self.api is not None
        return workers_of(self.api.pid) if self.workers > 1 else [self.api.pid]

    def kill_api(self) -> None:
        """SIGKILL the supervisor first (it would start new workers), then its workers."""
        assert self.api is not None
        workers = self.api_workers() if self.workers > 1 else []
        self.api.kill()
        self.api.wait()
        for pid in workers:
            sigkill(pid)

    def kill_worker(self, rng: random.Random) -> None:
        """SIGKILL one worker; uvicorn's supervisor starts another (a single worker is the server)."""
        if self.workers == 1:
            self.kill_api()
            self.start_api()
            return
        sigkill(rng.choice(self.api_workers()))

    def kill_controller(self) -> None:
        assert self.controller is not None
        self.controller.kill()
        self.controller.wait()

    def stop(self) -> None:
        """Stop what runs, gently (the controller finishes its cycle); what does not stop is killed."""
        if self.controller is not None and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill_controller()
        if self.api is not None and self.api.poll() is None:
            workers = self.api_workers() if self.workers > 1 else []
            stop_server(self.api)
            for pid in workers:
                sigkill(pid)


@dataclass(frozen=True, slots=True)
class Kill:
    at_s: float  # since the load began
    target: str
    back_s: float  # until the processes killed were started again (a worker: 0, its supervisor does it)


def strike(cluster: Cluster, target: str, rng: random.Random) -> None:
    """Kill `target` with SIGKILL and start it again, as a supervisor (systemd, Kubernetes) would."""
    if target == "worker":
        cluster.kill_worker(rng)
        return
    if target in ("api", "both"):
        cluster.kill_api()
    if target in ("controller", "both"):
        cluster.kill_controller()
    time.sleep(rng.uniform(*RESTART_PAUSE_S))
    if target in ("api", "both"):
        cluster.start_api()
    if target in ("controller", "both"):
        cluster.start_controller()


def random_targets(rng: random.Random, inside: bool) -> Iterator[str]:
    targets = TARGETS["inside" if inside else "apart"]
    while True:
        yield rng.choices(targets, [WEIGHTS[t] for t in targets])[0]


async def chaos(
    cluster: Cluster,
    targets: Iterator[str],
    every_s: tuple[float, float],
    rng: random.Random,
    stop_at: float,
    kills: list[Kill],
) -> None:
    """Until `stop_at` (or `targets` runs out): wait a random while, then kill the next target and
    start it again (in a thread: the load goes on meanwhile)."""
    started = time.perf_counter()
    while True:
        pause = rng.uniform(*every_s)
        if time.perf_counter() + pause >= stop_at:
            return
        await asyncio.sleep(pause)
        target = next(targets, None)
        if target is None:
            return
        at = time.perf_counter()
        await asyncio.to_thread(strike, cluster, target, rng)
        kills.append(Kill(at - started, target, time.perf_counter() - at))


def kills_summary(kills: list[Kill]) -> dict[str, Any]:
    back = sorted(k.back_s for k in kills if k.target != "worker")
    return {
        "count": len(kills),
        "by_target": dict(Counter(k.target for k in kills)),
        "longest_restart_s": back[-1] if back else 0.0,
        "kills": [
            {"at_s": round(k.at_s, 2), "target": k.target, "back_s": round(k.back_s, 2)} for k in kills
        ],
    }


def print_kills(summary: dict[str, Any]) -> None:
    by = ", ".join(f"{target} ×{n}" for target, n in summary["by_target"].items())
    print(
        f"\nKills (SIGKILL): {summary['count']} ({by}); longest restart {summary['longest_restart_s']:.1f} s"
    )
    print("at s: " + ", ".join(f"{k['at_s']:.0f} {k['target']}" for k in summary["kills"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(minutes=3.0, submit_rate=10.0)
    parser.add_argument("--controller", choices=["apart", "inside"], default="apart")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--kill-every", default="8,20", help="seconds between kills: least,most")
    parser.add_argument("--patience-s", type=float, default=120.0, help="how long a submission is retried")
    args = parser.parse_args()
    low, high = (float(x) for x in args.kill_every.split(","))

    env, data_dir = prepare(args.database, "chaos")
    cluster = Cluster(env, data_dir, args.controller_interval, args.workers, args.controller == "inside")
    rng = random.Random(args.seed + 1)  # the kills' own: the load's draws stay those of bench_load
    kills: list[Kill] = []

    def beside(stop_at: float) -> Any:
        return chaos(cluster, random_targets(rng, cluster.inside), (low, high), rng, stop_at, kills)

    cluster.start()
    try:
        cast = issue_tokens(cluster.base, data_dir)
        run = asyncio.run(
            run_load(
                cluster.base,
                cast,
                args.minutes,
                args.submit_rate,
                args.drain_s,
                args.seed,
                patience_s=args.patience_s,
                beside=beside,
            )
        )
    finally:
        cluster.stop()
    summary = kills_summary(kills)
    print_kills(summary)
    sys.exit(report(args, run, data_dir, cluster.logs, RESULTS, chaos=summary))


if __name__ == "__main__":
    main()
