"""What must hold in a PostgreSQL database after any run of the platform, however it ended: money
conserved, every ended job settled once, every launch metered once, every job's history a chain, and
no job run twice on its backend. Each check reads the database (and, for the last, the simulated
backend's launch records) and says PASS or FAIL with a sample of what is wrong.

Used by the load and chaos benchmarks (bench/bench_load.py, bench/bench_chaos.py) and the failure
tests (tests/test_failure_kill.py, tests/test_failure_db_outage.py). The SQL is PostgreSQL's (regular
expressions, FILTER, split_part): these runs are on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from suanwang.jobs.lifecycle import TERMINAL
from suanwang.ledger import store as ledger
from suanwang.settlement.service import rate_job
from suanwang.timeutil import shanghai_date
from suanwang.vouchers import accounts
from suanwang.vouchers.grants import tenant_facts
from suanwang.vouchers.models import VoucherProgramme
from suanwang.vouchers.programmes import to_rules
from suanwang.vouchers.rules import year_cap_for

ACTIVE_STATES = ("submitted", "queued", "placed", "running", "preempted", "lost")
ENDED_STATES = tuple(sorted(state.value for state in TERMINAL))
ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in ACTIVE_STATES) + ")"
ENDED_SQL = "(" + ", ".join(f"'{s}'" for s in ENDED_STATES) + ")"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def rows(session: Session, sql: str, **params: Any) -> list[Any]:
    return list(session.execute(text(sql), params))


def sample(found: list[Any], n: int = 5) -> str:
    return f"{len(found)} bad, e.g. {[tuple(r) for r in found[:n]]}"


def check_all(
    session: Session,
    *,
    billing_increment_s: int,
    launch_records: Path | None,
    metering_answered: tuple[int, int] | None = None,
) -> list[Check]:
    """Every check that needs nothing but the database: money, vouchers, settlement, metering, job
    histories; and runs, against the simulated backend's launch records when `launch_records` names
    the data dir's `launches/` folder. `metering_answered`: see check_metering."""
    checks = [
        *check_ledger(session),
        *check_voucher_caps(session),
        *check_settlement(session),
        check_rating(session, billing_increment_s),
        *check_metering(session, answered=metering_answered),
        check_histories(session),
        check_all_ended(session),
        check_audit(session),
    ]
    if launch_records is not None:
        checks += check_runs(session, simulated_runs(launch_records))
    return checks


# --- audit trail -----------------------------------------------------------------------------------


def check_audit(session: Session) -> Check:
    """The audit trail's hash chain is whole: every entry its own hash, linked, gapless, to the head."""
    from suanwang.audit.chain import verify
    from suanwang.audit.service import head, stored_entries

    verdict = verify(stored_entries(session), head(session))
    problems = [f"{p.seq}: {p.kind}" for p in verdict.problems or []]
    return Check(
        "audit: the hash chain verifies (no entry edited, missing or out of order)",
        verdict.ok,
        "; ".join(problems[:5]) or f"{verdict.checked:,} entries, head {verdict.last.seq}",
    )


# --- money -----------------------------------------------------------------------------------------


def check_ledger(session: Session) -> list[Check]:
    problems = ledger.check_invariants(session)
    transfers = rows(session, "SELECT count(*) FROM ledger_transfers")[0][0]
    beyond = rows(
        session,
        """SELECT key, debits_posted + debits_pending, credits_posted, credit_limit_fen FROM ledger_accounts
           WHERE (debits_must_not_exceed_credits
                  AND debits_posted + debits_pending > credits_posted + credit_limit_fen)
              OR (credits_must_not_exceed_debits AND credits_posted + credits_pending > debits_posted)""",
    )
    return [
        Check(
            "ledger: check_invariants (zero-sum per ledger, balances = transfers, pendings resolved once)",
            not problems,
            "; ".join(problems[:5]) or f"{transfers:,} transfers",
        ),
        Check("ledger: no account beyond its limit", not beyond, sample(beyond) if beyond else "none"),
    ]


