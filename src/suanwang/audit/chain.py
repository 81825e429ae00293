"""PURE: the hash chain of the audit trail, and its check.

Each entry's hash covers its own fields and the hash before it, so editing, deleting or reordering any
entry breaks every hash after it; the chain's head (the last sequence number and hash, kept in its own
row) shows a deleted tail. Someone who can rewrite the whole table and its head can forge a consistent
chain: an anchor (a head written down elsewhere, `suanwang audit head`) detects that too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Entry:
    """One audited change, as stored. `before` and `after` are JSON texts (None where absent)."""

    seq: int
    at: datetime
    actor: str
    action: str
    table_name: str
    row_key: str
    before: str | None
    after: str | None
    prev_hash: str
    hash: str


def digest(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    table_name: str,
    row_key: str,
    before: str | None,
    after: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 of the entry's fields as one JSON array: unambiguous, whatever the fields contain."""
    fields = [seq, stamp(at), actor, action, table_name, row_key, before, after, prev_hash]
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def stamp(at: datetime) -> str:
    """The time as hashed: UTC, to the microsecond (what both databases store)."""
    if at.tzinfo is None:
        raise ValueError("audit times are aware UTC")
    return at.isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """`SEQ:HASH`, as `suanwang audit head` prints it."""
        seq, sep, value = text.strip().partition(":")
        if not sep or not seq.isdigit() or len(value) != 64 or value.strip("0123456789abcdef"):
            raise ValueError(f"an anchor is SEQ:HASH (64 lowercase hex digits), not {text!r}")
        return cls(int(seq), value)


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: str  # edited | missing | broken-link | head | anchor
    detail: str


@dataclass(slots=True)
class Verdict:
    checked: int = 0
    last: Head = Head(0, GENESIS)
    problems: list[Problem] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    entries: Iterable[Entry], head: Head | None, anchors: Iterable[Head] = (), *, max_problems: int = 20
) -> Verdict:
    """Check entries given in sequence order against each other, the stored head and any anchors.

    Reports the first problems found (at most `max_problems`): an entry whose hash is not its content's
    (edited), a gap in the sequence (deleted), an entry that does not name the hash before it (deleted
    or reordered), a head that is not the last entry (tail deleted, or head edited), an anchor the chain
    does not contain (rewritten).
    """
    verdict = Verdict(problems=[])
    problems = verdict.problems
    assert problems is not None
    wanted = {anchor.seq: anchor.hash for anchor in anchors}
    previous = Head(0, GENESIS)
    for entry in entries:
        verdict.checked += 1
        if entry.seq != previous.seq + 1:
            problems.append(
                Problem(entry.seq, "missing", f"entries {previous.seq + 1}..{entry.seq - 1} are missing")
            )
        if entry.prev_hash != previous.hash:
            problems.append(Problem(entry.seq, "broken-link", "does not follow the entry before it"))
        expected = digest(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            table_name=entry.table_name,
            row_key=entry.row_key,
            before=entry.before,
            after=entry.after,
            prev_hash=entry.prev_hash,
        )
        if entry.hash != expected:
            problems.append(Problem(entry.seq, "edited", "its content does not match its hash"))
        if entry.seq in wanted and wanted.pop(entry.seq) != entry.hash:
            problems.append(Problem(entry.seq, "anchor", "differs from the anchor written down"))
        previous = Head(entry.seq, entry.hash)
        if len(problems) >= max_problems:
            del problems[max_problems:]
            verdict.last = previous
            return verdict
    verdict.last = previous
    stored = head or Head(0, GENESIS)
    if stored != previous:
        problems.append(
            Problem(stored.seq, "head", f"the chain's head says {stored}, the last entry is {previous}")
        )
    for seq in sorted(wanted):
        problems.append(Problem(seq, "anchor", "the anchored entry is not in the chain"))
    return verdict
