"""The CLI talks to the platform only through its REST API, so it obeys the same rules as every client.

Remote mode (`--url` / SUANWANG_URL): HTTP to a running server. Local mode (no URL): the same app
in-process on the embedded database; whoever can read that database file is its administrator, so
the CLI signs in with a local regulator token kept (0600) in the data dir.
"""

from __future__ import annotations

import uuid
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from suanwang.config import Settings

API = "/api/v1"
LOCAL_TOKEN_FILE = "local-admin.token"
RETRIES = 3


@dataclass
class ApiError(Exception):
    status: int
    code: str
    detail: str
    problem: dict[str, Any] = field(default_factory=dict)  # the whole problem+json body

    def __str__(self) -> str:
        return self.detail


class ConnectionFailed(Exception):
    pass


def local_admin_token(settings: Settings) -> str:
    """The local regulator token: created once (file mode 0600), made valid in the database every start."""
    from suanwang.db.session import engine_for, session_scope, upgrade
    from suanwang.tenants import service as tenants
    from suanwang.timeutil import utcnow

    path = Path(settings.data_dir) / LOCAL_TOKEN_FILE
    if path.exists():
        secret = path.read_text().strip()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = tenants.new_secret()
        path.touch(mode=0o600)
        path.write_text(secret + "\n")
    if settings.is_embedded:
        upgrade(settings.effective_database_url)
    with session_scope(engine_for(settings.effective_database_url)) as session:
        tenants.ensure_regulator_token(session=session, secret=secret, user_name="local-admin", now=utcnow())
    return secret


class Client(AbstractContextManager["Client"]):
    def __init__(self, *, settings: Settings, url: str | None, token: str | None, lang: str) -> None:
        self.settings = settings
        self.url = url
        self.token = token
        self.lang = lang
        self._http: Any = None

    def __enter__(self) -> Client:
        if self.url:
            self._http = httpx.Client(base_url=self.url.rstrip("/"), timeout=30.0)
        else:
            with warnings.catch_warnings():
                # Starlette asks for the httpx2 package; httpx works and is what we install.
                warnings.filterwarnings("ignore", message=".*httpx2.*")
                from fastapi.testclient import TestClient

            from suanwang.api.app import create_app

            if not self.token:
                self.token = self.settings.admin_token or local_admin_token(self.settings)
            # One command, in-process: no controller loop (`suanwang controller` or `serve` runs that).
            in_process = self.settings.model_copy(update={"serve_controller": False})
            self._http = TestClient(create_app(in_process), base_url="http://local")
            self._http.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            if self.url:
                self._http.close()
            else:
                self._http.__exit__(exc_type, exc, tb)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw: bool = False,
        content: bytes | None = None,
    ) -> Any:
        """The parsed JSON answer (`raw`: the body's bytes); `headers` add to or replace the defaults;
        `content` is sent as the raw body instead of `json` (a file upload)."""
        sent = {"Accept-Language": "zh-CN" if self.lang == "zh" else "en"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if method == "POST":
            # One key per command: a retry after a lost connection can never create twice.
            sent["Idempotency-Key"] = str(uuid.uuid4())
        sent.update(headers or {})
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        last_error: Exception | None = None
        for _ in range(RETRIES):
            try:
                response = self._http.request(
                    method, API + path, json=json, content=content, params=clean, headers=sent
                )
                break
            except httpx.TransportError as exc:
                last_error = exc
        else:
            raise ConnectionFailed(f"{self.url}: {last_error}")
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise ApiError(
                response.status_code,
                str(problem.get("code", "http-error")),
                str(problem.get("detail") or response.text or response.reason_phrase),
                problem if isinstance(problem, dict) else {},
            )
        return response.content if raw else response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)