def check_voucher_caps(session: Session) -> list[Check]:
    budgets = rows(
        session,
        """SELECT p.code, p.budget_fen, coalesce(sum(g.amount_fen), 0) FROM voucher_programmes p
           LEFT JOIN voucher_grants g ON g.programme_id = p.id GROUP BY p.id
           HAVING coalesce(sum(g.amount_fen), 0) > p.budget_fen""",
    )
    grants = rows(
        session,
        """SELECT g.id, g.amount_fen, coalesce(sum(r.subsidy_fen - r.clawed_back_fen), 0),
                  coalesce(sum(r.subsidy_fen), 0) + coalesce(max(g.returned_fen), 0),
                  a.debits_posted + a.debits_pending
           FROM voucher_grants g JOIN ledger_accounts a ON a.id = g.account_id
           LEFT JOIN voucher_redemptions r ON r.grant_id = g.id
           GROUP BY g.id, a.id
           HAVING coalesce(sum(r.subsidy_fen - r.clawed_back_fen), 0) > g.amount_fen
               OR coalesce(sum(r.subsidy_fen), 0) + coalesce(max(g.returned_fen), 0)
                  <> a.debits_posted + a.debits_pending""",
    )
    orders = rows(
        session,
        """SELECT r.programme_id, r.job_id, r.part, sum(r.subsidy_fen), p.cap_order_fen
           FROM voucher_redemptions r JOIN voucher_programmes p ON p.id = r.programme_id
           GROUP BY r.programme_id, r.job_id, r.part, p.cap_order_fen
           HAVING p.cap_order_fen IS NOT NULL AND sum(r.subsidy_fen) > p.cap_order_fen""",
    )
    above_charge = rows(
        session, "SELECT id, subsidy_fen, charge_fen FROM voucher_redemptions WHERE subsidy_fen > charge_fen"
    )
    twice = rows(
        session,
        """SELECT programme_id, job_id, part, pool_id, count(*) FROM voucher_redemptions
           GROUP BY programme_id, job_id, part, pool_id HAVING count(*) > 1""",
    )
    paid = rows(
        session,
        """SELECT count(DISTINCT job_id) FILTER (WHERE subsidy_fen > 0), coalesce(sum(subsidy_fen), 0)
           FROM voucher_redemptions""",
    )
    jobs_paid, fen_paid = paid[0]
    return [
        Check(
            "vouchers: programme budgets cover their grants",
            not budgets,
            sample(budgets) if budgets else "ok",
        ),
        Check(
            "vouchers: no grant paid beyond its amount; its account paid exactly the subsidies",
            not grants,
            sample(grants) if grants else f"{jobs_paid:,} jobs subsidised, {fen_paid:,} fen",
        ),
        check_year_caps(session),
        Check(
            "vouchers: order caps; no subsidy above its line's charge",
            not orders and not above_charge,
            sample(orders + above_charge) if orders or above_charge else "ok",
        ),
        Check(
            "vouchers: one redemption per (programme, job, part, pool)",
            not twice,
            sample(twice) if twice else "ok",
        ),
    ]


def check_year_caps(session: Session) -> Check:
    """Each tenant's subsidies in a year within its annual cap (the rules' own cap for the tenant), and
    the cap's quota account moved exactly those subsidies."""
    bad = []
    found = rows(
        session,
        """SELECT programme_id, org_id, year, sum(subsidy_fen - clawed_back_fen), sum(subsidy_fen), min(at)
           FROM voucher_redemptions GROUP BY programme_id, org_id, year""",
    )
    for programme_id, org_id, year, net, gross, first_at in found:
        rules = to_rules(session.get_one(VoucherProgramme, programme_id))
        cap = year_cap_for(rules, tenant_facts(session, org_id), shanghai_date(first_at))
        if cap is None:
            continue
        account = ledger.get_account(session, key=accounts.cap(programme_id, org_id, year).key)
        moved = 0 if account is None else account.debits_posted + account.debits_pending
        if net > cap or (gross and moved != gross):
            bad.append((programme_id, org_id, year, net, cap, moved))
    detail = sample(bad) if bad else f"{len(found)} (programme, tenant, year) within their caps"
    return Check("vouchers: enterprise-year caps (quota account = subsidies)", not bad, detail)


