"""The audit trail's pure core (audit/chain.py): any change to a chain of entries — a field edited, an
entry deleted, two swapped, the tail cut — is found; an untouched chain always passes."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanwang.audit.chain import GENESIS, Entry, Head, digest, verify

START = datetime(2026, 1, 1, tzinfo=UTC)

texts = st.text(max_size=20)
jsons = st.none() | st.dictionaries(st.text(max_size=5), st.integers() | texts, max_size=3).map(
    lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True)
)
fields = st.fixed_dictionaries(
    {
        "actor": texts,
        "action": st.sampled_from(["insert", "update", "delete"]),
        "table_name": st.sampled_from(["jobs", "organisations", "ledger_transfers"]),
        "row_key": texts,
        "before": jsons,
        "after": jsons,
    }
)


def chain(contents: list[dict[str, object]]) -> list[Entry]:
    entries, prev = [], GENESIS
    for seq, content in enumerate(contents, start=1):
        at = START + timedelta(microseconds=seq)
        value = digest(seq=seq, at=at, prev_hash=prev, **content)  # type: ignore[arg-type]
        entries.append(Entry(seq=seq, at=at, prev_hash=prev, hash=value, **content))  # type: ignore[arg-type]
        prev = value
    return entries


def head_of(entries: list[Entry]) -> Head:
    return Head(entries[-1].seq, entries[-1].hash) if entries else Head(0, GENESIS)


@given(st.lists(fields, max_size=12))
def test_an_untouched_chain_passes(contents: list[dict[str, object]]) -> None:
    entries = chain(contents)
    verdict = verify(entries, head_of(entries), [head_of(entries)] if entries else [])
    assert verdict.ok and verdict.checked == len(entries) and verdict.last == head_of(entries)


@given(st.lists(fields, min_size=1, max_size=12), st.data())
def test_an_edited_field_is_found(contents: list[dict[str, object]], data: st.DataObject) -> None:
    entries = chain(contents)
    index = data.draw(st.integers(0, len(entries) - 1))
    name = data.draw(st.sampled_from(["actor", "action", "table_name", "row_key", "before", "after", "at"]))
    old = getattr(entries[index], name)
    if name == "at":
        new: object = old + timedelta(seconds=1)
    else:
        new = data.draw((texts | st.none()).filter(lambda v: v != old))
    entries[index] = dataclasses.replace(entries[index], **{name: new})
    verdict = verify(entries, head_of(chain(contents)))
    assert not verdict.ok
    assert (entries[index].seq, "edited") in {(p.seq, p.kind) for p in verdict.problems or []}


@given(st.lists(fields, min_size=2, max_size=12), st.data())
def test_a_deleted_or_moved_entry_is_found(contents: list[dict[str, object]], data: st.DataObject) -> None:
    entries = chain(contents)
    head = head_of(entries)
    i = data.draw(st.integers(0, len(entries) - 1))
    j = data.draw(st.integers(0, len(entries) - 1).filter(lambda n: n != i))
    if data.draw(st.booleans()):
        del entries[i]
    else:
        entries[i], entries[j] = entries[j], entries[i]
    assert not verify(entries, head).ok


@given(st.lists(fields, min_size=1, max_size=12), st.data())
def test_a_cut_tail_is_found_by_the_stored_head_or_an_anchor(
    contents: list[dict[str, object]], data: st.DataObject
) -> None:
    entries = chain(contents)
    anchor = head_of(entries)
    cut = entries[: data.draw(st.integers(0, len(entries) - 1))]
    assert not verify(cut, anchor).ok  # the head still names the last entry
    # A cut that also moved the head back is only found by an anchor written down before.
    assert verify(cut, head_of(cut)).ok
    assert not verify(cut, head_of(cut), [anchor]).ok


def test_anchors_parse_as_printed_and_refuse_anything_else() -> None:
    head = Head(42, "ab" * 32)
    assert Head.parse(str(head)) == head
    for bad in ("42", "x:" + "ab" * 32, "42:" + "AB" * 32, "42:abc", "-1:" + "ab" * 32):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            Head.parse(bad)


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        digest(
            seq=1,
            at=datetime(2026, 1, 1),
            actor="a",
            action="insert",
            table_name="t",
            row_key="1",
            before=None,
            after=None,
            prev_hash=GENESIS,
        )
