"""The checks of an imported file that need the registry as it stands: a row is read together with the
record it would change (a column the file does not have keeps the stored value) and must keep the rules
the API keeps (a tier not dated before the founding, a project status that only moves forward, dates
after the signing, no new use of a retired segment). Every problem is a row error found before anything
is written, so a dry run lists it and a real import never stops half-way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from suanwang.errors import DomainError, Invalid
from suanwang.registry import datasets, output, projects
from suanwang.registry import taxonomy as chain

# Where a rule's error belongs in the row, when its parameters do not say.
FIELD_OF = {
    "registry.bad-month": "month",
    "registry.foreign-needs-amount": "foreign_usd_cents",
    "registry.amount-needs-foreign": "foreign_usd_cents",
    "registry.project-status-backwards": "status",
}
PROJECT_FIELDS = (
    "segment",
    "foreign_funded",
    "foreign_usd_cents",
    "signed_on",
    "construction_on",
    "production_on",
)


def problems(
    dataset: str, rows: list[dict[str, Any]], stored: Mapping[str, Any], taxonomy: chain.Taxonomy
) -> list[datasets.RowError]:
    """`rows` hold only the file's columns (and "row"); `stored` the records they would change, by key
    (enterprises by credit code, projects by name)."""
    check = {"enterprises": _enterprise, "projects": _project, "output": _output}[dataset]
    found: list[datasets.RowError] = []
    for row in rows:
        try:
            check(row, stored, taxonomy)
        except DomainError as error:
            field = str(error.params.get("field") or FIELD_OF.get(error.code, ""))
            found.append(datasets.RowError(int(row["row"]), field, "", error.code, dict(error.params)))
    return found


def _no_new_retired(codes: list[str], before: list[str], taxonomy: chain.Taxonomy, field: str) -> None:
    """A retired segment stays on the records that had it; nothing new may name it."""
    chain.check_codes(taxonomy, [code for code in codes if code not in before], field=field)


def _enterprise(row: dict[str, Any], stored: Mapping[str, Any], taxonomy: chain.Taxonomy) -> None:
    record = stored.get(row["credit_code"])
    _no_new_retired(row.get("segments") or [], record.segments if record else [], taxonomy, "segments")
    granted = row.get("tier_granted_on")
    if granted is not None and row.get("tier") is None:
        raise Invalid("registry.date-without-tier", field="tier_granted_on", date=granted)
    founded = row.get("founded_on", record.founded_on if record else None)
    if granted is not None and founded is not None and granted < founded:
        raise Invalid(
            "registry.tier-before-founding", field="tier_granted_on", granted_on=granted, founded_on=founded
        )


def _project(row: dict[str, Any], stored: Mapping[str, Any], taxonomy: chain.Taxonomy) -> None:
    project = stored.get(row["name"])
    merged = {name: getattr(project, name) for name in PROJECT_FIELDS} if project else {}
    merged |= {name: row[name] for name in PROJECT_FIELDS if name in row} | {"name": row["name"]}
    merged.setdefault("foreign_funded", False)
    kept = project is not None and merged["segment"] == project.segment
    projects.check(merged, None if kept else taxonomy)
    status = row.get("status")
    if project is not None and status is not None and projects.ORDER[status] < projects.ORDER[project.status]:
        raise Invalid("registry.project-status-backwards", current=project.status.value, wanted=str(status))


def _output(row: dict[str, Any], stored: Mapping[str, Any], taxonomy: chain.Taxonomy) -> None:
    year, month = row["month"]
    output.check_month(year, month)
