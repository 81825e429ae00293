"""CPU per request of the API's side of a submission (no database), in process:

    python bench/bench_http_submit.py [--requests 5000] [--rounds 5]

The app of `suanwang serve` (every middleware) with its intake writer replaced by one that answers at
once, called as ASGI in a loop (no sockets, no uvicorn): what the event loop spends per request on
POST /api/v1/jobs through the fast path (jobs/submit_path.py), through the FastAPI route (the same app
with the fast path taken out), and on GET /healthz (the framework's floor: routing and middlewares, no
body). Rounds alternate the three; prints the median microseconds of CPU per request and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.jobs.intake import EncodedJSON
from suanwang.jobs.submit_path import SubmitFastPath

BODY = json.dumps(
    {
        "command": ["python3", "train.py"],
        "cards": 8,
        "cards_per_node": 8,
        "duration_estimate_s": 3600,
        "accelerators": ["H800", "A800"],
    }
).encode()


class AnsweringIntake:
    """The intake writer's interface, answering at once: only the API's side is measured."""

    async def submit(self, **_: Any) -> EncodedJSON:
        return EncodedJSON(b'{"id":1}', status_code=201)

    def close(self) -> None:
        pass


def make_app(fast_path: bool) -> Any:
    data_dir = Path(tempfile.mkdtemp(prefix="suanwang-bench-http-"))
    # One token sends every request: the per-token rate limit would cap the loop itself (as in bench_submit).
    settings = Settings(
        database_url="sqlite://", data_dir=data_dir, serve_controller=False, rate_limit_per_s=0
    )
    app = create_app(settings, create_engine("sqlite://"))
    if not fast_path:  # before the first request builds the middleware stack
        app.user_middleware = [m for m in app.user_middleware if m.cls is not SubmitFastPath]
    app.state.intake = AnsweringIntake()
    return app


def scope(method: str, path: str) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", b"Bearer sw_bench"),
        (b"idempotency-key", b"bench-1"),
    ]
    if method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def cpu_us(app: Any, method: str, path: str, requests: int, status: int) -> float:
    """Microseconds of process CPU per request, over `requests` requests."""
    body = BODY if method == "POST" else b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    seen: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen.append(message["status"])

    started = time.process_time()
    for _ in range(requests):
        await app(scope(method, path), receive, send)
    spent = time.process_time() - started
    if set(seen) != {status}:
        raise SystemExit(f"{method} {path}: answered {sorted(set(seen))}, expected {status}")
    return 1e6 * spent / requests


async def main(requests: int, rounds: int) -> None:
    fast, routed = make_app(fast_path=True), make_app(fast_path=False)
    cases = {
        "POST /api/v1/jobs, fast path": (fast, "POST", "/api/v1/jobs", 201),
        "POST /api/v1/jobs, FastAPI route": (routed, "POST", "/api/v1/jobs", 201),
        "GET /healthz (floor)": (fast, "GET", "/healthz", 200),
    }
    for app, method, path, status in cases.values():  # warm: the stacks, the validators' caches
        await cpu_us(app, method, path, 500, status)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (app, method, path, status) in cases.items():
            samples[name].append(await cpu_us(app, method, path, requests, status))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    routed_us = medians["POST /api/v1/jobs, FastAPI route"]
    floor_us = medians["GET /healthz (floor)"]
    print(f"\nCPU per request on the API's side, in process ({rounds} rounds × {requests:,} requests)\n")
    print("| request | µs CPU (median) | ÷ FastAPI route | ÷ healthz |")
    print("|---|--:|--:|--:|")
    for name, value in medians.items():
        print(f"| {name} | {value:.1f} | {value / routed_us:.2f} | {value / floor_us:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
