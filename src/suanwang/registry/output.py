"""Monthly output value (产值) and revenue (营收) per enterprise: recording a month (regulator), the upsert an
import runs, and the facts the statistics core computes from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.db.base import assign_changed
from suanwang.errors import Invalid
from suanwang.registry import statistics
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, OutputRecord
from suanwang.registry.schemas import OutputPut

FIRST_YEAR = 2000


def check_month(year: int, month: int) -> None:
    if not (FIRST_YEAR <= year <= 2100 and 1 <= month <= 12):
        raise Invalid("registry.bad-month", year=year, month=month)


def put(session: Session, enterprise: Enterprise, year: int, month: int, data: OutputPut) -> OutputRecord:
    """Record (or correct) one month; a 规上 flag or revenue not given keeps what the month has."""
    check_month(year, month)
    record = _find(session, enterprise.id, year, month)
    values = _values(data.model_dump(), enterprise, record)
    if record is None:
        record = OutputRecord(enterprise_id=enterprise.id, year=year, month=month, **values)
        session.add(record)
    else:
        assign_changed(record, values)
    session.flush()
    return record


def _find(session: Session, enterprise_id: int, year: int, month: int) -> OutputRecord | None:
    return session.scalar(
        select(OutputRecord).where(
            OutputRecord.enterprise_id == enterprise_id,
            OutputRecord.year == year,
            OutputRecord.month == month,
        )
    )


def _values(record: dict[str, Any], enterprise: Enterprise, existing: OutputRecord | None) -> dict[str, Any]:
    """What to store: a 规上 flag not given keeps the month's (a new month: the enterprise's flag now); a
    revenue not given keeps what was recorded."""
    values: dict[str, Any] = {"output_fen": record["output_fen"]}
    above = record.get("above_size")
    if above is not None:
        values["above_size"] = above
    elif existing is None:
        values["above_size"] = enterprise.above_size
    if record.get("revenue_fen") is not None:
        values["revenue_fen"] = record["revenue_fen"]
    return values


def upsert_many(
    session: Session, records: list[dict[str, Any]], *, enterprises: dict[str, Enterprise]
) -> list[str]:
    """Imported months, already checked (one per credit code and month), read and written in batches:
    'created', 'updated' or 'unchanged' for each. `enterprises` by credit code."""
    years = sorted({record["month"][0] for record in records})
    found = {
        (r.enterprise_id, r.year, r.month): r
        for r in session.scalars(select(OutputRecord).where(OutputRecord.year.in_(years)))
    }
    outcomes = []
    for record in records:
        enterprise = enterprises[record["credit_code"]]
        year, month = record["month"]
        existing = found.get((enterprise.id, year, month))
        values = _values(record, enterprise, existing)
        if existing is None:
            session.add(OutputRecord(enterprise_id=enterprise.id, year=year, month=month, **values))
            outcomes.append("created")
        else:
            outcomes.append("updated" if assign_changed(existing, values) else "unchanged")
    session.flush()
    return outcomes


def history(session: Session, enterprise_id: int, *, months: int = 24) -> list[OutputRecord]:
    """The enterprise's latest months with a record, oldest first."""
    rows = session.scalars(
        select(OutputRecord)
        .where(OutputRecord.enterprise_id == enterprise_id)
        .order_by(OutputRecord.year.desc(), OutputRecord.month.desc())
        .limit(months)
    ).all()
    return list(reversed(rows))


def facts(
    session: Session, years: set[int], *, taxonomy: chain.Taxonomy
) -> tuple[list[statistics.OutputFact], list[statistics.EnterpriseFacts]]:
    """The records of these years and every enterprise they name, as the statistics core reads them
    (the primary segment rolled up to its top-level segment and stage; the current tier)."""
    records = session.scalars(select(OutputRecord).where(OutputRecord.year.in_(sorted(years)))).all()
    ids = {r.enterprise_id for r in records}
    # The whole registry rather than `IN (ids)`: tens of thousands of ids exceed the databases' limits.
    enterprises = [e for e in session.scalars(select(Enterprise)) if e.id in ids]
    facts = [
        statistics.OutputFact(r.enterprise_id, r.year, r.month, r.output_fen, r.revenue_fen, r.above_size)
        for r in records
    ]
    described = []
    for e in enterprises:
        primary = e.segments[0] if e.segments else None
        described.append(
            statistics.EnterpriseFacts(
                e.id, taxonomy.top_of(primary), taxonomy.stage_of(primary), e.tier.value if e.tier else None
            )
        )
    return facts, described
