"""Usage events kept on disk until the control plane has them: none lost, none counted twice.

Files in the outbox's directory (one agent, so one Outbox, per directory):
- `spool.jsonl`: every event put, one JSON document a line, appended and fsynced before `put` returns.
- `acked`: the byte offset in the spool up to which events are done (accepted or rejected), replaced
  atomically (os.replace) after the server answered. A crash between the answer and the replace only
  resends events the server then reports as `duplicate` (it deduplicates on (source, id)).
- `rejected.jsonl`: events the server refused for their content (a 4xx naming them), with its answer,
  so one bad event never blocks the queue. Kept for a person to read; written at least once.

A send that did not get through (connection refused, timeout, 5xx, 429, a bad token) keeps everything
for the next flush.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from suanwang.timeutil import utcnow

# The server's limits (metering.service.MAX_BATCH_EVENTS, MAX_BATCH_BYTES), repeated here so the agent
# does not import the control plane's database layer; a test keeps them equal.
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_EVENT_BYTES = 64 * 1024  # a usage event is about 700 bytes; anything near this is a bug
MAX_SPOOL_BYTES = 256 * 1024 * 1024  # about 350,000 events: months of a node's jobs with no control plane
# Answers that say "not now" or "not you" rather than "not this event": the events wait for a retry.
RETRY_STATUSES = frozenset({401, 403, 404, 408, 425, 429})
MEDIA_TYPE = "application/cloudevents-batch+json"
EVENTS_PATH = "/api/v1/metering/events"

SPOOL = "spool.jsonl"
ACKED = "acked"
REJECTED = "rejected.jsonl"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What came of one batch: the HTTP status and the server's answer, or None and the transport error."""

    status: int | None
    answer: Any = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retry(self) -> bool:
        """Not delivered, or refused for a reason that is not the events' own: send them again later."""
        return self.status is None or self.status >= 500 or self.status in RETRY_STATUSES


Send = Callable[[list[dict[str, Any]]], SendResult]


@dataclass(slots=True)
class FlushReport:
    accepted: int = 0  # events the server answered 2xx for (recorded, duplicate or already metered)
    rejected: int = 0  # events moved to rejected.jsonl
    pending: int = 0  # events still waiting
    error: str | None = None  # why the flush stopped early


class OutboxFull(Exception):
    """The spool reached its limit: the control plane has not taken events for a long time."""


