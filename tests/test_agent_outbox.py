"""The agent's outbox: usage events survive a crash, each reaches the server once (a resend after a
crash is a `duplicate` the real metering endpoint ignores), a refused event never blocks the queue,
and a real outage (nothing listening) is waited out."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from suanwang.agent.meter import JobUsage, usage_event
from suanwang.agent.outbox import (
    EVENTS_PATH,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    HttpSender,
    Outbox,
    OutboxFull,
    SendResult,
)
from suanwang.metering import service as metering
from suanwang.metering.schemas import UsageData
from tests.metering_support import ENDED, STARTED, counts, insert_launches


def ev(n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e{n}", "source": "agent/1", "data": {"n": n}}


class Server:
    """A stand-in for the control plane: records what it accepted, answers as scripted."""

    def __init__(self, *answers: SendResult) -> None:
        self.answers = list(answers)
        self.batches: list[list[dict[str, Any]]] = []
        self.accepted: list[str] = []

    def __call__(self, events: list[dict[str, Any]]) -> SendResult:
        self.batches.append(list(events))
        result = self.answers.pop(0) if self.answers else SendResult(200, {})
        if result.accepted:
            self.accepted += [e["id"] for e in events]
        return result


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- on disk ---------------------------------------------------------------------------------------


def test_events_survive_a_crash_and_are_sent_once(tmp_path):
    first = Outbox(tmp_path, Server(SendResult(None, "ConnectError")))
    for n in range(3):
        first.put(ev(n))
    del first  # the agent dies before it ever reaches the control plane

    server = Server()
    again = Outbox(tmp_path, server)
    assert again.pending() == 3
    report = again.flush()
    assert (report.accepted, report.rejected, report.pending, report.error) == (3, 0, 0, None)
    assert server.accepted == ["e0", "e1", "e2"]
    assert again.flush().accepted == 0  # nothing left to send
    assert Outbox(tmp_path, server).pending() == 0


def test_a_failed_send_keeps_everything_and_the_next_flush_sends_each_event_once(tmp_path):
    server = Server(SendResult(None, "ConnectError: [Errno 111] Connection refused"), SendResult(503, "down"))
    outbox = Outbox(tmp_path, server)
    outbox.put(ev(0))
    outbox.put(ev(1))

    refused = outbox.flush()
    assert (refused.accepted, refused.pending) == (0, 2)
    assert refused.error is not None and "refused" in refused.error
    outbox.put(ev(2))
    unavailable = outbox.flush()
    assert (unavailable.pending, unavailable.error) == (3, "HTTP 503: down")
    assert outbox.flush().accepted == 3
    assert server.accepted == ["e0", "e1", "e2"]


@pytest.mark.parametrize("status", [401, 403, 404, 408, 429, 500, 502])
def test_answers_that_are_not_about_the_events_keep_them(tmp_path, status):
    outbox = Outbox(tmp_path, Server(SendResult(status, {"code": "x"})))
    outbox.put(ev(0))
    report = outbox.flush()
    assert (report.accepted, report.rejected, report.pending) == (0, 0, 1)
    assert not (tmp_path / "rejected.jsonl").exists()


def test_batches_hold_at_most_the_servers_limit(tmp_path):
    server = Server()
    outbox = Outbox(tmp_path, server)
    for n in range(2 * MAX_BATCH_EVENTS + 1):
        outbox.put(ev(n))
    assert outbox.flush().accepted == 2001
    assert [len(b) for b in server.batches] == [1000, 1000, 1]
    assert server.accepted == [f"e{n}" for n in range(2001)]


def test_batches_stay_under_the_servers_byte_limit(tmp_path):
    server = Server()
    outbox = Outbox(tmp_path, server)
    big = "x" * 60_000
    for n in range(150):  # 9 MB in all
        outbox.put(ev(n) | {"pad": big})
    outbox.flush()
    assert len(server.batches) == 3
    for batch in server.batches:
        assert len(json.dumps(batch, separators=(",", ":")).encode()) <= MAX_BATCH_BYTES


def test_the_limits_are_the_servers():
    assert (MAX_BATCH_EVENTS, MAX_BATCH_BYTES) == (metering.MAX_BATCH_EVENTS, metering.MAX_BATCH_BYTES)
    assert EVENTS_PATH == "/api/v1/metering/events"


def test_events_the_server_names_as_bad_are_set_aside_and_the_rest_go_through(tmp_path):
    problem = {
        "status": 422,
        "code": "metering.invalid-events",
        "errors": [
            {
                "index": 1,
                "field": "data.launch",
                "type": "metering.launch-unknown",
                "message": "no such launch",
            },
            {"index": 3, "field": "data.cards", "type": "metering.cards-above-job", "message": "too many"},
        ],
    }
    server = Server(SendResult(422, problem))
    outbox = Outbox(tmp_path, server)
    for n in range(5):
        outbox.put(ev(n))

    report = outbox.flush()
    assert (report.accepted, report.rejected, report.pending) == (3, 2, 0)
    assert server.accepted == ["e0", "e2", "e4"]
    rejected = read_lines(tmp_path / "rejected.jsonl")
    assert [r["event"]["id"] for r in rejected] == ["e1", "e3"]
    assert {r["status"] for r in rejected} == {422}
    assert rejected[0]["answer"]["errors"][0]["type"] == "metering.launch-unknown"
    assert datetime.fromisoformat(rejected[0]["rejected_at"]).tzinfo is not None


def test_a_refusal_that_names_no_event_is_narrowed_down_to_the_bad_one(tmp_path):
    def server(events: list[dict[str, Any]]) -> SendResult:
        if any(e["id"] == "e5" for e in events):
            return SendResult(400, "Bad Request")
        accepted.extend(e["id"] for e in events)
        return SendResult(200, {})

    accepted: list[str] = []
    outbox = Outbox(tmp_path, server)
    for n in range(8):
        outbox.put(ev(n))
    report = outbox.flush()
    assert (report.accepted, report.rejected, report.pending) == (7, 1, 0)
    assert sorted(accepted) == sorted(f"e{n}" for n in range(8) if n != 5)
    assert [r["event"]["id"] for r in read_lines(tmp_path / "rejected.jsonl")] == ["e5"]


def test_a_batch_too_large_for_the_server_is_split(tmp_path):
    server = Server(SendResult(413, {"code": "metering.batch-bytes"}))
    outbox = Outbox(tmp_path, server)
    for n in range(4):
        outbox.put(ev(n))
    assert outbox.flush().accepted == 4
    assert [len(b) for b in server.batches] == [4, 2, 2]


def test_a_fully_acknowledged_spool_is_compacted(tmp_path):
    outbox = Outbox(tmp_path, Server())
    for n in range(3):
        outbox.put(ev(n))
    assert (tmp_path / "spool.jsonl").stat().st_size > 0
    outbox.flush()
    assert (tmp_path / "spool.jsonl").stat().st_size == 0
    assert (tmp_path / "acked").read_text().strip() == "0"
    outbox.put(ev(3))  # later events start the spool again and are sent
    server = Server()
    assert Outbox(tmp_path, server).flush().accepted == 1
    assert server.accepted == ["e3"]


def test_a_partly_sent_spool_keeps_its_place(tmp_path):
    server = Server(SendResult(200, {}), SendResult(None, "timeout"))
    outbox = Outbox(tmp_path, server, max_batch_events=2)
    for n in range(5):
        outbox.put(ev(n))
    report = outbox.flush()
    assert (report.accepted, report.pending) == (2, 3)
    later = Server()
    assert Outbox(tmp_path, later).flush().accepted == 3
    assert later.accepted == ["e2", "e3", "e4"]


def test_a_half_written_last_line_is_dropped_when_the_outbox_opens(tmp_path):
    outbox = Outbox(tmp_path, Server())
    outbox.put(ev(0))
    with (tmp_path / "spool.jsonl").open("ab") as spool:
        spool.write(b'{"specversion":"1.0","id":"e1","sou')  # the power went mid-write

    server = Server()
    reopened = Outbox(tmp_path, server)
    assert reopened.pending() == 1
    reopened.put(ev(2))
    assert reopened.flush().accepted == 2
    assert server.accepted == ["e0", "e2"]


def test_a_damaged_line_is_set_aside_not_sent(tmp_path):
    outbox = Outbox(tmp_path, Server())
    outbox.put(ev(0))
    with (tmp_path / "spool.jsonl").open("ab") as spool:
        spool.write(b"\x00\x00garbage\n")
    outbox.put(ev(1))
    server = Server()
    report = Outbox(tmp_path, server).flush()
    assert server.accepted == ["e0", "e1"]
    assert report.pending == 0
    assert "garbage" in read_lines(tmp_path / "rejected.jsonl")[0]["event"]["unreadable"]


def test_the_spool_has_a_limit(tmp_path):
    outbox = Outbox(tmp_path, Server(SendResult(None, "down")), max_spool_bytes=300)
    outbox.put(ev(0))
    outbox.put(ev(1))
    with pytest.raises(OutboxFull, match="control plane"):
        for n in range(2, 10):
            outbox.put(ev(n))
    with pytest.raises(ValueError, match="over the limit"):
        outbox.put(ev(0) | {"pad": "x" * 70_000})
    with pytest.raises(ValueError):
        json_nan = {"id": "x", "value": float("nan")}
        outbox.put(json_nan)


def test_puts_go_on_while_a_flush_is_sending(tmp_path):
    sending, release = threading.Event(), threading.Event()
    sent: list[list[str]] = []

    def slow(events: list[dict[str, Any]]) -> SendResult:
        sending.set()
        assert release.wait(10)
        sent.append([e["id"] for e in events])
        return SendResult(200, {})

    outbox = Outbox(tmp_path, slow)
    outbox.put(ev(0))
    flusher = threading.Thread(target=outbox.flush)
    flusher.start()
    assert sending.wait(10)
    outbox.put(ev(1))  # does not wait for the send to finish
    release.set()
    flusher.join(10)
    assert sent == [["e0"], ["e1"]]  # the flush took the new event in its next batch
    assert outbox.pending() == 0


# --- against the real metering endpoint ------------------------------------------------------------


class Crash(BaseException):
    """The agent's process dying: nothing after this line of the outbox runs."""


