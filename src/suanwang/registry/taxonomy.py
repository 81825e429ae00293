"""The industry chain's taxonomy as stored (seeded from taxonomy.toml, then edited by the regulator):
reading it, resolving what officials write (a code, a Chinese or an English name) to a code, rolling a
sub-segment up to its segment and stage, and the regulator's edits."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.errors import Conflict, Invalid, NotFound
from suanwang.registry.models import ChainSegment, Stage
from suanwang.registry.schemas import SegmentCreate, SegmentPatch
from suanwang.tenants.access import Principal, require_regulator

UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class Node:
    code: str
    stage: Stage
    parent_code: str | None
    name_zh: str
    name_en: str
    retired: bool

    @property
    def top(self) -> str:
        """The top-level segment this node rolls up to (itself when it has no parent)."""
        return self.parent_code or self.code


@dataclass(frozen=True, slots=True)
class Taxonomy:
    nodes: dict[str, Node]

    def top_of(self, code: str | None) -> str | None:
        node = self.nodes.get(code) if code else None
        return node.top if node else None

    def stage_of(self, code: str | None) -> str | None:
        node = self.nodes.get(code) if code else None
        return node.stage.value if node else None

    def within(self, code: str) -> set[str]:
        """A segment and its sub-segments (a filter on a segment finds enterprises of its sub-segments)."""
        return {code} | {n.code for n in self.nodes.values() if n.parent_code == code}

    def names(self, *, include_retired: bool = False) -> list[tuple[str, str, str]]:
        """(code, zh, en) of the segments, for reading and writing spreadsheets (an import reads retired
        segments too, so the records that keep one export and import back; new uses are refused)."""
        return [
            (n.code, n.name_zh, n.name_en) for n in self.nodes.values() if include_retired or not n.retired
        ]

    def name(self, code: str, lang: str) -> str:
        node = self.nodes.get(code)
        if node is None:
            return code
        return node.name_zh if lang == "zh" else node.name_en


def shipped() -> list[dict[str, str]]:
    """The taxonomy as shipped (taxonomy.toml), in its order."""
    text = resources.files("suanwang.registry").joinpath("taxonomy.toml").read_text(encoding="utf-8")
    return list(tomllib.loads(text)["segment"])


def seed_shipped(session: Session) -> int:
    """Add the shipped segments a database lacks (as a fresh migration has them); edits are kept.
    Returns how many were added."""
    have = set(session.scalars(select(ChainSegment.code)))
    added = 0
    for position, entry in enumerate(shipped(), start=1):
        if entry["code"] not in have:
            session.add(
                ChainSegment(
                    code=entry["code"],
                    stage=Stage(entry["stage"]),
                    parent_code=entry.get("parent"),
                    name_zh=entry["zh"],
                    name_en=entry["en"],
                    position=position,
                )
            )
            added += 1
    session.flush()
    return added


def load(session: Session) -> Taxonomy:
    rows = session.scalars(select(ChainSegment).order_by(ChainSegment.position, ChainSegment.id))
    return Taxonomy(
        {
            r.code: Node(r.code, r.stage, r.parent_code, r.name_zh, r.name_en, r.retired_at is not None)
            for r in rows
        }
    )


def check_codes(taxonomy: Taxonomy, codes: list[str], *, field: str = "segments") -> list[str]:
    """The codes, each known and in use, without repeats (order kept: the first is the primary)."""
    result: list[str] = []
    for code in codes:
        node = taxonomy.nodes.get(code)
        if node is None or node.retired:
            known = ", ".join(n.code for n in taxonomy.nodes.values() if not n.retired)
            raise Invalid("registry.unknown-segment", code=code, field=field, known=known)
        if code not in result:
            result.append(code)
    return result


def list_segments(session: Session, *, include_retired: bool = False) -> list[ChainSegment]:
    stmt = select(ChainSegment).order_by(ChainSegment.position, ChainSegment.id)
    if not include_retired:
        stmt = stmt.where(ChainSegment.retired_at.is_(None))
    return list(session.scalars(stmt))


def get_segment(session: Session, code: str) -> ChainSegment:
    found = session.scalar(select(ChainSegment).where(ChainSegment.code == code))
    if found is None:
        raise NotFound("registry.segment-not-found", code=code)
    return found


def _check_parent(session: Session, parent_code: str | None, stage: Stage, code: str) -> None:
    if parent_code is None:
        return
    parent = session.scalar(select(ChainSegment).where(ChainSegment.code == parent_code))
    if parent is None or parent.retired_at is not None:
        raise Invalid("registry.unknown-parent", parent=parent_code)
    if parent.parent_code is not None:
        raise Invalid("registry.parent-too-deep", parent=parent_code)
    if parent.stage is not stage:
        raise Invalid("registry.parent-other-stage", parent=parent_code, stage=parent.stage.value)
    if parent_code == code:
        raise Invalid("registry.parent-itself", code=code)


def _check_names_free(session: Session, code: str, name_zh: str | None, name_en: str | None) -> None:
    """Spreadsheets name segments: two segments with one name would make a file's cell ambiguous."""
    for segment in session.scalars(select(ChainSegment).where(ChainSegment.code != code)):
        for mine, theirs in ((name_zh, segment.name_zh), (name_en, segment.name_en)):
            if mine is not None and mine.strip().casefold() == theirs.strip().casefold():
                raise Conflict("registry.segment-name-taken", name=mine, code=segment.code)


def create_segment(session: Session, *, principal: Principal, data: SegmentCreate) -> ChainSegment:
    require_regulator(principal)
    _check_names_free(session, data.code, data.name_zh, data.name_en)
    if session.scalar(select(ChainSegment.id).where(ChainSegment.code == data.code)) is not None:
        raise Conflict("registry.segment-exists", code=data.code)
    _check_parent(session, data.parent_code, data.stage, data.code)
    last = session.scalar(select(ChainSegment.position).order_by(ChainSegment.position.desc()).limit(1))
    segment = ChainSegment(
        code=data.code,
        stage=data.stage,
        parent_code=data.parent_code,
        name_zh=data.name_zh,
        name_en=data.name_en,
        position=data.position if data.position is not None else (last or 0) + 1,
    )
    session.add(segment)
    session.flush()
    return segment


def update_segment(
    session: Session, *, principal: Principal, code: str, data: SegmentPatch, now: datetime
) -> ChainSegment:
    """Rename, reorder, move under another segment of its stage, retire or bring back. A segment that
    has sub-segments in use cannot be retired or moved under another."""
    require_regulator(principal)
    segment = get_segment(session, code)
    changes = data.model_dump(exclude_unset=True)
    _check_names_free(session, code, changes.get("name_zh"), changes.get("name_en"))
    children = session.scalars(
        select(ChainSegment.code).where(ChainSegment.parent_code == code, ChainSegment.retired_at.is_(None))
    ).all()
    if "parent_code" in changes and changes["parent_code"] is not None and children:
        raise Invalid("registry.segment-has-children", code=code, children=", ".join(children))
    if "parent_code" in changes:
        _check_parent(session, changes["parent_code"], segment.stage, code)
        segment.parent_code = changes["parent_code"]
    for name in ("name_zh", "name_en", "position"):
        if name in changes:
            setattr(segment, name, changes[name])
    if changes.get("retired") is True and children:
        raise Invalid("registry.segment-has-children", code=code, children=", ".join(children))
    segment.set_retired(changes.get("retired"), now)
    session.flush()
    return segment
