"""The control loop: observe backends → snapshot → schedule → dispatch, one leader at a time.

Each cycle:
1. observe — poll every open launch on its site's backend and move jobs along their lifecycle
   (started, ended, lost); a site that does not answer makes its pools unhealthy, and after
   `lost_after_s` its launches are declared lost and their jobs requeued elsewhere;
2. cancel — pass cancel requests and preemptions to the backends;
3. schedule — build the snapshot from the database, run the pure scheduler, record why jobs wait;
4. dispatch — for each placement: check the hard constraints again, record the launch (name
   "sw-<job>-<attempt>") and commit, then send it. A launch recorded but never confirmed is looked
   up by name after a restart before anything is sent again (persist the id before you send).

Ended launches become usage records (metering) in the same transaction as the job's last transition.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, Engine, create_engine, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from suanwang.audit.capture import controller_actor
from suanwang.backends.protocol import (
    Backend,
    BackendError,
    BackendRejected,
    BackendUnavailable,
    Capacity,
    LaunchSpec,
    Observation,
    RemoteState,
    launch_name,
)
from suanwang.backends.registry import AgentSites, backend_for_site
from suanwang.config import Settings
from suanwang.db.meta import instance_id
from suanwang.db.session import session_factory, take_write_lock
from suanwang.jobs import lifecycle, snapshot
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, Launch, Reservation
from suanwang.jobs.service import policy_for, transition
from suanwang.ledger import store as ledger
from suanwang.metering import service as metering
from suanwang.scheduler import Classification, Place, Wait, schedule
from suanwang.settlement import service as settlement
from suanwang.supply.models import Pool, SecurityZone, Site
from suanwang.timeutil import utcnow
from suanwang.vouchers.grants import expire_grants

log = logging.getLogger(__name__)

# PostgreSQL advisory lock key of the controller leader ("suanwang" in ASCII, as a number).
LEADER_LOCK_KEY = 0x7375616E77616E67 & 0x7FFFFFFFFFFFFFFF

# Launch.remote_state values beyond RemoteState's: set by the controller, not the backend.
RECORDED = "recorded"  # in the database, maybe not yet sent
PREEMPTING = "preempting"  # asked to stop so its cards go to other work
ABANDONED = "abandoned"  # its backend went silent and the job was requeued; stop it if it returns


class LeaderLock:
    """One controller leader: a PostgreSQL session advisory lock, or a file lock beside SQLite."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = Path(data_dir)
        self._connection: Connection | None = None
        self._lock_engine: Engine | None = None
        self._file: TextIO | None = None

    def acquire(self) -> bool:
        """Take the lock, or confirm it is still held (a dropped connection loses it); never blocks."""
        if self.engine.dialect.name == "postgresql":
            return self._acquire_postgresql()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._file is not None:
            return True  # flock is held as long as the file stays open
        lock_file = open(self.data_dir / "controller.lock", "w")  # noqa: SIM115 (held open while leader)
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return False
        self._file = lock_file
        return True

    def _acquire_postgresql(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()
                return True
            except Exception:  # the connection died, and the lock with it: try to take it again
                self._connection.invalidate()
                self._connection = None
        # Its own unpooled connection: closing it (or losing it) really ends the session and the lock,
        # where a pooled one would go back to the pool still holding it.
        if self._lock_engine is None:
            self._lock_engine = create_engine(self.engine.url, poolclass=NullPool)
        connection = self._lock_engine.connect()
        held = bool(
            connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar()
        )
        connection.commit()
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
                self._connection.commit()
            except Exception:  # the database is gone: the lock went with the session
                log.warning("controller: could not unlock; the lock ends with its connection")
            finally:
                self._connection.close()
                self._connection = None
        if self._file is not None:
            self._file.close()
            self._file = None


BackendFactory = Callable[[Site, int], Backend]


class Backends:
    """One backend instance per site, rebuilt when the site's kind or connection settings change."""

    def __init__(
        self, data_dir: Path, factory: BackendFactory | None = None, agents: AgentSites | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.factory = factory or self._make
        self.agents = agents
        self._cache: dict[int, tuple[str, Backend]] = {}

    def _make(self, site: Site, cards: int) -> Backend:
        return backend_for_site(site, data_dir=self.data_dir, cards=cards, agents=self.agents)

    def for_site(self, site: Site, cards: int) -> Backend:
        key = json.dumps([site.backend_kind.value, site.connection, cards], sort_keys=True)
        cached = self._cache.get(site.id)
        if cached is None or cached[0] != key:
            if cached is not None:
                cached[1].close()
            self._cache[site.id] = (key, self.factory(site, cards))
        return self._cache[site.id][1]

    def close(self) -> None:
        for _, backend in self._cache.values():
            backend.close()
        self._cache.clear()


@dataclass
class CycleReport:
    observed: int = 0
    started: int = 0
    ended: int = 0
    lost: int = 0
    placed: int = 0
    refused: int = 0
    waiting: int = 0
    cancelled: int = 0
    preempted: int = 0
    funded: int = 0  # jobs that were waiting for funds and are now held
    expired_holds: int = 0
    expired_grants: int = 0
    unhealthy_sites: list[int] = field(default_factory=list)
    # Where the cycle's time went (the controller benchmark reads these).
    observe_ms: float = 0.0
    cancel_ms: float = 0.0
    snapshot_ms: float = 0.0
    schedule_ms: float = 0.0
    reasons_ms: float = 0.0
    dispatch_ms: float = 0.0


class Controller:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        backends: Backends | None = None,
        decide: Callable[..., Any] = schedule,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = session_factory(engine, actor=controller_actor())
        self.clock = clock
        self.backends = backends or Backends(
            settings.data_dir, agents=AgentSites(engine, settings.agent_lost_after_s)
        )
        self.policy = policy_for(settings)
        self.decide = decide  # the scheduler; tests substitute a wrong one to prove dispatch re-checks
        self.lock = LeaderLock(engine, settings.data_dir)
        self.discovered: dict[int, Capacity] = {}
        self._prefix: str | None = None

    def prefix(self, session: Session) -> str:
        """Launch names start with "sw" and this database's instance id (see backends.protocol)."""
        if self._prefix is None:
            self._prefix = "sw" + instance_id(session)
        return self._prefix

    # --- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Cycle until `stop` is set; wait for leadership while another controller leads."""
        try:
            while not stop.is_set():
                if not self._lead():
                    stop.wait(max(self.settings.controller_interval_s, 1.0))
                    continue
                try:
                    self.cycle()
                except Exception:  # one bad cycle must not stop the platform; the next one retries
                    log.exception("controller cycle failed")
                stop.wait(self.settings.controller_interval_s)
        finally:
            self.lock.release()
            self.backends.close()

    def _lead(self) -> bool:
        """Whether this controller leads now. A database that cannot be reached means not leading for
        now, and asking again next time: the loop must outlive an outage, not die of it."""
        try:
            return self.lock.acquire()
        except OperationalError as exc:  # one line a try: an outage must not flood the log
            log.warning("controller: cannot reach the database to lead (%s); asking again", exc.orig)
            return False
        except Exception:
            log.exception("controller: could not take the leader lock; asking again")
            return False

    def cycle(self) -> CycleReport:
        report = CycleReport()
        started = time.perf_counter()
        self.observe(report)
        report.observe_ms = _ms_since(started)
        started = time.perf_counter()
        self.cancels(report)
        report.cancel_ms = _ms_since(started)
        self.fund_waiting(report)
        self.expire_holds(report)
        self.schedule_and_dispatch(report)
        return report

    # --- observe ---------------------------------------------------------------------------------

    def _sites(self, session: Session) -> dict[int, tuple[Site, int]]:
        """Live sites with pools: the site and its registered cards (what a simulated site offers)."""
        rows = session.execute(
            select(Site, Pool).join(Pool, Pool.site_id == Site.id).where(Site.retired_at.is_(None))
        ).all()
        sites: dict[int, tuple[Site, int]] = {}
        for site, pool in rows:
            cards = sites.get(site.id, (site, 0))[1]
            sites[site.id] = (site, cards + (pool.cards if pool.retired_at is None else 0))
        return sites

    def observe(self, report: CycleReport) -> None:
        with self.sessions() as session:
            sites = self._sites(session)
            launches = list(session.scalars(select(Launch).where(Launch.closed.is_(False))))
            # Load their jobs in one query: the per-launch lookups below then hit the session's identity
            # map (which holds objects weakly: keep this list alive while observing).
            job_ids = {launch.job_id for launch in launches}
            jobs = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
            pools = {p.id: p for p in session.scalars(select(Pool))}
            by_site: dict[int, list[Launch]] = defaultdict(list)
            for launch in launches:
                by_site[pools[launch.pool_id].site_id].append(launch)
            for site_id, (site, cards) in sites.items():
                try:
                    backend = self.backends.for_site(site, cards)
                except (ValueError, BackendError) as exc:
                    self._site_down(session, site_id, pools, str(exc), by_site.get(site_id, []), report)
                    continue
                try:
                    capacity = backend.capacity()
                    self._observe_site(session, backend, by_site.get(site_id, []), report)
                except BackendUnavailable as exc:
                    self._site_down(session, site_id, pools, str(exc), by_site.get(site_id, []), report)
                    session.commit()
                    continue
                self._site_up(site_id, pools, capacity)
                session.commit()
            session.commit()
            del jobs

    def _site_up(self, site_id: int, pools: dict[int, Pool], capacity: Capacity) -> None:
        site_pools = [p for p in pools.values() if p.site_id == site_id and p.retired_at is None]
        for pool in site_pools:
            # The backend answers: its own word on health (e.g. Slurm's node drained) decides.
            message = None if capacity.healthy else "the backend answers but reports no usable nodes"
            if pool.healthy != capacity.healthy or pool.health_message != message:
                pool.healthy = capacity.healthy
                pool.unhealthy_since = None if capacity.healthy else pool.unhealthy_since or self.clock()
                pool.health_message = message
            # A site's discovered cards cap what its pools offer (a local machine without GPUs: 0).
            self.discovered[pool.id] = Capacity(
                cards_total=min(pool.cards, capacity.cards_total) if len(site_pools) == 1 else pool.cards,
                cards_free=capacity.cards_free,
                healthy=capacity.healthy,
            )

    def _site_down(
        self,
        session: Session,
        site_id: int,
        pools: dict[int, Pool],
        message: str,
        launches: list[Launch],
        report: CycleReport,
    ) -> None:
        now = self.clock()
        report.unhealthy_sites.append(site_id)
        since = now
        for pool in pools.values():
            if pool.site_id == site_id:
                if pool.healthy:
                    pool.healthy = False
                    pool.unhealthy_since = now
                    log.warning("pool %s unhealthy: %s", pool.code, message)
                pool.health_message = message[:500]
                since = min(since, pool.unhealthy_since or now)
        if now - since < timedelta(seconds=self.settings.lost_after_s):
            return
        for launch in launches:
            if launch.remote_state == ABANDONED:
                continue
            job = session.get_one(Job, launch.job_id)
            if job.attempt == launch.attempt and job.state.active:
                self._lost(session, job, launch, f"backend silent since {since.isoformat()}: {message}", now)
                report.lost += 1
            # Keep watching it: if the backend comes back with it still running, it is stopped there.
            launch.remote_state = ABANDONED

    def _observe_site(
        self, session: Session, backend: Backend, launches: list[Launch], report: CycleReport
    ) -> None:
        now = self.clock()
        for launch in [x for x in launches if x.handle is None]:
            self._confirm_send(session, backend, launch, now)
        sent = [x for x in launches if x.handle is not None]
        if not sent:
            return
        observations = backend.poll([x.handle for x in sent if x.handle is not None])
        for launch in sent:
            assert launch.handle is not None
            seen = observations.get(launch.handle) or Observation(launch.handle, RemoteState.LOST)
            report.observed += 1
            if not seen.state.terminal:
                self._apply(session, backend, launch, seen, report, now)
                continue
            # An end settles money: each in its own transaction, so the ledger locks held are one job's,
            # taken in account order (several jobs' at once deadlocked with submissions locking the
            # same wallets), and one job whose settlement fails is retried next cycle without holding
            # up the others' ends.
            try:
                with session.begin_nested():
                    self._apply(session, backend, launch, seen, report, now)
            except Exception:
                log.exception("the end of launch %s could not be recorded; retried next cycle", launch.name)
                continue
            session.commit()

    def _confirm_send(self, session: Session, backend: Backend, launch: Launch, now: datetime) -> None:
        """A launch recorded but not confirmed: the crash came before or after the send. Ask by name."""
        job = session.get_one(Job, launch.job_id)
        handle = backend.find(launch.name)
        if handle is not None:
            launch.handle, launch.sent_at = handle, launch.sent_at or now
            return
        if launch.remote_state == ABANDONED or job.attempt != launch.attempt or not job.state.active:
            launch.closed = True
            return
        if job.cancel_requested_at is not None:
            launch.closed = True
            transition(session, job, JobState.CANCELLED, cause="cancelled", at=now)
            job.ended_at = now
            return
        self._send(session, backend, job, launch, now)

    def _apply(
        self,
        session: Session,
        backend: Backend,
        launch: Launch,
        seen: Observation,
        report: CycleReport,
        now: datetime,
    ) -> None:
        job = session.get_one(Job, launch.job_id)
        current = job.attempt == launch.attempt and job.state.active
        if launch.remote_state == ABANDONED or not current:
            # Requeued meanwhile: make sure the old launch does not run beside the new one.
            if not seen.state.terminal:
                backend.cancel(seen.handle)
            else:
                launch.closed = True
            return
        if launch.remote_state != PREEMPTING:
            launch.remote_state = seen.state.value
        if seen.started_at is not None and launch.started_at is None:
            launch.started_at = seen.started_at
        began = seen.state is RemoteState.RUNNING or (seen.state.terminal and seen.started_at is not None)
        if began and job.state is JobState.PLACED:
            transition(session, job, JobState.RUNNING, cause="started", at=seen.started_at or now)
            job.started_at = job.started_at or seen.started_at or now
            report.started += 1
        if not seen.state.terminal:
            return
        launch.closed = True
        launch.ended_at = seen.ended_at or now
        launch.exit_code = seen.exit_code
        launch.message = seen.message
        self._meter(session, job, launch, seen, now)
        report.ended += 1
        if seen.state is RemoteState.LOST:
            self._lost(session, job, launch, seen.message or "the backend no longer knows this launch", now)
            report.lost += 1
            return
        if launch.remote_state == PREEMPTING:
            transition(session, job, JobState.PREEMPTED, cause="preempted", at=now)
            self._requeue(session, job, now, counted=False)
            report.preempted += 1
            return
        job.exit_code = seen.exit_code
        job.ended_at = seen.ended_at or now
        job.reason_code, job.reason_params = None, {}
        if seen.state is RemoteState.SUCCEEDED:
            transition(session, job, JobState.SUCCEEDED, cause="succeeded", at=job.ended_at, exit_code=0)
        elif seen.state is RemoteState.CANCELLED and job.cancel_requested_at is not None:
            transition(session, job, JobState.CANCELLED, cause="cancelled", at=job.ended_at)
        else:
            # Failed, or stopped by someone other than its tenant (killed on the node): a failure.
            cause = "failed" if seen.state is RemoteState.FAILED else "killed"
            transition(
                session,
                job,
                JobState.FAILED,
                cause=cause,
                at=job.ended_at,
                exit_code=seen.exit_code,
                message=seen.message,
            )

    def _meter(self, session: Session, job: Job, launch: Launch, seen: Observation, now: datetime) -> None:
        if seen.started_at is None or seen.ended_at is None:
            return
        card_seconds = seen.card_seconds if seen.cards == job.cards else None
        if card_seconds is None:
            card_seconds = round(job.cards * max(0.0, (seen.ended_at - seen.started_at).total_seconds()))
        session.flush()
        usage = metering.record(
            session,
            launch_id=launch.id,
            job_id=job.id,
            org_id=job.org_id,
            pool_id=launch.pool_id,
            cards=job.cards,
            started_at=seen.started_at,
            ended_at=seen.ended_at,
            card_seconds=card_seconds,
            source=self._site_kind(session, launch.pool_id),
            now=now,
            external_id=launch.handle,
        )
        # One truth per launch: a provider's agent may have reported it first (metering ingestion).
        launch.card_seconds = usage.card_seconds
        job.card_seconds = (job.card_seconds or 0) + usage.card_seconds

    def _site_kind(self, session: Session, pool_id: int) -> str:
        pool = session.get_one(Pool, pool_id)
        return pool.site.backend_kind.value

    def _lost(self, session: Session, job: Job, launch: Launch, message: str, now: datetime) -> None:
        launch.message = message[:2000]
        transition(session, job, JobState.LOST, cause="lost", at=now, message=message[:500])
        if job.cancel_requested_at is not None:
            transition(session, job, JobState.CANCELLED, cause="cancelled", at=now)
            job.ended_at = now
            return
        self._requeue(session, job, now, counted=True)

    def _requeue(self, session: Session, job: Job, now: datetime, *, counted: bool) -> None:
        retry = lifecycle.retry_after(max(job.attempt, 1), max_attempts=self.settings.max_attempts)
        if counted and retry.give_up:
            transition(
                session, job, JobState.FAILED, cause="attempts-exhausted", at=now, attempts=job.attempt
            )
            job.ended_at = now
            return
        transition(session, job, JobState.QUEUED, cause="requeued", at=now)
        job.pool_id = None
        job.not_before = now + timedelta(seconds=retry.delay_s) if counted else None

    # --- cancel ----------------------------------------------------------------------------------

    def cancels(self, report: CycleReport) -> None:
        """Send cancel requests and preemptions to the backends (idempotent; repeated until observed)."""
        with self.sessions() as session:
            sites = self._sites(session)
            rows = session.execute(
                select(Job, Launch)
                .join(Launch, (Launch.job_id == Job.id) & (Launch.attempt == Job.attempt))
                .where(Launch.closed.is_(False), Launch.handle.is_not(None))
                .where((Job.cancel_requested_at.is_not(None)) | (Launch.remote_state == PREEMPTING))
            ).all()
            for job, launch in rows:
                site = session.get_one(Pool, launch.pool_id).site
                if site.id not in sites or not job.state.active:
                    continue
                try:
                    self.backends.for_site(*sites[site.id]).cancel(launch.handle or "")
                    report.cancelled += 1
                except BackendError as exc:
                    log.warning("cancel of %s failed: %s", launch.name, exc)
            session.commit()

    # --- schedule and dispatch -------------------------------------------------------------------

    def fund_waiting(self, report: CycleReport) -> None:
        """Jobs kept waiting for funds (SUANWANG_UNFUNDED=queue): try their holds again, oldest first."""
        now = self.clock()
        with self.sessions() as session:
            take_write_lock(session)  # as at dispatch: a job cancelled meanwhile must not get a hold
            waiting = list(
                session.scalars(
                    select(Job)
                    .where(
                        Job.state == JobState.QUEUED,
                        Job.hold_fen.is_(None),
                        Job.cancel_requested_at.is_(None),
                    )
                    .order_by(Job.submitted_at, Job.id)
                    .limit(self.settings.controller_batch)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            )
            if not waiting:
                return
            pools = snapshot.admission_pools(session, now=now, local_regions=self.settings.local_region_set)
            holds = [
                settlement.Hold(
                    job.id, job.org_id, settlement.hold_amount(snapshot.queued_job(job), pools, self.policy)
                )
                for job in waiting
            ]
            for job, hold, answer in zip(
                waiting, holds, settlement.place_holds(session, holds, now), strict=True
            ):
                if answer is None:
                    job.hold_fen, job.reason_code, job.reason_params = hold.amount_fen, None, {}
                    report.funded += 1
                else:
                    job.reason_code, job.reason_params = "waiting-funds", dict(answer.params)
            session.commit()

    def expire_holds(self, report: CycleReport) -> None:
        """Release ledger holds past their timeout (job holds have none; other holds may)."""
        with self.sessions() as session:
            report.expired_holds = len(ledger.expire_pending(session, now=self.clock()))
            # Voucher grants past their validity return what is left to their programme's budget.
            report.expired_grants, _ = expire_grants(session, now=self.clock())
            session.commit()

    def schedule_and_dispatch(self, report: CycleReport) -> None:
        now = self.clock()
        started = time.perf_counter()
        with self.sessions() as session:
            stored: dict[int, tuple[str | None, dict[str, Any]]] = {}
            snap, pools = snapshot.build(
                session,
                now=now,
                policy=self.policy,
                local_regions=self.settings.local_region_set,
                region_division_code=self.settings.region_division_code,
                limit=10_000,
                discovered=self.discovered,
                reasons=stored,
            )
            report.snapshot_ms = _ms_since(started)
            if not snap.queued:
                return
            started = time.perf_counter()
            decisions = self.decide(snap, self.policy)
            report.schedule_ms = _ms_since(started)
            started = time.perf_counter()
            self._record_reasons(session, decisions.waits, stored, report)
            for preempt in decisions.preempts:
                self._preempt(
                    session, int(preempt.job_id), preempt.reason.code, dict(preempt.reason.params), now
                )
            session.commit()
            report.reasons_ms = _ms_since(started)
            started = time.perf_counter()
            self._dispatch_all(
                session, decisions.places[: self.settings.controller_batch], pools, now, report
            )
            report.dispatch_ms = _ms_since(started)

    def _record_reasons(
        self,
        session: Session,
        waits: Iterable[Wait],
        stored: dict[int, tuple[str | None, dict[str, Any]]],
        report: CycleReport,
    ) -> None:
        """Store why jobs wait, in one bulk UPDATE of only the reasons that changed.

        Times in a reason are kept to the minute, so estimated starts that drift by seconds from one
        cycle to the next do not rewrite thousands of rows every cycle.
        """
        changes = []
        for wait in waits:
            job_id = int(wait.job_id)
            params = _jsonable(dict(wait.reason.params))
            report.waiting += 1
            if stored.get(job_id) != (wait.reason.code, params):
                changes.append({"id": job_id, "reason_code": wait.reason.code, "reason_params": params})
        if changes:
            session.execute(update(Job), changes)

    def _dispatch_all(
        self,
        session: Session,
        places: Sequence[Place],
        pools: dict[int, snapshot.PoolInfo],
        now: datetime,
        report: CycleReport,
    ) -> None:
        """Record every launch of this cycle in one transaction, then send them, then store handles.

        A crash after the commit and before a send leaves launches without a handle: the next
        controller asks their backend by name before sending anything (persist the id before you send).
        """
        self.prefix(session)  # made (and committed) on a new database's first dispatch: not under the locks
        # Locked and read afresh: the snapshot is a cycle old, and a tenant may have cancelled since
        # (placing a cancelled job would run it with its money already given back).
        take_write_lock(session)
        locked = (
            select(Job)
            .where(Job.id.in_([int(p.job_id) for p in places]))
            .order_by(Job.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        jobs = {j.id: j for j in session.scalars(locked)}
        recorded: list[tuple[Job, Launch, Pool, Place]] = []
        for place in places:
            job = jobs.get(int(place.job_id))
            if job is None or job.state is not JobState.QUEUED or job.cancel_requested_at is not None:
                continue
            info = pools.get(snapshot.pool_id_of(place.pool_id))
            if (
                info is None
                or not self._allowed(job, info.pool)
                or not self._reservation_allows(session, job, place.pool_id, now)
            ):
                report.refused += 1
                job.reason_code, job.reason_params = "dispatch-refused", {"pool": place.pool_id}
                log.error(
                    "refused to dispatch job %s to pool %s: a hard constraint forbids it",
                    job.id,
                    place.pool_id,
                )
                continue
            recorded.append((job, self._record_launch(session, job, info.pool, place, now), info.pool, place))
        session.commit()  # every launch exists before anything is sent
        sites = self._sites(session)
        for job, launch, pool, place in recorded:
            try:
                backend = self.backends.for_site(*sites[pool.site_id])
                self._send(session, backend, job, launch, now, est_runtime_s=place.est_runtime_s)
            except BackendUnavailable as exc:
                # Left unconfirmed: the next cycles ask by name, and declare it lost if the site stays silent.
                log.warning("dispatch of %s to %s deferred: %s", launch.name, pool.code, exc)
        session.commit()
        report.placed = len(recorded)

    def _allowed(self, job: Job, pool: Pool) -> bool:
        """The hard constraints that must hold whatever the scheduler said (checked again at dispatch)."""
        if (
            job.classification == Classification.GOVERNMENT
            and pool.security_zone is not SecurityZone.GOVERNMENT
        ):
            return False
        if job.accelerators and pool.accelerator not in job.accelerators:
            return False
        if job.regions and pool.site.region not in job.regions:
            return False
        return pool.retired_at is None

    def _reservation_allows(self, session: Session, job: Job, scheduler_pool_id: str, now: datetime) -> bool:
        """Reserved cards ("<pool>~r<id>") only for the reservation's own tenant, inside its window."""
        if "~r" not in scheduler_pool_id:
            return True
        reservation = session.get(Reservation, int(scheduler_pool_id.split("~r", 1)[1]))
        return (
            reservation is not None
            and reservation.org_id == job.org_id
            and reservation.cancelled_at is None
            and reservation.starts_at <= now < reservation.ends_at
        )

    def _record_launch(self, session: Session, job: Job, pool: Pool, place: Place, now: datetime) -> Launch:
        job.attempt += 1
        launch = Launch(
            job_id=job.id,
            attempt=job.attempt,
            pool_id=pool.id,
            name=launch_name(job.id, job.attempt, self.prefix(session)),
            remote_state=RECORDED,
            est_end_at=now + timedelta(seconds=place.est_runtime_s),
            borrowing=place.borrowing,
            recorded_at=now,
        )
        session.add(launch)
        job.pool_id = pool.id
        job.est_cost_fen = place.est_cost_fen
        job.not_before = None
        job.reason_code, job.reason_params = None, {}
        transition(session, job, JobState.PLACED, cause="placed", at=now, pool=pool.code, attempt=job.attempt)
        return launch

    def _send(
        self,
        session: Session,
        backend: Backend,
        job: Job,
        launch: Launch,
        now: datetime,
        est_runtime_s: float | None = None,
    ) -> None:
        if est_runtime_s is None and launch.est_end_at is not None:
            est_runtime_s = (launch.est_end_at - launch.recorded_at).total_seconds()
        spec = LaunchSpec(
            prefix=launch.name.rsplit("-", 2)[0],  # exactly the name recorded before the send
            job_id=job.id,
            attempt=launch.attempt,
            command=tuple(job.command),
            cards=job.cards,
            env=dict(job.env),
            workdir=job.workdir,
            cards_per_node=job.cards_per_node,
            est_runtime_s=est_runtime_s,
        )
        try:
            launch.handle = backend.submit(spec)
        except BackendRejected as exc:
            launch.closed = True
            launch.remote_state = "rejected"
            self._lost(session, job, launch, f"the backend refused the launch: {exc}", now)
            return
        launch.sent_at = now
        launch.remote_state = RemoteState.PENDING.value

    def _preempt(
        self, session: Session, job_id: int, code: str, params: dict[str, Any], now: datetime
    ) -> None:
        job = session.get(Job, job_id)
        if job is None or not job.state.active:
            return
        launch = session.scalar(select(Launch).where(Launch.job_id == job.id, Launch.attempt == job.attempt))
        if launch is None or launch.remote_state == PREEMPTING:
            return
        launch.remote_state = PREEMPTING
        job.reason_code, job.reason_params = code, _jsonable(params)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """Reason parameters as stored: JSON values, times (`*_s`) to the whole minute."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key.endswith("_s") and isinstance(value, int | float):
            value = int(value // 60 * 60)
        elif not (isinstance(value, str | int | float | bool) or value is None):
            value = str(value)
        out[key] = value
    return out


def run_once(settings: Settings, engine: Engine, **kwargs: Any) -> CycleReport:
    """One cycle as leader (tests, `suanwang controller --once`)."""
    controller = Controller(settings, engine, **kwargs)
    try:
        if not controller.lock.acquire():
            raise RuntimeError("another controller is the leader")
        return controller.cycle()
    finally:
        controller.lock.release()
        controller.backends.close()