def agent_event(launch: str) -> dict[str, Any]:
    usage = JobUsage(8, 0.0, 3600.0, 28_800, 91.5, 100, 121_336, 17_000_000, 3_500)
    event = usage_event(node_id="node-1", launch=launch, usage=usage, started_at=STARTED, ended_at=ENDED)
    if "agent" not in UsageData.model_fields:  # the lead's change adds it; until then send the rest
        del event["data"]["agent"]
    return event


def launches(world: Any, engine: Engine, count: int) -> list[str]:
    return insert_launches(
        engine,
        pool_id=world.pool1["id"],
        org_id=world.org_a["id"],
        user_id=world.users["admin_a"]["id"],
        count=count,
    )


@pytest.mark.db
def test_a_crash_between_send_and_ack_resends_only_duplicates(world, clean_engine, tmp_path):
    names = launches(world, clean_engine, 3)
    sender = HttpSender("http://testserver", world.op1.token, client=world.op1.client)
    answers: list[SendResult] = []

    def send_then_crash(events: list[dict[str, Any]]) -> SendResult:
        answers.append(sender(events))
        raise Crash

    outbox = Outbox(tmp_path, send_then_crash)
    outbox.put(agent_event(names[0]))
    outbox.put(agent_event(names[1]))
    with pytest.raises(Crash):
        outbox.flush()
    assert answers[0].status == 200 and answers[0].answer["recorded"] == 2
    assert counts(clean_engine) == (2, 2)

    def send(events: list[dict[str, Any]]) -> SendResult:
        answers.append(sender(events))
        return answers[-1]

    restarted = Outbox(tmp_path, send)
    restarted.put(agent_event(names[2]))
    report = restarted.flush()

    assert (report.accepted, report.rejected, report.pending) == (3, 0, 0)
    assert [r["status"] for r in answers[1].answer["results"]] == ["duplicate", "duplicate", "recorded"]
    assert counts(clean_engine) == (3, 3)  # one usage record per launch, nothing counted twice
    assert restarted.flush().accepted == 0


