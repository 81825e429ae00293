"""The Slurm backend against a real one-node cluster (scripts/slurm/ensure.sh), plus its parsers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from suanwang.backends import slurm
from suanwang.backends.protocol import (
    Backend,
    BackendRejected,
    BackendUnavailable,
    Observation,
    RemoteState,
)
from suanwang.backends.slurm import SlurmBackend
from tests.slurm_support import (
    FAKE_GPUS,
    SlurmCluster,
    controller_down,
    shell,
    unique_spec,
    wait_for,
    wait_terminal,
)

# ------------------------------------------------------------------------------ against the cluster


def test_it_speaks_the_backend_protocol(slurm_backend: SlurmBackend) -> None:
    assert isinstance(slurm_backend, Backend)
    assert slurm_backend.kind == "slurm"


def test_a_succeeding_job_reports_times_cards_and_logs(slurm_backend: SlurmBackend) -> None:
    spec = shell("echo hello; sleep 1; exit 0", cards=2, time_limit_s=90)
    handle = slurm_backend.submit(spec)
    limit = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--jobs", handle, "--Format=TimeLimit"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert limit.stdout.strip() == "2:00"  # 90 s rounds up to Slurm's whole minutes

    done = wait_terminal(slurm_backend, handle)

    assert done.state is RemoteState.SUCCEEDED
    assert done.exit_code == 0
    assert done.started_at is not None and done.ended_at is not None
    assert done.started_at.tzinfo == UTC and done.ended_at.tzinfo == UTC
    assert abs((done.started_at - datetime.now(UTC)).total_seconds()) < 60
    assert done.ended_at >= done.started_at
    assert done.cards == 2
    assert done.card_seconds == 2 * round((done.ended_at - done.started_at).total_seconds())
    assert done.card_seconds is not None and done.card_seconds >= 2  # it slept a second on 2 cards
    assert b"hello" in slurm_backend.logs(handle)
    assert slurm_backend.logs(handle, tail_bytes=3) == b"lo\n"


def test_accounting_records_the_job(slurm_backend: SlurmBackend) -> None:
    # sacct answers for jobs slurmctld has forgotten; here it must agree with what squeue said.
    handle = slurm_backend.submit(shell("exit 0", cards=1))
    live = wait_terminal(slurm_backend, handle)
    deadline = time.monotonic() + 15
    while not (accounted := slurm_backend._sacct("--jobs", handle)) or accounted[0].state != "COMPLETED":
        assert time.monotonic() < deadline, f"sacct never showed job {handle} completed: {accounted}"
        time.sleep(0.3)
    assert accounted[0].observation() == live


def test_a_failing_command_fails_with_its_exit_code(slurm_backend: SlurmBackend) -> None:
    handle = slurm_backend.submit(shell("echo oops >&2; exit 3"))
    done = wait_terminal(slurm_backend, handle)
    assert done.state is RemoteState.FAILED
    assert done.exit_code == 3
    assert done.message == "FAILED"
    assert done.cards == 0 and done.card_seconds == 0
    assert b"oops" in slurm_backend.logs(handle)  # stderr lands in the same log


def test_a_missing_program_fails(slurm_backend: SlurmBackend) -> None:
    done = wait_terminal(slurm_backend, slurm_backend.submit(unique_spec("/nonexistent/program")))
    assert done.state is RemoteState.FAILED
    assert done.exit_code == 127


def test_arguments_environment_and_workdir_arrive_intact(slurm_backend: SlurmBackend, tmp_path: Path) -> None:
    tricky = 'it\'s $HOME; `x` | "q", a=b'
    spec = unique_spec(
        "sh",
        "-c",
        'printf "%s\\n" "$1" "$TRICKY" "$(pwd)"',
        "argv0",
        tricky,
        env={"TRICKY": tricky},
        workdir=str(tmp_path),
    )
    done = wait_terminal(slurm_backend, slurm_backend.submit(spec))
    assert done.state is RemoteState.SUCCEEDED, slurm_backend.logs(done.handle)
    assert slurm_backend.logs(done.handle).decode().splitlines() == [tricky, tricky, str(tmp_path)]


def test_the_callers_environment_does_not_leak_into_jobs(
    slurm_backend: SlurmBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUANWANG_TEST_SECRET", "s3cret")
    done = wait_terminal(slurm_backend, slurm_backend.submit(shell('test -z "$SUANWANG_TEST_SECRET"')))
    assert done.state is RemoteState.SUCCEEDED


def test_cards_are_visible_to_the_job(slurm_backend: SlurmBackend) -> None:
    done = wait_terminal(slurm_backend, slurm_backend.submit(shell('echo "$CUDA_VISIBLE_DEVICES"', cards=3)))
    assert done.state is RemoteState.SUCCEEDED
    assert len(slurm_backend.logs(done.handle).decode().strip().split(",")) == 3


def test_cancel_stops_a_running_job(slurm_backend: SlurmBackend) -> None:
    handle = slurm_backend.submit(shell("sleep 60", cards=1))
    running = wait_for(slurm_backend, handle, lambda o: o.state is RemoteState.RUNNING)
    assert running.started_at is not None and running.ended_at is None and running.exit_code is None

    slurm_backend.cancel(handle)
    done = wait_terminal(slurm_backend, handle)

    assert done.state is RemoteState.CANCELLED
    assert done.ended_at is not None
    slurm_backend.cancel(handle)  # idempotent
    slurm_backend.cancel("123456789")  # unknown: nothing to do


def test_find_returns_the_handle_by_launch_name(slurm_backend: SlurmBackend) -> None:
    spec = shell("sleep 30")
    handle = slurm_backend.submit(spec)
    try:
        assert slurm_backend.find(spec.name) == handle
        assert slurm_backend.find(shell("true").name) is None  # never sent
    finally:
        slurm_backend.cancel(handle)
    wait_terminal(slurm_backend, handle)
    assert slurm_backend.find(spec.name) == handle  # ended jobs too


def test_unknown_handles_are_lost(slurm_backend: SlurmBackend) -> None:
    observed = slurm_backend.poll(["987654321", "not-a-job-id"])
    assert {o.state for o in observed.values()} == {RemoteState.LOST}
    assert slurm_backend.poll([]) == {}
    assert slurm_backend.logs("987654321") == b""


def test_more_cards_than_the_cluster_has_are_rejected(slurm_backend: SlurmBackend) -> None:
    with pytest.raises(BackendRejected, match="Requested node configuration is not available"):
        slurm_backend.submit(shell("true", cards=99))


def test_an_unknown_partition_is_rejected(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    backend = SlurmBackend(partition="no-such-partition", log_dir=tmp_path)
    with pytest.raises(BackendRejected, match=r"(?i)invalid partition"):
        backend.submit(shell("true"))
    with pytest.raises(BackendUnavailable, match="not found"):
        backend.capacity()


def test_capacity_counts_the_fake_gpus(slurm_backend: SlurmBackend) -> None:
    capacity = slurm_backend.capacity()
    assert capacity.cards_total == FAKE_GPUS
    assert 0 <= capacity.cards_free <= FAKE_GPUS
    assert capacity.healthy


def test_capacity_falls_while_a_job_holds_cards(slurm_backend: SlurmBackend) -> None:
    handle = slurm_backend.submit(shell("sleep 30", cards=FAKE_GPUS))
    try:
        wait_for(slurm_backend, handle, lambda o: o.state is RemoteState.RUNNING)
        assert slurm_backend.capacity().cards_free == 0
    finally:
        slurm_backend.cancel(handle)
    wait_terminal(slurm_backend, handle)


def test_a_job_waits_for_cards_and_says_why(slurm_backend: SlurmBackend) -> None:
    holder = slurm_backend.submit(shell("sleep 30", cards=FAKE_GPUS))
    waiter = slurm_backend.submit(shell("true", cards=1))
    try:
        wait_for(slurm_backend, holder, lambda o: o.state is RemoteState.RUNNING)
        pending = wait_for(slurm_backend, waiter, lambda o: o.message is not None)
        assert pending.state is RemoteState.PENDING
        assert pending.cards == 1 and pending.started_at is None
        assert pending.message in ("Resources", "Priority")
    finally:
        slurm_backend.cancel(waiter)
        slurm_backend.cancel(holder)
    assert wait_terminal(slurm_backend, waiter).state is RemoteState.CANCELLED


def test_without_the_controller_calls_fail_fast_and_jobs_survive(slurm_backend: SlurmBackend) -> None:
    spec = shell("sleep 3; echo survived")
    handle = slurm_backend.submit(spec)
    wait_for(slurm_backend, handle, lambda o: o.state is RemoteState.RUNNING)
    quick = SlurmBackend(log_dir=slurm_backend.log_dir, timeout_s=1.0)

    with controller_down():
        # The client's own error ("Unable to contact slurm controller") within the default timeout...
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="Unable to contact slurm controller"):
            slurm_backend.find(spec.name)
        assert time.monotonic() - started < slurm_backend.timeout_s + 1
        # ...and the timeout itself when it is shorter than the client's retries (4-8 s here).
        calls: dict[str, Callable[[], object]] = {
            "capacity": quick.capacity,
            "poll": lambda: quick.poll([handle]),
            "find": lambda: quick.find(spec.name),
            "submit": lambda: quick.submit(shell("true")),
            "cancel": lambda: quick.cancel(handle),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="did not answer within 1 s"):
                call()
            assert time.monotonic() - started < quick.timeout_s + 1, name

    assert slurm_backend.find(spec.name) == handle
    done = wait_terminal(slurm_backend, handle, timeout_s=60)
    assert done.state is RemoteState.SUCCEEDED
    assert b"survived" in slurm_backend.logs(handle)
    assert slurm_backend.capacity().healthy


def test_from_connection_reads_the_site_settings(tmp_path: Path) -> None:
    backend = SlurmBackend.from_connection(
        {"partition": "a100", "log_dir": "logs", "bin_dir": "/opt/slurm/bin"}, tmp_path
    )
    assert (backend.partition, backend.log_dir, backend.bin_dir) == (
        "a100",
        tmp_path / "logs",
        "/opt/slurm/bin",
    )
    assert SlurmBackend.from_connection({}, tmp_path).log_dir == tmp_path / "slurm-logs"
    assert SlurmBackend.from_connection({"log_dir": "/abs"}, tmp_path).log_dir == Path("/abs")


def test_missing_clients_make_the_backend_unavailable(tmp_path: Path) -> None:
    backend = SlurmBackend(log_dir=tmp_path, bin_dir=str(tmp_path / "no-bin"))
    with pytest.raises(BackendUnavailable, match="cannot run"):
        backend.capacity()


# ------------------------------------------------------------------------------------------ parsers


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PENDING", RemoteState.PENDING),
        ("CONFIGURING", RemoteState.PENDING),
        ("RUNNING", RemoteState.RUNNING),
        ("COMPLETING", RemoteState.RUNNING),
        ("COMPLETED", RemoteState.SUCCEEDED),
        ("FAILED", RemoteState.FAILED),
        ("TIMEOUT", RemoteState.FAILED),
        ("OUT_OF_MEMORY", RemoteState.FAILED),
        ("NODE_FAIL", RemoteState.FAILED),
        ("CANCELLED", RemoteState.CANCELLED),
        ("CANCELLED by 0", RemoteState.CANCELLED),
        ("REVOKED", RemoteState.LOST),
        ("SOMETHING_NEW", RemoteState.LOST),
    ],
)
def test_slurm_states_map_onto_the_protocol(state: str, expected: RemoteState) -> None:
    job = slurm._Job("1", "sw-1-1", state, None, None, None, 0)
    assert job.remote_state is expected


def test_squeue_rows_are_read() -> None:
    job = slurm._squeue_job(
        "42|TIMEOUT|15|2025-01-02T03:04:05|2025-01-02T04:04:05|cpu=1,node=1,gres/gpu=2|gres:gpu:2|None|sw-9-1|"
    )
    assert job.observation() == Observation(
        handle="42",
        state=RemoteState.FAILED,
        started_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        ended_at=datetime(2025, 1, 2, 4, 4, 5, tzinfo=UTC),
        exit_code=128 + 15,
        cards=2,
        message="TIMEOUT",
    )
    assert job.name == "sw-9-1"
    pending = slurm._squeue_job("43|PENDING|0|N/A|N/A||gres:gpu:3|Resources|a|b|")
    assert pending.name == "a|b" and pending.cards == 3
    assert pending.observation().message == "Resources"


def test_sacct_rows_are_read() -> None:
    job = slurm._sacct_job("7|CANCELLED by 0|0:15|2025-01-02T03:04:05|Unknown|billing=1,gres/gpu=1|x|sw-1-2")
    assert (job.job_id, job.name, job.cards, job.ended_at) == ("7", "sw-1-2", 1, None)
    assert job.observation().state is RemoteState.CANCELLED
    assert slurm._exit_pair("3:0") == 3 and slurm._exit_pair("") is None


@pytest.mark.parametrize(
    ("tres", "gpus"),
    [
        ("billing=1,cpu=1,gres/gpu=2,node=1", 2),
        ("gres/gpu=4,gres/gpu:a100=4", 4),
        ("gres/gpu:a100=3", 3),
        ("gres:gpu:2", 2),
        ("gres:gpu:a100:5", 5),
        ("gres/gpu:1", 1),
        ("cpu=1,mem=1G", 0),
        ("", 0),
        (None, 0),
    ],
)
def test_gpu_counts_are_read_from_tres(tres: str | None, gpus: int) -> None:
    assert slurm._gpu_count(tres) == gpus


@pytest.mark.parametrize(
    ("state", "usable"),
    [
        ("IDLE", True),
        ("MIXED", True),
        ("ALLOCATED", True),
        ("IDLE+DRAIN", False),
        ("DOWN*", False),
        ("DOWN+NOT_RESPONDING", False),
        ("MIXED+DRAIN", False),
        (None, False),
    ],
)
def test_node_states_decide_health(state: str | None, usable: bool) -> None:
    assert slurm._node_usable(state) is usable


def test_launch_script_quotes_everything() -> None:
    script = slurm._batch_script(unique_spec("echo", "a b", "$X", env={"X": "it's"}))
    assert "export X='it'\"'\"'s'" in script
    assert script.rstrip().endswith("exec echo 'a b' '$X'")
    with pytest.raises(BackendRejected, match="environment variable"):
        slurm._batch_script(unique_spec("true", env={"BAD NAME": "x"}))
    with pytest.raises(BackendRejected, match="no command"):
        slurm._batch_script(unique_spec())
