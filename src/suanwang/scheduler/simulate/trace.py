"""Trace CSV → QueuedJobs, all or nothing.

Columns (issue 3, item 6): job_id, submit_time_s, duration_s, cards (required); cards_per_node,
accelerators (`|`-separated, empty = any), tenant, priority, deadline_s, max_price_fen, classification
(public|internal|government), regions (`|`-separated), preemptible (true|false), job_type (optional);
extension: min_memory_gib. Other columns are ignored. `mapping` ({"job_id": "id", ...}) reads a
canonical column from another name; `fmt="gavel"` is the preset for Gavel's Philly CSV. docs/simulator.md.

A bad row raises one TraceError naming the file line (the header is line 1) and the data row
(1-based) and the column; nothing is returned unless every row is good.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from suanwang import catalog
from suanwang.scheduler.simulate.scenario import Scenario
from suanwang.scheduler.types import Classification, QueuedJob

REQUIRED = ("job_id", "submit_time_s", "duration_s", "cards")
OPTIONAL = (
    "cards_per_node",
    "accelerators",
    "tenant",
    "priority",
    "deadline_s",
    "max_price_fen",
    "classification",
    "regions",
    "preemptible",
    "job_type",
    "min_memory_gib",
)
COLUMNS = REQUIRED + OPTIONAL
FORMATS = ("csv", "gavel")
DEFAULT_TENANT = "default"
GAVEL_COLUMNS = ("vc", "job_index", "job_type", "arrival_time", "scale_factor", "duration_s_derived_v100")


class TraceError(ValueError):
    """A bad trace: `line` is the file line (header = 1), `row` the 1-based data row, `column` canonical."""

    def __init__(
        self, message: str, *, line: int | None = None, row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.line = line
        self.row = row
        self.column = column


def load_trace(
    path: str | Path,
    *,
    fmt: str = "csv",
    mapping: Mapping[str, str] | None = None,
    scenario: Scenario | None = None,
    limit: int | None = None,
) -> tuple[QueuedJob, ...]:
    """Load a trace file; jobs come back sorted by (submit time, id), the first `limit` of them if given.

    With a scenario: a job's tenant, when the row names one, must be one of its tenants (when it declares
    any; rows without a tenant belong to "default"), and a tenant's `default_classification` and
    `default_preemptible` apply to rows that leave those columns empty.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return read_trace(
                handle, source=str(path), fmt=fmt, mapping=mapping, scenario=scenario, limit=limit
            )
    except OSError as exc:
        raise TraceError(f"cannot read trace {str(path)!r}: {exc.strerror or exc}") from exc


def read_trace(
    handle: IO[str] | Iterable[str],
    *,
    source: str = "trace",
    fmt: str = "csv",
    mapping: Mapping[str, str] | None = None,
    scenario: Scenario | None = None,
    limit: int | None = None,
) -> tuple[QueuedJob, ...]:
    if fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r} (formats: {', '.join(FORMATS)})")
    if limit is not None and limit < 0:
        raise TraceError(f"limit must be non-negative, got {limit}")
    if mapping and fmt != "csv":
        raise TraceError("a column mapping applies to the csv format only")
    reader = csv.reader(handle)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise TraceError(f"{source}: empty file (no header)", line=1) from None
    if fmt == "gavel":
        rows = _gavel_rows(reader, header, source)
    else:
        rows = _mapped_rows(reader, header, source, dict(mapping or {}))
    parser = _RowParser(source, scenario)
    jobs = [parser.parse(line, row, values) for line, row, values in rows]
    jobs.sort(key=lambda job: (job.submit_s, job.id))
    return tuple(jobs if limit is None else jobs[:limit])


Row = tuple[int, int, dict[str, str]]  # (file line, data row, canonical column -> text)


def _mapped_rows(reader: Any, header: list[str], source: str, mapping: dict[str, str]) -> Iterator[Row]:
    unknown = sorted(set(mapping) - set(COLUMNS))
    if unknown:
        raise TraceError(
            f"{source}: mapping names unknown column(s) {', '.join(unknown)} (columns: {', '.join(COLUMNS)})",
            line=1,
        )
    index = {name: i for i, name in enumerate(header)}
    for dst, src in mapping.items():
        if src not in index:
            raise TraceError(f"{source} line 1: no column {src!r} to map to {dst!r}", line=1, column=dst)
    positions = {col: index[mapping.get(col, col)] for col in COLUMNS if mapping.get(col, col) in index}
    missing = [col for col in REQUIRED if col not in positions]
    if missing:
        raise TraceError(f"{source} line 1: missing required column(s) {', '.join(missing)}", line=1)
    yield from _rows(reader, header, source, lambda cells: {c: cells[i] for c, i in positions.items()})


def _gavel_rows(reader: Any, header: list[str], source: str) -> Iterator[Row]:
    """Gavel's Philly CSV: job_id = vc-job_index, tenant = vc, cards = scale_factor, V100 duration."""
    index = {name: i for i, name in enumerate(header)}
    missing = [col for col in GAVEL_COLUMNS if col not in index]
    if missing:
        raise TraceError(
            f"{source} line 1: not a Gavel trace, missing column(s) {', '.join(missing)}", line=1
        )

    def convert(cells: list[str]) -> dict[str, str]:
        vc, job_type = cells[index["vc"]].strip(), cells[index["job_type"]]
        return {
            "job_id": f"{vc}-{cells[index['job_index']].strip()}",
            "submit_time_s": cells[index["arrival_time"]],
            "duration_s": cells[index["duration_s_derived_v100"]],
            "cards": cells[index["scale_factor"]],
            "tenant": vc,
            "job_type": job_type.split(" (batch size", 1)[0],
        }

    yield from _rows(reader, header, source, convert)


