"""API submissions per second: N concurrent clients POST /api/v1/jobs against a real server on PostgreSQL.

    python bench/bench_submit.py [--clients 16] [--seconds 10] [--workers 1,2] [--batches 1,500]
                                 [--database URL]
    python bench/bench_submit.py --against REV [--rounds 6] [--seconds 5] [--workers 1]

Starts `suanwang serve` (uvicorn, W worker processes, no controller, SUANWANG_SUBMIT_BATCH=B) on a fresh
PostgreSQL database (default: database `suanwang_bench` on the local server, dropped and re-created),
loads the Pinghu demo region, and drives it with `--clients` concurrent connections (wrk when installed),
each submit carrying its own Idempotency-Key. Baselines in the same run: GET /healthz (no database) at
the same concurrency, the framework's ceiling on this machine; and B=1, each submission committed on its
own (no group commit). The client shares the machine's cores
with the server, so read the ratio to the baseline as well as the absolute rate. Before the table: the
machine's own speed, an ASGI app with no framework under uvicorn (with wrk), to compare days.

With `--against REV` (a git revision): the code of REV and the checkout's code each serve the same
database (two servers, started once), and wrk runs alternate between them `--rounds` times: on a
machine whose speed drifts by ±15 % (or 4x between days) the ratio of neighbouring runs is the
comparison that holds. Prints each round and the median ratio. REV's code must run on the checkout's
database schema (its server is started without migrating).

Prints a table and writes bench/results/submit.json. The issue's target: ≥ 1,000 submissions/s with
16 concurrent clients on PostgreSQL (Slurm's published sustained rate is 500 jobs/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from demo_db import cli, demo_region, fresh_postgres
from processes import workers_of
from sqlalchemy import create_engine, text

RESULTS = Path(__file__).resolve().parent / "results" / "submit.json"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/suanwang_bench"
TARGET_PER_S = 1000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup(url: str, data_dir: Path) -> tuple[dict[str, str], str, int]:
    """A demo region in a fresh database; returns the env, a tenant admin's token and its org id."""
    fresh_postgres(url)
    env = demo_region(url, data_dir)
    # In-process CLI calls act as the local regulator (its token lives in the data dir).
    users = json.loads(cli(env, "--json", "users", "list", "--limit", "100"))["items"]
    admin = next(u for u in users if u["name"] == "hezhi-admin")
    created = json.loads(
        cli(env, "--json", "tokens", "create", "--user-id", str(admin["id"]), "--name", "bench")
    )
    # Enough money for every submission of the run to be held on the wallet (¥1 billion).
    cli(env, "money", "top-up", str(admin["org_id"]), "1000000000", "--reason", "benchmark funds")
    return env, created["token"], admin["org_id"]


def analyze(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def serve(env: dict[str, str], port: int, workers: int, batch: int) -> subprocess.Popen[bytes]:
    # All clients share one tenant token: the per-token rate limit (1,000/s by default) would cap the
    # measurement itself, so it is off here; many tenants' tokens each have their own.
    env = env | {"SUANWANG_SUBMIT_BATCH": str(batch), "SUANWANG_RATE_LIMIT_PER_S": "0"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "suanwang.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")


async def drive(base: str, clients: int, seconds: float, make: Any) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                method, path, kwargs, ok = make()
                started = time.perf_counter()
                response = await client.request(method, path, **kwargs)
                latencies.append(time.perf_counter() - started)
                if response.status_code != ok:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
    }


WRK_SCRIPT = """
counter = 0
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  -- wrk.format replaces wrk.headers with the table it is given: copy them, then add the key.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  return wrk.format(nil, nil, headers)
end
"""


def drive_wrk(
    base: str, clients: int, seconds: float, path: str, body: Any | None, auth: dict[str, str]
) -> dict[str, float]:
    """The same load from wrk (C, two threads): the client takes far less of the machine than Python."""
    import re
    import tempfile

    args = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds:.0f}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write(f"wrk.method = 'POST'\nwrk.body = [[{json.dumps(body)}]]\n")
            script.write("wrk.headers['Content-Type'] = 'application/json'\n")
            for name, value in auth.items():
                script.write(f"wrk.headers['{name}'] = '{value}'\n")
            script.write(WRK_SCRIPT)
    if body is not None:
        args += ["-s", script.name]
    out = subprocess.run([*args, base + path], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if found is None:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "requests": requests,
        "errors": int(bad.group(1)) if bad else 0,
        "per_s": rate,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
    }