def check_settlement(session: Session) -> list[Check]:
    # The transfers that resolve the job's hold: its charge or its release, exactly one once it ended.
    once = rows(
        session,
        f"""WITH settled AS (
              SELECT j.id, j.state, j.hold_fen, j.charged_fen, count(t.id) AS resolutions,
                     count(t.id) FILTER (WHERE t.id = 'job/' || j.id || '/charge'
                                            OR t.id = 'job/' || j.id || '/release') AS settlements
              FROM jobs j LEFT JOIN ledger_transfers t ON t.pending_id = 'job/' || j.id || '/hold'
              GROUP BY j.id)
            SELECT * FROM settled
            WHERE (state IN {ENDED_SQL} AND (charged_fen IS NULL
                     OR (coalesce(hold_fen, 0) > 0 AND (resolutions <> 1 OR settlements <> 1))))
               OR (state NOT IN {ENDED_SQL} AND (charged_fen IS NOT NULL OR resolutions <> 0))""",
    )
    holds = rows(
        session,
        """SELECT j.id, j.hold_fen, t.amount FROM jobs j
           LEFT JOIN ledger_transfers t ON t.id = 'job/' || j.id || '/hold'
           WHERE coalesce(j.hold_fen, 0) > 0 AND (t.id IS NULL OR NOT t.pending OR t.amount <> j.hold_fen)""",
    )
    # A hold whose job was never stored (its transaction half-committed) would hold money for nothing.
    orphans = rows(
        session,
        r"""SELECT t.id, t.amount FROM ledger_transfers t
            WHERE t.id ~ '^job/\d+/hold$' AND NOT EXISTS
              (SELECT 1 FROM jobs j WHERE j.id = split_part(t.id, '/', 2)::bigint)""",
    )
    # Money in (the tenant's part of the charge, the grants' part) = money out (providers and fee) = charge.
    money = rows(
        session,
        r"""WITH moved AS (
              SELECT split_part(id, '/', 2)::bigint AS job_id,
                     sum(amount) FILTER (
                       WHERE id ~ '^job/\d+/(late/\d+/)?pool/\d+/(v\d+/)?(provider|fee)$') AS paid_out,
                     sum(amount) FILTER (WHERE id ~ '^job/\d+/(late/\d+/)?(charge|overrun|arrears)$'
                                            OR id ~ '^job/\d+/(late/\d+/)?pool/\d+/v\d+/(provider|fee)$')
                       AS paid_in
              FROM ledger_transfers WHERE ledger = 'CNY' AND id LIKE 'job/%' GROUP BY 1)
            SELECT j.id, j.charged_fen, coalesce(m.paid_in, 0), coalesce(m.paid_out, 0)
            FROM jobs j LEFT JOIN moved m ON m.job_id = j.id
            WHERE j.charged_fen IS NOT NULL
              AND (coalesce(m.paid_in, 0) <> j.charged_fen OR coalesce(m.paid_out, 0) <> j.charged_fen)""",
    )
    clearing = rows(
        session,
        """SELECT a.credits_posted - a.debits_posted, a.credits_pending - a.debits_pending,
                  (SELECT coalesce(sum(hold_fen), 0) FROM jobs WHERE charged_fen IS NULL)
           FROM ledger_accounts a WHERE a.key = 'platform/clearing'""",
    )
    posted, pending, open_holds = clearing[0] if clearing else (0, 0, 0)
    settled = rows(session, f"SELECT count(*) FROM jobs WHERE state IN {ENDED_SQL}")[0][0]
    return [
        Check(
            "settlement: each ended job settled exactly once (hold charged or released), none before its end",
            not once,
            sample(once) if once else f"{settled:,} ended jobs, one settlement each",
        ),
        Check(
            "settlement: every job's hold placed as admitted; no hold without its job",
            not holds and not orphans,
            sample(holds + orphans) if holds or orphans else "ok",
        ),
        Check(
            "settlement: per job, tenant + vouchers paid = providers + fee received = charge",
            not money,
            sample(money) if money else "ok",
        ),
        Check(
            "settlement: clearing holds only the open holds",
            posted == 0 and pending == open_holds,
            f"posted net {posted}, pending net {pending}, open holds {open_holds}",
        ),
    ]


def check_rating(session: Session, billing_increment_s: int) -> Check:
    """Each ended job's charge is its usage rated again (jobs charged for late usage are left out)."""
    charged = rows(
        session,
        """SELECT id, charged_fen FROM jobs WHERE charged_fen IS NOT NULL AND NOT EXISTS
             (SELECT 1 FROM ledger_transfers t WHERE t.id LIKE 'job/' || jobs.id || '/late/%')""",
    )
    bad = [
        (job_id, fen, total)
        for job_id, fen in charged
        if (total := rate_job(session, job_id, billing_increment_s).total_fen) != fen
    ]
    return Check(
        "settlement: charge = the job's usage rated again",
        not bad,
        sample(bad) if bad else f"{len(charged):,} charges rated again",
    )


