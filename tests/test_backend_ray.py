"""The Ray backend against a real local Ray cluster (tests/ray_support.py): 2 CPUs, 4 fake GPUs.

Launches are real Ray jobs running real shell commands; cards are real Ray GPU requests. The fault
test kills a cluster of its own, so the shared one stays up for the rest of the session.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from suanwang.backends.protocol import (
    Backend,
    BackendRejected,
    BackendUnavailable,
    Capacity,
    LaunchSpec,
    Observation,
    RemoteState,
)
from suanwang.backends.ray import RayBackend, entrypoint
from tests.ray_support import free_port, start_ray_cluster

WAIT_S = 60.0  # a job starts in ~1 s on an idle machine; a loaded 2-core CI machine is slower
_job_ids = itertools.count(1)


def spec(
    *command: str,
    cards: int = 0,
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    cards_per_node: int | None = None,
    time_limit_s: int | None = None,
) -> LaunchSpec:
    """A launch under a name no other test in this session uses."""
    return LaunchSpec(
        job_id=next(_job_ids),
        attempt=1,
        command=command,
        cards=cards,
        env=env or {},
        workdir=workdir,
        cards_per_node=cards_per_node,
        time_limit_s=time_limit_s,
    )


def wait_for(backend: RayBackend, handle: str, *states: RemoteState) -> Observation:
    deadline = time.monotonic() + WAIT_S
    while True:
        observation = backend.poll([handle])[handle]
        if observation.state in states or time.monotonic() > deadline:
            assert observation.state in states, observation
            return observation
        time.sleep(0.2)


def wait_ended(backend: RayBackend, handle: str) -> Observation:
    return wait_for(backend, handle, *(s for s in RemoteState if s.terminal))


@pytest.fixture
def backend(ray_cluster: str) -> Iterator[RayBackend]:
    ray = RayBackend(ray_cluster, timeout_s=10.0)
    yield ray
    ray.close()


def test_ray_backend_speaks_the_protocol(backend: RayBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.kind == "ray"


def test_echo_succeeds_with_times_exit_code_logs_env_and_its_card(backend: RayBackend) -> None:
    launch = spec(
        "sh",
        "-c",
        'echo hello "$GREETING" "$SUANWANG_JOB_ID"; echo "cards=[$CUDA_VISIBLE_DEVICES]"',
        cards=1,
        env={"GREETING": "world", "CUDA_VISIBLE_DEVICES": "7"},
    )
    before = datetime.now(UTC)
    handle = backend.submit(launch)
    assert handle == launch.name

    done = wait_ended(backend, handle)

    assert (done.state, done.exit_code, done.cards) == (RemoteState.SUCCEEDED, 0, 1)
    assert done.started_at is not None and done.ended_at is not None
    assert done.started_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= done.started_at <= done.ended_at <= datetime.now(UTC)
    assert done.card_seconds is not None
    output = backend.logs(handle)
    assert f"hello world {launch.job_id}".encode() in output
    # Ray assigned one of its 4 cards; the user's CUDA_VISIBLE_DEVICES did not override that.
    assert any(f"cards=[{card}]".encode() in output for card in range(4)), output
    assert backend.logs(handle, tail_bytes=10) == output[-10:]


def test_nonzero_exit_fails_with_its_exit_code(backend: RayBackend) -> None:
    handle = backend.submit(spec("sh", "-c", "echo about to fail; exit 3"))

    done = wait_ended(backend, handle)

    assert (done.state, done.exit_code) == (RemoteState.FAILED, 3)
    assert done.message is not None and "exit code 3" in done.message
    assert b"about to fail" in backend.logs(handle)


def test_workdir_and_quoted_arguments_reach_the_program(backend: RayBackend, tmp_path: Path) -> None:
    launch = spec("sh", "-c", 'pwd; printf "<%s>" "$@"', "sh", "a b", "it's", "$HOME", workdir=str(tmp_path))

    handle = backend.submit(launch)

    assert wait_ended(backend, handle).state == RemoteState.SUCCEEDED
    output = backend.logs(handle).decode()
    assert str(tmp_path) in output
    assert "<a b><it's><$HOME>" in output


def test_time_limit_ends_the_launch_with_timeouts_exit_code(backend: RayBackend) -> None:
    handle = backend.submit(spec("sleep", "60", time_limit_s=1))

    done = wait_ended(backend, handle)

    assert (done.state, done.exit_code) == (RemoteState.FAILED, 124)
    assert done.started_at is not None and done.ended_at is not None
    assert done.ended_at - done.started_at < timedelta(seconds=30)


def test_cancel_stops_a_running_launch_and_is_idempotent(backend: RayBackend) -> None:
    handle = backend.submit(spec("sleep", "60", cards=1))
    wait_for(backend, handle, RemoteState.RUNNING)

    backend.cancel(handle)

    done = wait_ended(backend, handle)
    assert done.state == RemoteState.CANCELLED
    assert done.ended_at is not None
    backend.cancel(handle)  # ended: nothing happens
    backend.cancel("sw-999999-1")  # never sent: nothing happens


def test_find_by_name_and_unknown_handles(backend: RayBackend) -> None:
    launch = spec("true")
    assert backend.find(launch.name) is None

    backend.submit(launch)

    assert backend.find(launch.name) == launch.name
    assert wait_ended(backend, launch.name).state == RemoteState.SUCCEEDED
    unknown = backend.poll(["sw-999999-1"])["sw-999999-1"]
    assert unknown.state == RemoteState.LOST
    assert backend.logs("sw-999999-1") == b""


def test_sending_a_name_twice_is_rejected(backend: RayBackend) -> None:
    launch = spec("true")
    backend.submit(launch)

    with pytest.raises(BackendRejected, match="already exists"):
        backend.submit(launch)
    wait_ended(backend, launch.name)


def test_launch_waits_while_its_cards_are_busy(backend: RayBackend) -> None:
    holder = backend.submit(spec("sleep", "60", cards=4))
    wait_for(backend, holder, RemoteState.RUNNING)
    waiter = backend.submit(spec("sleep", "60", cards=4))
    try:
        for _ in range(10):
            observation = backend.poll([waiter])[waiter]
            assert observation.state == RemoteState.PENDING, observation
            assert observation.started_at is None
            time.sleep(0.2)
        assert _eventually_free(backend, 0).cards_total == 4

        backend.cancel(holder)

        assert wait_for(backend, waiter, RemoteState.RUNNING).started_at is not None
    finally:
        backend.cancel(holder)
        backend.cancel(waiter)
    assert wait_ended(backend, waiter).state == RemoteState.CANCELLED


def test_cancel_of_a_pending_launch_takes_effect_when_its_cards_free(backend: RayBackend) -> None:
    """Ray's limit, pinned here so an upgrade that lifts it is noticed: a stop request reaches a job's
    supervisor only once the supervisor has its cards, so a waiting launch stays PENDING until then,
    and then its program starts and is stopped at once."""
    holder = backend.submit(spec("sleep", "60", cards=4))
    wait_for(backend, holder, RemoteState.RUNNING)
    waiter = backend.submit(spec("sleep", "60", cards=1))
    try:
        backend.cancel(waiter)
        time.sleep(1.0)
        assert backend.poll([waiter])[waiter].state == RemoteState.PENDING
    finally:
        backend.cancel(holder)
    assert wait_ended(backend, waiter).state == RemoteState.CANCELLED
    wait_ended(backend, holder)


def test_capacity_counts_the_clusters_gpus(backend: RayBackend, ray_cluster: str) -> None:
    capacity = _eventually_free(backend, 4)
    assert (capacity.cards_total, capacity.healthy) == (4, True)
    shared = RayBackend(ray_cluster, cards_total=2)
    try:
        assert (shared.capacity().cards_total, shared.capacity().cards_free) == (2, 2)
    finally:
        shared.close()


def _eventually_free(backend: RayBackend, cards_free: int) -> Capacity:
    """Ray's resource report is refreshed every few seconds, so capacity lags a launch's start and end."""
    deadline = time.monotonic() + 30
    while (capacity := backend.capacity()).cards_free != cards_free and time.monotonic() < deadline:
        time.sleep(0.5)
    assert capacity.cards_free == cards_free, capacity
    return capacity


def test_multi_node_launch_is_rejected_before_any_request() -> None:
    unreachable = RayBackend(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    with pytest.raises(BackendRejected, match="at most 4 cards"):
        unreachable.submit(spec("true", cards=8, cards_per_node=4))
    with pytest.raises(BackendRejected, match="empty command"):
        unreachable.submit(spec(cards=1))


def test_entrypoint_quotes_argv_and_wraps_workdir_and_time_limit() -> None:
    launch = spec("python", "train.py", "--name", "a b", workdir="/data/my run", time_limit_s=3600)
    assert entrypoint(launch) == (
        "cd '/data/my run' && exec timeout --kill-after=30 3600 python train.py --name 'a b'"
    )
    assert entrypoint(spec("true")) == "exec true"


def test_from_connection_reads_address_timeout_and_cards(tmp_path: Path) -> None:
    ray = RayBackend.from_connection({"address": "http://head:8265/", "timeout_s": 3, "cards": 8}, tmp_path)
    assert (ray.address, ray.timeout_s, ray.cards_total) == ("http://head:8265", 3.0, 8)
    with pytest.raises(ValueError, match="address"):
        RayBackend.from_connection({}, tmp_path)


def test_an_address_nobody_answers_is_unavailable() -> None:
    ray = RayBackend(f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    _assert_every_call_unavailable(ray, within_s=2.0)


def test_killing_the_head_makes_every_call_unavailable() -> None:
    # Its own cluster, so the shared one lives on. It runs Ray's v2 autoscaler, which writes no legacy
    # resource report: capacity() then reads the per-node summary, checked here before the kill.
    cluster = start_ray_cluster(num_gpus=1, env={"RAY_enable_autoscaler_v2": "1"})
    setup = RayBackend(cluster.address)
    ray = RayBackend(cluster.address, timeout_s=3.0)
    try:
        assert ray.capacity() == Capacity(cards_total=1, cards_free=1)
        handle = setup.submit(spec("sleep", "60", cards=1))
        wait_for(setup, handle, RemoteState.RUNNING)

        cluster.kill_head()

        _assert_every_call_unavailable(ray, within_s=3.0, handle=handle)
    finally:
        setup.close()
        ray.close()
        cluster.stop()


def _assert_every_call_unavailable(ray: RayBackend, *, within_s: float, handle: str = "sw-1-1") -> None:
    calls: dict[str, Callable[[], object]] = {
        "capacity": ray.capacity,
        "submit": lambda: ray.submit(spec("true", cards=1)),
        "find": lambda: ray.find(handle),
        "poll": lambda: ray.poll([handle]),
        "cancel": lambda: ray.cancel(handle),
        "logs": lambda: ray.logs(handle),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            call()
        # One request at most; a timeout of within_s plus slack for a loaded machine.
        assert time.monotonic() - started < within_s + 2.0, name
