"""Crash trials for settlement: kill -9 a process that is settling jobs, at random moments, again and
again; then check that no money was created, lost or posted twice and that every job was settled once.

Used by tests/test_settlement_crash.py (CI, ≥ 200 trials per database) and bench/bench_settlement_crash.py
(as many trials as asked). The worker is a forked child: it settles the jobs still running, one job
per transaction (the job's end and its ledger transfers commit together), until none is left; the parent
SIGKILLs it after a random delay and forks the next one, which carries on where the last one died.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import Engine, create_engine, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, JobEvent, Launch
from suanwang.jobs.service import transition
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount, LedgerTransfer
from suanwang.metering.models import UsageRecord
from suanwang.settlement.rating import round_half_up
from suanwang.timeutil import utcnow

FEE_BP = 500


def add_ended_launch(
    session: Session, job_id: int, pool_id: int, *, cards: int, seconds: int, end: datetime, attempt: int
) -> int:
    """An ended launch of the job with its usage record, as the controller writes them; card-seconds."""
    start = end - timedelta(seconds=seconds)
    launch = Launch(
        job_id=job_id,
        attempt=attempt,
        pool_id=pool_id,
        name=f"test-{job_id}-{attempt}",
        remote_state="succeeded",
        recorded_at=start,
        started_at=start,
        ended_at=end,
        card_seconds=cards * seconds,
        closed=True,
    )
    session.add(launch)
    session.flush()
    session.add(
        UsageRecord(
            launch_id=launch.id,
            job_id=job_id,
            org_id=session.get_one(Job, job_id).org_id,
            pool_id=pool_id,
            cards=cards,
            started_at=start,
            ended_at=end,
            card_seconds=cards * seconds,
            source="simulated",
            recorded_at=end,
        )
    )
    return cards * seconds


def prepare_running(engine: Engine, job_ids: list[int], pool_id: int, rng: random.Random) -> dict[int, int]:
    """Give each (admitted, held) job an ended launch with usage and mark it running, as if the
    controller had seen it end but not yet recorded the end. Returns each job's card-seconds."""
    used: dict[int, int] = {}
    end = utcnow() - timedelta(minutes=5)
    with Session(engine) as session:
        for job_id in job_ids:
            cards = session.get_one(Job, job_id).cards
            seconds = rng.randint(1, 3 * 3600)
            used[job_id] = add_ended_launch(
                session, job_id, pool_id, cards=cards, seconds=seconds, end=end, attempt=1
            )
            session.execute(
                update(Job).where(Job.id == job_id).values(state=JobState.RUNNING, attempt=1, pool_id=pool_id)
            )
        session.commit()
    return used


def _worker(url: str) -> None:
    """Settle every running job, one per transaction (runs in the forked child; never returns)."""
    code = 0
    try:
        engine = create_engine(url, poolclass=NullPool)
        with Session(engine) as session:
            while True:
                job = session.scalar(
                    select(Job).where(Job.state == JobState.RUNNING).order_by(Job.id).limit(1)
                )
                if job is None:
                    break
                now = utcnow()
                job.ended_at, job.exit_code = now, 0
                transition(session, job, JobState.SUCCEEDED, cause="succeeded", at=now, exit_code=0)
                session.commit()
    except BaseException:
        code = 1
    os._exit(code)


def run_trials(
    engine: Engine, url: str, *, trials: int, rng: random.Random, max_delay_s: float = 0.04
) -> tuple[int, int]:
    """Fork a worker per trial and SIGKILL it after a random delay, until `trials` workers died with
    jobs still to settle (or none is left); then a last worker finishes. Returns (trials, killed)."""
    engine.dispose()  # no pooled connection may cross the fork
    done = killed = 0
    while done < trials and _running(engine):
        pid = os.fork()
        if pid == 0:
            _worker(url)
        time.sleep(rng.uniform(0, max_delay_s))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        done += 1
        if os.WIFSIGNALED(status):
            killed += 1
        elif os.WEXITSTATUS(status) != 0:
            raise RuntimeError("a settlement worker failed without being killed")
    pid = os.fork()
    if pid == 0:
        _worker(url)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise RuntimeError("the last settlement worker did not finish cleanly")
    return done, killed


def _running(engine: Engine) -> int:
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.RUNNING))
    engine.dispose()
    return int(count or 0)


def check(
    engine: Engine,
    *,
    used: dict[int, int],
    holds: dict[int, int],
    price: int,
    wallet_key: str,
    wallet_before: int,
    provider_key: str,
) -> list[str]:
    """Every job settled exactly once and every account where the arithmetic says it must be."""
    problems: list[str] = []
    with Session(engine) as session:
        problems += ledger.check_invariants(session)
        charges = {job_id: round_half_up(Fraction(cs * price, 3600)) for job_id, cs in used.items()}
        for job in session.scalars(select(Job).where(Job.id.in_(list(used)))):
            if job.state is not JobState.SUCCEEDED or job.charged_fen != charges[job.id]:
                problems.append(f"job {job.id}: {job.state} charged {job.charged_fen} != {charges[job.id]}")
            ends = session.scalar(
                select(func.count()).where(JobEvent.job_id == job.id, JobEvent.to_state == JobState.SUCCEEDED)
            )
            if ends != 1:
                problems.append(f"job {job.id} ended {ends} times")
            refs = session.scalar(select(func.count()).where(LedgerTransfer.reference == f"job:{job.id}"))
            want = 1 + 1 + (charges[job.id] > holds[job.id]) + 2  # hold, post/void, overrun, provider, fee
            fee = round_half_up(Fraction(charges[job.id] * FEE_BP, 10_000))
            want -= (fee == 0) + (charges[job.id] - fee == 0)
            if refs != want:
                problems.append(f"job {job.id}: {refs} transfers, expected {want}")
        wallet = session.scalar(select(LedgerAccount).where(LedgerAccount.key == wallet_key))
        provider = session.scalar(select(LedgerAccount).where(LedgerAccount.key == provider_key))
        assert wallet is not None and provider is not None
        total = sum(charges.values())
        fees = sum(round_half_up(Fraction(c * FEE_BP, 10_000)) for c in charges.values())
        balance = wallet.credits_posted - wallet.debits_posted
        if balance != wallet_before - total or wallet.debits_pending != 0:
            problems.append(f"wallet {balance} (held {wallet.debits_pending}) != {wallet_before} - {total}")
        if provider.credits_posted - provider.debits_posted != total - fees:
            problems.append(f"provider {provider.credits_posted} != {total - fees}")
    return problems
