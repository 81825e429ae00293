"""What the benchmarks share: a fresh PostgreSQL database and the Pinghu demo region loaded into one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text


def fresh_postgres(url: str) -> None:
    """Drop and re-create the database `url` names (connecting to the server's `postgres` database)."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def cli(env: dict[str, str], *args: str) -> str:
    """Run the `suanwang` CLI in a subprocess; its stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "suanwang.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def demo_region(url: str, data_dir: Path) -> dict[str, str]:
    """Migrate `url` and load the demo region; returns the environment that points the CLI at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUANWANG_")}
    env |= {
        "SUANWANG_DATABASE_URL": url,
        "SUANWANG_DATA_DIR": str(data_dir),
        "SUANWANG_SERVE_CONTROLLER": "false",
    }
    cli(env, "db", "upgrade")
    cli(env, "demo", "--no-serve")
    return env
