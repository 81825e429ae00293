"""Investment projects (招商项目): create and edit (regulator), status that only moves forward, filters,
the summary the report gives ("29 projects signed since 2024, 29.04 billion yuan, 4 foreign-funded
worth 320 million USD"), and the upsert an import runs for each row (the project's name is its key)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from suanwang.db.base import assign_changed
from suanwang.db.query import get_or_404
from suanwang.errors import Conflict, Invalid
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, Project, ProjectStatus
from suanwang.registry.schemas import ProjectCreate, ProjectPatch
from suanwang.tenants.access import Principal, require_regulator

ORDER = {status: i for i, status in enumerate(ProjectStatus)}


def check(values: dict[str, Any], taxonomy: chain.Taxonomy | None) -> None:
    """The rules a project's fields keep together, whoever sets them (API or import); the segment is
    checked against `taxonomy` unless it is None (a stored project keeps a segment retired since)."""
    if taxonomy is not None:
        chain.check_codes(taxonomy, [values["segment"]], field="segment")
    if values["foreign_funded"] and not values.get("foreign_usd_cents"):
        raise Invalid("registry.foreign-needs-amount", name=values["name"])
    if not values["foreign_funded"] and values.get("foreign_usd_cents"):
        raise Invalid("registry.amount-needs-foreign", name=values["name"])
    signed = values["signed_on"]
    for field in ("construction_on", "production_on"):
        if values.get(field) is not None and values[field] < signed:
            raise Invalid(
                "registry.project-date-before-signing", field=field, date=values[field], signed=signed
            )


def _stamp_status(project: Project, status: ProjectStatus, on: date) -> None:
    """Move the status forward (never back) and date the step when its date is not given."""
    if ORDER[status] < ORDER[project.status]:
        raise Invalid("registry.project-status-backwards", current=project.status.value, wanted=status.value)
    if status is not ProjectStatus.SIGNED and project.construction_on is None:
        project.construction_on = on
    if status is ProjectStatus.IN_PRODUCTION and project.production_on is None:
        project.production_on = on
    project.status = status


def create(session: Session, *, principal: Principal, data: ProjectCreate, today: date) -> Project:
    require_regulator(principal)
    get_or_404(session, Enterprise, data.enterprise_id, what="enterprise")
    if session.scalar(select(Project.id).where(Project.name == data.name)) is not None:
        raise Conflict("registry.duplicate-project", name=data.name)
    values = data.model_dump()
    check(values, chain.load(session))
    status = values.pop("status")
    project = Project(**values, status=ProjectStatus.SIGNED)
    _stamp_status(project, status, today)
    session.add(project)
    session.flush()
    return project


def update(
    session: Session, *, principal: Principal, project_id: int, data: ProjectPatch, now: datetime, today: date
) -> Project:
    require_regulator(principal)
    project = get_or_404(session, Project, project_id, what="project")
    changes = data.model_dump(exclude_unset=True)
    renamed = changes.get("name", project.name)
    if renamed != project.name and session.scalar(select(Project.id).where(Project.name == renamed)):
        raise Conflict("registry.duplicate-project", name=changes["name"])
    retired = changes.pop("retired", None)
    status = changes.pop("status", None)
    merged = {c: getattr(project, c) for c in ("name", "segment", "foreign_funded", "signed_on")}
    merged |= {c: getattr(project, c) for c in ("foreign_usd_cents", "construction_on", "production_on")}
    merged |= changes
    check(merged, chain.load(session))
    for name, value in changes.items():
        setattr(project, name, value)
    if status is not None:
        _stamp_status(project, status, today)
    project.set_retired(retired, now)
    session.flush()
    return project


def search(
    *,
    status: ProjectStatus | None = None,
    segment: set[str] | None = None,
    enterprise_id: int | None = None,
    signed_from: date | None = None,
    signed_to: date | None = None,
    foreign_funded: bool | None = None,
    chain_leader: str | None = None,
    include_retired: bool = False,
) -> Select[tuple[Project]]:
    """Projects matching every filter; signed_to is inclusive (a report says "signed in 2024")."""
    stmt = select(Project)
    if status is not None:
        stmt = stmt.where(Project.status == status)
    if segment is not None:
        stmt = stmt.where(Project.segment.in_(sorted(segment)))
    if enterprise_id is not None:
        stmt = stmt.where(Project.enterprise_id == enterprise_id)
    if signed_from is not None:
        stmt = stmt.where(Project.signed_on >= signed_from)
    if signed_to is not None:
        stmt = stmt.where(Project.signed_on <= signed_to)
    if foreign_funded is not None:
        stmt = stmt.where(Project.foreign_funded.is_(foreign_funded))
    if chain_leader is not None:
        stmt = stmt.where(Project.chain_leader == chain_leader)
    if not include_retired:
        stmt = stmt.where(Project.retired_at.is_(None))
    return stmt


def summary(session: Session, stmt: Select[tuple[Project]], taxonomy: chain.Taxonomy) -> dict[str, Any]:
    """Count and investment of the projects `stmt` selects, overall and by status, segment (rolled up to
    its top-level segment) and stage; foreign-funded ones with their US-dollar amount."""
    found = list(session.scalars(stmt))

    def tally(projects: list[Project]) -> dict[str, int]:
        foreign = [p for p in projects if p.foreign_funded]
        return {
            "projects": len(projects),
            "investment_fen": sum(p.investment_fen for p in projects),
            "foreign_projects": len(foreign),
            "foreign_usd_cents": sum(p.foreign_usd_cents or 0 for p in foreign),
        }

    def grouped(key: Any) -> list[dict[str, Any]]:
        groups: dict[str, list[Project]] = defaultdict(list)
        for project in found:
            groups[key(project) or chain.UNCLASSIFIED].append(project)
        return [{"key": k, **tally(v)} for k, v in sorted(groups.items())]

    return {
        "total": tally(found),
        "by_status": [{"key": s.value, **tally([p for p in found if p.status is s])} for s in ProjectStatus],
        "by_segment": grouped(lambda p: taxonomy.top_of(p.segment)),
        "by_stage": grouped(lambda p: taxonomy.stage_of(p.segment)),
    }


IMPORTED = (
    "segment",
    "investment_fen",
    "foreign_funded",
    "foreign_usd_cents",
    "signed_on",
    "construction_on",
    "production_on",
    "department",
    "chain_leader",
)


def upsert_many(
    session: Session,
    records: list[dict[str, Any]],
    *,
    found: dict[str, Project],
    enterprise_ids: dict[str, int],
    today: date,
) -> list[str]:
    """Imported rows, already checked (one per name): 'created', 'updated' or 'unchanged' for each. A
    column the file does not have keeps its value (a new project: not foreign-funded). `found`: every
    project by name (new ones are added to it)."""
    outcomes = []
    for record in records:
        values = {name: record[name] for name in IMPORTED if name in record}
        values["enterprise_id"] = enterprise_ids[record["credit_code"]]
        status = ProjectStatus(record.get("status") or ProjectStatus.SIGNED)
        project = found.get(record["name"])
        if project is None:
            project = Project(name=record["name"], status=ProjectStatus.SIGNED, **values)
            _stamp_status(project, status, today)
            session.add(project)
            found[project.name] = project
            outcomes.append("created")
            continue
        changed = assign_changed(project, values)
        if status is not project.status:
            _stamp_status(project, status, today)
            changed = True
        outcomes.append("updated" if changed else "unchanged")
    session.flush()
    return outcomes
