"""Pure assistant-run logic: status -> next phase, backoff, tool rounds, budget, deadline;
and the adapters' reading of run/response JSON (no Celery, no Redis, no HTTP)."""

from __future__ import annotations

import pytest

from producer.contracts import ChatRequest, ToolCall, ToolOutput, Usage
from worker.assistant import assistants_api, responses_api
from worker.assistant.logic import (
    RunSnapshot,
    apply_snapshot,
    apply_submitted,
    budget_spent,
    failed,
    ordered_outputs,
    poll_due,
    retry_later,
    start_polling,
    timed_out,
)
from worker.assistant.state import RunState, new_run_state

CAP = 5.0


def state(**request: object) -> RunState:
    fields: dict[str, object] = {"session_id": "s1", "message": "hello", "mode": "assistant"}
    fields.update(request)
    new = new_run_state(job_id="job-0001", request=ChatRequest.model_validate(fields),
                        model="m", tool_names=["calculator"], created_at=100.0)
    new.response_id = "resp_1"
    return start_polling(new, now=100.0)


def call(call_id: str, name: str = "calculator") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments='{"expression": "1+1"}')


def output(c: ToolCall, content: str = "2") -> ToolOutput:
    return ToolOutput(tool_name=c.name, tool_call_id=c.id, arguments=c.arguments, content=content)


def test_first_poll_is_due_at_once_then_the_countdown_grows_to_a_cap() -> None:
    s = state(poll_interval=0.5)
    assert (s.phase, s.next_poll_at, s.interval) == ("polling", 100.0, 0.5)
    waits, now = [], 100.0
    for _ in range(8):
        s = apply_snapshot(s, RunSnapshot("in_progress"), now, CAP)
        waits.append(round(s.next_poll_at - now, 3))
        now = s.next_poll_at
    assert waits == [0.5, 0.75, 1.125, 1.688, 2.531, 3.797, 5.0, 5.0]
    assert s.polls == 8 and s.phase == "polling" and s.last_status == "in_progress"


def test_each_transition_bumps_the_version_and_leaves_the_old_state_alone() -> None:
    s = state()
    new = apply_snapshot(s, RunSnapshot("requires_action", (call("a"),)), 101.0, CAP)
    assert new.version == s.version + 1
    assert s.pending_calls == [] and s.phase == "polling"  # not mutated


def test_requires_action_starts_a_tool_round_and_submitting_resets_the_interval() -> None:
    s = state(poll_interval=0.2)
    for _ in range(3):
        s = apply_snapshot(s, RunSnapshot("queued"), 101.0, CAP)
    assert s.interval > 0.2
    calls = (call("a"), call("b", "get_weather"))
    s = apply_snapshot(s, RunSnapshot("requires_action", calls, usage=Usage(total_tokens=3)),
                       102.0, CAP)
    assert (s.phase, s.tool_rounds, s.runnable_calls()) == ("tools", 1, list(calls))
    assert s.usage.total_tokens == 3
    outputs = ordered_outputs(s, [output(calls[1], "sunny"), output(calls[0])])  # any order in
    assert [o.tool_call_id for o in outputs] == ["a", "b"]  # call order out
    s = apply_submitted(s, outputs, 103.0, response_id="resp_2")
    assert (s.phase, s.interval, s.next_poll_at) == ("polling", 0.2, 103.2)
    assert s.response_id == "resp_2" and s.function_calls == 2 and len(s.sources) == 2
    assert s.pending_calls == []


def test_missing_outputs_are_an_error() -> None:
    s = apply_snapshot(state(), RunSnapshot("requires_action", (call("a"), call("b"))), 1, CAP)
    with pytest.raises(ValueError, match="missing"):
        ordered_outputs(s, [output(call("a"))])


def test_calls_past_the_budget_get_error_outputs_and_a_second_refused_round_fails() -> None:
    s = state(max_function_calls=1)
    s = apply_snapshot(s, RunSnapshot("requires_action", (call("a"), call("b"))), 1, CAP)
    assert [c.id for c in s.runnable_calls()] == ["a"]
    [ok, refused] = ordered_outputs(s, [output(call("a"))])
    assert refused.is_error and "budget of 1" in refused.content and not ok.is_error
    s = apply_submitted(s, [ok, refused], 2, None)
    assert budget_spent(s)
    s = apply_snapshot(s, RunSnapshot("requires_action", (call("c"),)), 3, CAP)
    assert s.phase == "tools" and s.runnable_calls() == []  # refused, but submitted
    s = apply_submitted(s, ordered_outputs(s, []), 4, None)
    s = apply_snapshot(s, RunSnapshot("requires_action", (call("d"),)), 5, CAP)
    assert (s.phase, s.outcome) == ("done", "failed")
    assert "kept calling tools" in (s.error or "")


