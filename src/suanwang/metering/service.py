"""Metering: usage records from the controller (every ended launch) and from providers' usage events.

Two ways in, one rule: one usage record per launch, so nothing is ever charged twice. Settlement reads
the records.

Usage events (POST /metering/events) come in CloudEvents batches. A batch is all or nothing: every event
is checked first, and one bad event stores nothing of it. Each event's (source, id) is marked seen in
the same transaction as the usage record it makes, so a retried event changes nothing and a crash
between the two writes loses neither (OpenMeter's issue #5118 is the counter-example: there the mark
was committed before the write, and events were lost). A batch costs a constant number of queries:
launches by name, seen marks and existing records each in one query, then two multi-row inserts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Select, Table, select
from sqlalchemy.orm import Session

from suanwang.db.bulk import insert_many
from suanwang.db.query import Page, PageRequest, among, page
from suanwang.errors import DomainError, Invalid, PayloadTooLarge
from suanwang.i18n import t
from suanwang.jobs.models import Job, Launch
from suanwang.metering.models import SeenEvent, UsageRecord
from suanwang.metering.schemas import UsageEvent
from suanwang.supply.models import Pool, Site
from suanwang.supply.scope import operated_pool_ids
from suanwang.tenants.access import Principal, require_role
from suanwang.tenants.models import Role

MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024  # 1,000 events of the largest legal size fit with room to spare
MAX_REPORTED_ERRORS = 1000  # errors listed in one answer; the count says how many events were bad
EVENT_SOURCE = "event"  # UsageRecord.source of a record made from a usage event
# A node's clock may run a little ahead of ours; an end further in the future is a bad clock or a guess.
CLOCK_SKEW = timedelta(minutes=5)

RECORDED = "recorded"
DUPLICATE = "duplicate"
ALREADY_METERED = "already-metered"

_BATCH = TypeAdapter(list[UsageEvent])


def record(
    session: Session,
    *,
    launch_id: int,
    job_id: int,
    org_id: int,
    pool_id: int,
    cards: int,
    started_at: datetime,
    ended_at: datetime,
    card_seconds: int,
    source: str,
    now: datetime,
    external_id: str | None = None,
) -> UsageRecord:
    """Record one ended launch's usage once (a second call for the same launch returns the first)."""
    existing = session.scalar(select(UsageRecord).where(UsageRecord.launch_id == launch_id))
    if existing is not None:
        return existing
    usage = UsageRecord(
        launch_id=launch_id,
        job_id=job_id,
        org_id=org_id,
        pool_id=pool_id,
        cards=cards,
        started_at=started_at,
        ended_at=max(ended_at, started_at),
        card_seconds=card_seconds,
        source=source,
        external_id=external_id,
        recorded_at=now,
    )
    session.add(usage)
    return usage


def decayed_usage(session: Session, *, now: datetime, half_life_s: float) -> dict[int, float]:
    """Card-seconds per organisation, each record weighted by 0.5^(age / half-life) (Slurm's decay).

    Records older than ten half-lives weigh under 0.1 % and are not read.
    """
    horizon = now.timestamp() - 10 * half_life_s
    rows = session.execute(
        select(UsageRecord.org_id, UsageRecord.ended_at, UsageRecord.card_seconds).where(
            UsageRecord.ended_at >= datetime.fromtimestamp(horizon, tz=now.tzinfo)
        )
    )
    usage: dict[int, float] = {}
    for org_id, ended_at, card_seconds in rows:
        age = max(0.0, now.timestamp() - ended_at.timestamp())
        usage[org_id] = usage.get(org_id, 0.0) + card_seconds * math.pow(0.5, age / half_life_s)
    return usage


# --- ingestion of usage events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventProblem:
    """Why one event of a batch is refused: a field error from its shape, or a rule it breaks."""

    index: int
    source: str | None
    id: str | None
    field: str
    shape: dict[str, Any] | None = None  # a pydantic error
    rule: DomainError | None = None

    def render(self, lang: str) -> dict[str, Any]:
        if self.shape is not None:
            from suanwang.api.problems import field_error

            found = field_error(self.shape, lang, skip=1)  # the location starts with the event's index
            kind, message = str(found["type"]), str(found["message"])
        else:
            assert self.rule is not None
            kind, message = self.rule.code, self.rule.message(lang)
        return {
            "index": self.index,
            "source": self.source,
            "id": self.id,
            "field": self.field,
            "type": kind,
            "message": message,
        }