BARE_ASGI = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def machine_baseline(clients: int, seconds: float) -> float:
    """Requests/s of an ASGI app with no framework and no database under uvicorn (one worker): the
    machine's own speed, which on these VMs differs by 3-4x between days. The submission rate of two
    days compares through it (or through /healthz, which adds the app's middlewares)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="suanwang-bench-bare-"))
    (folder / "bare_asgi.py").write_text(BARE_ASGI)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_asgi:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen([*command, "--no-access-log"], cwd=folder)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        return drive_wrk(f"http://127.0.0.1:{port}", clients, seconds, "/", None, {})["per_s"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for one that has gone)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    """CPU seconds the whole machine spent not idle, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def cpu_spent(
    server: subprocess.Popen[bytes], run: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """`run()`'s result and where the machine's CPU went meanwhile: seconds of the server's processes
    (uvicorn and its workers), of PostgreSQL's (a local server), and of the whole machine. Per
    submission, they say whether a rate is bound by CPU (machine near all cores busy) or by waiting
    (a batch's round trips, one after the other), and the ceiling: cores ÷ machine CPU per submission.
    """
    servers = [server.pid, *workers_of(server.pid)]
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()
    database = [int(pid) for pid in found]
    before = (_cpu_s(servers), _cpu_s(database), _busy_s(), time.monotonic())
    result = run()
    after = (_cpu_s(servers), _cpu_s(database), _busy_s(), time.monotonic())
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return result, {"server_s": spent[0], "database_s": spent[1], "machine_s": spent[2], "wall_s": spent[3]}


def code_of(rev: str) -> Path:
    """The `src` tree of a git revision, in a temporary folder (its server runs with PYTHONPATH there)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="suanwang-bench-rev-"))
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root / "src"


def compare(args: argparse.Namespace, env: dict[str, str], body: Any, auth: dict[str, str]) -> None:
    """Alternate wrk runs between REV's server and this checkout's, on one database."""
    workers = int(args.workers.split(",")[0])
    sides = {args.against: env | {"PYTHONPATH": str(code_of(args.against))}, "checkout": env}
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for name, side_env in sides.items():
            port = free_port()
            servers[name] = (serve(side_env, port, workers, 500), f"http://127.0.0.1:{port}")
        for _, base in servers.values():  # warm-up: connections, caches, prepared statements
            drive_wrk(base, args.clients, 2, "/api/v1/jobs", body, auth)
        analyze(args.database)
        print(f"\n| round | {args.against} submit/s | checkout submit/s | ratio |\n|--:|--:|--:|--:|")
        for round_no in range(1, args.rounds + 1):
            order = list(servers) if round_no % 2 else list(reversed(servers))
            for name in order:
                result = drive_wrk(servers[name][1], args.clients, args.seconds, "/api/v1/jobs", body, auth)
                if result["errors"]:
                    raise SystemExit(f"{name}: {result['errors']} failed submissions")
                rates[name].append(result["per_s"])
            old, new = rates[args.against][-1], rates["checkout"][-1]
            print(f"| {round_no} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |", flush=True)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    ratios = [new / old for old, new in zip(rates[args.against], rates["checkout"], strict=True)]
    print(
        f"\nmedian: {args.against} {statistics.median(rates[args.against]):,.0f}/s, checkout "
        f"{statistics.median(rates['checkout']):,.0f}/s; ratio median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}), {workers} worker(s), {args.clients} clients"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument(
        "--batches", default="1,500", help="SUANWANG_SUBMIT_BATCH values (1 = no group commit)"
    )
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--against", metavar="REV", help="alternate with this git revision's code")
    parser.add_argument("--rounds", type=int, default=6, help="alternations with --against")
    parser.add_argument(
        "--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python"
    )
    args = parser.parse_args()
    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"suanwang-bench-{os.getpid()}"
    env, token, _ = setup(args.database, data_dir)
    auth = {"Authorization": f"Bearer {token}"}
    body = {
        "command": ["python3", "train.py"],
        "cards": 8,
        "cards_per_node": 8,
        "duration_estimate_s": 3600,
        "accelerators": ["H800", "A800"],
    }

    if args.against:
        if not shutil.which("wrk"):
            raise SystemExit("--against needs wrk (apt-get install wrk)")
        compare(args, env, body, auth)
        return

    def submit() -> tuple[str, str, dict[str, Any], int]:
        return (
            "POST",
            "/api/v1/jobs",
            {"json": body, "headers": auth | {"Idempotency-Key": uuid.uuid4().hex}},
            201,
        )

    def health() -> tuple[str, str, dict[str, Any], int]:
        return "GET", "/healthz", {}, 200

    rows = []
    configs = [(int(w), int(b)) for w in args.workers.split(",") for b in args.batches.split(",")]
    for workers, batch in configs:
        port = free_port()
        server = serve(env, port, workers, batch)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(drive(base, args.clients, 1.0, submit))  # warm-up: connections, caches
            analyze(args.database)  # statistics, as autovacuum keeps them on a live server
            if args.client == "wrk":
                baseline = drive_wrk(base, args.clients, args.seconds, "/healthz", None, auth)
                measured, cpu = cpu_spent(
                    server,
                    partial(drive_wrk, base, args.clients, args.seconds, "/api/v1/jobs", body, auth),
                )
            else:
                baseline = asyncio.run(drive(base, args.clients, args.seconds, health))
                measured, cpu = cpu_spent(
                    server, partial(asyncio.run, drive(base, args.clients, args.seconds, submit))
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
        rows.append(
            {
                "workers": workers,
                "batch": batch,
                "clients": args.clients,
                "healthz": baseline,
                "submit": measured,
                "cpu": cpu,
            }
        )

    bare = machine_baseline(args.clients, args.seconds) if args.client == "wrk" else None
    print(
        f"\nAPI submissions, {args.clients} concurrent clients, PostgreSQL, {platform.node()} "
        f"({os.cpu_count()} CPUs), {args.seconds:.0f} s per measurement"
    )
    if bare is not None:
        print(f"machine: an ASGI app with no framework answers {bare:,.0f} requests/s (uvicorn, 1 worker)")
    print()
    header = (
        "| workers | submit batch | submit/s | p50 ms | p99 ms | errors | healthz/s (baseline) "
        "| submit ÷ healthz | ÷ batch 1 | CPU ms per submit: server | database | machine "
        "| machine busy | ceiling/s |"
    )
    print(header)
    print("|" + "|".join("--:" for _ in range(14)) + "|")
    cores = os.cpu_count() or 1
    single = {r["workers"]: r["submit"]["per_s"] for r in rows if r["batch"] == 1}
    for row in rows:
        s, h = row["submit"], row["healthz"]
        versus = f"{s['per_s'] / single[row['workers']]:.2f}" if row["workers"] in single else "-"
        cpu, done = row["cpu"], max(1, s["requests"])
        machine_ms = 1000 * cpu["machine_s"] / done
        print(
            f"| {row['workers']} | {row['batch']} | {s['per_s']:,.0f} | {s['p50_ms']:.1f} | "
            f"{s['p99_ms']:.1f} | {s['errors']} | {h['per_s']:,.0f} | {s['per_s'] / h['per_s']:.2f} | "
            f"{versus} | {1000 * cpu['server_s'] / done:.2f} | {1000 * cpu['database_s'] / done:.2f} | "
            f"{machine_ms:.2f} | {cpu['machine_s'] / cpu['wall_s'] / cores:.0%} | "
            f"{1000 * cores / machine_ms:,.0f} |"
        )
    best = max(r["submit"]["per_s"] for r in rows)
    verdict = "met" if best >= TARGET_PER_S else "NOT met"
    print(f"\nbest: {best:,.0f} submissions/s; target ≥ {TARGET_PER_S:,.0f}/s: {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    found = {"rows": rows, "clients": args.clients, "seconds": args.seconds, "bare_asgi_per_s": bare}
    RESULTS.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