def _rows(
    reader: Any, header: list[str], source: str, convert: Callable[[list[str]], dict[str, str]]
) -> Iterator[Row]:
    row = 0
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        row += 1
        if len(cells) != len(header):
            where = f"{source} line {reader.line_num} (data row {row})"
            raise TraceError(
                f"{where}: {len(cells)} fields, the header has {len(header)}",
                line=reader.line_num,
                row=row,
            )
        yield reader.line_num, row, convert(cells)


class _RowParser:
    def __init__(self, source: str, scenario: Scenario | None) -> None:
        self.source = source
        self.tenants = scenario.tenant_ids() if scenario is not None else frozenset()
        self.defaults = scenario.default_classification if scenario is not None else {}
        self.preemptible = scenario.default_preemptible if scenario is not None else {}
        self.seen: dict[str, int] = {}  # job id -> line

    def parse(self, line: int, row: int, values: dict[str, str]) -> QueuedJob:
        def fail(column: str, problem: str) -> TraceError:
            got = values.get(column, "")
            return TraceError(
                f"{self.source} line {line} (data row {row}), column {column!r}: {problem}, got {got!r}",
                line=line,
                row=row,
                column=column,
            )

        def text(column: str) -> str:
            return values.get(column, "").strip()

        def number(column: str, *, minimum: float | None = None, positive: bool = False) -> float | None:
            raw = text(column)
            if not raw:
                return None
            try:
                value = float(raw)
            except ValueError:
                raise fail(column, "not a number") from None
            if not math.isfinite(value):
                raise fail(column, "not a finite number")
            if positive and value <= 0:
                raise fail(column, "must be positive")
            if minimum is not None and value < minimum:
                raise fail(column, f"must be at least {minimum:g}")
            return value

        def integer(column: str, *, minimum: int | None = None) -> int | None:
            raw = text(column)
            if not raw:
                return None
            try:
                value = int(raw)
            except ValueError:
                try:
                    as_float = float(raw)
                except ValueError:
                    raise fail(column, "not an integer") from None
                if not as_float.is_integer():
                    raise fail(column, "not an integer") from None
                value = int(as_float)
            if minimum is not None and value < minimum:
                raise fail(column, f"must be at least {minimum}")
            return value

        def required(column: str, value: Any) -> Any:
            if value is None:
                raise fail(column, "required")
            return value

        job_id = text("job_id")
        if not job_id:
            raise fail("job_id", "required")
        if job_id in self.seen:
            raise fail("job_id", f"duplicate job id (first on line {self.seen[job_id]})")
        submit = required("submit_time_s", number("submit_time_s", minimum=0))
        duration = required("duration_s", number("duration_s", positive=True))
        cards = required("cards", integer("cards", minimum=0))  # 0 cards: CPU-only work
        cards_per_node = integer("cards_per_node", minimum=1)
        tenant = text("tenant") or DEFAULT_TENANT
        if self.tenants and text("tenant") and tenant not in self.tenants:
            raise fail("tenant", "not a tenant of the scenario")
        accelerators = frozenset(self._accelerator(name, fail) for name in _split(text("accelerators")))
        classification = self.defaults.get(tenant, Classification.PUBLIC)
        if text("classification"):
            try:
                classification = Classification(text("classification").lower())
            except ValueError:
                raise fail("classification", "must be public, internal or government") from None
        preemptible = text("preemptible").lower()
        if preemptible not in ("", "true", "false", "1", "0"):
            raise fail("preemptible", "must be true or false")
        job = QueuedJob(
            id=job_id,
            tenant=tenant,
            cards=cards,
            duration_s=duration,
            submit_s=submit,
            cards_per_node=cards_per_node,
            accelerators=accelerators,
            min_memory_gib=integer("min_memory_gib", minimum=0) or 0,
            deadline_s=number("deadline_s"),
            max_price_fen_per_card_hour=integer("max_price_fen", minimum=0),
            classification=classification,
            regions=frozenset(_split(text("regions"))),
            priority=integer("priority") or 0,
            preemptible=preemptible in ("true", "1")
            or (not preemptible and self.preemptible.get(tenant, False)),
            job_type=text("job_type") or None,
        )
        self.seen[job_id] = line
        return job

    @staticmethod
    def _accelerator(name: str, fail: Callable[[str, str], TraceError]) -> str:
        found = catalog.find(name)
        if found is None:
            raise fail("accelerators", f"unknown accelerator {name!r}")
        return found.model


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split("|") if part.strip()]


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """CLI `--map dst=src` items → {"dst": "src"}; a malformed item is a ValueError."""
    mapping: dict[str, str] = {}
    for item in items:
        dst, sep, src = item.partition("=")
        if not sep or not dst.strip() or not src.strip():
            raise ValueError(f"--map expects DST=SRC (a trace column = your CSV's column), got {item!r}")
        mapping[dst.strip()] = src.strip()
    return mapping
