"""Redis stores: idempotent writes that make redelivered tasks safe (fakeredis with Lua)."""

from __future__ import annotations

import time

import fakeredis
import pytest

from producer import keys
from producer.contracts import (
    ChatMessage,
    ChatRequest,
    JobEvent,
    JobResult,
    JobStatus,
    ToolOutput,
)
from producer.jobstore import JobStore
from worker.turn import ModelReply, TurnState, apply_model_reply, new_turn
from worker.turn_store import TurnStore


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def job(status: JobStatus = JobStatus.SUCCEEDED) -> JobResult:
    now = time.time()
    return JobResult(job_id="job-0001", session_id="s1", status=status, response="hi",
                     created_at=now, updated_at=now)


def done_event() -> JobEvent:
    return JobEvent(job_id="job-0001", kind="succeeded", at=time.time())


MESSAGES = [ChatMessage(role="user", content="q"), ChatMessage(role="assistant", content="a")]


def test_finish_appends_memory_once_even_when_delivered_twice(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client)
    assert store.finish(job(), done_event(), MESSAGES) is True
    assert store.finish(job(), done_event(), MESSAGES) is False
    assert store.history("s1") == MESSAGES
    assert len(store.read_events("job-0001")) == 1


def test_fail_after_success_changes_nothing(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client)
    store.finish(job(), done_event(), MESSAGES)
    assert store.fail("job-0001", "late failure") is False
    record = store.get_job("job-0001")
    assert record is not None and record.status == JobStatus.SUCCEEDED


def test_failed_job_leaves_memory_alone_and_records_reason(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client)
    store.put_job(job(JobStatus.RUNNING))
    assert store.fail("job-0001", "model API error 400: nope") is True
    record = store.get_job("job-0001")
    assert record is not None
    assert (record.status, record.error) == (JobStatus.FAILED, "model API error 400: nope")
    assert store.history("s1") == []
    [(_, event)] = store.read_events("job-0001")
    assert event.kind == "failed" and event.terminal


def test_history_snapshot_length_and_reset(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client)
    store.finish(job(), done_event(), MESSAGES)
    assert store.history("s1", length=1) == MESSAGES[:1]
    assert store.history("s1", length=0) == []
    assert store.reset("s1") is True
    assert store.reset("s1") is False


def test_keys_expire(client: fakeredis.FakeRedis) -> None:
    JobStore(client).finish(job(), done_event(), MESSAGES)
    for key in (keys.job("job-0001"), keys.job_events("job-0001"), keys.job_final("job-0001"),
                keys.session_messages("s1")):
        assert client.ttl(key) > 0, key


def turn_state() -> TurnState:
    request = ChatRequest(session_id="s1", message="hi")
    return new_turn("job-0001", request, "m", 100, [], 0)


def test_turn_state_advances_only_from_the_version_it_was_read_at(
    client: fakeredis.FakeRedis,
) -> None:
    store = TurnStore(client)
    first = turn_state()
    assert store.create(first) is True
    assert store.create(first) is False, "a redelivered start must not reset progress"
    second = apply_model_reply(first, ModelReply(content="a"))
    assert store.advance(first, second) is True
    assert store.advance(first, second) is False, "a duplicate task cannot apply twice"
    loaded = store.load("job-0001")
    assert loaded is not None and loaded.version == second.version and loaded.phase == "done"


def test_first_reply_and_first_tool_output_win(client: fakeredis.FakeRedis) -> None:
    store = TurnStore(client)
    assert store.reply_once("job-0001", 0, ModelReply(content="one")).content == "one"
    assert store.reply_once("job-0001", 0, ModelReply(content="two")).content == "one"
    state, final, reply = store.load_step("job-0001", 0)
    assert (state, final, reply and reply.content) == (None, False, "one")
    out = ToolOutput(tool_name="t", tool_call_id="c1", arguments="{}", content="first")
    again = out.model_copy(update={"content": "second"})
    assert store.tool_output_once("job-0001", out).content == "first"
    assert store.tool_output_once("job-0001", again).content == "first"


def test_a_reply_is_kept_once_with_the_state_and_event_it_leads_to(
    client: fakeredis.FakeRedis,
) -> None:
    store = TurnStore(client)
    first = turn_state()
    assert store.create(first)
    ours = ModelReply(content="one")
    new = apply_model_reply(first, ours)
    event = JobEvent(job_id="job-0001", kind="model_reply", at=1.0, step=0)
    assert store.record_reply(first, new, ours, event) == (True, None)
    assert store.cached_reply("job-0001", 0) == ours
    assert client.xlen(keys.job_events("job-0001")) == 1
    # a redelivered step with another reply: the first one stands, nothing else written
    theirs = ModelReply(content="two")
    saved, earlier = store.record_reply(first, apply_model_reply(first, theirs), theirs, event)
    assert (saved, earlier) == (False, ours)
    assert client.xlen(keys.job_events("job-0001")) == 1
    loaded = store.load("job-0001")
    assert loaded is not None and loaded.response == "one"


def test_a_reply_for_a_state_that_moved_on_is_kept_but_changes_no_state(
    client: fakeredis.FakeRedis,
) -> None:
    store = TurnStore(client)
    first = turn_state()
    assert store.create(first)
    assert store.advance(first, apply_model_reply(first, ModelReply(content="x")))
    reply = ModelReply(content="late")
    event = JobEvent(job_id="job-0001", kind="model_reply", at=1.0, step=0)
    assert store.record_reply(first, apply_model_reply(first, reply), reply, event) == (
        False, None)
    loaded = store.load("job-0001")
    assert loaded is not None and loaded.response == "x"


def test_beginning_a_tool_call_finds_a_stored_output_or_says_it_started(
    client: fakeredis.FakeRedis,
) -> None:
    store = TurnStore(client)
    started = JobEvent(job_id="job-0001", kind="tool_started", at=1.0)
    assert store.begin_tool_call("job-0001", "c1", started) is None
    assert client.xlen(keys.job_events("job-0001")) == 1
    out = ToolOutput(tool_name="t", tool_call_id="c1", arguments="{}", content="done")
    store.tool_output_once("job-0001", out)
    assert store.begin_tool_call("job-0001", "c1", started) == out  # a redelivery
    assert client.xlen(keys.job_events("job-0001")) == 1  # and no second "started"


def test_a_workers_end_of_a_job_frees_its_session_in_the_same_step(
    client: fakeredis.FakeRedis,
) -> None:
    """A caller that wakes at the end (``wait``) finds the session idle: the job left its
    session's line with its final record, not in a later round trip (CI: an import right
    after ``wait`` was refused as "session busy")."""
    line = keys.session_jobs("s1")
    client.rpush(line, "job-0001", "job-0002")
    at_release = []
    store = JobStore(client, on_finished=lambda job_id, session_id: at_release.append(
        client.lrange(line, 0, -1)))
    assert store.finish(job(), done_event(), MESSAGES) is True
    assert at_release == [["job-0002"]]  # gone before the release that starts the next


def test_an_end_written_without_a_release_keeps_the_session_line(
    client: fakeredis.FakeRedis,
) -> None:
    """A producer's cancel of a running job ends it, but its step still runs: the session
    stays held until that step stops and releases it."""
    line = keys.session_jobs("s1")
    client.rpush(line, "job-0001")
    JobStore(client).cancel("job-0001")
    assert client.lrange(line, 0, -1) == ["job-0001"]
