"""Pure pieces of streaming: the simulator's chunks read back by the real openai client,
the worker's reset/settle events (fakeredis), the clients' stream items, and the OpenAI
front door's chunk writer."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import fakeredis
import openai
import pytest

from producer import keys
from producer.contracts import ChatMessage, JobEvent
from producer.gateway_openai import ChunkWriter, FrontDoorError, OpenAIChatBody, build_request
from producer.streaming import StreamFollower, StreamReset, stream_item
from simulator.server import SimulatorServer
from simulator.streaming import StreamConfig, parse_config, split_text
from worker.model_client import ModelError, complete_stream
from worker.stream_assembly import MalformedChunk, StreamErrorEvent, sse_chunks
from worker.stream_step import begin_attempt, settle
from worker.turn import ModelCall, ModelReply


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


def _configure(sim: SimulatorServer, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(f"{sim.root_url}/_sim/stream", method="POST",
                                     data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=5) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _call(text: str) -> ModelCall:
    return ModelCall(model="gpt-4o-mini", messages=[ChatMessage(role="user", content=text)])


def test_split_text_keeps_every_character() -> None:
    text = "one two  three\nfour"
    for config in (StreamConfig(), StreamConfig(chunks=3), StreamConfig(chunk_chars=2)):
        assert "".join(split_text(text, config)) == text
    assert len(split_text("x" * 1000, StreamConfig(chunks=200))) == 200
    assert parse_config({"chunk_delay_ms": None, "chunks": 3.0}, StreamConfig(
        chunk_delay_ms=5)) == StreamConfig(chunk_delay_ms=0.0, chunks=3)
    assert split_text("", StreamConfig()) == []


def test_simulator_streams_text_and_tool_calls_the_client_reassembles(
    sim: SimulatorServer,
) -> None:
    client = openai.OpenAI(base_url=sim.url, api_key="k", max_retries=0)
    assert _configure(sim, {"chunks": 20, "chunk_delay_ms": 5})[0] == 200
    pieces: list[str] = []
    started = time.perf_counter()
    reply = complete_stream(client, _call("my name is Ada and this is a longer message"),
                            pieces.append)
    assert time.perf_counter() - started >= 0.05  # the delay between chunks is real
    assert reply.content and "".join(pieces) == reply.content and len(pieces) > 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    weather = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object",
                                              "properties": {"city": {"type": "string"}}}}}]
    call = ModelCall(model="gpt-4o-mini", tool_choice="auto", tools=weather,
                     messages=[ChatMessage(role="user", content="Weather in Paris and Rome?")])
    calls = complete_stream(client, call, pieces.append).tool_calls
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert all(c.id.startswith("call_") for c in calls)


def test_simulator_stream_faults_become_readable_model_errors(sim: SimulatorServer) -> None:
    client = openai.OpenAI(base_url=sim.url, api_key="k", max_retries=0)
    for settings, text, transient in [
        ({"refuse": True}, "model API error 400: Streaming is not supported", False),
        ({"refuse": False, "malformed_after": 2}, "malformed stream chunk", False),
        ({"malformed_after": None, "drop_after": 2}, "model stream broken off", True),
    ]:
        assert _configure(sim, {"model": "gpt-4o-mini", **settings})[0] == 200
        with pytest.raises(ModelError, match=text) as caught:
            complete_stream(client, _call("hello"), lambda _: None)
        assert caught.value.transient is transient


@pytest.mark.parametrize("body", [{"chunks": 0}, {"chunk_delay_ms": -1}, {"refuse": "yes"},
                                  {"nope": 1}, {"model": ""}])
def test_simulator_stream_settings_are_checked(sim: SimulatorServer,
                                               body: dict[str, Any]) -> None:
    status, error = _configure(sim, body)
    assert status == 400 and error["error"]["message"]


def _events(r: fakeredis.FakeRedis, job_id: str) -> list[JobEvent]:
    return [JobEvent.model_validate_json(f["event"])
            for _, f in r.xrange(keys.job_events(job_id))]


def test_a_step_publishes_a_reset_from_its_second_attempt_on() -> None:
    r = fakeredis.FakeRedis(decode_responses=True)
    assert begin_attempt(r, "job-1", 2) == 1
    assert _events(r, "job-1") == []
    assert begin_attempt(r, "job-1", 2) == 2
    [reset] = _events(r, "job-1")
    assert (reset.kind, reset.step, reset.detail) == ("delta_reset", 2, {"step": 2})
    assert r.ttl(keys.stream_attempts("job-1", 2)) > 0


def test_settle_shows_the_kept_reply_when_another_copy_won() -> None:
    r = fakeredis.FakeRedis(decode_responses=True)
    ours, theirs = ModelReply(content="mine"), ModelReply(content="theirs")
    settle(r, "job-2", 0, ours, ModelReply(content="mine"))
    assert _events(r, "job-2") == []
    settle(r, "job-2", 0, ours, theirs)
    assert [(e.kind, e.detail) for e in _events(r, "job-2")] == [
        ("delta_reset", {"step": 0}), ("delta", {"text": "theirs", "step": 0})]


def test_stream_items_and_the_follower() -> None:
    def event(kind: str, at_step: int | None = None, **detail: Any) -> JobEvent:
        return JobEvent.model_validate({"job_id": "j", "kind": kind, "at": 0.0,
                                        "step": at_step, "detail": detail})

    follower = StreamFollower()
    assert follower.feed(event("model_call", 0)) is None
    assert follower.needs_response(event("succeeded"))  # nothing streamed yet
    assert follower.feed(event("delta", 0, text="Hi", step=0)) == "Hi"
    reset = follower.feed(event("delta_reset", 0, step=0))
    assert reset == StreamReset(step=0) and not isinstance(reset, str)
    assert not follower.needs_response(event("succeeded"))
    assert stream_item(event("delta", 1, text="", step=1)) is None


def test_chunk_writer_skips_text_repeated_after_a_reset() -> None:
    writer = ChunkWriter("job", "m")

    def text(line: str | None) -> str | None:
        return json.loads(line[6:])["choices"][0]["delta"]["content"] if line else None

    assert text(writer.text(0, "Hello wor")) == "Hello wor"
    writer.reset(StreamReset(step=0))
    assert writer.text(0, "Hello") is None  # the reader has it already
    assert writer.text(0, " wor") is None
    assert text(writer.text(0, "ld!")) == "ld!"
    writer.reset(StreamReset(step=0))
    assert text(writer.text(0, "Hello world! Other")) == " Other"


def test_front_door_request_mapping() -> None:
    body = OpenAIChatBody(model="m", messages=[
        {"role": "system", "content": "S"}, {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}])
    turn, throwaway = build_request(body, "s-1")
    assert (turn.session_id, turn.message, throwaway) == ("s-1", "c", False)
    assert [m.content for m in turn.prefix()] == ["S"]
    turn, throwaway = build_request(body.model_copy(update={"user": "u-7"}), None)
    assert (turn.session_id, throwaway) == ("u-7", False)  # `user` when no header
    turn, throwaway = build_request(body.model_copy(update={"user": "u-7"}), "s-2")
    assert turn.session_id == "s-2"  # the header wins
    turn, throwaway = build_request(body.model_copy(update={"user": None}), None)
    assert throwaway and turn.session_id.startswith("oai-")
    assert [m.content for m in turn.prefix()] == ["S", "a", "b"]
    tuned = OpenAIChatBody.model_validate({**body.model_dump(exclude_none=True),
                                           "temperature": 0.2, "max_completion_tokens": 9,
                                           "frequency_penalty": 1})
    turn, _ = build_request(tuned, "s-1")
    assert (turn.temperature, turn.max_tokens) == (0.2, 9)
    for bad, message in [
        (OpenAIChatBody.model_validate({**body.model_dump(exclude_none=True),
                                        "temperature": 5}), "temperature"),
        (body.model_copy(update={"tools": [{"type": "function"}]}), "tools sent by the caller"),
        (OpenAIChatBody(model="m", messages=[{"role": "system", "content": "x"}]),
         "user message"),
        (body.model_copy(update={"user": "bad id with spaces"}), "session_id"),
    ]:
        with pytest.raises(FrontDoorError, match=message):
            build_request(bad, None)


def test_sse_chunks_parse_data_lines_errors_and_done() -> None:
    lines = [": comment", "event: x", 'data: {"a": 1}', "", "data: {\"b\":", "data: 2}", "",
             "data: [DONE]", "", 'data: {"after": "done"}', ""]
    assert list(sse_chunks(lines)) == [{"a": 1}, {"b": 2}]
    assert list(sse_chunks(['data: {"cut": "off"}'])) == [{"cut": "off"}]
    with pytest.raises(MalformedChunk, match="not JSON"):
        list(sse_chunks(["data: {nope", ""]))
    with pytest.raises(MalformedChunk, match="not a JSON object"):
        list(sse_chunks(["data: [1]", ""]))
    with pytest.raises(StreamErrorEvent, match="overloaded"):
        list(sse_chunks(['data: {"error": {"message": "overloaded"}}', ""]))


def test_an_error_publishing_text_is_not_taken_for_a_model_error(sim: SimulatorServer) -> None:
    client = openai.OpenAI(base_url=sim.url, api_key="k", max_retries=0)

    def broken_sink(_: str) -> None:
        raise ValueError("the sink broke")  # a ValueError, like a malformed chunk's

    with pytest.raises(ValueError, match="the sink broke"):
        complete_stream(client, _call("hello there"), broken_sink)


def test_stream_is_a_chat_mode_field() -> None:
    from pydantic import ValidationError

    from producer.contracts import ChatRequest

    assert ChatRequest(session_id="s", message="hi", stream=True).stream is True
    assert ChatRequest(session_id="s", message="hi").stream is False
    with pytest.raises(ValidationError, match="assistant mode does not stream"):
        ChatRequest(session_id="s", message="hi", mode="assistant", stream=True)


def test_watch_and_progress_name_streamed_text() -> None:
    from producer.contracts import JobEvent
    from producer.progress import describe_event
    from producer.watch import Progress

    delta = JobEvent(job_id="job-0001", kind="delta", at=1.0, step=0,
                     detail={"text": "Hel", "step": 0})
    reset = JobEvent(job_id="job-0001", kind="delta_reset", at=2.0, step=0,
                     detail={"step": 0})
    progress = Progress()
    progress.apply(delta)
    assert progress.line(now=3.0).startswith("streaming the answer")
    assert describe_event(delta) == "step 0: 'Hel'"
    assert "dropped" in describe_event(reset)
