"""Spreadsheet import and export of the registry (enterprises, projects, monthly output), on top of the
pure readers in tabular.py and datasets.py.

An import checks every row first. A dry run reports every invalid row and what a real import would
create, update or leave unchanged (it runs the writes inside a savepoint and rolls them back). A real
import with any invalid row is refused whole; otherwise every row is written in one transaction.
Re-importing the same file changes nothing: rows are matched on their key (credit code; project name;
credit code and month) and only differing values are written."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.errors import Invalid, NotFound
from suanwang.i18n import t
from suanwang.registry import datasets, enterprises, import_checks, output, projects, tabular
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, OutputRecord, Project
from suanwang.registry.schemas import ImportReport, RowProblem
from suanwang.tenants.access import Principal, require_regulator
from suanwang.timeutil import shanghai_date

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ImportRejected(Invalid):
    """A real import with invalid rows: nothing was written; the problem lists every row."""

    def __init__(self, dataset: str, rows: int, errors: list[datasets.RowError]) -> None:
        super().__init__("registry.import-invalid", dataset=dataset, count=len(errors))
        self.dataset = dataset
        self.rows = rows
        self.errors = errors

    def extra(self, lang: str) -> dict[str, Any]:
        problems = _problems(self.dataset, self.errors, lang)
        return {"rows": self.rows, "row_errors": [p.model_dump() for p in problems]}


def _problems(dataset: str, errors: list[datasets.RowError], lang: str) -> list[RowProblem]:
    return [
        RowProblem(
            row=e.row, field=e.field, value=e.value, message=datasets.describe(e, dataset, _lang(lang))
        )
        for e in errors
    ]


def _lang(lang: str) -> datasets.Lang:
    return "zh" if lang == "zh" else "en"


def check_dataset(dataset: str) -> None:
    if dataset not in datasets.DATASETS:
        raise NotFound("registry.unknown-dataset", dataset=dataset, datasets=", ".join(datasets.DATASETS))


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise Invalid("registry.bad-format", value=fmt, formats=", ".join(FORMATS))


def parse_mapping(text: str | None) -> dict[str, str] | None:
    """The column mapping as given on the wire: a JSON object {file header: field name}."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise Invalid("registry.bad-mapping", value=text[:200])
    return value


# --- import --------------------------------------------------------------------------------------


def import_file(
    session: Session,
    *,
    principal: Principal,
    dataset: str,
    data: bytes,
    fmt: str,
    dry_run: bool,
    now: datetime,
    lang: str,
    sheet: str | None = None,
    mapping: dict[str, str] | None = None,
) -> ImportReport:
    require_regulator(principal)
    check_dataset(dataset)
    check_format(fmt)
    try:
        table = tabular.read_table(data, fmt, sheet)  # type: ignore[arg-type]
    except tabular.TableError as error:
        raise Invalid(error.key, **error.params) from None
    taxonomy = chain.load(session)
    # The registry, read once: the file's checks and its writes use the same records.
    registry = {e.credit_code: e for e in session.scalars(select(Enterprise))}
    projects_by_name = {p.name: p for p in session.scalars(select(Project))} if dataset == "projects" else {}
    parsed = datasets.parse(
        dataset,
        table,
        segments=datasets.SegmentNames(taxonomy.names(include_retired=True)),
        known_credit_codes=None if dataset == "enterprises" else set(registry),
        mapping=mapping,
    )
    # A column the file does not have is not part of its rows (the registry keeps those values).
    present = {*parsed.columns, *datasets.KEYS[dataset], "row"}
    rows = [{k: v for k, v in r.items() if k in present} for r in parsed.records]
    stored = registry if dataset == "enterprises" else projects_by_name
    stored_rules = import_checks.problems(dataset, rows, stored, taxonomy)
    errors = sorted([*parsed.errors, *stored_rules], key=lambda e: e.row)
    report = ImportReport(
        dataset=dataset,
        dry_run=dry_run,
        rows=len(table.rows),
        created=0,
        updated=0,
        unchanged=0,
        errors=_problems(dataset, errors, lang),
    )
    if errors and not dry_run:
        raise ImportRejected(dataset, len(table.rows), errors)
    if errors:
        return report
    savepoint = session.begin_nested()
    outcomes = Counter(_write(session, dataset, rows, registry, projects_by_name, now=now))
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    return report.model_copy(
        update={
            "created": outcomes["created"],
            "updated": outcomes["updated"],
            "unchanged": outcomes["unchanged"],
        }
    )


def _write(
    session: Session,
    dataset: str,
    rows: list[dict[str, Any]],
    registry: dict[str, Enterprise],
    projects_by_name: dict[str, Project],
    *,
    now: datetime,
) -> list[str]:
    if dataset == "enterprises":
        return enterprises.upsert_many(session, rows, found=registry, now=now)
    if dataset == "projects":
        ids = {code: e.id for code, e in registry.items()}
        today = shanghai_date(now)
        return projects.upsert_many(session, rows, found=projects_by_name, enterprise_ids=ids, today=today)
    return output.upsert_many(session, rows, enterprises=registry)


# --- export --------------------------------------------------------------------------------------


def records(session: Session, dataset: str) -> list[dict[str, Any]]:
    """The registry's rows as `datasets.parse` gives them back (so export → import changes nothing)."""
    if dataset == "enterprises":
        found = session.scalars(
            select(Enterprise).where(Enterprise.retired_at.is_(None)).order_by(Enterprise.id)
        )
        return [
            {
                name: getattr(e, name)
                for name in ("credit_code", *enterprises.IMPORTED, "tier", "tier_granted_on")
            }
            for e in found
        ]
    names = dict(session.execute(select(Enterprise.id, Enterprise.name)).all())
    codes = dict(session.execute(select(Enterprise.id, Enterprise.credit_code)).all())
    if dataset == "projects":
        rows = session.scalars(select(Project).where(Project.retired_at.is_(None)).order_by(Project.id))
        return [
            {
                "name": p.name,
                "credit_code": codes[p.enterprise_id],
                "enterprise_name": names[p.enterprise_id],
                "segment": p.segment,
                "investment_fen": p.investment_fen,
                "foreign_funded": p.foreign_funded,
                "foreign_usd_cents": p.foreign_usd_cents,
                "signed_on": p.signed_on,
                "status": p.status,
                "construction_on": p.construction_on,
                "production_on": p.production_on,
                "department": p.department,
                "chain_leader": p.chain_leader,
            }
            for p in rows
        ]
    months = session.scalars(
        select(OutputRecord).order_by(OutputRecord.enterprise_id, OutputRecord.year, OutputRecord.month)
    )
    return [
        {
            "credit_code": codes[r.enterprise_id],
            "enterprise_name": names[r.enterprise_id],
            "month": (r.year, r.month),
            "output_fen": r.output_fen,
            "revenue_fen": r.revenue_fen,
            "above_size": r.above_size,
        }
        for r in months
    ]


def export_file(session: Session, *, principal: Principal, dataset: str, fmt: str, lang: str) -> bytes:
    require_regulator(principal)
    check_dataset(dataset)
    check_format(fmt)
    taxonomy = chain.load(session)
    names = datasets.SegmentNames(taxonomy.names(include_retired=True))
    header, rows = datasets.export_table(dataset, records(session, dataset), _lang(lang), segments=names)
    if fmt == "csv":
        return tabular.write_csv(header, rows)
    return tabular.write_xlsx(header, rows, t(f"registry.dataset.{dataset}", lang))
