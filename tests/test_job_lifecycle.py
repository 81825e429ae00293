"""The job lifecycle (jobs/lifecycle.py), a pure state machine: the transition table, checked over every
pair of states, and properties of random walks and of the retry backoff."""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanwang.jobs import lifecycle
from suanwang.jobs.lifecycle import ALLOWED, TERMINAL, IllegalTransition, JobState, Retry, check, retry_after

S = JobState

# The lifecycle as the tests expect it, written out independently of ALLOWED. A new state fails
# `test_every_state_has_a_decided_set_of_exits` and every pair test that involves it until it is added.
EXPECTED: dict[JobState, set[JobState]] = {
    S.SUBMITTED: {S.QUEUED, S.REJECTED, S.CANCELLED},
    S.QUEUED: {S.PLACED, S.CANCELLED, S.REJECTED},
    S.PLACED: {S.RUNNING, S.FAILED, S.CANCELLED, S.LOST, S.PREEMPTED},
    S.RUNNING: {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.LOST, S.PREEMPTED},
    S.PREEMPTED: {S.QUEUED, S.CANCELLED},
    S.LOST: {S.QUEUED, S.FAILED, S.CANCELLED},
    S.SUCCEEDED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
    S.REJECTED: set(),
}
EXPECTED_TERMINAL = {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.REJECTED}
PAIRS = list(itertools.product(JobState, JobState))


