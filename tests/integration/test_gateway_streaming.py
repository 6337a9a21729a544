"""The gateway's streams and its OpenAI-compatible front door, as a real uvicorn process
in front of the session's stack, driven by ``requests`` and by the official ``openai``
client pointed at the gateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from producer.devstack_services import start_gateway
from tests.integration.conftest import Simulator
from tests.integration.stacks import wait_job
from tests.integration.test_gateway import Gateway

pytestmark = pytest.mark.integration

TOKEN = "gw-stream-" + uuid.uuid4().hex
ANSWER = "Tokens " + "arrive one after another, " * 8 + "and end here."


@pytest.fixture(scope="module")
def gateway(stack: DevStack) -> Iterator[Gateway]:
    before = {id(p) for p in stack.processes}
    url = start_gateway(stack, token=TOKEN)
    yield Gateway(url, TOKEN)
    for proc in stack.processes:
        if id(proc) not in before and proc.alive:
            proc.stop()


@pytest.fixture
def oai(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=TOKEN, max_retries=0,
                         timeout=60)


def stream_config(sim: Simulator, model: str, **settings: Any) -> None:
    sim._call("POST", "/_sim/stream", {"model": model, **settings})


def test_sse_carries_deltas_resumes_and_refuses_an_unknown_last_event_id(
    gateway: Gateway, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": ANSWER})
    stream_config(sim, model, chunks=40, chunk_delay_ms=5)
    job_id = client.submit({"session_id": session, "message": "hi", "model": model,
                            "stream": True})
    events = gateway.events(job_id)
    assert events[-1][0] == "result" and events[-1][2]["response"] == ANSWER
    deltas = [(event_id, data) for name, event_id, data in events if name == "delta"]
    assert len(deltas) >= 2
    assert "".join(d["detail"]["text"] for _, d in deltas) == ANSWER
    # Resume after the first delta: the rest of the text, then the result.
    first_id = deltas[0][0]
    assert first_id is not None
    resumed = gateway.events(job_id, **{"Last-Event-ID": first_id})
    rest = "".join(d["detail"]["text"] for name, _, d in resumed if name == "delta")
    assert deltas[0][1]["detail"]["text"] + rest == ANSWER
    for bad in ("9999999999999-0", "not-an-id"):
        rsp = gateway.call("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
        assert rsp.status_code == 400, rsp.text
        assert "unknown Last-Event-ID" in rsp.json()["detail"]


def test_a_consumer_leaving_mid_stream_does_not_affect_the_job(
    gateway: Gateway, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": ANSWER})
    stream_config(sim, model, chunks=100, chunk_delay_ms=20)  # about 2 s of streaming
    job_id = client.submit({"session_id": session, "message": "hi", "model": model,
                            "stream": True})
    with gateway.call("GET", f"/v1/jobs/{job_id}/events", stream=True) as rsp:
        for line in rsp.iter_lines(decode_unicode=True):
            if line == "event: delta":
                break  # leave after the first delta
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED and result.response == ANSWER


def test_openai_client_non_streaming_with_a_session_header(
    oai: openai.OpenAI, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "Hello from the agent."})
    raw = oai.chat.completions.with_raw_response.create(
        model=model, extra_headers={"X-Session-Id": session},
        messages=[{"role": "system", "content": "Be kind."},
                  {"role": "user", "content": "ignored: memory is the history"},
                  {"role": "assistant", "content": "ok"},
                  {"role": "user", "content": "Say hello"}],
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello from the agent."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-session-id"] == session
    sent = sim.requests(model, kind="chat.completions")[-1]["messages"]
    assert sent == [{"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Say hello"}]
    assert [m.content for m in client.history(session)] == ["Say hello",
                                                           "Hello from the agent."]


def test_openai_client_streaming_without_a_session_uses_the_sent_history(
    oai: openai.OpenAI, client: AgentClient, sim: Simulator, model: str
) -> None:
    sim.script(model, {"content": ANSWER})
    stream_config(sim, model, chunks=40, chunk_delay_ms=5)
    stream = oai.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "My name is Ada."},
                  {"role": "assistant", "content": "Hi Ada."},
                  {"role": "user", "content": "Tell me something long"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    sent = sim.requests(model, kind="chat.completions")[-1]
    assert sent["stream"] is True
    assert [m["content"] for m in sent["messages"]] == [
        "My name is Ada.", "Hi Ada.", "Tell me something long"]
    job_id = chunks[0].id.removeprefix("chatcmpl-")
    job = client.status(job_id)
    assert job is not None and job.response == ANSWER
    assert client.history(job.session_id) == []  # the throwaway session is forgotten


def test_openai_client_errors_tools_auth_and_failed_turns(
    gateway: Gateway, oai: openai.OpenAI, sim: Simulator, model: str
) -> None:
    with pytest.raises(openai.BadRequestError, match="tools sent by the caller"):
        oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    with pytest.raises(openai.BadRequestError, match="user message"):
        oai.chat.completions.create(model=model,
                                    messages=[{"role": "system", "content": "x"}])
    wrong = openai.OpenAI(base_url=gateway.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    sim.script(model, {"error": {"status": 400, "message": "context too long"}})
    with pytest.raises(openai.InternalServerError, match="context too long"):
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    sim.script(model, {"error": {"status": 400, "message": "bad stream request"}})
    stream = oai.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIError, match="bad stream request"):
        list(stream)


def test_sse_raw_chunks_end_with_done(gateway: Gateway, sim: Simulator, model: str) -> None:
    sim.script(model, {"content": "short"})
    lines = []
    with gateway.call("POST", "/v1/chat/completions", stream=True,
                      json={"model": model, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as rsp:
        assert rsp.status_code == 200
        assert rsp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in rsp.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    bodies = [json.loads(line[6:]) for line in lines[:-1]]
    assert {b["object"] for b in bodies} == {"chat.completion.chunk"}
    assert "".join(b["choices"][0]["delta"].get("content") or "" for b in bodies) == "short"


def test_an_openai_stream_left_early_does_not_affect_the_job(
    oai: openai.OpenAI, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": ANSWER})
    stream_config(sim, model, chunks=100, chunk_delay_ms=20)  # about 2 s of streaming
    stream = oai.chat.completions.create(
        model=model, stream=True, extra_headers={"X-Session-Id": session},
        messages=[{"role": "user", "content": "hi"}])
    first = next(iter(stream))
    stream.close()  # the caller goes away after the first chunk
    result = wait_job(client, first.id.removeprefix("chatcmpl-"), 30)
    assert result.status == JobStatus.SUCCEEDED and result.response == ANSWER
    assert [m.content for m in client.history(session)] == ["hi", ANSWER]