def test_completed_takes_the_newest_message_and_never_the_users_own() -> None:
    s = apply_snapshot(state(), RunSnapshot("completed", text="Hi!", usage=Usage(total_tokens=9)),
                       1, CAP)
    assert (s.phase, s.outcome, s.response, s.usage.total_tokens) == ("done", "succeeded", "Hi!", 9)
    empty = apply_snapshot(state(), RunSnapshot("completed", text=None), 1, CAP)
    assert (empty.outcome, empty.response) == ("failed", None)
    assert "without an assistant message" in (empty.error or "")


@pytest.mark.parametrize("status", ["failed", "cancelled", "expired", "incomplete"])
def test_terminal_statuses_fail_the_job_with_the_servers_reason(status: str) -> None:
    s = apply_snapshot(state(), RunSnapshot(status, error="server_error: boom"), 1, CAP)
    assert (s.phase, s.outcome) == ("done", "failed")
    assert s.error == f"run {status}: server_error: boom"
    bare = apply_snapshot(state(), RunSnapshot(status), 1, CAP)
    assert bare.error == f"run {status}"


def test_unknown_status_and_requires_action_without_calls_fail() -> None:
    assert "unexpected run status" in (apply_snapshot(state(), RunSnapshot("odd"), 1, CAP).error
                                       or "")
    s = apply_snapshot(state(), RunSnapshot("requires_action"), 1, CAP)
    assert s.outcome == "failed"


def test_deadline_bounds_the_next_poll_and_is_noticed() -> None:
    s = state(deadline_seconds=2)
    assert s.deadline_at == 102.0
    assert poll_due(s, 500.0) == 102.0
    s = apply_snapshot(s, RunSnapshot("in_progress"), 101.9, CAP)
    assert s.next_poll_at == 102.0
    assert not timed_out(s, 101.99) and timed_out(s, 102.0)


def test_retry_later_and_failed() -> None:
    s = retry_later(state(), 100.0, 2.0)
    assert (s.api_errors, s.next_poll_at, s.phase) == (1, 102.0, "polling")
    assert apply_snapshot(s, RunSnapshot("in_progress"), 103, CAP).api_errors == 0
    f = failed(s, "nope")
    assert (f.phase, f.outcome, f.error) == ("done", "failed", "nope")


def test_state_round_trips_through_json() -> None:
    s = apply_snapshot(state(), RunSnapshot("requires_action", (call("a"),)), 1, CAP)
    assert RunState.model_validate_json(s.model_dump_json()) == s


# Reading the APIs' JSON
def test_a_response_with_function_calls_is_requires_action() -> None:
    snap = responses_api.snapshot({
        "status": "completed",
        "output": [
            {"type": "function_call", "call_id": "c1", "name": "calculator",
             "arguments": '{"expression": "2"}'},
            {"type": "function_call", "call_id": "c2", "name": "echo", "arguments": ""},
        ],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
    })
    assert snap.status == "requires_action"
    assert [(c.id, c.name) for c in snap.tool_calls] == [("c1", "calculator"), ("c2", "echo")]
    assert snap.usage == Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)


def test_a_completed_response_gives_its_last_message_text() -> None:
    snap = responses_api.snapshot({
        "status": "completed",
        "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "first"}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Hello, "},
                         {"type": "output_text", "text": "world"}]},
        ],
    })
    assert (snap.status, snap.text, snap.usage) == ("completed", "Hello, world", None)


def test_response_errors_and_incomplete_reasons() -> None:
    failed_snap = responses_api.snapshot(
        {"status": "failed", "error": {"code": "server_error", "message": "boom"}, "output": []}
    )
    assert (failed_snap.status, failed_snap.error) == ("failed", "server_error: boom")
    incomplete = responses_api.snapshot(
        {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    )
    assert incomplete.error == "max_output_tokens"
    assert responses_api.snapshot({"status": "in_progress", "usage": {"total_tokens": 3}}).usage \
        is None


def test_a_run_needing_outputs_and_a_failed_run() -> None:
    snap = assistants_api.snapshot({
        "status": "requires_action",
        "required_action": {"type": "submit_tool_outputs", "submit_tool_outputs": {
            "tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "calculator", "arguments": "{}"}}]}},
        "usage": None,
    }, None)
    assert snap.status == "requires_action" and snap.tool_calls[0].id == "c1"
    assert snap.usage is None
    bad = assistants_api.snapshot({
        "status": "failed", "last_error": {"code": "rate_limit_exceeded", "message": "slow down"},
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }, None)
    assert bad.error == "rate_limit_exceeded: slow down" and bad.usage is not None
    incomplete = assistants_api.snapshot(
        {"status": "incomplete", "incomplete_details": {"reason": "max_prompt_tokens"}}, None
    )
    assert incomplete.error == "max_prompt_tokens"


def test_tool_schemas_in_the_responses_flat_shape() -> None:
    from worker.assistant.protocol import flat_function_tools

    nested = [{"type": "function", "function": {
        "name": "calculator", "description": "Math.",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}]
    assert flat_function_tools(nested) == [{
        "type": "function", "name": "calculator", "description": "Math.",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        "strict": False,
    }]