def _pair_id(pair: tuple[JobState, JobState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


# --- the table, exhaustively ---------------------------------------------------------------------


def test_every_state_has_a_decided_set_of_exits() -> None:
    assert set(EXPECTED) == set(JobState), "a state was added or removed: decide its transitions here"
    assert set(ALLOWED) == set(JobState), "ALLOWED must list every state, even one without exits"
    assert {state: set(ALLOWED[state]) for state in JobState} == EXPECTED


@pytest.mark.parametrize("pair", PAIRS, ids=[_pair_id(p) for p in PAIRS])
def test_each_pair_is_allowed_or_raises(pair: tuple[JobState, JobState]) -> None:
    current, target = pair
    if target in EXPECTED[current]:
        assert check(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as raised:
            check(current, target)
        assert (raised.value.current, raised.value.target) == (current, target)
        assert f"from {current.value} to {target.value}" in str(raised.value)
        assert isinstance(raised.value, ValueError)


def test_the_pair_tests_cover_every_pair() -> None:
    assert len(PAIRS) == len(JobState) ** 2
    allowed = sum(1 for current, target in PAIRS if target in EXPECTED[current])
    assert allowed == sum(len(exits) for exits in ALLOWED.values())


def test_no_state_goes_to_itself() -> None:
    for state in JobState:
        with pytest.raises(IllegalTransition):
            check(state, state)


@pytest.mark.parametrize("state", sorted(EXPECTED_TERMINAL), ids=lambda s: s.value)
def test_terminal_states_have_no_exits(state: JobState) -> None:
    assert state.terminal and state in TERMINAL
    assert not ALLOWED[state]
    for target in JobState:
        with pytest.raises(IllegalTransition):
            check(state, target)


def test_terminal_and_active_flags() -> None:
    assert TERMINAL == EXPECTED_TERMINAL
    assert {s for s in JobState if s.terminal} == EXPECTED_TERMINAL
    assert {s for s in JobState if s.active} == {S.PLACED, S.RUNNING}
    assert not any(s.active and s.terminal for s in JobState)


def _reachable(start: JobState) -> set[JobState]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in ALLOWED[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_submitted() -> None:
    assert _reachable(S.SUBMITTED) == set(JobState)


def test_every_state_can_still_end() -> None:
    """No trap: from anywhere some terminal state is reachable, and cancel is possible until the end."""
    for state in JobState:
        assert _reachable(state) & TERMINAL, state
        if not state.terminal:
            assert S.CANCELLED in ALLOWED[state], state


def test_passing_states_lead_back_to_the_queue() -> None:
    for state in (S.PREEMPTED, S.LOST):
        assert S.QUEUED in ALLOWED[state]
        assert not state.terminal and not state.active


# --- random walks --------------------------------------------------------------------------------


@given(st.lists(st.sampled_from(list(JobState)), max_size=60))
def test_a_walk_never_leaves_a_terminal_state(targets: list[JobState]) -> None:
    """Try arbitrary targets: legal ones move the job, illegal ones raise and leave it where it was."""
    state = S.SUBMITTED
    ended_in: JobState | None = None
    for target in targets:
        before = state
        try:
            state = check(state, target)
        except IllegalTransition:
            assert target not in ALLOWED[before]
            assert state is before
        else:
            assert target in ALLOWED[before]
            assert ended_in is None, f"left terminal {ended_in} for {target}"
        if state.terminal and ended_in is None:
            ended_in = state
        if ended_in is not None:
            assert state is ended_in


@given(st.data())
def test_a_walk_of_legal_moves_ends_or_can_go_on(data: st.DataObject) -> None:
    """Choosing only legal moves, a walk reaches a terminal state or always has a next move."""
    state = S.SUBMITTED
    path = [state]
    for _ in range(50):
        exits = sorted(ALLOWED[state])
        if not exits:
            assert state.terminal
            break
        state = check(state, data.draw(st.sampled_from(exits)))
        path.append(state)
    # Once terminal, the path stays there (it stopped); terminal appears at most once and only last.
    terminal_positions = [i for i, s in enumerate(path) if s.terminal]
    assert terminal_positions in ([], [len(path) - 1])


# --- retries and backoff -------------------------------------------------------------------------

bases = st.floats(min_value=0.001, max_value=1000.0, allow_nan=False, allow_infinity=False)
caps = st.floats(min_value=0.001, max_value=100_000.0, allow_nan=False, allow_infinity=False)


@given(base=bases, cap=caps, max_attempts=st.integers(1, 50), attempt=st.integers(1, 1000))
def test_retry_counts_the_next_attempt_and_is_capped(
    base: float, cap: float, max_attempts: int, attempt: int
) -> None:
    retry = retry_after(attempt, base_s=base, cap_s=cap, max_attempts=max_attempts)
    assert isinstance(retry, Retry)
    assert retry.attempt == attempt + 1
    assert 0 < retry.delay_s <= cap
    assert retry.delay_s == min(cap, base * 2 ** (attempt - 1))
    assert retry.give_up == (attempt >= max_attempts)


@given(base=bases, cap=caps, attempts=st.lists(st.integers(1, 1000), min_size=2, max_size=20))
def test_backoff_is_monotone_non_decreasing(base: float, cap: float, attempts: list[int]) -> None:
    delays = [retry_after(a, base_s=base, cap_s=cap).delay_s for a in sorted(attempts)]
    assert delays == sorted(delays)
    assert all(d <= cap for d in delays)


@given(base=bases, cap=caps, max_attempts=st.integers(1, 60))
def test_a_job_lost_every_time_gives_up_exactly_at_max_attempts(
    base: float, cap: float, max_attempts: int
) -> None:
    """The controller's loop for lost work: requeue while not give_up; the launch that gives up is the
    max_attempts-th, and the delays on the way never shrink."""
    attempt, delays = 1, []
    while True:
        retry = retry_after(attempt, base_s=base, cap_s=cap, max_attempts=max_attempts)
        if retry.give_up:
            break
        delays.append(retry.delay_s)
        attempt = retry.attempt
    assert attempt == max_attempts
    assert len(delays) == max_attempts - 1
    assert delays == sorted(delays)
    assert retry_after(max_attempts, max_attempts=max_attempts).give_up
    if max_attempts > 1:
        assert not retry_after(max_attempts - 1, max_attempts=max_attempts).give_up


def test_backoff_defaults() -> None:
    assert [retry_after(a).delay_s for a in range(1, 9)] == [5, 10, 20, 40, 80, 160, 320, 600]
    assert retry_after(50).delay_s == 600
    assert [retry_after(a).give_up for a in range(1, 7)] == [False] * 4 + [True] * 2


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_after(attempt)


def test_backoff_stays_capped_for_very_many_attempts() -> None:
    assert retry_after(5000).delay_s == 600


def test_module_is_pure() -> None:
    """No I/O or clock in the lifecycle core: it imports nothing beyond the standard library basics."""
    source = Path(lifecycle.__file__).read_text(encoding="utf-8")
    for forbidden in ("sqlalchemy", "datetime", "time", "suanwang."):
        assert f"import {forbidden}" not in source and f"from {forbidden}" not in source