class InvalidEvents(Invalid):
    """Some events of a batch are bad: nothing of it was stored. Lists each bad event with its reasons."""

    def __init__(self, problems: Sequence[EventProblem], *, total: int) -> None:
        self.problems = list(problems)
        bad = len({p.index for p in self.problems})
        super().__init__("metering.invalid-events", count=bad, total=total)

    def message(self, lang: str) -> str:
        first = "; ".join(_one_line(p.render(lang)) for p in self.problems[:3])
        return t("metering.invalid-events", lang, **self.params, first=first)

    def extra(self, lang: str) -> dict[str, Any]:
        shown = self.problems[:MAX_REPORTED_ERRORS]
        extra: dict[str, Any] = {"errors": [p.render(lang) for p in shown]}
        if len(shown) < len(self.problems):
            extra["errors_omitted"] = len(self.problems) - len(shown)
        return extra


def _one_line(error: dict[str, Any]) -> str:
    return f"#{error['index']} {error['field']}: {error['message']}"


@dataclass(slots=True)
class EventOutcome:
    index: int
    source: str
    id: str
    status: str
    usage_id: int | None = None
    launch_id: int | None = None  # whose record id fills usage_id once the batch's records exist


@dataclass(slots=True)
class IngestReport:
    results: list[EventOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": self.count(RECORDED),
            "duplicate": self.count(DUPLICATE),
            "already_metered": self.count(ALREADY_METERED),
            "results": [
                {"index": r.index, "source": r.source, "id": r.id, "status": r.status, "usage_id": r.usage_id}
                for r in self.results
            ],
        }


@dataclass(frozen=True, slots=True)
class _Launch:
    id: int
    job_id: int
    pool_id: int
    org_id: int
    job_cards: int
    provider_id: int


def ingest(*, session: Session, principal: Principal, events: list[Any], now: datetime) -> IngestReport:
    """Store a batch of usage events, all or nothing; the caller commits. Operators report usage of
    launches on their own provider's pools, the regulator of any launch."""
    require_role(principal, Role.PROVIDER_OPERATOR, Role.REGULATOR)
    if len(events) > MAX_BATCH_EVENTS:  # the API refuses these before; a limit holds at every door
        raise PayloadTooLarge("metering.batch-too-many", count=len(events), max=MAX_BATCH_EVENTS)
    parsed, problems = _parse(events)
    launches = _launches(session, {event.data.launch for event in parsed.values()})
    for index, event in parsed.items():
        problems.extend(_check(index, event, launches.get(event.data.launch), principal, now))
    if problems:
        problems.sort(key=lambda p: p.index)
        raise InvalidEvents(problems, total=len(events))
    batch = [parsed[index] for index in range(len(events))]
    seen = _seen(session, {(e.source, e.id) for e in batch})
    metered = _metered(session, {launches[e.data.launch].id for e in batch})

    report = IngestReport()
    first_of: dict[tuple[str, str], EventOutcome] = {}
    new_records: list[dict[str, Any]] = []
    for index, event in enumerate(batch):
        key = (event.source, event.id)
        launch = launches[event.data.launch]
        outcome = EventOutcome(index=index, source=event.source, id=event.id, status=DUPLICATE)
        if key in seen:
            outcome.usage_id = seen[key]
        elif key in first_of:
            outcome.launch_id = first_of[key].launch_id  # the same answer as its first occurrence
        else:
            first_of[key] = outcome
            outcome.launch_id = launch.id
            if launch.id in metered:
                outcome.status = ALREADY_METERED
            else:
                outcome.status = RECORDED
                metered[launch.id] = None  # a later event for this launch in the batch is already metered
                new_records.append(_usage_row(event, launch, now))
        report.results.append(outcome)

    metered |= _insert_usage(session, new_records)
    for outcome in report.results:
        if outcome.launch_id is not None:
            outcome.usage_id = metered[outcome.launch_id]
    marks = [
        {
            "source": outcome.source,
            "event_id": outcome.id,
            "outcome": outcome.status,
            "usage_record_id": outcome.usage_id,
            "seen_at": now,
        }
        for outcome in first_of.values()
    ]
    _mark_seen(session, marks)
    # A report that comes after its job was settled is charged now (nothing metered goes unbilled).
    from suanwang.settlement.service import settle_late_usage

    settle_late_usage(session, [metered[r["launch_id"]] for r in new_records], now)
    # Paired with the checks above: every event is answered, and one record per recorded event.
    assert len(report.results) == len(events)
    assert report.count(RECORDED) == len(new_records)
    assert all(outcome.usage_id is not None for outcome in first_of.values())
    return report


