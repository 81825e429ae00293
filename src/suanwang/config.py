"""Settings from environment variables (SUANWANG_*); the embedded default is SQLite under the data dir."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from suanwang.i18n import normalize_lang


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUANWANG_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    lang: str = "en"
    # When set, a regulator token with exactly this value exists from start-up (bootstrap for automation).
    admin_token: str | None = None
    # The administrative division (GB/T 2260) of the region this platform serves: Pinghu, Jiaxing.
    # An organisation registered under a code starting with this prefix is local.
    region_division_code: str = "330482"
    # Path prefix when served behind a reverse proxy (e.g. "/suanwang").
    root_path: str = ""
    # Site regions whose capacity is local (the SMEs' guaranteed share applies to it), comma-separated.
    local_regions: str = "zj-jiaxing-pinghu"
    # The controller: seconds between cycles, most jobs it places per cycle, how long a pool's backend
    # may stay silent before its running work is declared lost, and launches before lost work fails.
    controller_interval_s: float = 2.0
    controller_batch: int = 500
    lost_after_s: float = 120.0
    max_attempts: int = 5
    # A TOML file whose [policy] table overrides the shipped scheduling policy (docs/scheduler.md).
    policy_file: Path | None = None
    # Run the controller inside `suanwang serve` (off for API-only workers beside a separate controller).
    serve_controller: bool = True
    # Money: the platform's fee on every charge in basis points (500 = 5 %), the billing increment
    # (each usage record's seconds are rounded up to it), and what happens to a job whose tenant's
    # wallet cannot hold its maximum cost: refused with 402 ("reject") or kept waiting ("queue").
    platform_fee_bp: int = Field(default=500, ge=0, le=10_000)
    billing_increment_s: int = Field(default=1, ge=1, le=86_400)
    unfunded: Literal["reject", "queue"] = "reject"
    # Node agents: how often they heartbeat, and how long a node may stay silent before the launches
    # on it are declared lost (the controller then requeues their jobs).
    agent_heartbeat_s: float = Field(default=2.0, gt=0, le=300)
    agent_lost_after_s: float = Field(default=30.0, gt=0, le=3600)
    # Most job submissions one transaction takes (group commit; 1 = each submission commits alone).
    submit_batch: int = Field(default=500, ge=1, le=5000)
    # How long the intake writer waits for more submissions before it writes a batch (milliseconds).
    submit_gather_ms: float = Field(default=3.0, ge=0, le=100)
    # Limits per request and per token (api/limits.py); a rate of 0 switches the rate limit off.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024**3)
    rate_limit_per_s: float = Field(default=1000.0, ge=0, le=1_000_000)
    rate_limit_burst: int = Field(default=2000, ge=1, le=10_000_000)

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str) -> str:
        return normalize_lang(value)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'suanwang.db').resolve()}"

    @property
    def local_region_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.local_regions.split(",") if r.strip())

    @property
    def is_embedded(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