# --- metering --------------------------------------------------------------------------------------


def check_metering(session: Session, *, answered: tuple[int, int] | None = None) -> list[Check]:
    """One usage record per launch, one for every ended launch that ran, each usage event counted once.

    `answered`: the events the client was answered `recorded` for, and how many events were in
    batches whose answer it never got (a batch may have been stored before its answer was lost).
    """
    per_launch = rows(session, "SELECT launch_id, count(*) FROM usage_records GROUP BY 1 HAVING count(*) > 1")
    unmetered = rows(
        session,
        """SELECT l.id, l.name FROM launches l LEFT JOIN usage_records u ON u.launch_id = l.id
           WHERE l.closed AND l.started_at IS NOT NULL AND l.ended_at IS NOT NULL AND u.id IS NULL""",
    )
    seen_twice = rows(
        session,
        "SELECT source, event_id, count(*) FROM metering_seen_events GROUP BY 1, 2 HAVING count(*) > 1",
    )
    (from_events, marks, distinct_records) = rows(
        session,
        """SELECT (SELECT count(*) FROM usage_records WHERE source = 'event'),
                  (SELECT count(*) FROM metering_seen_events WHERE outcome = 'recorded'),
                  (SELECT count(DISTINCT usage_record_id) FROM metering_seen_events
                   WHERE outcome = 'recorded')""",
    )[0]
    counted_once = not seen_twice and from_events == marks == distinct_records
    detail = (
        f"{from_events} records from events, {marks} recorded marks ({distinct_records} distinct), "
        f"{len(seen_twice)} (source, id) seen twice"
    )
    if answered is not None:
        recorded, unanswered = answered
        counted_once = counted_once and recorded <= from_events <= recorded + unanswered
        detail += f", {recorded} answered recorded" + (
            f" ({unanswered} events in batches whose answer was lost)" if unanswered else ""
        )
    return [
        Check(
            "metering: one usage record per launch",
            not per_launch,
            sample(per_launch) if per_launch else "ok",
        ),
        Check(
            "metering: every ended launch that ran has its record",
            not unmetered,
            sample(unmetered) if unmetered else "ok",
        ),
        Check(
            "metering: each event counted once (records from events = 'recorded' marks = answers)",
            counted_once,
            detail,
        ),
    ]


# --- jobs ------------------------------------------------------------------------------------------


def check_histories(session: Session) -> Check:
    """Each transition starts where the previous one ended, and nothing leaves an ended state."""
    broken = rows(
        session,
        f"""SELECT job_id, id, previous, from_state, to_state, cause FROM (
              SELECT job_id, id, from_state, to_state, cause,
                     lag(to_state) OVER (PARTITION BY job_id ORDER BY id) AS previous
              FROM job_events) AS history
            WHERE previous IS DISTINCT FROM from_state OR previous IN {ENDED_SQL} ORDER BY job_id, id""",
    )
    unborn = rows(
        session,
        "SELECT j.id FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.id)",
    )
    return Check(
        "jobs: every history a chain of transitions; no job left an ended state",
        not broken and not unborn,
        sample(broken + unborn) if broken or unborn else "ok",
    )


def check_all_ended(session: Session) -> Check:
    left = rows(session, f"SELECT count(*) FROM jobs WHERE state IN {ACTIVE_SQL}")[0][0]
    return Check(
        "jobs: every job ended (drained, or cancelled after the drain)", left == 0, f"{left} still active"
    )


def check_submissions(
    session: Session, answered: Mapping[str, int], name_like: str, *, unanswered: int = 0
) -> Check:
    """Each submission the client was answered (its Idempotency-Key → the job id it was given, on the
    first try or a retry) is exactly one stored job, and no job named like `name_like` exists beyond
    them but for the `unanswered` submissions (never answered: stored or not, unknown): a retry after
    a lost answer never made a second job."""
    stored = {r.id for r in rows(session, "SELECT id FROM jobs WHERE name LIKE :n", n=name_like)}
    given = list(answered.values())
    shared = len(given) - len(set(given))
    missing = set(given) - stored
    extra = stored - set(given)
    ok = not shared and not missing and len(extra) <= unanswered
    return Check(
        "jobs: every answered submission is exactly one job; no job beyond them",
        ok,
        f"{len(answered):,} keys answered, {len(stored):,} jobs stored; {len(missing)} missing, "
        f"{len(extra)} extra ({unanswered} never answered), {shared} keys given another key's job"
        + (f"; e.g. missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}" if missing or extra else ""),
    )


