"""Assistant mode end to end: producer -> Redis -> real workers -> simulator runs over HTTP.

Both protocols: the Responses API in background mode (default) and the Assistants API.
Each test scripts its own model, so the simulator's run decisions are exact.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from producer.client import AgentClient
from producer.contracts import TASK_START_TURN, TASK_SUBMIT_TOOL_OUTPUTS, JobResult, JobStatus
from tests.integration.conftest import Simulator, tool_call

pytestmark = [
    pytest.mark.integration,
    # the client's beta namespace warns that OpenAI retired the Assistants API
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
PROTOCOLS = ["responses", "assistants"]
FAST = 100  # ms each scripted run decision takes server-side


def ask(session: str, model: str, message: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"session_id": session, "message": message, "model": model, "mode": "assistant",
            "poll_interval": 0.1, **fields}


def reply(content: str) -> dict[str, Any]:
    return {"content": content, "delay_ms": FAST}


def calls(*items: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(items), "delay_ms": FAST}


def kinds(client: AgentClient, job_id: str) -> list[str]:
    return [event.kind for event in client.events(job_id, timeout=5)]


def submitted_outputs(sim: Simulator, model: str, protocol: str) -> list[list[str]]:
    """The call ids of each round of tool outputs the server received, in order sent."""
    if protocol == "assistants":
        bodies = sim.requests(model, "runs.submit_tool_outputs")
        return [[o["tool_call_id"] for o in body["tool_outputs"]] for body in bodies]
    bodies = sim.requests(model, "responses.create")[1:]
    return [[item["call_id"] for item in body["input"]] for body in bodies]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_tool_round(
    client: AgentClient, sim: Simulator, model: str, session: str, protocol: str
) -> None:
    sim.script(model, calls(tool_call("calculator", {"expression": "6 * 7"}, "call_1")),
               reply("It is 42."))
    job_id = client.submit(ask(session, model, "6 times 7?", protocol=protocol))
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert (result.mode, result.protocol, result.response) == ("assistant", protocol, "It is 42.")
    [source] = result.sources
    assert (source.tool_name, source.tool_call_id, source.content) == ("calculator", "call_1", "42")
    assert result.usage.total_tokens > 0
    if protocol == "assistants":
        assert result.run_id and result.thread_id and result.assistant_id
    else:
        assert result.response_id and result.run_id is None
    seen = kinds(client, job_id)
    for kind in ("started", "run_created", "run_polled", "tool_started", "tool_finished",
                 "tool_outputs_submitted", "succeeded"):
        assert kind in seen, seen
    assert seen.index("run_created") < seen.index("tool_started") < seen.index(
        "tool_outputs_submitted") < seen.index("succeeded")
    assert submitted_outputs(sim, model, protocol) == [["call_1"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_two_rounds_with_parallel_calls_submit_in_call_order(
    client: AgentClient, sim: Simulator, model: str, session: str, protocol: str
) -> None:
    sim.script(
        model,
        calls(tool_call("sleep_for", {"seconds": 0.4}, "slow"),
              tool_call("get_weather", {"city": "Paris"}, "fast")),
        calls(tool_call("calculator", {"expression": "2+3"}, "c3"),
              tool_call("echo", {"text": "x"}, "c4")),
        reply("Done."),
    )
    result = client.run(ask(session, model, protocol=protocol), timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [s.tool_call_id for s in result.sources] == ["slow", "fast", "c3", "c4"]
    assert submitted_outputs(sim, model, protocol) == [["slow", "fast"], ["c3", "c4"]]
    assert result.model_calls == 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tool_errors_are_submitted_so_the_run_goes_on(
    client: AgentClient, sim: Simulator, model: str, session: str, protocol: str
) -> None:
    sim.script(
        model,
        calls(tool_call("no_such_tool", {}, "u1"),
              tool_call("calculator", "{not json", "b1"),
              tool_call("fail_always", {"reason": "kaput"}, "e1")),
        reply("Recovered."),
    )
    result = client.run(ask(session, model, protocol=protocol), timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "Recovered."
    unknown, bad_json, raised = result.sources
    assert all(s.is_error for s in result.sources)
    assert unknown.content == "Tool with name no_such_tool not found"
    assert "malformed" in bad_json.content
    assert "kaput" in raised.content
    assert submitted_outputs(sim, model, protocol) == [["u1", "b1", "e1"]]


TERMINAL = [
    ({"run_status": "failed", "last_error": {"code": "server_error", "message": "it broke"}},
     "run failed: server_error: it broke"),
    ({"run_status": "incomplete", "incomplete_reason": "max_prompt_tokens"},
     "run incomplete: max_prompt_tokens"),
    ({"run_status": "expired"}, "run expired"),
    ({"run_status": "cancelled"}, "run cancelled"),
]


@pytest.mark.parametrize(("form", "error"), TERMINAL, ids=["failed", "incomplete", "expired",
                                                           "cancelled"])
def test_each_terminal_status_fails_the_job_with_the_servers_reason(
    client: AgentClient, sim: Simulator, model: str, session: str, form: dict[str, Any],
    error: str,
) -> None:
    sim.script(model, {**form, "delay_ms": FAST})
    result = client.run(ask(session, model, "please echo me", protocol="assistants"), timeout=30)
    assert result.status == JobStatus.FAILED
    assert result.error is not None and result.error.startswith(error), result.error
    assert result.response is None  # never the user's own message


def test_a_failed_background_response(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"run_status": "failed",
                       "last_error": {"code": "server_error", "message": "no luck"}})
    result = client.run(ask(session, model), timeout=30)
    assert result.status == JobStatus.FAILED
    assert result.error == "run failed: server_error: no luck"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deadline_cancels_the_run_server_side(
    client: AgentClient, sim: Simulator, model: str, session: str, protocol: str
) -> None:
    sim.script(model, {"never_finish": True})
    started = time.monotonic()
    job_id = client.submit(ask(session, model, protocol=protocol, deadline_seconds=1.5))
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.FAILED
    assert "deadline" in (result.error or ""), result.error
    assert time.monotonic() - started < 10
    kind, object_id = ("runs", result.run_id) if protocol == "assistants" else (
        "responses", result.response_id)
    if object_id is None:  # the watchdog ended the record first: read the id from the event
        object_id = _created_id(client, job_id)
    assert _eventually(lambda: sim.peek(kind, object_id)["status"] == "cancelled")


def test_cancel_stops_the_run_server_side(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"never_finish": True})
    job_id = client.submit(ask(session, model, protocol="assistants"))
    run_id = _eventually(lambda: _created_id(client, job_id))
    cancelled = client.cancel(job_id)
    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
    assert _eventually(lambda: sim.peek("runs", run_id)["status"] == "cancelled")


def test_history_and_reset_of_an_assistants_session(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, reply("First answer."), reply("Second answer."), reply("Fresh start."))
    first = client.run(ask(session, model, "one", protocol="assistants"), timeout=30)
    second = client.run(ask(session, model, "two", protocol="assistants"), timeout=30)
    assert first.thread_id and first.thread_id == second.thread_id  # one thread per session
    history = client.history(session)
    assert [(m.role, m.content) for m in history] == [
        ("user", "one"), ("assistant", "First answer."),
        ("user", "two"), ("assistant", "Second answer."),
    ]
    deleted_before = sim.stats()["thread_deleted"]
    assert client.reset(session) is True
    assert sim.stats()["thread_deleted"] == deleted_before + 1
    assert client.history(session) == []
    third = client.run(ask(session, model, "three", protocol="assistants"), timeout=30)
    assert third.status == JobStatus.SUCCEEDED and third.thread_id != first.thread_id


def test_history_and_reset_of_a_responses_session(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, reply("Noted."), reply("Still here."))
    first = client.run(ask(session, model, "remember 7"), timeout=30)
    second = client.run(ask(session, model, "what was it?"), timeout=30)
    assert first.status == second.status == JobStatus.SUCCEEDED
    # the second response continues the first (previous_response_id from the session)
    creates = sim.requests(model, "responses.create")
    assert creates[1]["previous_response_id"] == first.response_id
    assert [(m.role, m.content) for m in client.history(session)] == [
        ("user", "remember 7"), ("assistant", "Noted."),
        ("user", "what was it?"), ("assistant", "Still here."),
    ]
    assert client.reset(session) is True
    assert client.history(session) == []


def test_an_existing_assistant_is_used_as_is(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    assistant = sim.openai().beta.assistants.create(model=model, name="pre-made")
    sim.script(model, reply("From the pre-made one."))
    created_before = sim.stats()["assistant_created"]
    result = client.run(ask(session, model, protocol="assistants",
                            assistant={"assistant_id": assistant.id}), timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.assistant_id == assistant.id
    assert sim.stats()["assistant_created"] == created_before


def same_definition_at_once(
    client: AgentClient, model: str, definition: dict[str, str], timeout: float
) -> list[JobResult]:
    """Three jobs in three sessions, submitted together, naming one assistant definition."""
    jobs = [client.submit(ask(f"race-{uuid.uuid4().hex[:8]}", model, protocol="assistants",
                              assistant=definition)) for _ in range(3)]
    return [client.wait(job_id, timeout=timeout) for job_id in jobs]


def test_jobs_waiting_for_a_slow_assistant_creation_do_not_fail(
    client: AgentClient, sim: Simulator, model: str
) -> None:
    # A real API takes a second or more to create an assistant. The jobs that find it
    # being created wait for it, and waiting spends none of their model retries.
    definition = {"name": f"slow-{uuid.uuid4().hex[:8]}", "instructions": "Be brief."}
    sim.script(model, *(reply(f"answer {i}") for i in range(3)))
    created_before = sim.stats()["assistant_created"]
    sim.faults(slow_rate=1.0, slow_ms=2500, paths=["/v1/assistants"])
    try:
        results = same_definition_at_once(client, model, definition, timeout=60)
    finally:
        sim.faults()
    assert all(r.status == JobStatus.SUCCEEDED for r in results), [r.error for r in results]
    assert len({r.assistant_id for r in results}) == 1
    assert sim.stats()["assistant_created"] == created_before + 1


def test_one_assistant_per_definition_even_when_requests_race(
    client: AgentClient, sim: Simulator, model: str
) -> None:
    definition = {"name": f"helper-{uuid.uuid4().hex[:8]}", "instructions": "Be brief."}
    sim.script(model, *(reply(f"answer {i}") for i in range(4)))
    created_before = sim.stats()["assistant_created"]
    results = same_definition_at_once(client, model, definition, timeout=30)
    assert all(r.status == JobStatus.SUCCEEDED for r in results), [r.error for r in results]
    later = client.run(ask(f"race-{uuid.uuid4().hex[:8]}", model, protocol="assistants",
                           assistant=definition), timeout=30)
    assert len({r.assistant_id for r in [*results, later]}) == 1
    assert sim.stats()["assistant_created"] == created_before + 1


def test_run_instructions_replace_the_assistants_for_that_run(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, reply("ok"))
    result = client.run(ask(session, model, protocol="assistants",
                            assistant={"instructions": "Always rhyme."},
                            run_instructions="Answer in French."), timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    [create] = sim.requests(model, "runs.create")
    assert create["instructions"] == "Answer in French."


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_files_attached_by_id_and_uploaded_from_a_path(
    client: AgentClient, sim: Simulator, model: str, session: str, protocol: str, tmp_path: Any,
) -> None:
    uploaded = sim.openai().files.create(file=("notes.txt", b"the code is 1234"),
                                         purpose="assistants")
    path = tmp_path / "report.txt"
    path.write_text("quarterly numbers")
    sim.script(model, reply("Read them."))
    result = client.run(ask(session, model, protocol=protocol, file_ids=[uploaded.id],
                            files=[str(path)]), timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    [(new_id, name)] = result.files.items()
    assert name == str(path)
    if protocol == "assistants":
        assert result.thread_id
        [message] = [m for m in sim.openai().beta.threads.messages.list(result.thread_id)
                     if m.role == "user"]
        attached = [(a.file_id, [t.type for t in a.tools or []]) for a in message.attachments]
        assert attached == [(uploaded.id, ["file_search"]), (new_id, ["file_search"])]
    else:
        [create] = sim.requests(model, "responses.create")
        parts = create["input"][0]["content"]
        assert [p.get("file_id") for p in parts if p["type"] == "input_file"] == [
            uploaded.id, new_id]


def test_a_missing_or_too_large_file_fails_before_any_run(
    client: AgentClient, sim: Simulator, model: str, session: str, tmp_path: Any
) -> None:
    created_before = sim.stats()["response_created"]
    result = client.run(ask(session, model, files=[str(tmp_path / "nope.txt")]), timeout=30)
    assert result.status == JobStatus.FAILED
    assert "nope.txt" in (result.error or "") and "cannot be read" in (result.error or "")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (20 * 1024 * 1024 + 1))
    result = client.run(ask(session, model, files=[str(big)]), timeout=30)
    assert result.status == JobStatus.FAILED and "the limit is" in (result.error or "")
    assert sim.stats()["response_created"] == created_before


def test_duplicated_start_and_submit_messages_change_nothing(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    """At-least-once delivery: a second copy of the start message creates no second run,
    and a second copy of a round's submit callback submits nothing again."""
    sim.script(model, calls(tool_call("calculator", {"expression": "1+1"}, "d1")),
               reply("Two."))
    before = sim.stats()
    job_id = client.submit(ask(session, model, protocol="assistants"))
    message = json.loads(client.jobs.redis.get(f"ca:job:{job_id}:message") or "null")
    client.celery.send_task(TASK_START_TURN, kwargs={"message": message}, ignore_result=True)
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    output = result.sources[0].model_dump()
    client.celery.send_task(TASK_SUBMIT_TOOL_OUTPUTS, args=[[output]],
                            kwargs={"job_id": job_id, "tool_round": 1}, ignore_result=True)
    time.sleep(1.0)
    after = sim.stats()
    assert after["run_created"] - before["run_created"] == 1
    assert after["tool_outputs_submitted"] - before["tool_outputs_submitted"] == 1
    final: JobResult | None = client.status(job_id)
    assert final is not None and final.status == JobStatus.SUCCEEDED


def _created_id(client: AgentClient, job_id: str) -> str | None:
    for _, event in client.jobs.read_events(job_id):
        if event.kind == "run_created":
            return str(event.detail.get("run_id") or event.detail.get("response_id"))
    return None


def _eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