def _parse(events: list[Any]) -> tuple[dict[int, UsageEvent], list[EventProblem]]:
    """Validate the batch's shape in one pass; the events that passed, by index, and the errors."""
    try:
        return dict(enumerate(_BATCH.validate_python(events))), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    bad = {int(error["loc"][0]) for error in errors}
    problems = [
        EventProblem(
            index=int(error["loc"][0]),
            source=_text(events[int(error["loc"][0])], "source"),
            id=_text(events[int(error["loc"][0])], "id"),
            field=".".join(str(part) for part in error["loc"][1:]) or "event",
            shape=dict(error),
        )
        for error in errors
    ]
    good = {i: UsageEvent.model_validate(event) for i, event in enumerate(events) if i not in bad}
    return good, problems


def _text(event: Any, name: str) -> str | None:
    value = event.get(name) if isinstance(event, dict) else None
    return value[:200] if isinstance(value, str) else None


def _check(
    index: int, event: UsageEvent, launch: _Launch | None, principal: Principal, now: datetime
) -> list[EventProblem]:
    """The rules an event of good shape must also keep."""
    data = event.data

    def problem(field: str, rule: DomainError) -> EventProblem:
        return EventProblem(index=index, source=event.source, id=event.id, field=field, rule=rule)

    found = []
    # Unknown and not-yours read the same: an operator learns nothing of other providers' launches.
    if launch is None or not principal.operates(launch.provider_id):
        found.append(problem("data.launch", Invalid("metering.launch-unknown", launch=data.launch)))
    elif data.cards > launch.job_cards:
        found.append(
            problem(
                "data.cards",
                Invalid("metering.cards-above-job", cards=data.cards, job_cards=launch.job_cards),
            )
        )
    if data.ended_at < data.started_at:
        found.append(
            problem(
                "data.ended_at",
                Invalid(
                    "metering.ended-before-started",
                    ended=data.ended_at.isoformat(),
                    started=data.started_at.isoformat(),
                ),
            )
        )
    elif data.card_seconds is not None and data.card_seconds > _most_card_seconds(data.cards, event):
        found.append(
            problem(
                "data.card_seconds",
                Invalid(
                    "metering.card-seconds-above",
                    card_seconds=data.card_seconds,
                    most=_most_card_seconds(data.cards, event),
                ),
            )
        )
    if data.ended_at > now + CLOCK_SKEW:
        found.append(
            problem(
                "data.ended_at",
                Invalid("metering.ended-in-future", ended=data.ended_at.isoformat(), now=now.isoformat()),
            )
        )
    return found


def _seconds(event: UsageEvent) -> float:
    return (event.data.ended_at - event.data.started_at).total_seconds()


def _most_card_seconds(cards: int, event: UsageEvent) -> int:
    """More than cards × wall time cannot have run (a provider cannot bill more than that)."""
    return math.ceil(cards * _seconds(event))


def card_seconds_of(event: UsageEvent) -> int:
    """As reported, or cards × seconds rounded to the nearest (the controller's rounding)."""
    if event.data.card_seconds is not None:
        return event.data.card_seconds
    return round(event.data.cards * _seconds(event))


def _usage_row(event: UsageEvent, launch: _Launch, now: datetime) -> dict[str, Any]:
    return {
        "launch_id": launch.id,
        "job_id": launch.job_id,
        "org_id": launch.org_id,
        "pool_id": launch.pool_id,
        "cards": event.data.cards,
        "started_at": event.data.started_at,
        "ended_at": event.data.ended_at,
        "card_seconds": card_seconds_of(event),
        "source": EVENT_SOURCE,
        "external_id": event.data.external_id,
        "measured": event.data.agent.model_dump() if event.data.agent is not None else None,
        "recorded_at": now,
    }