# --- runs on the backend ---------------------------------------------------------------------------


def simulated_runs(launches: Path) -> dict[str, dict[str, Any]]:
    """The simulated backend's launch records: one JSON file per run it started, named by the launch,
    in a folder per site under `launches` (the data dir's `launches/`, backends/registry.py)."""
    runs: dict[str, dict[str, Any]] = {}
    for path in launches.glob("*/*.json"):
        record = json.loads(path.read_text())
        if "runtime_s" in record:  # a simulated run (other backends keep other files)
            runs[record["name"]] = record
    return runs


def _run_span(record: Mapping[str, Any]) -> tuple[datetime, datetime, bool]:
    """When a simulated run started and stopped, and whether it ran to its end (not cancelled first)."""
    started = datetime.fromisoformat(record["started_at"])
    end = started + timedelta(seconds=float(record["runtime_s"]))
    cancelled = record.get("cancelled_at")
    if cancelled is not None and datetime.fromisoformat(cancelled) < end:
        return started, datetime.fromisoformat(cancelled), False
    return started, end, True


def check_runs(session: Session, runs: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    """No job ran twice: one launch per attempt, numbered 1..attempt; every run on the backend is a
    launch the database recorded, and every launch it sent is a run; a job's runs never overlap; at
    most one of them ran to its end, and a job that succeeded is that one."""
    launches = rows(
        session,
        """SELECT l.job_id, l.attempt, l.name, l.handle, j.attempt AS job_attempt, j.state
           FROM launches l JOIN jobs j ON j.id = l.job_id ORDER BY l.job_id, l.attempt""",
    )
    gaps = rows(
        session,
        """SELECT j.id, j.attempt, count(l.id), coalesce(max(l.attempt), 0) FROM jobs j
           LEFT JOIN launches l ON l.job_id = j.id GROUP BY j.id
           HAVING count(l.id) <> j.attempt OR coalesce(max(l.attempt), 0) <> j.attempt""",
    )
    names = {r.name for r in launches}
    unknown = sorted(set(runs) - names)
    unsent = [
        (r.job_id, r.attempt, r.name) for r in launches if r.handle is not None and r.handle not in runs
    ]
    by_job: dict[int, list[tuple[datetime, datetime, bool, int]]] = defaultdict(list)
    for r in launches:
        if r.name in runs:
            by_job[r.job_id].append((*_run_span(runs[r.name]), r.attempt))
    overlapping, twice, succeeded_wrong = [], [], []
    states = {r.job_id: (r.state, r.job_attempt) for r in launches}
    for job_id, spans in by_job.items():
        spans.sort()
        overlapping += [(job_id, a[3], b[3]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
        completed = [attempt for _, _, whole, attempt in spans if whole]
        if len(completed) > 1:
            twice.append((job_id, completed))
        state, attempt = states[job_id]
        if state == "succeeded" and completed != [attempt]:
            succeeded_wrong.append((job_id, attempt, completed))
    requeued = sum(1 for spans in by_job.values() if len(spans) > 1)
    return [
        Check(
            "runs: one launch per attempt, numbered 1..attempt",
            not gaps,
            sample(gaps) if gaps else f"{len(launches):,} launches",
        ),
        Check(
            "runs: every run on the backend was recorded first; every launch sent is a run",
            not unknown and not unsent,
            sample(unknown + unsent) if unknown or unsent else f"{len(runs):,} runs on the backend",
        ),
        Check(
            "runs: no job ran twice (runs never overlap; at most one ran to its end, the one that succeeded)",
            not overlapping and not twice and not succeeded_wrong,
            sample(overlapping + twice + succeeded_wrong)
            if overlapping or twice or succeeded_wrong
            else f"{len(by_job):,} jobs ran, {requeued} of them more than once (preempted or requeued)",
        ),
    ]