@pytest.mark.db
def test_an_event_the_server_refuses_is_set_aside_and_the_batch_is_recorded(world, clean_engine, tmp_path):
    names = launches(world, clean_engine, 2)
    unknown = agent_event("sw-999999-1")
    sender = HttpSender("http://testserver", world.op1.token, client=world.op1.client)
    outbox = Outbox(tmp_path, sender)
    for event in (agent_event(names[0]), unknown, agent_event(names[1])):
        outbox.put(event)

    report = outbox.flush()
    assert (report.accepted, report.rejected, report.pending) == (2, 1, 0)
    assert counts(clean_engine) == (2, 2)
    (rejected,) = read_lines(tmp_path / "rejected.jsonl")
    assert rejected["event"]["data"]["launch"] == "sw-999999-1"
    assert rejected["answer"]["code"] == "metering.invalid-events"


@pytest.mark.db
def test_a_wrong_token_keeps_the_events(world, clean_engine, tmp_path):
    names = launches(world, clean_engine, 1)
    outbox = Outbox(tmp_path, HttpSender("http://testserver", "sw_wrong", client=world.op1.client))
    outbox.put(agent_event(names[0]))
    report = outbox.flush()
    assert (report.rejected, report.pending) == (0, 1)
    assert report.error is not None and report.error.startswith("HTTP 401")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_url(app: Any, client: Any) -> Iterator[str]:
    """The app served over real HTTP on a local port (its lifespan already ran for `client`)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


@pytest.mark.db
def test_a_real_outage_is_waited_out(world, clean_engine, live_url, tmp_path):
    names = launches(world, clean_engine, 2)
    sender = HttpSender(f"http://127.0.0.1:{_free_port()}", world.op1.token, timeout_s=5)  # nothing listens
    outbox = Outbox(tmp_path, sender)
    outbox.put(agent_event(names[0]))
    outbox.put(agent_event(names[1]))

    down = outbox.flush()
    assert (down.accepted, down.pending) == (0, 2)
    assert down.error is not None and "ConnectError" in down.error
    assert counts(clean_engine) == (0, 0)

    sender.base_url = live_url  # the control plane is back
    up = outbox.flush()
    assert (up.accepted, up.rejected, up.pending, up.error) == (2, 0, 0, None)
    assert counts(clean_engine) == (2, 2)
    sender.close()