class Outbox:
    def __init__(
        self,
        directory: str | Path,
        send: Send,
        *,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_spool_bytes: int = MAX_SPOOL_BYTES,
    ) -> None:
        if not 1 <= max_batch_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_batch_events must be 1–{MAX_BATCH_EVENTS}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.send = send
        self.max_batch_events = max_batch_events
        self.max_spool_bytes = max_spool_bytes
        self._spool = self.directory / SPOOL
        self._acked = self.directory / ACKED
        self._rejected = self.directory / REJECTED
        self._file_lock = threading.Lock()  # put against ack and compaction
        self._flush_lock = threading.Lock()  # one flush at a time; puts go on while it sends
        self._drop_torn_tail()

    # --- putting ---------------------------------------------------------------------------------

    def put(self, event: Mapping[str, Any]) -> None:
        """Append the event; when this returns it is on disk and will be sent."""
        line = _line(event)
        if len(line) > MAX_EVENT_BYTES:
            raise ValueError(f"event of {len(line)} bytes is over the limit of {MAX_EVENT_BYTES}")
        with self._file_lock:
            size = self._size()
            if size + len(line) > self.max_spool_bytes:
                raise OutboxFull(
                    f"outbox {self.directory} holds {size} bytes of unsent events (limit "
                    f"{self.max_spool_bytes}); check that the control plane is reachable"
                )
            created = not self._spool.exists()
            with self._spool.open("ab") as spool:
                try:
                    spool.write(line)
                    spool.flush()
                    os.fsync(spool.fileno())
                except BaseException:
                    spool.truncate(size)  # no half line for the next put to be appended to
                    raise
            if created:
                _fsync_directory(self.directory)

    # --- sending ---------------------------------------------------------------------------------

    def flush(self) -> FlushReport:
        """Send what is pending, oldest first, in batches; stop at the first batch that must wait."""
        report = FlushReport()
        with self._flush_lock:
            while True:
                with self._file_lock:
                    start = self._offset()
                    events, end = self._read(start)
                if not events:
                    break
                report.error = self._deliver(events, report)
                if report.error is not None:
                    break
                with self._file_lock:
                    self._write_offset(end)
            with self._file_lock:
                self._compact()
                report.pending = self._count_pending()
        return report

    def pending(self) -> int:
        """Events not yet accepted or rejected."""
        with self._file_lock:
            return self._count_pending()

    def _deliver(self, events: list[dict[str, Any]], report: FlushReport) -> str | None:
        """Send the events until each is accepted or rejected; the reason to stop if a send must wait."""
        result = self.send(events)
        if result.accepted:
            report.accepted += len(events)
            return None
        if result.retry:
            why = _short(result.answer)
            return f"HTTP {result.status}: {why}" if result.status is not None else why
        bad = _refused_indices(result, len(events))
        if len(events) > 1 and bad is not None and len(bad) < len(events):
            self._reject([events[i] for i in sorted(bad)], result, report)
            return self._deliver([e for i, e in enumerate(events) if i not in bad], report)
        if len(events) > 1 and bad is None:
            # The answer does not say which events are bad (413, an unexpected 400): halve until it does.
            middle = len(events) // 2
            return self._deliver(events[:middle], report) or self._deliver(events[middle:], report)
        self._reject(events, result, report)
        return None

    def _reject(self, events: list[dict[str, Any]], result: SendResult, report: FlushReport) -> None:
        at = utcnow().isoformat()
        lines = b"".join(
            _line({"rejected_at": at, "status": result.status, "answer": result.answer, "event": event})
            for event in events
        )
        with self._rejected.open("ab") as rejected:
            rejected.write(lines)
            rejected.flush()
            os.fsync(rejected.fileno())
        report.rejected += len(events)

    # --- files (callers hold _file_lock) -----------------------------------------------------------

    def _size(self) -> int:
        try:
            return self._spool.stat().st_size
        except FileNotFoundError:
            return 0

    def _offset(self) -> int:
        try:
            offset = int(self._acked.read_text(encoding="ascii").strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0
        # Unreadable or past the end cannot happen (the offset is replaced atomically, and reset before
        # compaction); were it to, sending everything again is safe (duplicates), skipping is not.
        return offset if 0 <= offset <= self._size() else 0

    def _write_offset(self, offset: int) -> None:
        temporary = self._acked.with_suffix(".tmp")
        with temporary.open("w", encoding="ascii") as file:
            file.write(f"{offset}\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._acked)
        _fsync_directory(self.directory)

    def _read(self, start: int) -> tuple[list[dict[str, Any]], int]:
        """Up to one batch of complete events from `start`; and the offset after the last one read."""
        events: list[dict[str, Any]] = []
        budget = MAX_BATCH_BYTES - 2  # the array's brackets
        if not self._spool.exists():
            return events, start
        with self._spool.open("rb") as spool:
            spool.seek(start)
            end = start
            while len(events) < self.max_batch_events:
                line = spool.readline(MAX_EVENT_BYTES + 1)
                if not line.endswith(b"\n"):
                    break  # end of the spool (a torn line was cut when the outbox opened)
                if len(line) > budget and events:
                    break
                budget -= len(line)  # its newline pays for the comma between events
                end += len(line)
                try:
                    events.append(json.loads(line))
                except ValueError:  # put writes only JSON: a damaged disk block; keep it for a person
                    unreadable = {"unreadable": line.decode("utf-8", "replace")}
                    self._reject([unreadable], SendResult(None, "not JSON in the spool"), FlushReport())
        return events, end

    def _count_pending(self) -> int:
        if not self._spool.exists():
            return 0
        with self._spool.open("rb") as spool:
            spool.seek(self._offset())
            return sum(1 for line in spool if line.endswith(b"\n"))

    def _compact(self) -> None:
        """Empty the spool once everything in it is done, so it does not grow for the agent's lifetime."""
        size = self._size()
        if size == 0 or self._offset() != size:
            return
        # The offset first: a crash between the two steps resends (duplicates), never skips.
        self._write_offset(0)
        with self._spool.open("r+b") as spool:
            spool.truncate(0)
            os.fsync(spool.fileno())

    def _drop_torn_tail(self) -> None:
        """Cut a last line a crash left half written: its put never returned, so it was never promised."""
        size = self._size()
        if size == 0:
            return
        with self._spool.open("r+b") as spool:
            end = size
            while end > 0:
                chunk_start = max(0, end - MAX_EVENT_BYTES)
                spool.seek(chunk_start)
                chunk = spool.read(end - chunk_start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    end = chunk_start + newline + 1
                    break
                end = chunk_start
            if end != size:
                spool.truncate(end)
                os.fsync(spool.fileno())


def _line(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _short(answer: Any) -> str:
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, default=str)
    return text[:300]


def _refused_indices(result: SendResult, count: int) -> set[int] | None:
    """The events a 422 names (metering.invalid-events lists each bad event's index), if it names all."""
    answer = result.answer
    if result.status != 422 or not isinstance(answer, dict) or answer.get("errors_omitted"):
        return None
    errors = answer.get("errors")
    if not isinstance(errors, list) or not errors:
        return None
    indices: set[int] = set()
    for error in errors:
        index = error.get("index") if isinstance(error, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            return None
        indices.add(index)
    return indices


def _fsync_directory(directory: Path) -> None:
    """Make a created or replaced file's name durable, not only its contents."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- HTTP ------------------------------------------------------------------------------------------


class HttpSender:
    """Posts a batch to the control plane's POST /api/v1/metering/events with the node's bearer token."""

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 30.0, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = client or httpx.Client(timeout=timeout_s)
        self._owns_client = client is None

    @property
    def url(self) -> str:
        return self.base_url + EVENTS_PATH

    def __call__(self, events: list[dict[str, Any]]) -> SendResult:
        body = json.dumps(events, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Content-Type": MEDIA_TYPE, "Authorization": f"Bearer {self._token}"}
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:  # refused, reset, timed out: nothing was recorded
            return SendResult(None, f"{type(exc).__name__}: {exc}")
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:2000]
        return SendResult(response.status_code, answer)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
