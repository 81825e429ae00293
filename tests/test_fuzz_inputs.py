"""Hostile input to the parsers: any bytes as an import file, any JSON as a CloudEvents batch. Each is
either read or refused with a clear, translatable error — never another exception (which would be a
500 at the API) — and a refused batch stores nothing."""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from suanwang.db.session import session_scope
from suanwang.i18n import t
from suanwang.metering import service as metering
from suanwang.metering.models import UsageRecord
from suanwang.metering.schemas import EVENT_TYPE
from suanwang.registry.datasets import DATASETS, SegmentNames, headers, parse
from suanwang.registry.tabular import TableError, read_table
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Role
from suanwang.timeutil import utcnow

SRC = Path(__file__).resolve().parent.parent / "src" / "suanwang"
TAXONOMY = tomllib.loads((SRC / "registry" / "taxonomy.toml").read_text(encoding="utf-8"))["segment"]
SEGMENTS = SegmentNames((s["code"], s["zh"], s["en"]) for s in TAXONOMY)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

# Cells that look like what officials type, and what nobody should: numbers, dates, CJK, formulas,
# control characters, very long text.
cells = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "=1+1", "@SUM(A1)", "是", "否", "2024-09", "2024-13-01", "1e309", "-0", "NaN"]),
    st.integers(-(10**20), 10**20).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=17, max_size=19),
    st.text(min_size=300, max_size=600),
)


def as_csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A CSV file for a dataset: its real headers (some dropped, renamed or doubled) and wild cells."""
    dataset = draw(st.sampled_from(sorted(DATASETS)))
    names = [*headers(dataset, "en"), *headers(dataset, "zh"), "Unknown column"]
    header = draw(st.lists(st.sampled_from(names), max_size=len(names) + 2))
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=len(header) + 2), max_size=8))
    return dataset, as_csv(header, rows)


def assert_readable_or_refused(dataset: str, body: bytes, fmt: str) -> None:
    try:
        table = read_table(body, fmt)  # type: ignore[arg-type]
    except TableError as exc:
        assert t(exc.key, "zh", **exc.params) and t(exc.key, "en", **exc.params)
        return
    parsed = parse(dataset, table, segments=SEGMENTS)
    for error in parsed.errors:  # every problem names where it is and says what, in both languages
        assert error.row >= 1 and t(error.key, "en", **error.params) and t(error.key, "zh", **error.params)


@FUZZ
@given(csv_files())
def test_any_csv_import_is_read_or_refused_row_by_row(file: tuple[str, bytes]) -> None:
    assert_readable_or_refused(*file, "csv")


@FUZZ
@given(st.sampled_from(sorted(DATASETS)), st.binary(max_size=2000), st.sampled_from(["csv", "xlsx"]))
def test_any_bytes_as_an_import_file_are_read_or_refused(dataset: str, body: bytes, fmt: str) -> None:
    assert_readable_or_refused(dataset, body, fmt)


def test_a_truncated_or_zipped_junk_spreadsheet_is_refused() -> None:
    for body in (b"PK\x03\x04" + b"\0" * 100, b"PK\x05\x06" + b"\0" * 18, b"\xef\xbb\xbf"):
        with pytest.raises(TableError):
            read_table(body, "xlsx")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
# Events shaped like CloudEvents with wrong, missing or extreme fields.
event_like = st.fixed_dictionaries(
    {},
    optional={
        "specversion": st.sampled_from(["1.0", "0.3", "", 1]),
        "type": st.sampled_from([EVENT_TYPE, "other"]),
        "source": st.text(max_size=300) | json_values,
        "id": st.text(max_size=300) | json_values,
        "time": st.sampled_from(["2026-11-27T08:00:00Z", "2026-11-27T08:00:00", "yesterday", ""])
        | json_values,
        "datacontenttype": st.just("application/json"),
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "launch": st.text(max_size=80),
                "cards": st.integers(-5, 10**12),
                "started_at": st.sampled_from(["2026-11-27T08:00:00Z", "x"]),
                "ended_at": st.sampled_from(["2026-11-27T09:00:00Z", "2026-11-27T07:00:00Z"]),
            },
        ),
    },
)


@pytest.mark.db
@FUZZ
@given(events=st.lists(event_like | json_values, max_size=6))
def test_any_json_as_a_usage_batch_is_refused_cleanly_and_stores_nothing(
    clean_engine: Engine, events: list[Any]
) -> None:
    regulator = Principal(user_id=1, name="admin", role=Role.REGULATOR)
    with session_scope(clean_engine) as session:
        try:
            metering.ingest(session=session, principal=regulator, events=events, now=utcnow())
        except metering.InvalidEvents as exc:  # the API's 422, one problem per bad event
            assert exc.problems and all(0 <= p.index < len(events) for p in exc.problems)
            assert exc.message("zh") and all(p.render("zh")["message"] for p in exc.problems)
            session.rollback()
        stored = session.scalar(select(func.count()).select_from(UsageRecord))
    assert stored == 0  # nothing here names a real launch: nothing may be stored
