"""`ray`: launches as Ray jobs, through the Jobs REST API of the cluster's dashboard.

Each launch is one Ray job whose submission id is the launch name ("sw-<job id>-<attempt>"), so
`find(name)` is one lookup. Its entrypoint reserves the launch's cards as Ray GPUs
(`entrypoint_num_gpus`): Ray queues the job until that many are free on one node and hands the
entrypoint their indices in `CUDA_VISIBLE_DEVICES`.

Why plain HTTP (httpx) and not `ray.job_submission.JobSubmissionClient`: the control plane then does
not import Ray (hundreds of MB, and its version tied to each cluster's), and one client covers jobs
and cluster resources. The Jobs REST API is Ray's documented interface for jobs; capacity comes from
two dashboard endpoints Ray does not document (`/api/cluster_status`, `/nodes?view=summary`), which
is why it reads either.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from suanwang.backends.protocol import (
    BackendRejected,
    BackendUnavailable,
    Capacity,
    LaunchSpec,
    Observation,
    RemoteState,
)

_STATES = {
    "PENDING": RemoteState.PENDING,
    "RUNNING": RemoteState.RUNNING,
    "SUCCEEDED": RemoteState.SUCCEEDED,
    "FAILED": RemoteState.FAILED,
    "STOPPED": RemoteState.CANCELLED,  # only a stop request ends a Ray job as STOPPED
}
# The entrypoint is a shell process that waits on the user's program; the platform sells cards, not
# cores, so it reserves no CPU and a small head node does not limit how many launches run at once.
ENTRYPOINT_CPUS = 0
# `timeout` sends SIGTERM at the limit and SIGKILL this long after, for a program that ignores it.
TIME_LIMIT_KILL_AFTER_S = 30
MESSAGE_LIMIT_CHARS = 500
# Ray's head relays a refusal by its job agent (duplicate submission id, bad runtime env) as HTTP 500.
_AGENT_REFUSED = re.compile(r"Request failed with status code 4\d\d")
_EXIT_CODE = re.compile(r"failed with exit code (-?\d+)")
_GPU_USAGE = re.compile(r"([\d.]+)/([\d.]+) GPU")


class RayBackend:
    kind = "ray"

    def __init__(self, address: str, timeout_s: float = 10.0, cards_total: int | None = None) -> None:
        """`address`: the dashboard URL (http://head:8265). `cards_total`: the most cards this pool may
        use, for a pool that is a share of a larger cluster (None: all the cluster's GPUs)."""
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s
        self.cards_total = cards_total
        # No proxies from the environment: the site's connection says where the cluster is.
        self._http = httpx.Client(base_url=self.address, timeout=timeout_s, trust_env=False)

    @classmethod
    def from_connection(cls, connection: dict[str, Any], data_dir: Path) -> RayBackend:
        """Keys: `address` (required), `timeout_s`, `cards` (as `cards_total`). `data_dir` is unused:
        Ray keeps the launches' state and logs itself."""
        address = connection.get("address")
        if not address:
            raise ValueError(
                "A Ray site's connection needs 'address', the dashboard URL, e.g. "
                '{"address": "http://10.0.0.5:8265"}'
            )
        cards = connection.get("cards")
        return cls(
            str(address),
            timeout_s=float(connection.get("timeout_s", 10.0)),
            cards_total=int(cards) if cards is not None else None,
        )

    # --- protocol ---------------------------------------------------------------------------------

    def capacity(self) -> Capacity:
        used, total = self._gpu_usage()
        cards_total = math.floor(total)
        cards_free = math.floor(total - used)  # a card partly taken by a fractional request is not free
        if self.cards_total is not None:
            cards_total = min(cards_total, self.cards_total)
            cards_free = min(cards_free, cards_total)
        return Capacity(cards_total=cards_total, cards_free=max(0, cards_free))

    def submit(self, spec: LaunchSpec) -> str:
        _check_shape(spec)
        response = self._request("POST", "/api/jobs/", json=_job_request(spec))
        self._raise_for(response, f"submitting {spec.name}")
        return spec.name

    def find(self, name: str) -> str | None:
        return name if self._job(name) is not None else None

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        # One request per handle: listing all jobs instead would return the cluster's whole history.
        observations = {}
        for handle in handles:
            info = self._job(handle)
            observations[handle] = (
                _observation(handle, info)
                if info is not None
                else Observation(handle=handle, state=RemoteState.LOST, message="Ray does not know this job")
            )
        return observations

    def cancel(self, handle: str) -> None:
        response = self._request("POST", f"/api/jobs/{handle}/stop")
        if response.status_code == 404:
            return  # never sent, or purged: nothing is running under it
        # An ended job answers {"stopped": false}: nothing to do, as the protocol asks.
        self._raise_for(response, f"stopping {handle}")

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        # Ray returns the whole log in one JSON document; the tail is cut here.
        response = self._request("GET", f"/api/jobs/{handle}/logs")
        if response.status_code == 404:
            return b""
        self._raise_for(response, f"reading the logs of {handle}")
        data = self._json(response)
        output = str(data.get("logs") or "").encode() if isinstance(data, dict) else b""
        return output[-tail_bytes:] if tail_bytes is not None and tail_bytes < len(output) else output

    def close(self) -> None:
        self._http.close()

    # --- HTTP -------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:  # refused, reset, timed out, DNS
            raise BackendUnavailable(
                f"Ray at {self.address} did not answer {method} {path}: {error!r}"
            ) from error

    def _raise_for(self, response: httpx.Response, doing: str) -> None:
        if response.is_success:
            return
        text = _short_message(response.text)
        if response.is_client_error or _AGENT_REFUSED.search(response.text):
            raise BackendRejected(f"Ray at {self.address} refused {doing}: {text}")
        raise BackendUnavailable(
            f"Ray at {self.address} failed {doing} (HTTP {response.status_code}): {text}"
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as error:  # an address that is not a Ray dashboard
            raise BackendUnavailable(
                f"{self.address} answered {response.request.url.path} with something other than JSON; "
                "is it a Ray dashboard?"
            ) from error

    def _data(self, response: httpx.Response) -> dict[str, Any]:
        """The `data` object of a dashboard answer ({"result": ..., "msg": ..., "data": {...}})."""
        body = self._json(response)
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    def _job(self, submission_id: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/api/jobs/{submission_id}")
        if response.status_code == 404:
            return None
        self._raise_for(response, f"looking up {submission_id}")
        info = self._json(response)
        if not isinstance(info, dict):
            raise BackendUnavailable(f"Ray at {self.address} answered a job lookup with {info!r}")
        return info

    def _gpu_usage(self) -> tuple[float, float]:
        """(used, total) GPUs of the cluster's live nodes."""
        # The autoscaler monitor's report (what `ray status` shows, refreshed every few seconds).
        response = self._request("GET", "/api/cluster_status")
        self._raise_for(response, "reading the cluster status")
        report = (self._data(response).get("clusterStatus") or {}).get("loadMetricsReport")
        if report is not None:
            used, total = report.get("usage", {}).get("GPU", (0.0, 0.0))
            return float(used), float(total)
        # No report yet (a head just started) or none at all (autoscaler v2): the per-node summary.
        response = self._request("GET", "/nodes", params={"view": "summary"})
        self._raise_for(response, "reading the nodes")
        nodes = self._data(response).get("nodeLogicalResources")
        if not nodes:
            raise BackendUnavailable(f"Ray at {self.address} has not reported its resources yet")
        pairs = [match.groups() for text in nodes.values() for match in _GPU_USAGE.finditer(str(text))]
        return sum(float(u) for u, _ in pairs), sum(float(t) for _, t in pairs)


# --- requests and answers ---------------------------------------------------------------------------


def _check_shape(spec: LaunchSpec) -> None:
    if not spec.command:
        raise BackendRejected("empty command")
    if spec.nodes > 1:
        # A Ray job's entrypoint holds its cards on one node; cards on other nodes would not be
        # reserved, so the launch could find them taken.
        raise BackendRejected(
            f"{spec.cards} cards at {spec.cards_per_node} per node need {spec.nodes} nodes, and a Ray "
            f"launch runs on one. To fix: ask for at most {spec.cards_per_node} cards, or use a Slurm pool."
        )


def entrypoint(spec: LaunchSpec) -> str:
    """The shell line Ray runs (with /bin/sh): the argv quoted, in its workdir, under its time limit."""
    line = shlex.join(spec.command)
    if spec.time_limit_s is not None:
        # Ray jobs have no time limit of their own; coreutils `timeout` exits 124 when it fires.
        line = f"timeout --kill-after={TIME_LIMIT_KILL_AFTER_S} {spec.time_limit_s} {line}"
    line = f"exec {line}"  # the program replaces the shell, so Ray's stop signal reaches it first
    if spec.workdir:
        # Not runtime_env.working_dir: that uploads a package; the workdir is already on the nodes.
        line = f"cd {shlex.quote(spec.workdir)} && {line}"
    return line


def _job_request(spec: LaunchSpec) -> dict[str, Any]:
    # Ray sets CUDA_VISIBLE_DEVICES to the cards it assigned; a user value must not override that.
    env = {k: v for k, v in spec.env.items() if k != "CUDA_VISIBLE_DEVICES"}
    env |= {"SUANWANG_JOB_ID": str(spec.job_id), "SUANWANG_ATTEMPT": str(spec.attempt)}
    return {
        "submission_id": spec.name,
        "entrypoint": entrypoint(spec),
        "entrypoint_num_cpus": ENTRYPOINT_CPUS,
        "entrypoint_num_gpus": spec.cards,
        "runtime_env": {"env_vars": env},
        # Ray's job details do not echo the entrypoint's resources; metadata carries the cards back.
        "metadata": {
            "suanwang_job_id": str(spec.job_id),
            "suanwang_attempt": str(spec.attempt),
            "suanwang_cards": str(spec.cards),
        },
    }


def _observation(handle: str, info: dict[str, Any]) -> Observation:
    status = str(info.get("status"))
    # A status this code does not know is taken as still running, so the controller keeps watching
    # instead of closing the launch on a guess.
    state = _STATES.get(status, RemoteState.RUNNING)
    metadata = info.get("metadata") or {}
    # Ray's start_time is when the job was submitted; driver_node_id is set when its entrypoint
    # started. A job that never started (cancelled or timed out while pending) has no start.
    started = info.get("start_time") if info.get("driver_node_id") else None
    message = _short_message(info.get("message") or "") or None
    if status not in _STATES:
        message = f"Ray status {status}" + (f": {message}" if message else "")
    return Observation(
        handle=handle,
        state=state,
        started_at=_utc(started),
        ended_at=_utc(info.get("end_time")),
        exit_code=_exit_code(state, info),
        cards=int(metadata.get("suanwang_cards", 0)),
        message=message,
    )


def _exit_code(state: RemoteState, info: dict[str, Any]) -> int | None:
    # driver_exit_code came late in 2023 (ray-project/ray#39675); a cluster older than that says the
    # code only in its message. The cluster's Ray need not be the version installed here.
    code = info.get("driver_exit_code")
    if code is not None:
        return int(code)
    if state is RemoteState.SUCCEEDED:
        return 0
    if state is RemoteState.FAILED:
        match = _EXIT_CODE.search(info.get("message") or "")
        return int(match.group(1)) if match else None
    return None


def _utc(ms_since_epoch: int | None) -> datetime | None:
    return None if ms_since_epoch is None else datetime.fromtimestamp(ms_since_epoch / 1000, tz=UTC)


def _short_message(text: str) -> str:
    """One line of what Ray said: the first line, or the error at the end of a traceback."""
    lines = [line.strip() for line in text.splitlines() if line.strip() not in ("", ".")]
    if not lines:
        return ""
    line = lines[0]
    if line.startswith("Traceback"):
        errors = [x for x in lines if re.match(r"^[\w.]+(Error|Exception): ", x)]
        line = errors[-1] if errors else lines[-1]
    return line if len(line) <= MESSAGE_LIMIT_CHARS else line[: MESSAGE_LIMIT_CHARS - 1] + "…"