def _launches(session: Session, names: set[str]) -> dict[str, _Launch]:
    """The batch's launches by name, with what the checks and the records need, in one query."""
    if not names:
        return {}
    rows = session.execute(
        select(Launch.name, Launch.id, Launch.job_id, Launch.pool_id, Job.org_id, Job.cards, Site.provider_id)
        .join(Job, Job.id == Launch.job_id)
        .join(Pool, Pool.id == Launch.pool_id)
        .join(Site, Site.id == Pool.site_id)
        .where(among(session, Launch.name, names))
    )
    return {name: _Launch(*rest) for name, *rest in rows}


def _seen(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
    """Which (source, id) pairs were processed before, with their usage record, in one query."""
    if not keys:
        return {}
    rows = session.execute(
        select(SeenEvent.source, SeenEvent.event_id, SeenEvent.usage_record_id).where(
            among(session, SeenEvent.event_id, {event_id for _, event_id in keys}),
            among(session, SeenEvent.source, {source for source, _ in keys}),
        )
    )
    return {(source, event_id): usage_id for source, event_id, usage_id in rows if (source, event_id) in keys}


def _metered(session: Session, launch_ids: set[int]) -> dict[int, int | None]:
    """The usage record of each launch that has one already, in one query."""
    if not launch_ids:
        return {}
    rows = session.execute(
        select(UsageRecord.launch_id, UsageRecord.id).where(among(session, UsageRecord.launch_id, launch_ids))
    )
    return {launch_id: usage_id for launch_id, usage_id in rows}


def _table(model: type[UsageRecord] | type[SeenEvent]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _insert_usage(session: Session, rows: list[dict[str, Any]]) -> dict[int, int | None]:
    """Insert the batch's usage records in one statement; their ids by launch."""
    # RETURNING the launch too: rows come back in any order, and launch_id is unique among them.
    inserted = insert_many(session, _table(UsageRecord), rows, returning=("launch_id", "id"))
    return {launch_id: usage_id for launch_id, usage_id in inserted}


def _mark_seen(session: Session, marks: list[dict[str, Any]]) -> None:
    """Mark the batch's new (source, id) pairs seen in one statement, in the records' transaction."""
    insert_many(session, _table(SeenEvent), marks)


# --- reading usage ---------------------------------------------------------------------------------


def _visible(principal: Principal, stmt: Select[tuple[UsageRecord]]) -> Select[tuple[UsageRecord]]:
    """Tenants see their organisation's usage; operators the usage on their pools; the regulator all."""
    if principal.is_regulator:
        return stmt
    if principal.is_tenant:
        return stmt.where(UsageRecord.org_id == principal.org_id)
    if principal.role is Role.PROVIDER_OPERATOR and principal.provider_id is not None:
        return stmt.where(UsageRecord.pool_id.in_(operated_pool_ids(principal.provider_id)))
    return stmt.where(UsageRecord.id.is_(None))


def list_usage(
    *,
    session: Session,
    principal: Principal,
    request: PageRequest,
    org_id: int | None = None,
    pool_id: int | None = None,
    job_id: int | None = None,
    ended_from: datetime | None = None,
    ended_to: datetime | None = None,
) -> Page[UsageRecord]:
    """Usage records the caller may see, ended in [ended_from, ended_to), newest end first."""
    if ended_from is not None and ended_to is not None and ended_to <= ended_from:
        raise Invalid("usage.empty-range", start=ended_from.isoformat(), end=ended_to.isoformat())
    stmt = _visible(principal, select(UsageRecord))
    if org_id is not None:
        stmt = stmt.where(UsageRecord.org_id == org_id)
    if pool_id is not None:
        stmt = stmt.where(UsageRecord.pool_id == pool_id)
    if job_id is not None:
        stmt = stmt.where(UsageRecord.job_id == job_id)
    if ended_from is not None:
        stmt = stmt.where(UsageRecord.ended_at >= ended_from)
    if ended_to is not None:
        stmt = stmt.where(UsageRecord.ended_at < ended_to)
    sortable = {
        "id": UsageRecord.id,
        "ended_at": UsageRecord.ended_at,
        "started_at": UsageRecord.started_at,
        "recorded_at": UsageRecord.recorded_at,
        "card_seconds": UsageRecord.card_seconds,
    }
    return page(session, stmt, request, sortable=sortable, default_sort="-ended_at")
